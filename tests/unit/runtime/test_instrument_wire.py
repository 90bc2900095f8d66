"""Market data's Instrument message decodes to the rules execution and risk both enforce."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cift.marketdata.v1 import marketdata_pb2
from cift.runtime.errors import DomainError
from cift.runtime.instrument_wire import MalformedInstrument, instrument_from_wire
from cift.trading.vocabulary import FRACTIONAL_QTY_INCREMENT, Instrument
from services.marketdata.events import instrument_pb
from services.marketdata.instruments import default_universe

D = Decimal
ACTIVE = marketdata_pb2.INSTRUMENT_STATUS_ACTIVE


def decode(**fields: object) -> Instrument:
    base: dict[str, object] = {"symbol": "AAPL", "tradable": True, "status": ACTIVE}
    return instrument_from_wire(marketdata_pb2.Instrument(**{**base, **fields}))  # type: ignore[arg-type]


def test_empty_fields_read_as_a_penny_tick_and_whole_shares() -> None:
    instrument = decode()
    assert (instrument.tick_size, instrument.lot_size, instrument.qty_increment) == (
        D("0.01"),
        D(1),
        D(1),
    )
    assert instrument.tradable and not instrument.halted and not instrument.fractionable


def test_zero_or_negative_sizes_read_as_unset() -> None:
    instrument = decode(tick_size="0", lot_size="-100", min_order_size="0")
    assert (instrument.tick_size, instrument.lot_size, instrument.qty_increment) == (
        D("0.01"),
        D(1),
        D(1),
    )


def test_an_inactive_instrument_is_not_tradable_whatever_its_flag_says() -> None:
    instrument = decode(status=marketdata_pb2.INSTRUMENT_STATUS_INACTIVE)
    assert not instrument.tradable and not instrument.halted


def test_a_halted_instrument_is_halted_and_keeps_its_tradable_flag() -> None:
    assert decode(status=marketdata_pb2.INSTRUMENT_STATUS_HALTED).halted
    untradable = decode(status=marketdata_pb2.INSTRUMENT_STATUS_HALTED, tradable=False)
    assert untradable.halted and not untradable.tradable


def test_a_fractionable_instrument_steps_by_a_minimum_order_size_finer_than_a_lot() -> None:
    instrument = decode(fractionable=True, lot_size="1", min_order_size="0.001")
    assert instrument.qty_increment == D("0.001") and instrument.lot_size == 1


@pytest.mark.parametrize(
    "min_order_size",
    [
        "",  # not given
        "1",  # the lot itself, as market data sends it
        "0.3",  # a whole lot would be off its grid
    ],
)
def test_a_fractionable_instrument_otherwise_takes_fractional_steps(min_order_size: str) -> None:
    instrument = decode(fractionable=True, lot_size="1", min_order_size=min_order_size)
    assert instrument.qty_increment == FRACTIONAL_QTY_INCREMENT


def test_a_whole_share_instrument_steps_by_its_lot_whatever_its_minimum() -> None:
    instrument = decode(tick_size="0.05", lot_size="100", min_order_size="0.001")
    assert (instrument.tick_size, instrument.lot_size, instrument.qty_increment) == (
        D("0.05"),
        D(100),
        D(100),
    )


def test_shortable_is_read_from_the_message() -> None:
    assert decode(shortable=True).shortable
    assert not decode(shortable=False).shortable


@pytest.mark.parametrize("field", ["tick_size", "lot_size", "min_order_size"])
def test_a_malformed_decimal_is_market_datas_error_naming_its_field(field: str) -> None:
    with pytest.raises(MalformedInstrument, match=field) as raised:
        decode(fractionable=True, **{field: "1e3"})
    # Not a DomainError: the caller gets INTERNAL, not a refusal blaming their order.
    assert not isinstance(raised.value, DomainError)


def test_market_datas_own_instruments_decode_to_what_it_lists() -> None:
    """Market data sends each lot as the minimum order size: fractional orders
    must still be possible for its fractionable symbols, and only for them."""
    universe = default_universe()
    aapl = instrument_from_wire(instrument_pb(universe.get("AAPL")))
    sndl = instrument_from_wire(instrument_pb(universe.get("SNDL")))
    assert aapl.fractionable and aapl.qty_increment == FRACTIONAL_QTY_INCREMENT
    assert aapl.tradable and aapl.shortable and not aapl.halted
    assert not sndl.fractionable and sndl.qty_increment == 1 and not sndl.shortable
