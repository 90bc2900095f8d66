"""Register, login, refresh rotation with reuse detection, logout, GetMe, throttling."""

from __future__ import annotations

import uuid

import grpc
import pytest

from cift.auth.v1 import auth_pb2, auth_pb2_grpc
from services.auth import store
from tests.integration.auth.auth_helpers import (
    PASSWORD,
    bearer,
    from_address,
    new_email,
    random_address,
    register_and_login,
    rpc_error,
    trailer,
)
from tests.integration.auth.conftest import RunningAuth

pytestmark = pytest.mark.integration


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthServiceAsyncStub:
    return auth_pb2_grpc.AuthServiceStub(channel)


async def users_with_email(auth_service: RunningAuth, email: str) -> int:
    return int(
        await auth_service.pool.fetchval("SELECT count(*) FROM users WHERE email = $1", email)
    )


async def test_register_opens_an_account_with_the_opening_cash(
    stub: auth_pb2_grpc.AuthServiceAsyncStub,
) -> None:
    email = new_email()
    response = await stub.Register(
        auth_pb2.RegisterRequest(email=email.upper(), password=PASSWORD, display_name="Ada")
    )
    assert response.user.email == email
    assert response.user.display_name == "Ada"
    assert uuid.UUID(response.user.id) != uuid.UUID(response.user.account_id)
    assert list(response.user.scopes) == ["read", "trade"]
    assert not response.user.is_admin
    assert response.opening_cash == "100000"


async def test_register_twice_with_the_same_email_is_already_exists(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    email = new_email()
    await stub.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD))
    error = await rpc_error(
        stub.Register(auth_pb2.RegisterRequest(email=f" {email.title()} ", password=PASSWORD))
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "already exists" in (error.details() or "")
    assert await users_with_email(auth_service, email) == 1


@pytest.mark.parametrize(
    ("password", "hint"),
    [("short", "too short"), ("password123", "common"), ("aaaaaaaaaaaa", "too few")],
)
async def test_weak_password_is_refused_and_nothing_is_written(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth, password: str, hint: str
) -> None:
    email = new_email()
    error = await rpc_error(stub.Register(auth_pb2.RegisterRequest(email=email, password=password)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert hint in (error.details() or "")
    assert await users_with_email(auth_service, email) == 0


@pytest.mark.parametrize(
    "email", ["", "not-an-email", "a@b", "two@@example.com", "ünï@example.com"]
)
async def test_malformed_email_is_invalid_argument(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, email: str
) -> None:
    error = await rpc_error(stub.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "email" in (error.details() or "")


async def test_login_returns_bearer_tokens_that_get_me_accepts(
    stub: auth_pb2_grpc.AuthServiceAsyncStub,
) -> None:
    user, login = await register_and_login(stub)
    assert login.token_type == "Bearer"
    assert login.expires_in == 900
    assert login.refresh_expires_in == 30 * 24 * 3600
    me = await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(login.access_token))
    assert me.user.id == user.id
    assert me.user.account_id == user.account_id


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    user, _ = await register_and_login(stub)
    address = random_address()
    where = from_address(address)
    wrong_password = await rpc_error(
        stub.Login(
            auth_pb2.LoginRequest(email=user.email, password="not the password 1"), metadata=where
        )
    )
    unknown_email = await rpc_error(
        stub.Login(auth_pb2.LoginRequest(email=new_email(), password=PASSWORD), metadata=where)
    )
    malformed_email = await rpc_error(
        stub.Login(
            auth_pb2.LoginRequest(email=f"no-at-sign-{uuid.uuid4().hex}", password=PASSWORD),
            metadata=where,
        )
    )
    for error in (wrong_password, unknown_email, malformed_email):
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == "The email or password is incorrect."
    entries = await store.audit_entries(auth_service.pool, limit=10)
    failed = [e for e in entries if e.event == "login_failed" and e.detail["email"] == user.email]
    assert failed and failed[0].user_id == user.id and failed[0].client_address == address


async def test_login_without_password_is_invalid_argument(
    stub: auth_pb2_grpc.AuthServiceAsyncStub,
) -> None:
    error = await rpc_error(stub.Login(auth_pb2.LoginRequest(email=new_email(), password="")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    user, login = await register_and_login(stub)
    first = await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token))
    assert first.refresh_token != login.refresh_token
    assert (
        await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(first.access_token))
    ).user.id == user.id
    second = await stub.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=first.refresh_token)
    )

    reused = await rpc_error(
        stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token))
    )
    assert reused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert trailer(reused, "cift-reason") == "REFRESH_TOKEN_REUSED"
    # The thief or the victim holds `second`; neither may use it any more.
    after = await rpc_error(
        stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=second.refresh_token))
    )
    assert after.code() == grpc.StatusCode.UNAUTHENTICATED
    entries = await store.audit_entries(auth_service.pool, limit=20)
    assert any(e.event == "refresh_token_reuse_detected" and e.user_id == user.id for e in entries)


async def test_other_logins_survive_a_reuse_in_one_family(
    stub: auth_pb2_grpc.AuthServiceAsyncStub,
) -> None:
    user, laptop = await register_and_login(stub)
    phone = await stub.Login(auth_pb2.LoginRequest(email=user.email, password=PASSWORD))
    await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=laptop.refresh_token))
    await rpc_error(
        stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=laptop.refresh_token))
    )
    await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=phone.refresh_token))


@pytest.mark.parametrize("token", ["", "garbage", "x" * 43])
async def test_unknown_or_malformed_refresh_token_is_unauthenticated(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, token: str
) -> None:
    error = await rpc_error(stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=token)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_logout_ends_the_session(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    user, login = await register_and_login(stub)
    await stub.Logout(
        auth_pb2.LogoutRequest(refresh_token=login.refresh_token),
        metadata=bearer(login.access_token),
    )
    error = await rpc_error(
        stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert trailer(error, "cift-reason") == "REFRESH_TOKEN_INVALID"
    # Logging out twice changes nothing and is not an error.
    await stub.Logout(
        auth_pb2.LogoutRequest(refresh_token=login.refresh_token),
        metadata=bearer(login.access_token),
    )
    entries = await store.audit_entries(auth_service.pool, limit=20)
    assert any(e.event == "logout" and e.user_id == user.id for e in entries)


async def test_logout_needs_a_credential_and_cannot_end_someone_elses_session(
    stub: auth_pb2_grpc.AuthServiceAsyncStub,
) -> None:
    _, victim = await register_and_login(stub)
    _, attacker = await register_and_login(stub)
    error = await rpc_error(stub.Logout(auth_pb2.LogoutRequest(refresh_token=victim.refresh_token)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    await stub.Logout(
        auth_pb2.LogoutRequest(refresh_token=victim.refresh_token),
        metadata=bearer(attacker.access_token),
    )
    await stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=victim.refresh_token))


async def test_get_me_without_credential_is_unauthenticated(
    stub: auth_pb2_grpc.AuthServiceAsyncStub,
) -> None:
    error = await rpc_error(stub.GetMe(auth_pb2.GetMeRequest()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_repeated_failures_slow_down_that_address_but_never_lock_the_owner_out(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    """The security probe's finding: 5 wrong passwords from anyone locked the owner out."""
    user, _ = await register_and_login(stub)
    attacker = from_address(random_address())
    for _ in range(auth_service.config.auth_login_free_failures):
        await rpc_error(
            stub.Login(
                auth_pb2.LoginRequest(email=user.email, password="wrong password 12"),
                metadata=attacker,
            )
        )
    error = await rpc_error(
        stub.Login(auth_pb2.LoginRequest(email=user.email, password=PASSWORD), metadata=attacker)
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailer(error, "cift-reason") == "LOGIN_THROTTLED"
    # Whole seconds, as HTTP's Retry-After: the first wait after the free failures.
    assert trailer(error, "retry-after") == str(int(auth_service.config.auth_login_backoff_base_s))
    entries = await store.audit_entries(auth_service.pool, limit=5)
    assert entries[0].event == "login_throttled"
    # The owner, from their own address, signs in at once.
    await stub.Login(
        auth_pb2.LoginRequest(email=user.email, password=PASSWORD),
        metadata=from_address(random_address()),
    )


async def test_a_client_cannot_pick_its_address_with_x_forwarded_for(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    """Behind the gateway only x-cift-client-address counts; x-forwarded-for is the client's."""
    user, _ = await register_and_login(stub)
    where = from_address(random_address())
    for n in range(auth_service.config.auth_login_free_failures + 1):
        forged = (*where, ("x-forwarded-for", f"198.51.100.{n + 1}"))
        error = await rpc_error(
            stub.Login(
                auth_pb2.LoginRequest(email=user.email, password="wrong password 12"),
                metadata=forged,
            )
        )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_one_address_failing_on_many_accounts_is_throttled(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, auth_service: RunningAuth
) -> None:
    user, _ = await register_and_login(stub)
    where = from_address(f"2001:db8:{uuid.uuid4().int % 9999:x}::7")
    for _ in range(auth_service.config.auth_login_max_failures_per_address):
        await rpc_error(
            stub.Login(
                auth_pb2.LoginRequest(email=new_email(), password="wrong password 12"),
                metadata=where,
            )
        )
    error = await rpc_error(
        stub.Login(auth_pb2.LoginRequest(email=user.email, password=PASSWORD), metadata=where)
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Another address is not affected.
    await stub.Login(
        auth_pb2.LoginRequest(email=user.email, password=PASSWORD),
        metadata=from_address(random_address()),
    )


async def test_successful_login_forgives_earlier_account_failures(
    stub: auth_pb2_grpc.AuthServiceAsyncStub,
) -> None:
    user, _ = await register_and_login(stub)
    where = from_address(random_address())
    for _ in range(2):
        await rpc_error(
            stub.Login(
                auth_pb2.LoginRequest(email=user.email, password="wrong password 12"),
                metadata=where,
            )
        )
    await stub.Login(auth_pb2.LoginRequest(email=user.email, password=PASSWORD), metadata=where)
    for _ in range(2):
        await rpc_error(
            stub.Login(
                auth_pb2.LoginRequest(email=user.email, password="wrong password 12"),
                metadata=where,
            )
        )
    await stub.Login(auth_pb2.LoginRequest(email=user.email, password=PASSWORD), metadata=where)
