"""The environment of the stack a bench starts for itself."""

from __future__ import annotations

import os
from collections.abc import Mapping

HISTORY_SETTING = "CIFT_MARKETDATA_SIMULATOR_HISTORY_S"


def bench_stack_environ(base: Mapping[str, str] | None = None, **settings: str) -> dict[str, str]:
    """`base` (this process's environment by default) with `settings`, and no simulated hour.

    `cift up` starts a new stack with an hour of simulated past, which market data
    publishes over its first ~40 s at 10,000 ticks/s: in a bench it would run during
    the measurement, so a bench's stack starts without it.
    """
    return {**(os.environ if base is None else base), HISTORY_SETTING: "0", **settings}
