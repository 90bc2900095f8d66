"""Builders for risk unit tests: a sane order and snapshot, changed one field at a time."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from cift.trading.pretrade.limits import RiskLimits
from cift.trading.pretrade.order import OrderToCheck
from cift.trading.pretrade.quote import NS_PER_S, Quote
from cift.trading.pretrade.rules import CheckContext
from cift.trading.pretrade.snapshot import CheckSnapshot
from cift.trading.vocabulary import Instrument, OrderType, Side

NOW_NS = 1_700_000_000 * NS_PER_S
D = Decimal

AAPL = Instrument(symbol="AAPL", tick_size=D("0.01"), lot_size=D(1), fractionable=True)


def quote(
    bid: str = "99.99", ask: str = "100.01", last: str = "100.00", age_s: float = 0.5
) -> Quote:
    return Quote("AAPL", D(bid), D(ask), D(last), NOW_NS - int(age_s * NS_PER_S))


def order(**changes: Any) -> OrderToCheck:
    base = OrderToCheck(
        account_id="acct-1",
        symbol="AAPL",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=D(10),
        limit_price=D("100.00"),
    )
    return dataclasses.replace(base, **changes)


def snapshot(**changes: Any) -> CheckSnapshot:
    base = CheckSnapshot(
        now_ns=NOW_NS,
        limits=RiskLimits(),
        buying_power=D(100_000),
        instrument=AAPL,
        quote=quote(),
    )
    return dataclasses.replace(base, **changes)


def limits(**changes: Any) -> RiskLimits:
    return dataclasses.replace(RiskLimits(), **changes)


def ctx(order_: OrderToCheck | None = None, snap: CheckSnapshot | None = None) -> CheckContext:
    return CheckContext.of(order_ or order(), snap or snapshot())
