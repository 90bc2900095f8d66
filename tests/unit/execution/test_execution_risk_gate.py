"""The risk client: unary when quiet, a shared CheckOrders stream when busy, per-check credentials.

A real grpc.aio server in this process plays the risk service: it records what
arrives (metadata, messages, credentials) and answers stream messages in reverse
order, so correlation by request_id is what keeps answers with their checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from cift.risk.v1 import risk_pb2, risk_pb2_grpc
from cift.runtime.errors import PermissionDenied, ResourceExhausted, Unavailable
from cift.runtime.identity import Identity, acting_as
from services.execution.adapters.upstream import RiskGate


class FakeRisk(risk_pb2_grpc.RiskServiceServicer):
    def __init__(self) -> None:
        self.unary: list[risk_pb2.CheckOrderRequest] = []
        self.messages: list[list[risk_pb2.CheckOrderRequest]] = []
        self.stream_openers: list[str] = []
        self.refuse: set[str] = set()
        self.rate_limited = False
        self.break_stream = asyncio.Event()
        self.answering = asyncio.Event()  # cleared: stream messages wait for their answer
        self.answering.set()
        self.received = asyncio.Event()  # set at each stream message

    async def CheckOrder(
        self, request: risk_pb2.CheckOrderRequest, context: Any
    ) -> risk_pb2.CheckOrderResponse:
        self.unary.append(request)
        if self.rate_limited:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Slow down.")
        return risk_pb2.CheckOrderResponse(request_id=request.request_id, approved=True)

    async def CheckOrders(
        self, request_iterator: AsyncIterator[risk_pb2.CheckOrdersRequest], context: Any
    ) -> AsyncIterator[risk_pb2.CheckOrdersResponse]:
        self.stream_openers.append(dict(context.invocation_metadata()).get("x-cift-identity", ""))
        async for message in request_iterator:
            if self.break_stream.is_set():
                await context.abort(grpc.StatusCode.UNAVAILABLE, "risk restarting")
            checks = list(message.checks)
            self.messages.append(checks)
            self.received.set()
            await self.answering.wait()
            answers = [
                risk_pb2.CheckOrderResponse(
                    request_id=c.request_id,
                    approved=c.request_id not in self.refuse,
                    refused_code=grpc.StatusCode.PERMISSION_DENIED.value[0]
                    if c.request_id in self.refuse
                    else 0,
                    refused_message="You may only act on your own account."
                    if c.request_id in self.refuse
                    else "",
                )
                for c in checks
            ]
            yield risk_pb2.CheckOrdersResponse(results=list(reversed(answers)))


@pytest.fixture
async def risk() -> AsyncIterator[tuple[FakeRisk, str]]:
    fake = FakeRisk()
    server = grpc.aio.server()
    risk_pb2_grpc.add_RiskServiceServicer_to_server(fake, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield fake, f"127.0.0.1:{port}"
    await server.stop(0)


def user(n: int) -> Identity:
    return Identity(f"user-{n}", f"acct-{n}", frozenset({"read", "trade"}), token=f"token-{n}")


def check(n: int, request_id: str) -> risk_pb2.CheckOrderRequest:
    return risk_pb2.CheckOrderRequest(request_id=request_id, account_id=f"acct-{n}", symbol="AAPL")


async def as_user(gate: RiskGate, n: int, request_id: str) -> risk_pb2.CheckOrderResponse:
    with acting_as(user(n)):
        return await gate.check(check(n, request_id))


async def test_a_quiet_caller_checks_unary(risk: tuple[FakeRisk, str]) -> None:
    fake, address = risk
    async with grpc.aio.insecure_channel(address) as channel:
        gate = RiskGate(channel, busy_interval_s=0.0)
        reply = await as_user(gate, 1, "r1")
    assert reply.request_id == "r1" and reply.approved
    assert [c.request_id for c in fake.unary] == ["r1"] and not fake.messages
    assert fake.unary[0].credential == ""  # unary acts as the forwarded caller


async def test_busy_callers_share_one_stream_each_check_with_its_own_credential(
    risk: tuple[FakeRisk, str],
) -> None:
    fake, address = risk
    async with grpc.aio.insecure_channel(address) as channel:
        gate = RiskGate(channel, stream_threshold=1, busy_interval_s=0.0)
        replies = await asyncio.gather(*(as_user(gate, n, f"r{n}") for n in range(1, 9)))
        await gate.close()
    # The first check found nobody in flight and went unary; the rest shared the stream.
    assert [r.request_id for r in replies] == [f"r{n}" for n in range(1, 9)]
    streamed = [c for message in fake.messages for c in message]
    assert {c.request_id for c in streamed} | {c.request_id for c in fake.unary} == {
        f"r{n}" for n in range(1, 9)
    }
    assert len(streamed) == gate.streamed >= 6
    assert len(fake.messages) < len(streamed)  # batched, several checks per message
    assert all(c.credential == f"token-{c.request_id[1:]}" for c in streamed)
    assert len(fake.stream_openers) == 1 and fake.stream_openers[0].startswith("token-")


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for `condition` on the event loop; a generous bound only catches a hang."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the gate's counters have no event to wait on
            await asyncio.sleep(0.001)


async def turns(count: int = 20) -> None:
    """Let every task that is ready run, `count` times over."""
    for _ in range(count):
        await asyncio.sleep(0)


async def unanswered_first_check(
    gate: RiskGate, fake: FakeRisk
) -> asyncio.Future[risk_pb2.CheckOrderResponse]:
    """Check r1 over the stream and hold its answer: it returns once risk has the message."""
    fake.answering.clear()
    first = asyncio.ensure_future(as_user(gate, 1, "r1"))
    await fake.received.wait()
    return first


async def test_checks_made_while_a_message_is_unanswered_go_together_in_the_next(
    risk: tuple[FakeRisk, str],
) -> None:
    fake, address = risk
    async with grpc.aio.insecure_channel(address) as channel:
        gate = RiskGate(channel, stream_threshold=0)
        first = await unanswered_first_check(gate, fake)
        later = [asyncio.ensure_future(as_user(gate, n, f"r{n}")) for n in range(2, 6)]
        await until(lambda: gate.streamed == 5)  # all five queued on the stream
        await turns()  # the sender has had every chance to send them
        assert gate.messages == 1  # they wait for the first message's answer
        fake.answering.set()
        replies = await asyncio.gather(first, *later)
        await gate.close()
    assert [r.request_id for r in replies] == ["r1", "r2", "r3", "r4", "r5"]
    assert [[c.request_id for c in m] for m in fake.messages] == [
        ["r1"],
        ["r2", "r3", "r4", "r5"],
    ]


async def test_more_unanswered_messages_may_be_allowed(risk: tuple[FakeRisk, str]) -> None:
    fake, address = risk
    async with grpc.aio.insecure_channel(address) as channel:
        gate = RiskGate(channel, stream_threshold=0, max_unanswered=2)
        first = await unanswered_first_check(gate, fake)
        second = asyncio.ensure_future(as_user(gate, 2, "r2"))
        await until(lambda: gate.messages == 2)  # sent while the first is still unanswered
        assert not first.done()
        fake.answering.set()
        assert [r.request_id for r in await asyncio.gather(first, second)] == ["r1", "r2"]
        await gate.close()
    assert [[c.request_id for c in m] for m in fake.messages] == [["r1"], ["r2"]]


async def test_a_refused_stream_check_is_permission_denied_for_its_caller_only(
    risk: tuple[FakeRisk, str],
) -> None:
    fake, address = risk
    fake.refuse = {"r2"}
    async with grpc.aio.insecure_channel(address) as channel:
        gate = RiskGate(channel, stream_threshold=0)
        results = await asyncio.gather(
            as_user(gate, 1, "r1"), as_user(gate, 2, "r2"), return_exceptions=True
        )
        await gate.close()
    assert isinstance(results[0], risk_pb2.CheckOrderResponse) and results[0].approved
    assert isinstance(results[1], PermissionDenied)


async def test_a_broken_stream_fails_its_waiting_checks_and_the_next_check_reopens_it(
    risk: tuple[FakeRisk, str],
) -> None:
    fake, address = risk
    async with grpc.aio.insecure_channel(address) as channel:
        gate = RiskGate(channel, stream_threshold=0)
        assert (await as_user(gate, 1, "r1")).approved
        fake.break_stream.set()
        with pytest.raises(Unavailable):
            await as_user(gate, 1, "r2")
        fake.break_stream.clear()
        assert (await as_user(gate, 1, "r3")).approved
        await gate.close()
    assert len(fake.stream_openers) == 2


async def test_a_rate_limited_unary_check_is_resource_exhausted_not_unavailable(
    risk: tuple[FakeRisk, str],
) -> None:
    fake, address = risk
    fake.rate_limited = True
    async with grpc.aio.insecure_channel(address) as channel:
        gate = RiskGate(channel, busy_interval_s=0.0)
        with pytest.raises(ResourceExhausted):
            await as_user(gate, 1, "r1")
