"""API keys, scopes, JWT forgeries, signing-key rotation and the JWKS every service uses."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cift.auth.v1 import auth_pb2, auth_pb2_grpc
from cift.runtime.errors import Unauthenticated
from cift.runtime.tokens import JwksVerifier, b64url_encode
from services.auth import store
from services.auth.__main__ import APP, key_ring
from services.auth.server import create_user
from services.auth.signing import open_private_key
from tests.integration.auth.auth_helpers import (
    PASSWORD,
    api_key,
    bearer,
    new_email,
    register_and_login,
    rpc_error,
    trailer,
)
from tests.integration.auth.conftest import RunningAuth

pytestmark = pytest.mark.integration


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthServiceAsyncStub:
    return auth_pb2_grpc.AuthServiceStub(channel)


async def active_key(auth_service: RunningAuth) -> tuple[str, Ed25519PrivateKey]:
    rows = await store.signing_keys(auth_service.pool)
    active = next(row for row in rows if row.retired_at is None)
    secret = auth_service.config.auth_signing_key_secret
    return active.kid, open_private_key(active.kid, active.sealed_private_key, secret)


def claims_for(user: auth_pb2.User, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": user.id,
        "acct": user.account_id,
        "scope": "read trade admin",
        "iss": "cift-auth",
        "aud": "cift",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "forged",
    }
    payload.update(overrides)
    return payload


# --- API keys -------------------------------------------------------------------------


async def test_api_key_lifecycle(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    user, login = await register_and_login(stub)
    created = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="bot", scopes=["read"]),
        metadata=bearer(login.access_token),
    )
    assert created.key.startswith(created.api_key.prefix + "_")
    assert list(created.api_key.scopes) == ["read"]
    assert not created.api_key.HasField("revoked_at")

    me = await stub.GetMe(auth_pb2.GetMeRequest(), metadata=api_key(created.key))
    assert me.user.id == user.id

    listed = await stub.ListApiKeys(
        auth_pb2.ListApiKeysRequest(), metadata=bearer(login.access_token)
    )
    assert [k.id for k in listed.api_keys] == [created.api_key.id]
    assert created.key not in str(listed)  # the secret is shown once only
    stored_hash = await auth_service.pool.fetchval(
        "SELECT secret_hash FROM api_keys WHERE id = $1::uuid", created.api_key.id
    )
    assert created.key.split("_")[2].encode() not in bytes(stored_hash)

    revoked = await stub.RevokeApiKey(
        auth_pb2.RevokeApiKeyRequest(key_id=created.api_key.id), metadata=bearer(login.access_token)
    )
    assert revoked.api_key.HasField("revoked_at")
    error = await rpc_error(stub.GetMe(auth_pb2.GetMeRequest(), metadata=api_key(created.key)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    again = await stub.RevokeApiKey(
        auth_pb2.RevokeApiKeyRequest(key_id=created.api_key.id), metadata=bearer(login.access_token)
    )
    assert again.api_key.revoked_at == revoked.api_key.revoked_at

    events = {
        (e.event, e.detail.get("key_id"))
        for e in await store.audit_entries(auth_service.pool, limit=50)
    }
    assert ("api_key_created", created.api_key.id) in events
    assert ("api_key_revoked", created.api_key.id) in events


async def test_api_key_last_use_is_recorded(stub: auth_pb2_grpc.AuthServiceAsyncStub) -> None:
    _, login = await register_and_login(stub)
    created = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="bot", scopes=["read", "trade"]),
        metadata=bearer(login.access_token),
    )
    await stub.GetMe(auth_pb2.GetMeRequest(), metadata=api_key(created.key))
    assert APP.credentials is not None
    await APP.credentials.flush_key_use()
    listed = await stub.ListApiKeys(auth_pb2.ListApiKeysRequest(), metadata=api_key(created.key))
    assert listed.api_keys[0].HasField("last_used_at")


async def test_an_api_key_cannot_create_api_keys(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    """The security probe's finding: a key minted children that outlived its revocation."""
    _, login = await register_and_login(stub)
    parent = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="parent", scopes=["read", "trade"]),
        metadata=bearer(login.access_token),
    )
    error = await rpc_error(
        stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="child", scopes=["read"]),
            metadata=api_key(parent.key),
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert trailer(error, "cift-reason") == "API_KEY_CANNOT_CREATE_KEYS"
    assert "sign in with your password" in (error.details() or "")
    listed = await stub.ListApiKeys(
        auth_pb2.ListApiKeysRequest(), metadata=bearer(login.access_token)
    )
    assert [k.name for k in listed.api_keys] == ["parent"]
    # Nor through the identity token the gateway check mints for the key.
    assert APP.credentials is not None
    identity = await APP.credentials.verify_api_key(parent.key)
    error = await rpc_error(
        stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="child", scopes=["read"]),
            metadata=(("x-cift-identity", identity.token),),
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_cannot_revoke_someone_elses_key(stub: auth_pb2_grpc.AuthServiceAsyncStub) -> None:
    _, owner = await register_and_login(stub)
    _, other = await register_and_login(stub)
    created = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="mine", scopes=["read"]),
        metadata=bearer(owner.access_token),
    )
    for key_id in (created.api_key.id, "not-a-uuid"):
        error = await rpc_error(
            stub.RevokeApiKey(
                auth_pb2.RevokeApiKeyRequest(key_id=key_id), metadata=bearer(other.access_token)
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
    await stub.GetMe(auth_pb2.GetMeRequest(), metadata=api_key(created.key))


@pytest.mark.parametrize(
    "key",
    ["cift_abcdefgh_" + "a" * 52, "garbage", "cift_" + "a" * 70],
)
async def test_unknown_or_malformed_api_key_is_unauthenticated(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, key: str
) -> None:
    error = await rpc_error(stub.GetMe(auth_pb2.GetMeRequest(), metadata=api_key(key)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_key_with_right_prefix_and_wrong_secret_is_refused(
    stub: auth_pb2_grpc.AuthServiceAsyncStub,
) -> None:
    _, login = await register_and_login(stub)
    created = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="bot", scopes=["read", "trade"]),
        metadata=bearer(login.access_token),
    )
    scheme, prefix, secret = created.key.split("_")
    forged = f"{scheme}_{prefix}_{'b' if secret[0] != 'b' else 'c'}{secret[1:]}"
    error = await rpc_error(stub.GetMe(auth_pb2.GetMeRequest(), metadata=api_key(forged)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("name", "scopes"), [("", ["read"]), ("bot", ["root"]), ("bot", []), ("x" * 101, ["read"])]
)
async def test_bad_key_requests_are_invalid_argument_and_write_nothing(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, name: str, scopes: list[str]
) -> None:
    _, login = await register_and_login(stub)
    error = await rpc_error(
        stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name=name, scopes=scopes),
            metadata=bearer(login.access_token),
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = await stub.ListApiKeys(
        auth_pb2.ListApiKeysRequest(), metadata=bearer(login.access_token)
    )
    assert not listed.api_keys


# --- scopes -------------------------------------------------------------------------------


async def test_user_cannot_mint_an_admin_key(stub: auth_pb2_grpc.AuthServiceAsyncStub) -> None:
    _, login = await register_and_login(stub)
    error = await rpc_error(
        stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="x", scopes=["admin"]),
            metadata=bearer(login.access_token),
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_admin_created_by_operator_gets_admin_scope(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    email = new_email()
    await create_user(
        auth_service.pool,
        auth_service.config,
        email=email,
        password=PASSWORD,
        display_name="Op",
        is_admin=True,
    )
    login = await stub.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    me = await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(login.access_token))
    assert me.user.is_admin and list(me.user.scopes) == ["read", "trade", "admin"]
    key = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="ops", scopes=["admin"]),
        metadata=bearer(login.access_token),
    )
    assert list(key.api_key.scopes) == ["admin"]


# --- JWT forgeries against the running service --------------------------------------------


async def test_jwt_attacks_are_all_unauthenticated(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    user, login = await register_and_login(stub)
    kid, private_key = await active_key(auth_service)
    public_raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    now = int(time.time())

    def signed(payload: dict[str, Any], *, key_id: str = kid) -> str:
        return jwt.encode(payload, private_key, algorithm="EdDSA", headers={"kid": key_id})

    def hs256_with_public_key(payload: dict[str, Any]) -> str:
        head = b64url_encode(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode())
        body = b64url_encode(json.dumps(payload).encode())
        mac = hmac.new(public_raw, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64url_encode(mac)}"

    header, _, signature = login.access_token.split(".")
    forgeries = {
        "alg none": ".".join(
            [
                b64url_encode(json.dumps({"alg": "none", "kid": kid}).encode()),
                b64url_encode(json.dumps(claims_for(user)).encode()),
                "",
            ]
        ),
        "HS256 with the public key": hs256_with_public_key(claims_for(user)),
        "wrong kid": signed(claims_for(user), key_id="not-a-known-kid"),
        "foreign key": jwt.encode(
            claims_for(user), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
        ),
        "expired": signed(claims_for(user, iat=now - 3600, nbf=now - 3600, exp=now - 1800)),
        "not yet valid": signed(claims_for(user, nbf=now + 600)),
        "wrong audience": signed(claims_for(user, aud="another-app")),
        "wrong issuer": signed(claims_for(user, iss="someone-else")),
        "tampered payload": f"{header}.{b64url_encode(json.dumps(claims_for(user)).encode())}.{signature}",
    }
    for name, token in forgeries.items():
        error = await rpc_error(stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(token)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, name
    # The control: the same key and claims, honestly signed, are accepted.
    assert (
        await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(signed(claims_for(user))))
    ).user.id == user.id


# --- JWKS and rotation ----------------------------------------------------------------------


async def test_jwks_serves_the_active_public_key(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    kid, private_key = await active_key(auth_service)
    jwks = await stub.GetJwks(auth_pb2.GetJwksRequest())
    published = {k.kid: k for k in jwks.keys}
    assert kid in published
    assert (
        published[kid].kty == "OKP"
        and published[kid].crv == "Ed25519"
        and published[kid].alg == "EdDSA"
    )
    assert published[kid].x == b64url_encode(
        private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


async def test_other_services_verify_tokens_and_api_keys_through_jwks_verifier(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    user, login = await register_and_login(stub)
    verifier = JwksVerifier(auth_service.config.__class__(auth_addr=auth_service.address))
    try:
        identity = await verifier.verify_token(login.access_token)
        assert (identity.user_id, identity.account_id) == (user.id, user.account_id)
        created = await stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="svc", scopes=["read"]),
            metadata=bearer(login.access_token),
        )
        by_key = await verifier.verify_api_key(created.key)
        assert by_key.user_id == user.id and by_key.scopes == {"read"}
        assert (await verifier.verify_token(by_key.token)).scopes == {"read"}
        with pytest.raises(Unauthenticated):
            await verifier.verify_api_key("cift_abcdefgh_" + "a" * 52)
    finally:
        await verifier.close()


async def test_rotation_keeps_live_tokens_valid_and_signs_with_the_new_key(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    user, before = await register_and_login(stub)
    old_kid = jwt.get_unverified_header(before.access_token)["kid"]
    await key_ring(auth_service.pool, auth_service.config).load(force_rotation=True)
    assert APP.credentials is not None
    await APP.credentials.key_ring.load()  # what the periodic reload does

    after = await stub.Login(auth_pb2.LoginRequest(email=user.email, password=PASSWORD))
    new_kid = jwt.get_unverified_header(after.access_token)["kid"]
    assert new_kid != old_kid
    for token in (before.access_token, after.access_token):
        assert (
            await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(token))
        ).user.id == user.id
    published = {k.kid for k in (await stub.GetJwks(auth_pb2.GetJwksRequest())).keys}
    assert {old_kid, new_kid} <= published
    stored = {row.kid: row for row in await store.signing_keys(auth_service.pool)}
    assert stored[old_kid].retired_at is not None and stored[new_kid].retired_at is None
    assert stored[new_kid].sealed_private_key[:8] == b"aesgcm1:"  # encrypted at rest
