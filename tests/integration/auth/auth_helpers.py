"""Small client-side helpers shared by the auth integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest

from cift.auth.v1 import auth_pb2, auth_pb2_grpc

PASSWORD = "correct horse battery 9"


def new_email() -> str:
    return f"trader-{uuid.uuid4().hex[:12]}@example.com"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def api_key(key: str) -> tuple[tuple[str, str], ...]:
    return (("x-api-key", key),)


def from_address(address: str) -> tuple[tuple[str, str], ...]:
    """Metadata of a call the gateway forwards for a client at `address`."""
    return (("x-cift-client-address", address),)


def random_address() -> str:
    """A fresh documentation-range address, so throttle counters of earlier runs never interfere."""
    n = uuid.uuid4().int
    return f"10.{n % 256}.{(n >> 8) % 256}.{(n >> 16) % 254 + 1}"


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def trailer(error: grpc.aio.AioRpcError, key: str) -> str:
    # grpc.aio hands back (key, value) tuples, whatever the stubs say.
    pairs: Any = error.trailing_metadata() or ()
    found = dict(pairs).get(key, "")
    return found if isinstance(found, str) else bytes(found).decode()


async def register_and_login(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, email: str | None = None
) -> tuple[auth_pb2.User, auth_pb2.LoginResponse]:
    email = email or new_email()
    registered = await stub.Register(
        auth_pb2.RegisterRequest(email=email, password=PASSWORD, display_name="T")
    )
    login = await stub.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    return registered.user, login
