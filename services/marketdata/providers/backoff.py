"""Reconnect delays: exponential growth with full jitter, capped.

Full jitter (a uniform delay between zero and the exponential bound) spreads the
reconnects of many clients cut off at the same moment, which a fixed schedule
would line up against the provider again. Pure: the random source is injected.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays for successive failed attempts; `reset` after a connection that worked."""

    initial_s: float
    max_s: float
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s:
            raise ValueError("backoff needs 0 < initial_s <= max_s")

    def bound_s(self, failures: int) -> float:
        """The largest delay after `failures` consecutive failures (1 is the first)."""
        # The exponent is clamped so a long outage cannot overflow the float.
        return min(self.max_s, self.initial_s * 2.0 ** min(max(failures - 1, 0), 60))

    def next_delay_s(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        self.failures += 1
        bound = self.bound_s(self.failures)
        # Never below a tenth of the bound: a zero delay would hammer a provider that
        # just refused the connection.
        return self.rng.uniform(bound / 10, bound)

    def reset(self) -> None:
        self.failures = 0
