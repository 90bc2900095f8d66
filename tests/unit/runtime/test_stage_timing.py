"""Stage timers: each stage its own series, present before the first call."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY

from cift.runtime.stage_timing import StageTimes


def sample(name: str, suffix: str, stage: str) -> float | None:
    return REGISTRY.get_sample_value(f"{name}{suffix}", {"stage": stage})


def test_each_stage_counts_only_its_own_time() -> None:
    name = f"cift_test_{uuid.uuid4().hex[:8]}_seconds"
    times = StageTimes(name, "Test stages.", ("read", "write"))
    assert [sample(name, "_count", s) for s in times.stages] == [0.0, 0.0]

    with times.time("read"):
        pass
    with pytest.raises(RuntimeError), times.time("write"):
        raise RuntimeError("a failed stage still took its time")
    with times.time("write"):
        pass

    assert [sample(name, "_count", s) for s in times.stages] == [1.0, 2.0]
    sums = [sample(name, "_sum", s) for s in times.stages]
    assert all(spent is not None and spent >= 0 for spent in sums)


def test_an_unnamed_stage_is_refused() -> None:
    times = StageTimes(f"cift_test_{uuid.uuid4().hex[:8]}_seconds", "Test stages.", ("read",))
    with pytest.raises(KeyError):
        times.time("write")
