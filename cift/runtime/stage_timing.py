"""Time spent in each stage of one operation, as a Prometheus histogram labelled by stage.

A use case names its stages and times them here; the metrics library (an I/O
edge: it serves /metrics) stays out of the use-case layer, as the coalescer's
batch sizes do. Every stage's series exists from the start, so a dashboard or a
bench reading it finds zeros rather than nothing before the first call.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Histogram
from prometheus_client.context_managers import Timer

# From a quarter of a millisecond (a lone statement) to half a second (a queue).
STAGE_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5)


class StageTimes:
    """One histogram `name`, with a child per stage of `stages`."""

    def __init__(self, name: str, documentation: str, stages: Sequence[str]) -> None:
        histogram = Histogram(name, documentation, ["stage"], buckets=STAGE_BUCKETS)
        self.stages = tuple(stages)
        self._children = {stage: histogram.labels(stage) for stage in self.stages}

    def time(self, stage: str) -> Timer:
        """A context manager that records the time spent inside it under `stage`."""
        return self._children[stage].time()
