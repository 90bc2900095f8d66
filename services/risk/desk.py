"""The risk desk's in-memory view: what every check reads without leaving the process.

Limits overrides and trading states (loaded from the risk schema and kept current
by admin calls and risk events), the latest quotes (from the tick topic),
positions (from fills) and instruments (cached from market data). A check reads
them and builds a `CheckSnapshot`; the only remote call a check makes is the
rate-limit script in Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cift.trading.pretrade.exposure import ExposureBook
from cift.trading.pretrade.limits import LimitOverrides, RiskLimits, effective_limits
from cift.trading.pretrade.order import OrderToCheck
from cift.trading.pretrade.snapshot import ZERO, CheckSnapshot
from cift.trading.pretrade.token_bucket import RateDecision
from cift.trading.pretrade.trading_state import TradingState, effective_state
from cift.trading.vocabulary import Instrument
from services.risk.quotes import QuoteBook


@dataclass(frozen=True, slots=True)
class CallerFigures:
    """What the caller (execution) knows about the account at the moment of the order.

    `position_qty` and `gross_exposure` are None when not sent: risk then uses its
    own view built from fills.
    """

    buying_power: Decimal
    order_cost: Decimal | None = None
    position_qty: Decimal | None = None
    gross_exposure: Decimal | None = None
    open_buy_qty: Decimal = ZERO
    open_sell_qty: Decimal = ZERO
    open_order_count: int = 0


class RiskDesk:
    def __init__(self, defaults: RiskLimits) -> None:
        self.defaults = defaults
        self.overrides: dict[str, LimitOverrides] = {}
        self.states: dict[str, TradingState] = {}
        self.venue_state = TradingState.ACTIVE
        # Database time of the state change last applied, per account ('*' for the venue).
        self.state_changed_at_ns: dict[str, int] = {}
        self.quotes = QuoteBook()
        self.exposure = ExposureBook()
        self._limits: dict[str, RiskLimits] = {}

    def limits_for(self, account_id: str) -> RiskLimits:
        cached = self._limits.get(account_id)
        if cached is None:
            cached = effective_limits(
                self.defaults, self.overrides.get(account_id, LimitOverrides())
            )
            if len(self._limits) < 1_000_000:
                self._limits[account_id] = cached
        return cached

    def set_overrides(self, account_id: str, overrides: LimitOverrides) -> None:
        self.overrides[account_id] = overrides
        self._limits.pop(account_id, None)

    def state_of(self, account_id: str) -> TradingState:
        return self.states.get(account_id, TradingState.ACTIVE)

    def effective_state_of(self, account_id: str) -> TradingState:
        return effective_state(self.state_of(account_id), self.venue_state)

    def mark(self, symbol: str) -> Decimal | None:
        quote = self.quotes.latest(symbol)
        return quote.reference_price if quote is not None else None

    def snapshot(
        self,
        order: OrderToCheck,
        figures: CallerFigures,
        instrument: Instrument | None,
        rate: RateDecision | None,
        now_ns: int,
    ) -> CheckSnapshot:
        account = order.account_id
        position = figures.position_qty
        if position is None:
            position = self.exposure.position_qty(account, order.symbol)
        gross = figures.gross_exposure
        if gross is None:
            gross = self.exposure.gross_exposure(account, self.mark)
        return CheckSnapshot(
            now_ns=now_ns,
            limits=self.limits_for(account),
            buying_power=figures.buying_power,
            instrument=instrument,
            quote=self.quotes.latest(order.symbol),
            account_state=self.state_of(account),
            venue_state=self.venue_state,
            position_qty=position,
            open_buy_qty=figures.open_buy_qty,
            open_sell_qty=figures.open_sell_qty,
            open_order_count=figures.open_order_count,
            gross_exposure=gross,
            caller_order_cost=figures.order_cost,
            rate=rate,
        )
