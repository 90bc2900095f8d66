"""Entry point of the execution service process: `python -m services.execution [serve|migrate]`."""

from __future__ import annotations

import sys
from pathlib import Path

from cift.runtime.config import CommonConfig
from cift.runtime.server import ServiceContext, ServiceSpec, run_service


async def setup(context: ServiceContext[CommonConfig]) -> None:
    """Nothing to wire yet beyond health, reflection and metrics."""


SPEC = ServiceSpec(
    name="execution",
    config_type=CommonConfig,
    service_names=(),
    policies={},
    setup=setup,
    migrations_dir=Path(__file__).parent / "migrations",
    uses_redis=True,
    uses_kafka=True,
)

if __name__ == "__main__":
    sys.exit(run_service(SPEC))
