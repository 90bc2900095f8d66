"""End-to-end fixtures: the whole mesh from `stack`, reached only through its gateway."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from cift.stack.launcher import StackInfo
from tests.e2e.e2e_client import Rest, Trader, grpc_target, register_and_login


@pytest.fixture(scope="session")
def gateway_url(stack: StackInfo) -> str:
    assert stack.gateway_url is not None, "the stack fixture runs without its gateway"
    return stack.gateway_url


@pytest.fixture(scope="session")
def rest(gateway_url: str) -> Rest:
    return Rest(gateway_url)


@pytest.fixture
def trader(rest: Rest) -> Trader:
    """A newly registered, signed-in trader with a fresh paper account."""
    return register_and_login(rest)


@pytest.fixture(scope="session")
def channel(gateway_url: str) -> Iterator[grpc.Channel]:
    """Native gRPC (h2c) to the gateway's one port."""
    with grpc.insecure_channel(grpc_target(gateway_url)) as opened:
        yield opened


@pytest.fixture(scope="session")
def stack_info(stack: StackInfo) -> StackInfo:
    return stack
