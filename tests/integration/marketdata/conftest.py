"""Fixtures of the marketdata integration tests: a fresh scenario (database + topic) per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.marketdata.marketdata_helpers import Scenario, new_scenario


@pytest.fixture
async def scenario(infra: Any) -> AsyncIterator[Scenario]:
    async with new_scenario(infra) as fresh:
        yield fresh
