"""`envoy.service.auth.v3.Authorization/Check`, called the way the gateway calls it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import urllib.parse

import grpc
import pytest
import redis.asyncio as aioredis

from cift.auth.v1 import auth_pb2, auth_pb2_grpc
from cift.extauthz.v3 import external_auth_pb2, external_auth_pb2_grpc
from cift.runtime.errors import Unauthenticated
from cift.runtime.tokens import JwksVerifier
from services.auth.__main__ import APP
from services.auth.credentials import REVOCATION_CHANNEL, Credentials
from tests.integration.auth.auth_helpers import bearer, register_and_login
from tests.integration.auth.conftest import RunningAuth

pytestmark = pytest.mark.integration


def check_request(
    path: str = "/v1/orders", method: str = "GET", **headers: str
) -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.path = path
    http.method = method
    for key, value in headers.items():
        http.headers[key.replace("_", "-")] = value
    return request


def headers_set(response: external_auth_pb2.CheckResponse) -> dict[str, str]:
    return {o.header.key: o.header.value for o in response.ok_response.headers}


def denied_headers(response: external_auth_pb2.CheckResponse) -> dict[str, str]:
    return {o.header.key: o.header.value for o in response.denied_response.headers}


@pytest.fixture
def check(channel: grpc.aio.Channel) -> external_auth_pb2_grpc.AuthorizationAsyncStub:
    return external_auth_pb2_grpc.AuthorizationStub(channel)


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthServiceAsyncStub:
    return auth_pb2_grpc.AuthServiceStub(channel)


async def test_valid_jwt_is_allowed_with_identity_headers_and_credential_removed(
    check: external_auth_pb2_grpc.AuthorizationAsyncStub, stub: auth_pb2_grpc.AuthServiceAsyncStub
) -> None:
    user, login = await register_and_login(stub)
    response = await check.Check(
        check_request(authorization=f"Bearer {login.access_token}", x_cift_user_id="someone-else")
    )
    assert response.status.code == 0
    headers = headers_set(response)
    assert headers["x-cift-user-id"] == user.id
    assert headers["x-cift-account-id"] == user.account_id
    assert headers["x-cift-scopes"] == "read trade"
    assert headers["x-cift-identity"] == login.access_token
    # Client-sent identity headers are overwritten, never appended to.
    assert all(
        o.append_action == o.OVERWRITE_IF_EXISTS_OR_ADD for o in response.ok_response.headers
    )
    assert set(response.ok_response.headers_to_remove) == {"authorization", "x-api-key"}


async def test_api_key_is_allowed_with_a_minted_identity_token_that_services_accept(
    check: external_auth_pb2_grpc.AuthorizationAsyncStub,
    stub: auth_pb2_grpc.AuthServiceAsyncStub,
    auth_service: RunningAuth,
) -> None:
    user, login = await register_and_login(stub)
    created = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="bot", scopes=["read"]),
        metadata=bearer(login.access_token),
    )
    response = await check.Check(check_request(x_api_key=created.key))
    headers = headers_set(response)
    assert response.status.code == 0
    assert headers["x-cift-scopes"] == "read"
    verifier = JwksVerifier(auth_service.config.__class__(auth_addr=auth_service.address))
    try:
        identity = await verifier.verify_token(headers["x-cift-identity"])
    finally:
        await verifier.close()
    assert (identity.user_id, identity.account_id) == (user.id, user.account_id)
    assert identity.scopes == frozenset({"read"})
    # Services can tell a key's caller from a person signed in with a password.
    assert identity.api_key_id == headers["x-cift-api-key-id"] == created.api_key.id


async def test_revoked_api_key_is_denied_on_the_next_check(
    check: external_auth_pb2_grpc.AuthorizationAsyncStub, stub: auth_pb2_grpc.AuthServiceAsyncStub
) -> None:
    _, login = await register_and_login(stub)
    created = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="bot", scopes=["read", "trade"]),
        metadata=bearer(login.access_token),
    )
    assert (await check.Check(check_request(x_api_key=created.key))).status.code == 0
    await stub.RevokeApiKey(
        auth_pb2.RevokeApiKeyRequest(key_id=created.api_key.id), metadata=bearer(login.access_token)
    )
    assert (await check.Check(check_request(x_api_key=created.key))).status.code == 16


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer not.a.jwt"},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": "Bearer "},
        {"x_api_key": "cift_abcdefgh_" + "a" * 52},
        {"x_cift_user_id": "u", "x_cift_account_id": "a", "x_cift_scopes": "admin"},
    ],
)
async def test_anything_else_is_denied_401_with_a_grpc_status_clients_can_read(
    check: external_auth_pb2_grpc.AuthorizationAsyncStub, headers: dict[str, str]
) -> None:
    response = await check.Check(check_request(**headers))
    assert response.status.code == 16
    assert response.denied_response.status.code == 401
    sent = denied_headers(response)
    assert sent["grpc-status"] == "16"
    assert (
        urllib.parse.unquote(sent["grpc-message"])
        == response.status.message
        == response.denied_response.body
    )
    assert sent["www-authenticate"].startswith("Bearer")
    assert not response.HasField("ok_response")


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/auth/login", "POST"),
        ("/cift.auth.v1.AuthService/Register", "POST"),
        ("/v1/auth/jwks?x=1", "GET"),
    ],
)
async def test_sign_in_paths_pass_without_credential_and_lose_spoofed_identity(
    check: external_auth_pb2_grpc.AuthorizationAsyncStub, path: str, method: str
) -> None:
    response = await check.Check(check_request(path, method, x_cift_user_id="spoofed"))
    assert response.status.code == 0
    assert not response.ok_response.headers
    assert set(response.ok_response.headers_to_remove) == {
        "x-cift-identity",
        "x-cift-user-id",
        "x-cift-account-id",
        "x-cift-scopes",
        "x-cift-api-key-id",
    }


@pytest.mark.parametrize("path", ["/v1/orders", "/cift.execution.v1.ExecutionService/SubmitOrder"])
async def test_options_without_credential_is_refused_like_any_method(
    check: external_auth_pb2_grpc.AuthorizationAsyncStub, path: str
) -> None:
    """The security probe's finding: OPTIONS skipped the check and reached execution."""
    response = await check.Check(check_request(path, "OPTIONS"))
    assert response.status.code == 16
    assert response.denied_response.status.code == 401


async def test_raw_header_map_mode_is_understood(
    check: external_auth_pb2_grpc.AuthorizationAsyncStub, stub: auth_pb2_grpc.AuthServiceAsyncStub
) -> None:
    user, login = await register_and_login(stub)
    request = check_request()
    entry = request.attributes.request.http.header_map.headers.add()
    entry.key = "authorization"
    entry.raw_value = f"Bearer {login.access_token}".encode()
    response = await check.Check(request)
    assert headers_set(response)["x-cift-user-id"] == user.id


async def test_revocation_reaches_another_replicas_cache_within_a_second(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    _, login = await register_and_login(stub)
    created = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="bot", scopes=["read"]),
        metadata=bearer(login.access_token),
    )
    redis = aioredis.from_url(auth_service.config.redis_url)
    # A second replica: its own caches, the same database, Redis and signing keys.
    config = dataclasses.replace(auth_service.config, auth_api_key_cache_s=600.0)
    assert APP.credentials is not None
    replica = Credentials(auth_service.pool, redis, APP.credentials.key_ring, config)
    follower = asyncio.create_task(replica.follow_revocations())
    try:
        for _ in range(500):
            if (await redis.pubsub_numsub(REVOCATION_CHANNEL))[0][1] >= 2:
                break
            await asyncio.sleep(0.01)
        assert (await replica.verify_api_key(created.key)).scopes == {
            "read"
        }  # now cached for 600 s
        await stub.RevokeApiKey(
            auth_pb2.RevokeApiKeyRequest(key_id=created.api_key.id),
            metadata=bearer(login.access_token),
        )
        revoked_at = time.monotonic()
        while True:
            try:
                await replica.verify_api_key(created.key)
            except Unauthenticated:
                break
            assert time.monotonic() - revoked_at < 1.0, "the replica still accepts a revoked key"
            await asyncio.sleep(0.005)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await redis.aclose()
