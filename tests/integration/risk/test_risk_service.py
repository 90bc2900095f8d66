"""The risk service over gRPC against real PostgreSQL, Redis and the Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal

import grpc
import pytest

from cift.execution.v1 import events_pb2 as execution_events_pb2
from cift.execution.v1 import orders_pb2
from cift.marketdata.v1 import events_pb2 as marketdata_events_pb2
from cift.marketdata.v1 import marketdata_pb2
from cift.risk.v1 import events_pb2, risk_pb2, risk_pb2_grpc, rules_pb2
from cift.runtime.kafka import TOPIC_FILLS, TOPIC_RISK_EVENTS, TOPIC_TICKS
from cift.trading.pretrade.token_bucket import BucketState, rate_milli, take
from services.risk.ratelimit import TOKEN_BUCKET_LUA
from tests.integration.risk.risk_it import ADMIN, RunningRisk, eventually, trader

pytestmark = pytest.mark.integration

BUY, SELL = orders_pb2.ORDER_SIDE_BUY, orders_pb2.ORDER_SIDE_SELL
LIMIT, MARKET = orders_pb2.ORDER_TYPE_LIMIT, orders_pb2.ORDER_TYPE_MARKET


def check(account: str, **changes: object) -> risk_pb2.CheckOrderRequest:
    fields: dict[str, object] = {
        "request_id": uuid.uuid4().hex,
        "account_id": account,
        "symbol": "AAPL",
        "side": BUY,
        "type": LIMIT,
        "time_in_force": orders_pb2.TIME_IN_FORCE_DAY,
        "qty": "10",
        "limit_price": "100.00",
        "buying_power": "100000",
        "client_order_id": "c-1",
    }
    fields.update(changes)
    return risk_pb2.CheckOrderRequest(**fields)  # type: ignore[arg-type]


def codes(response: risk_pb2.CheckOrderResponse) -> list[str]:
    return [
        rules_pb2.ReasonCode.Name(v.reason_code).removeprefix("REASON_CODE_")
        for v in response.violations
    ]


def opening_buy(event_id: str, account: str) -> execution_events_pb2.FillEvent:
    """A fill that opens a 300-share LOTS position at 10.00."""
    fill = orders_pb2.Fill(
        id="f-" + event_id,
        order_id="o-" + event_id,
        account_id=account,
        symbol="LOTS",
        side=BUY,
        qty="300",
        price="10.00",
    )
    return execution_events_pb2.FillEvent(event_id=event_id, fill=fill, position_qty="300")


async def publish_quote(service: RunningRisk, symbol: str, bid: float, ask: float) -> None:
    quote = marketdata_pb2.Quote(symbol=symbol, bid=bid, ask=ask, last=bid, sequence=time.time_ns())
    quote.timestamp.GetCurrentTime()
    await service.producer.publish(
        TOPIC_TICKS, symbol, marketdata_events_pb2.TickEvent(quote=quote)
    )


async def test_sane_limit_buy_is_approved_with_its_cost(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    request = check(account)
    response = await risk.CheckOrder(request, metadata=trader(account))
    assert response.approved, response
    assert response.request_id == request.request_id
    assert Decimal(response.order_cost) == Decimal("1000")


async def test_every_failed_rule_comes_back_with_its_code(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    request = check(
        account, symbol="LOTS", qty="150", limit_price="10.01", side=SELL, buying_power="0"
    )
    response = await risk.CheckOrder(request, metadata=trader(account))
    assert not response.approved
    assert codes(response) == [
        "LOT_SIZE",
        "OFF_TICK_GRID",
        "NOT_SHORTABLE",
        "INSUFFICIENT_BUYING_POWER",
    ]
    assert "lots of 100 shares" in response.violations[0].message


async def test_unknown_halted_and_delisted_instruments_are_rejected(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    unknown = await risk.CheckOrder(check(account, symbol="NOPE"), metadata=trader(account))
    assert codes(unknown) == ["UNKNOWN_INSTRUMENT"]
    halted = await risk.CheckOrder(check(account, symbol="HALT"), metadata=trader(account))
    assert codes(halted) == ["INSTRUMENT_HALTED"]
    delisted = await risk.CheckOrder(check(account, symbol="GONE"), metadata=trader(account))
    assert codes(delisted) == ["INSTRUMENT_NOT_TRADABLE"]


async def test_fractional_quantities_keep_to_the_step_market_data_names(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    on_step = await risk.CheckOrder(
        check(account, symbol="STEP", qty="0.125"), metadata=trader(account)
    )
    assert on_step.approved, on_step
    off_step = await risk.CheckOrder(
        check(account, symbol="STEP", qty="0.1255"), metadata=trader(account)
    )
    assert codes(off_step) == ["LOT_SIZE"]
    assert "steps of 0.001 shares" in off_step.violations[0].message


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"qty": "NaN"}, "qty"),
        ({"buying_power": ""}, "buying_power is required"),
        ({"side": orders_pb2.ORDER_SIDE_UNSPECIFIED}, "side"),
        ({"limit_price": "1e99999"}, "limit_price"),
    ],
)
async def test_malformed_check_is_invalid_argument(
    risk: risk_pb2_grpc.RiskServiceAsyncStub,
    account: str,
    changes: dict[str, object],
    fragment: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await risk.CheckOrder(check(account, **changes), metadata=trader(account))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (caught.value.details() or "")


async def test_checking_another_accounts_order_is_refused(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await risk.CheckOrder(check("someone-else"), metadata=trader(account))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_check_without_credential_is_unauthenticated(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await risk.CheckOrder(check(account))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_order_rate_over_the_bucket_is_resource_exhausted_with_retry_info(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    await risk.UpdateRiskLimits(
        risk_pb2.UpdateRiskLimitsRequest(account_id=account, orders_per_second="1", order_burst=2),
        metadata=ADMIN,
    )
    for _ in range(2):
        assert (await risk.CheckOrder(check(account), metadata=trader(account))).approved
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await risk.CheckOrder(check(account), metadata=trader(account))
    error = caught.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers: dict[str, str] = dict(error.trailing_metadata() or ())  # type: ignore[arg-type]
    assert trailers["cift-reason"] == "RATE_LIMITED"
    assert 0 < float(trailers["retry-after"]) <= 1.0
    assert "retry in" in (error.details() or "")


async def test_admin_limits_override_applies_at_once_and_reset_returns_the_default(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, risk_service: RunningRisk, account: str
) -> None:
    updated = await risk.UpdateRiskLimits(
        risk_pb2.UpdateRiskLimitsRequest(account_id=account, max_order_qty="5"), metadata=ADMIN
    )
    assert updated.limits.max_order_qty == "5"
    assert list(updated.limits.overridden_fields) == ["max_order_qty"]
    rejected = await risk.CheckOrder(check(account), metadata=trader(account))
    assert codes(rejected) == ["MAX_ORDER_QTY"]
    own = await risk.GetRiskLimits(risk_pb2.GetRiskLimitsRequest(), metadata=trader(account))
    assert own.limits.max_order_qty == "5"
    await risk.UpdateRiskLimits(
        risk_pb2.UpdateRiskLimitsRequest(account_id=account, reset_fields=["max_order_qty"]),
        metadata=ADMIN,
    )
    assert (await risk.CheckOrder(check(account), metadata=trader(account))).approved
    stored = await risk_service.pool.fetchval(
        "SELECT max_order_qty FROM account_limits WHERE account_id = $1", account
    )
    assert stored is None


async def test_invalid_limits_are_refused_and_nothing_is_written(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, risk_service: RunningRisk, account: str
) -> None:
    for bad in (
        risk_pb2.UpdateRiskLimitsRequest(account_id=account, max_order_qty="0"),
        risk_pb2.UpdateRiskLimitsRequest(account_id=account, price_collar_pct="abc"),
        risk_pb2.UpdateRiskLimitsRequest(account_id=account, reset_fields=["max_bananas"]),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await risk.UpdateRiskLimits(bad, metadata=ADMIN)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    rows = await risk_service.pool.fetchval(
        "SELECT count(*) FROM account_limits WHERE account_id = $1", account
    )
    assert rows == 0


async def test_traders_may_not_change_limits_or_states_or_read_other_accounts(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    calls: list[Awaitable[object]] = [
        risk.UpdateRiskLimits(
            risk_pb2.UpdateRiskLimitsRequest(account_id=account, max_order_qty="1"),
            metadata=trader(account),
        ),
        risk.SetTradingState(
            risk_pb2.SetTradingStateRequest(
                account_id=account, state=rules_pb2.TRADING_STATE_ACTIVE
            ),
            metadata=trader(account),
        ),
        risk.GetRiskLimits(
            risk_pb2.GetRiskLimitsRequest(account_id="other"), metadata=trader(account)
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_halting_an_account_rejects_its_orders_and_is_streamed(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    stream = risk.StreamRiskEvents(risk_pb2.StreamRiskEventsRequest(), metadata=trader(account))
    # The per-replica risk-events consumer group joins a few seconds after start;
    # keep changing the state until the stream shows the change.
    received: list[events_pb2.RiskEvent] = []

    async def read() -> None:
        async for item in stream:
            received.append(item.event)

    reader = asyncio.create_task(read())
    try:
        response = await risk.SetTradingState(
            risk_pb2.SetTradingStateRequest(
                account_id=account, state=rules_pb2.TRADING_STATE_HALTED, reason="margin call"
            ),
            metadata=ADMIN,
        )
        assert response.previous_state == rules_pb2.TRADING_STATE_ACTIVE
        rejected = await risk.CheckOrder(check(account), metadata=trader(account))
        assert codes(rejected) == ["ACCOUNT_HALTED"]

        async def saw_halt() -> bool:
            return any(e.trading_state == rules_pb2.TRADING_STATE_HALTED for e in received)

        await eventually(saw_halt, timeout_s=30)
        halt = next(e for e in received if e.trading_state == rules_pb2.TRADING_STATE_HALTED)
        assert (
            halt.account_id == account
            and "margin call" in halt.message
            and halt.actor == "ops-admin"
        )
    finally:
        stream.cancel()
        reader.cancel()
    await risk.SetTradingState(
        risk_pb2.SetTradingStateRequest(account_id=account, state=rules_pb2.TRADING_STATE_ACTIVE),
        metadata=ADMIN,
    )
    assert (await risk.CheckOrder(check(account), metadata=trader(account))).approved


async def test_kill_switch_stops_every_account_until_released(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    await risk.SetTradingState(
        risk_pb2.SetTradingStateRequest(
            account_id="*", state=rules_pb2.TRADING_STATE_HALTED, reason="drill"
        ),
        metadata=ADMIN,
    )
    try:
        rejected = await risk.CheckOrder(check(account), metadata=trader(account))
        assert codes(rejected) == ["KILL_SWITCH"]
        limits = await risk.GetRiskLimits(risk_pb2.GetRiskLimitsRequest(), metadata=trader(account))
        assert limits.limits.trading_state == rules_pb2.TRADING_STATE_ACTIVE
        assert limits.limits.effective_trading_state == rules_pb2.TRADING_STATE_HALTED
    finally:
        await risk.SetTradingState(
            risk_pb2.SetTradingStateRequest(account_id="*", state=rules_pb2.TRADING_STATE_ACTIVE),
            metadata=ADMIN,
        )
    assert (await risk.CheckOrder(check(account), metadata=trader(account))).approved


async def test_unspecified_trading_state_is_invalid(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await risk.SetTradingState(
            risk_pb2.SetTradingStateRequest(account_id=account), metadata=ADMIN
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_stream_answers_every_request_correlated_by_request_id(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    await risk.UpdateRiskLimits(
        risk_pb2.UpdateRiskLimitsRequest(
            account_id=account, orders_per_second="10000", order_burst=10000
        ),
        metadata=ADMIN,
    )
    requests = [check(account, qty=str(q), request_id=f"r{q}") for q in range(1, 301)] + [
        check(account, qty="20000", request_id="too-big")
    ]

    async def send() -> AsyncIterator[risk_pb2.CheckOrdersRequest]:
        for request in requests:
            yield risk_pb2.CheckOrdersRequest(check=request)

    answers = {
        item.result.request_id: item.result
        async for item in risk.CheckOrders(send(), metadata=trader(account))
    }
    assert set(answers) == {r.request_id for r in requests}
    assert all(answers[f"r{q}"].approved for q in range(1, 301))
    assert codes(answers["too-big"]) == [
        "MAX_ORDER_QTY",
        "MAX_ORDER_NOTIONAL",
        "MAX_POSITION_NOTIONAL",
        "MAX_GROSS_EXPOSURE",
        "INSUFFICIENT_BUYING_POWER",
    ]


async def test_stream_rate_limits_per_check_with_retry_after(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    await risk.UpdateRiskLimits(
        risk_pb2.UpdateRiskLimitsRequest(account_id=account, orders_per_second="1", order_burst=3),
        metadata=ADMIN,
    )

    async def send() -> AsyncIterator[risk_pb2.CheckOrdersRequest]:
        for i in range(5):
            yield risk_pb2.CheckOrdersRequest(check=check(account, request_id=f"r{i}"))

    results = [item.result async for item in risk.CheckOrders(send(), metadata=trader(account))]
    limited = [r for r in results if "RATE_LIMITED" in codes(r)]
    assert len(limited) == 2
    assert all(r.retry_after.ToMicroseconds() > 0 for r in limited)


async def test_malformed_request_ends_the_stream_naming_it(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    async def send() -> AsyncIterator[risk_pb2.CheckOrdersRequest]:
        yield risk_pb2.CheckOrdersRequest(check=check(account, qty="lots", request_id="bad-one"))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in risk.CheckOrders(send(), metadata=trader(account)):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "bad-one" in (caught.value.details() or "")


async def test_market_order_is_priced_from_the_tick_topic(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, risk_service: RunningRisk, account: str
) -> None:
    market = check(account, symbol="QUOT", type=MARKET, limit_price="", qty="10")

    async def approved() -> bool:
        await publish_quote(risk_service, "QUOT", 200.10, 200.20)
        response = await risk.CheckOrder(market, metadata=trader(account))
        return response.approved and response.reference_price == "200.15"

    await eventually(approved, timeout_s=30, interval_s=0.5)
    response = await risk.CheckOrder(market, metadata=trader(account))
    assert Decimal(response.order_cost) == Decimal("2002.00")
    collared = await risk.CheckOrder(
        check(account, symbol="QUOT", limit_price="100.00"), metadata=trader(account)
    )
    assert codes(collared) == ["PRICE_COLLAR"]


async def test_fill_delivered_twice_sets_the_position_once_and_reducing_uses_it(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, risk_service: RunningRisk, account: str
) -> None:
    event = opening_buy("fe-" + account, account)
    for _ in range(2):
        await risk_service.producer.publish(TOPIC_FILLS, account, event, event_id=event.event_id)

    async def position() -> object:
        return await risk_service.pool.fetchval(
            "SELECT qty FROM positions WHERE account_id = $1 AND symbol = 'LOTS'", account
        )

    assert await eventually(position, timeout_s=30) == Decimal(300)
    claimed = await risk_service.pool.fetchval(
        "SELECT count(*) FROM processed_events WHERE event_id = $1", event.event_id
    )
    assert claimed == 1
    await risk.SetTradingState(
        risk_pb2.SetTradingStateRequest(account_id=account, state=rules_pb2.TRADING_STATE_REDUCING),
        metadata=ADMIN,
    )
    sell = check(account, symbol="LOTS", side=SELL, qty="300", limit_price="10.00")
    assert (await risk.CheckOrder(sell, metadata=trader(account))).approved
    too_much = check(account, symbol="LOTS", side=SELL, qty="400", limit_price="10.00")
    assert "ACCOUNT_REDUCING_ONLY" in codes(
        await risk.CheckOrder(too_much, metadata=trader(account))
    )


async def test_a_position_breach_is_announced_under_the_event_id_it_carries(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, risk_service: RunningRisk, account: str
) -> None:
    # The record's event id is what consumers deduplicate by; the event's own field is
    # what StreamRiskEvents shows. One event, one id.
    await risk.UpdateRiskLimits(
        risk_pb2.UpdateRiskLimitsRequest(account_id=account, max_position_qty="100"),
        metadata=ADMIN,
    )
    event = opening_buy("fb-" + account, account)
    await risk_service.producer.publish(TOPIC_FILLS, account, event, event_id=event.event_id)

    async def breaches() -> list[tuple[str, events_pb2.RiskEvent]]:
        rows = await risk_service.pool.fetch(
            "SELECT event_id, payload FROM outbox WHERE topic = $1 AND key = $2",
            TOPIC_RISK_EVENTS,
            account,
        )
        announced = [
            (row["event_id"], events_pb2.RiskEvent.FromString(row["payload"])) for row in rows
        ]
        return [
            (record_id, e)
            for record_id, e in announced
            if e.type == events_pb2.RISK_EVENT_TYPE_BREACH
        ]

    [(record_id, breach)] = await eventually(breaches, timeout_s=30)
    assert breach.reason_code == rules_pb2.REASON_CODE_MAX_POSITION_QTY
    assert breach.event_id == record_id


async def test_redis_script_and_python_bucket_agree(risk_service: RunningRisk) -> None:
    sha = await risk_service.redis.script_load(TOKEN_BUCKET_LUA)
    key = f"cift:risk:bucket:mirror-{uuid.uuid4().hex}"
    rate, burst = rate_milli(Decimal("2.5")), 4
    now = 1_700_000_000_000_000
    state: BucketState | None = None
    for gap_us in [0, 0, 0, 0, 0, 1, 399_999, 400_000, 123_457, 0, 5_000_000, 0, 0, 0, 0, 0, 10]:
        now += gap_us
        allowed, wait_us = await risk_service.redis.evalsha(sha, 1, key, rate, burst, 1, str(now))
        state, decision = take(state, now, rate, burst)
        assert (bool(allowed), int(wait_us)) == (decision.allowed, decision.retry_after_us)
        tokens, stamp = await risk_service.redis.hmget(key, "t", "ts")
        assert (int(tokens or 0), int(stamp or 0)) == (state.tokens_units, state.ts_us)


async def test_batched_stream_message_is_answered_in_order_in_one_message(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    batch = [check(account, request_id=f"b{i}", qty=str(i + 1)) for i in range(50)]
    batch[7] = check(account, request_id="b7", symbol="NOPE")

    async def send() -> AsyncIterator[risk_pb2.CheckOrdersRequest]:
        yield risk_pb2.CheckOrdersRequest(checks=batch)
        yield risk_pb2.CheckOrdersRequest(check=check(account, request_id="single"))

    replies = [item async for item in risk.CheckOrders(send(), metadata=trader(account))]
    batched = next(r for r in replies if r.results)
    single = next(r for r in replies if r.HasField("result"))
    assert [r.request_id for r in batched.results] == [c.request_id for c in batch]
    assert codes(batched.results[7]) == ["UNKNOWN_INSTRUMENT"]
    assert sum(r.approved for r in batched.results) == 49
    assert single.result.request_id == "single" and single.result.approved


async def test_oversized_stream_message_is_refused(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    async def send() -> AsyncIterator[risk_pb2.CheckOrdersRequest]:
        yield risk_pb2.CheckOrdersRequest(checks=[check(account) for _ in range(1001)])

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in risk.CheckOrders(send(), metadata=trader(account)):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1000" in (caught.value.details() or "")


async def test_stream_check_for_another_account_without_its_credential_is_refused_in_place(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    # The stream is opened by `account`; a check for a victim's account must carry the
    # victim's credential. Refusals are answers, so the opener's own check still passes.
    victim = f"acct-{uuid.uuid4().hex[:12]}"
    batch = [
        check(account, request_id="own"),
        check(victim, request_id="no-credential"),
        check(victim, request_id="forged", credential="not.a-real.token"),
    ]

    async def send() -> AsyncIterator[risk_pb2.CheckOrdersRequest]:
        yield risk_pb2.CheckOrdersRequest(checks=batch)

    replies = [item async for item in risk.CheckOrders(send(), metadata=trader(account))]
    own, missing, forged = replies[0].results
    assert own.approved and own.refused_code == 0
    assert not missing.approved and not missing.violations
    assert missing.refused_code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert "your own account" in missing.refused_message
    # Without auth reachable the credential cannot be verified (UNAVAILABLE); with it,
    # a forged token is UNAUTHENTICATED. Either way it is refused, never evaluated.
    assert not forged.approved and not forged.violations
    assert forged.refused_code in (
        grpc.StatusCode.UNAUTHENTICATED.value[0],
        grpc.StatusCode.UNAVAILABLE.value[0],
    )


async def test_stream_opened_by_a_read_only_caller_is_refused(
    risk: risk_pb2_grpc.RiskServiceAsyncStub, account: str
) -> None:
    read_only = (
        ("x-cift-user-id", f"user-{account}"),
        ("x-cift-account-id", account),
        ("x-cift-scopes", "read"),
    )

    async def send() -> AsyncIterator[risk_pb2.CheckOrdersRequest]:
        yield risk_pb2.CheckOrdersRequest(check=check(account))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in risk.CheckOrders(send(), metadata=read_only):
            pass
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
