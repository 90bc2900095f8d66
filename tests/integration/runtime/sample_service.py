"""A minimal service on the shared runtime, run as its own process by the lifecycle tests."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from cift.runtime.config import CommonConfig
from cift.runtime.interceptors import PUBLIC
from cift.runtime.server import ServiceContext, ServiceSpec, run_service


async def slow(request: bytes, context: Any) -> bytes:
    """Takes a while, so a drain can be observed finishing it."""
    await asyncio.sleep(float(request.decode() or "0"))
    return b"done"


async def crash_after(seconds: float) -> None:
    """A background task that fails the way a bug or an unforeseen error would."""
    await asyncio.sleep(seconds)
    raise RuntimeError("the sample's background task failed")


async def setup(context: ServiceContext[CommonConfig]) -> None:
    handler = grpc.unary_unary_rpc_method_handler(slow)
    context.server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("sample.Sample", {"Slow": handler}),)
    )
    if "SAMPLE_CRASH_AFTER_S" in os.environ:
        context.spawn("doomed", crash_after(float(os.environ["SAMPLE_CRASH_AFTER_S"])))


SPEC = ServiceSpec(
    name="sample",
    config_type=CommonConfig,
    service_names=("sample.Sample",),
    policies={"/sample.Sample/Slow": PUBLIC},
    setup=setup,
    migrations_dir=Path(__file__).parent / "sample_migrations",
    uses_redis=True,
    uses_kafka=True,
    relay_outbox=True,
)

if __name__ == "__main__":
    sys.exit(run_service(SPEC))
