"""Settings of the risk process: the default limits every account starts from, and caches."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cift.runtime.config import CommonConfig, setting
from cift.trading.pretrade.limits import RiskLimits

_D = RiskLimits()


@dataclass(frozen=True)
class RiskConfig(CommonConfig):
    risk_max_order_qty: Decimal = setting(
        _D.max_order_qty, "Default largest quantity of one order."
    )
    risk_max_order_notional: Decimal = setting(
        _D.max_order_notional, "Default largest notional (qty x price) of one order, in dollars."
    )
    risk_max_position_qty: Decimal = setting(
        _D.max_position_qty, "Default largest absolute position in one symbol, in shares."
    )
    risk_max_position_notional: Decimal = setting(
        _D.max_position_notional,
        "Default largest absolute position value in one symbol, in dollars.",
    )
    risk_max_gross_exposure: Decimal = setting(
        _D.max_gross_exposure, "Default largest sum of absolute position values of an account."
    )
    risk_max_open_orders: int = setting(
        _D.max_open_orders, "Default most working orders per account."
    )
    risk_price_collar_pct: Decimal = setting(
        _D.price_collar_pct, "Default percent a limit or stop price may sit from the market price."
    )
    risk_max_quote_age_s: Decimal = setting(
        _D.max_quote_age_s, "Seconds a quote stays fresh enough to price a market order."
    )
    risk_orders_per_second: Decimal = setting(
        _D.orders_per_second, "Default order rate per account (token-bucket refill per second)."
    )
    risk_order_burst: int = setting(
        _D.order_burst, "Default token-bucket size: orders at once after a quiet spell."
    )
    risk_allow_notional_orders: bool = setting(
        True, "Whether dollar-amount (notional) orders are accepted."
    )
    risk_allow_short: bool = setting(True, "Whether accounts may sell short by default.")
    risk_instrument_cache_s: float = setting(
        30.0, "Seconds an instrument from market data is reused."
    )
    risk_state_refresh_s: float = setting(
        2.0, "Seconds between reloads of limits and trading states changed by other risk replicas."
    )
    risk_stream_batch: int = setting(
        256, "Most CheckOrders requests evaluated together (one Redis round trip)."
    )

    def default_limits(self) -> RiskLimits:
        return RiskLimits(
            max_order_qty=self.risk_max_order_qty,
            max_order_notional=self.risk_max_order_notional,
            max_position_qty=self.risk_max_position_qty,
            max_position_notional=self.risk_max_position_notional,
            max_gross_exposure=self.risk_max_gross_exposure,
            max_open_orders=self.risk_max_open_orders,
            price_collar_pct=self.risk_price_collar_pct,
            max_quote_age_s=self.risk_max_quote_age_s,
            orders_per_second=self.risk_orders_per_second,
            order_burst=self.risk_order_burst,
            allow_notional_orders=self.risk_allow_notional_orders,
            allow_short=self.risk_allow_short,
        )
