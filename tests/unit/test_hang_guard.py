"""The hang guard fails a stuck async test and shows where it waited; it leaves others alone."""

from __future__ import annotations

import asyncio

import pytest

from tests.hang_guard import cancelled_after


async def waits_forever() -> None:
    await asyncio.Event().wait()


async def returns(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def test_a_stuck_test_fails_naming_itself_with_the_cancelled_await_chained() -> None:
    bounded = cancelled_after(waits_forever, 0.05, "tests/x.py::test_stuck")
    with pytest.raises(
        pytest.fail.Exception, match=r"tests/x.py::test_stuck still running"
    ) as failed:
        await bounded()
    timeout = failed.value.__context__
    assert isinstance(timeout, TimeoutError)
    assert isinstance(timeout.__context__, asyncio.CancelledError)


async def test_a_test_that_finishes_in_time_passes_its_result_through() -> None:
    bounded = cancelled_after(returns, 5.0, "tests/x.py::test_quick")
    assert await bounded(value=7) == 7
    assert bounded.__name__ == "returns"
