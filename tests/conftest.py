"""Session fixtures: the launcher `cift up` runs, on free ports and a throwaway home.

What users run is what is tested: these fixtures drive `cift.stack.launcher.Stack`,
the same object behind `cift up`, with ports the kernel says are free (so a test run
never collides with a user's `cift up` or with the machine's own PostgreSQL on 5432
and Redis on 6379) and data that is thrown away afterwards.

- `infra`: PostgreSQL (with the `cift` database), Redis and the Kafka-protocol broker
  (with the five topics), and nothing else. For store and event tests.
- `stack`: its own infrastructure as above, every service's migrations, the four
  services (each reporting SERVING) and the Envoy gateway. For end-to-end tests.
  It shares nothing with `infra`, so what store tests write or publish never
  reaches the running services.
- `cift_up_environ`: an environment for running `cift up` as a separate process on
  free ports and a temporary home (CLI and process-tree tests).

Both stack fixtures yield a `cift.stack.launcher.StackInfo`. As with `cift up`, an
address set in the environment (CIFT_DATABASE_URL, CIFT_REDIS_URL,
CIFT_KAFKA_BOOTSTRAP) is used instead of starting that piece.

A hung test fails and says where it waits instead of running into CI's time limit
(tests/hang_guard.py).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from cift.runtime.config import env_name
from cift.stack.launcher import Stack, StackInfo, StackOptions
from cift.stack.ports import PortPlan
from tests.hang_guard import bound_async_tests


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    bound_async_tests(items)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def infra(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StackInfo]:
    home = tmp_path_factory.mktemp("cift-infra")
    launcher = Stack(StackOptions(home=home, with_services=False, free_ports=True, durable=False))
    info = await launcher.start()
    try:
        yield info
    finally:
        await launcher.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StackInfo]:
    # Its own PostgreSQL, Redis and broker, apart from `infra`: events that store tests
    # publish must not reach the running services' consumers, nor their rows the services.
    home = tmp_path_factory.mktemp("cift-stack")
    launcher = Stack(StackOptions(home=home, free_ports=True, durable=False), stack_environ())
    info = await launcher.start()
    try:
        yield info
    finally:
        await launcher.stop()


# The simulator's pace for the session-long `stack`: half the ticks of `cift up`'s default
# (2 ticks/s per symbol, a quarter of them trades), with as many trades. The embedded
# broker holds every tick for the whole session, and each fetch that returns records
# costs it time in proportion to what it holds: at the default pace it used 70 % of a
# core twelve minutes into a test run. The trades keep their pace because the
# dashboard's charts need a second-bar a second; quotes still move every few seconds.
# Three minutes of simulated past, stored at start, give the charts the 34 second-bars
# MACD's signal line needs (a trade in about 40 % of the seconds): without them the
# dashboard's test sat a minute waiting for them to accrue.
SESSION_STACK_FEED = {
    "marketdata_rate": "1.0",
    "marketdata_trade_probability": "0.5",
    "marketdata_simulator_history_s": "180",
}


def stack_environ() -> dict[str, str]:
    """This process's environment, with the session stack's feed pace unless set there."""
    environ = dict(os.environ)
    for setting, value in SESSION_STACK_FEED.items():
        environ.setdefault(env_name(setting), value)
    return environ


@pytest.fixture
def cift_up_environ(tmp_path: Path) -> dict[str, str]:
    """The process environment without any CIFT_* setting (so everything is embedded),
    with a temporary CIFT_HOME and every port free."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CIFT_")}
    environ.update(PortPlan.free().to_environ())
    environ[env_name("home")] = str(tmp_path / "cift-home")
    return environ
