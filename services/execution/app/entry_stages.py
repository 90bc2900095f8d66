"""Where a SubmitOrder's time goes, stage by stage.

An order's reply waits on a chain: the entry read, the risk service, the write
with its commit, then the booking with the fill's commit. Each costs little CPU
but a full wait, and which one grows (when quiet: wake-ups and a WAL flush per
commit; under load: queueing for a batch slot) says what to tune. Each stage
counts from when the order asks for it, so time spent waiting for a batch slot
is in it. `bench/bench_order_ratio.py` reads these per rate.
"""

from __future__ import annotations

from cift.runtime.stage_timing import StageTimes

SUBMIT_STAGES = StageTimes(
    "cift_execution_submit_stage_seconds",
    "Time a SubmitOrder spent in each stage: context (the account, position and client "
    "id read), risk (the pre-trade check at the risk service), write (reserve and insert, "
    "committed), book (into the fill engine, with a fill's commit when it fills at once).",
    ("context", "risk", "write", "book"),
)
