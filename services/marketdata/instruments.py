"""The tradable universe: what each symbol is and the grid its prices and sizes live on.

The default universe is a table of liquid US equities and ETFs that the simulator
starts from; operators replace it with a CSV file of the same columns
(`CIFT_MARKETDATA_UNIVERSE_FILE`). This module only parses and validates; it never
reads the network and never touches a database.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from cift.runtime.errors import InvalidArgument, NotFound

# Reg NMS Rule 612: quotes at or above $1.00 use a one-cent grid, below it 1/100 cent.
PENNY = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
ONE_DOLLAR = Decimal("1")

ASSET_CLASSES = ("us_equity", "etf")


def tick_size_for_price(price: Decimal | float) -> Decimal:
    """The minimum price increment a US equity quote may use at `price`."""
    return PENNY if Decimal(str(price)) >= ONE_DOLLAR else SUB_PENNY


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable symbol with the rules orders and quotes must respect."""

    symbol: str
    name: str
    asset_class: str
    exchange: str
    start_price: Decimal
    # Minimum price increment at or above $1; sub-dollar prices use SUB_PENNY.
    tick_size: Decimal
    # Order quantity increment (whole shares unless fractionable).
    lot_size: Decimal
    # Quote sizes are displayed in round lots (100 shares for US equities).
    round_lot: int
    fractionable: bool
    shortable: bool
    # Annualised volatility of the simulated mid price (0.25 = 25 %/year).
    volatility: float

    def tick_at(self, price: Decimal | float) -> Decimal:
        """Tick size in force at `price` (sub-penny below $1)."""
        return self.tick_size if Decimal(str(price)) >= ONE_DOLLAR else SUB_PENNY


# symbol, name, asset class, exchange, start price, annualised volatility, shortable.
# Prices and volatilities are plausible levels for these names, not a snapshot of any day.
_DEFAULT_ROWS: tuple[tuple[str, str, str, str, str, float, bool], ...] = (
    ("AAPL", "Apple Inc.", "us_equity", "NASDAQ", "227.50", 0.26, True),
    ("MSFT", "Microsoft Corporation", "us_equity", "NASDAQ", "415.30", 0.24, True),
    ("NVDA", "NVIDIA Corporation", "us_equity", "NASDAQ", "124.80", 0.52, True),
    ("AMZN", "Amazon.com, Inc.", "us_equity", "NASDAQ", "186.40", 0.32, True),
    ("GOOGL", "Alphabet Inc. Class A", "us_equity", "NASDAQ", "163.20", 0.29, True),
    ("GOOG", "Alphabet Inc. Class C", "us_equity", "NASDAQ", "164.60", 0.29, True),
    ("META", "Meta Platforms, Inc.", "us_equity", "NASDAQ", "560.10", 0.38, True),
    ("TSLA", "Tesla, Inc.", "us_equity", "NASDAQ", "242.90", 0.58, True),
    ("AVGO", "Broadcom Inc.", "us_equity", "NASDAQ", "168.70", 0.45, True),
    ("AMD", "Advanced Micro Devices, Inc.", "us_equity", "NASDAQ", "152.30", 0.50, True),
    ("INTC", "Intel Corporation", "us_equity", "NASDAQ", "22.40", 0.45, True),
    ("NFLX", "Netflix, Inc.", "us_equity", "NASDAQ", "701.50", 0.36, True),
    ("ADBE", "Adobe Inc.", "us_equity", "NASDAQ", "512.80", 0.33, True),
    ("CSCO", "Cisco Systems, Inc.", "us_equity", "NASDAQ", "51.20", 0.20, True),
    ("QCOM", "QUALCOMM Incorporated", "us_equity", "NASDAQ", "168.90", 0.35, True),
    ("PEP", "PepsiCo, Inc.", "us_equity", "NASDAQ", "171.60", 0.16, True),
    ("COST", "Costco Wholesale Corporation", "us_equity", "NASDAQ", "889.40", 0.20, True),
    ("JPM", "JPMorgan Chase & Co.", "us_equity", "NYSE", "212.70", 0.22, True),
    ("BAC", "Bank of America Corporation", "us_equity", "NYSE", "40.10", 0.26, True),
    ("WFC", "Wells Fargo & Company", "us_equity", "NYSE", "58.30", 0.27, True),
    ("GS", "The Goldman Sachs Group, Inc.", "us_equity", "NYSE", "505.20", 0.26, True),
    ("MS", "Morgan Stanley", "us_equity", "NYSE", "104.60", 0.25, True),
    ("V", "Visa Inc.", "us_equity", "NYSE", "279.90", 0.18, True),
    ("MA", "Mastercard Incorporated", "us_equity", "NYSE", "494.10", 0.19, True),
    ("BRK.B", "Berkshire Hathaway Inc. Class B", "us_equity", "NYSE", "451.30", 0.15, True),
    ("JNJ", "Johnson & Johnson", "us_equity", "NYSE", "161.80", 0.15, True),
    ("UNH", "UnitedHealth Group Incorporated", "us_equity", "NYSE", "585.60", 0.24, True),
    ("PFE", "Pfizer Inc.", "us_equity", "NYSE", "29.10", 0.24, True),
    ("MRK", "Merck & Co., Inc.", "us_equity", "NYSE", "112.40", 0.20, True),
    ("LLY", "Eli Lilly and Company", "us_equity", "NYSE", "905.70", 0.32, True),
    ("ABBV", "AbbVie Inc.", "us_equity", "NYSE", "192.30", 0.21, True),
    ("XOM", "Exxon Mobil Corporation", "us_equity", "NYSE", "117.90", 0.23, True),
    ("CVX", "Chevron Corporation", "us_equity", "NYSE", "147.20", 0.23, True),
    ("KO", "The Coca-Cola Company", "us_equity", "NYSE", "70.20", 0.14, True),
    ("PG", "The Procter & Gamble Company", "us_equity", "NYSE", "171.50", 0.15, True),
    ("WMT", "Walmart Inc.", "us_equity", "NYSE", "80.40", 0.18, True),
    ("HD", "The Home Depot, Inc.", "us_equity", "NYSE", "395.80", 0.22, True),
    ("DIS", "The Walt Disney Company", "us_equity", "NYSE", "93.60", 0.27, True),
    ("BA", "The Boeing Company", "us_equity", "NYSE", "155.40", 0.36, True),
    ("CAT", "Caterpillar Inc.", "us_equity", "NYSE", "375.20", 0.28, True),
    ("F", "Ford Motor Company", "us_equity", "NYSE", "10.85", 0.35, True),
    ("T", "AT&T Inc.", "us_equity", "NYSE", "21.70", 0.20, True),
    ("SPY", "SPDR S&P 500 ETF Trust", "etf", "ARCA", "571.40", 0.15, True),
    ("QQQ", "Invesco QQQ Trust", "etf", "NASDAQ", "488.60", 0.20, True),
    ("IWM", "iShares Russell 2000 ETF", "etf", "ARCA", "220.30", 0.22, True),
    ("DIA", "SPDR Dow Jones Industrial Average ETF", "etf", "ARCA", "421.90", 0.14, True),
    ("TLT", "iShares 20+ Year Treasury Bond ETF", "etf", "NASDAQ", "97.80", 0.16, True),
    ("GLD", "SPDR Gold Shares", "etf", "ARCA", "245.10", 0.14, True),
    ("XLF", "Financial Select Sector SPDR Fund", "etf", "ARCA", "45.60", 0.19, True),
    ("XLE", "Energy Select Sector SPDR Fund", "etf", "ARCA", "90.70", 0.24, True),
    ("EEM", "iShares MSCI Emerging Markets ETF", "etf", "ARCA", "45.30", 0.18, True),
    ("SNDL", "SNDL Inc.", "us_equity", "NASDAQ", "0.8450", 0.80, False),
)

CSV_COLUMNS = (
    "symbol",
    "name",
    "asset_class",
    "exchange",
    "start_price",
    "tick_size",
    "lot_size",
    "round_lot",
    "fractionable",
    "shortable",
    "volatility",
)


def _default_instrument(row: tuple[str, str, str, str, str, float, bool]) -> Instrument:
    symbol, name, asset_class, exchange, price, volatility, shortable = row
    start_price = Decimal(price)
    return Instrument(
        symbol=symbol,
        name=name,
        asset_class=asset_class,
        exchange=exchange,
        start_price=start_price,
        tick_size=PENNY,
        lot_size=Decimal(1),
        round_lot=100,
        # Brokers offer fractional shares on liquid names above a dollar only.
        fractionable=start_price >= ONE_DOLLAR,
        shortable=shortable,
        volatility=volatility,
    )


class Universe:
    """An ordered, validated set of instruments looked up by symbol."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        ordered = list(instruments)
        if not ordered:
            raise InvalidArgument("The universe must contain at least one instrument.")
        by_symbol: dict[str, Instrument] = {}
        for instrument in ordered:
            _validate(instrument)
            if instrument.symbol in by_symbol:
                raise InvalidArgument(f"Symbol {instrument.symbol} appears twice in the universe.")
            by_symbol[instrument.symbol] = instrument
        self._by_symbol: Mapping[str, Instrument] = by_symbol
        self._ordered = tuple(ordered)

    def __len__(self) -> int:
        return len(self._ordered)

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._ordered)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return self._ordered

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(i.symbol for i in self._ordered)

    def get(self, symbol: str) -> Instrument:
        """The instrument for `symbol`, or NOT_FOUND naming it."""
        instrument = self._by_symbol.get(normalize_symbol(symbol))
        if instrument is None:
            raise NotFound(f"Unknown symbol {symbol!r}: it is not in this market's universe.")
        return instrument

    def resolve(self, symbols: Iterable[str]) -> tuple[str, ...]:
        """Normalise a client's symbol filter, refusing unknown symbols; empty means all."""
        resolved: list[str] = []
        for raw in symbols:
            for part in raw.split(","):
                if part.strip():
                    symbol = self.get(part).symbol
                    if symbol not in resolved:
                        resolved.append(symbol)
        return tuple(resolved)


def normalize_symbol(symbol: str) -> str:
    return symbol.strip().upper()


def _validate(instrument: Instrument) -> None:
    symbol = instrument.symbol
    if not symbol or symbol != normalize_symbol(symbol) or len(symbol) > 16:
        raise InvalidArgument(f"Symbol {symbol!r} must be 1-16 upper-case characters.")
    if instrument.asset_class not in ASSET_CLASSES:
        raise InvalidArgument(f"{symbol}: asset class must be one of {', '.join(ASSET_CLASSES)}.")
    if instrument.start_price <= 0:
        raise InvalidArgument(f"{symbol}: start price must be positive.")
    if instrument.tick_size <= 0 or instrument.lot_size <= 0 or instrument.round_lot <= 0:
        raise InvalidArgument(f"{symbol}: tick size, lot size and round lot must be positive.")
    if instrument.start_price % instrument.tick_at(instrument.start_price) != 0:
        raise InvalidArgument(
            f"{symbol}: start price {instrument.start_price} is off the tick grid."
        )
    if not 0.0 < instrument.volatility <= 5.0:
        raise InvalidArgument(f"{symbol}: volatility must be in (0, 5] (annualised fraction).")


def default_universe() -> Universe:
    """About fifty liquid US names plus one sub-dollar stock to exercise the sub-penny grid."""
    return Universe(_default_instrument(row) for row in _DEFAULT_ROWS)


def _parse_bool(symbol: str, column: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise InvalidArgument(f"{symbol}: column {column} must be true or false, not {text!r}.")


def _parse_dec(symbol: str, column: str, text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidArgument(
            f"{symbol}: column {column} must be a decimal, not {text!r}."
        ) from None
    if not value.is_finite():
        raise InvalidArgument(f"{symbol}: column {column} must be finite.")
    return value


def parse_universe_csv(text: str) -> Universe:
    """Read a universe from CSV text with the columns of CSV_COLUMNS (header required)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidArgument(f"Universe CSV lacks columns: {', '.join(missing)}.")
    instruments = []
    for row in reader:
        symbol = normalize_symbol(row["symbol"] or "")
        try:
            round_lot = int(row["round_lot"])
            volatility = float(row["volatility"])
        except ValueError:
            raise InvalidArgument(
                f"{symbol}: round_lot must be an integer and volatility a number."
            ) from None
        instruments.append(
            Instrument(
                symbol=symbol,
                name=row["name"].strip(),
                asset_class=row["asset_class"].strip(),
                exchange=row["exchange"].strip(),
                start_price=_parse_dec(symbol, "start_price", row["start_price"]),
                tick_size=_parse_dec(symbol, "tick_size", row["tick_size"]),
                lot_size=_parse_dec(symbol, "lot_size", row["lot_size"]),
                round_lot=round_lot,
                fractionable=_parse_bool(symbol, "fractionable", row["fractionable"]),
                shortable=_parse_bool(symbol, "shortable", row["shortable"]),
                volatility=volatility,
            )
        )
    return Universe(instruments)


def load_universe(path: str | Path | None) -> Universe:
    """The configured universe file, or the default universe when no path is set."""
    if path is None or str(path) == "":
        return default_universe()
    return parse_universe_csv(Path(path).read_text(encoding="utf-8"))


def universe_to_csv(universe: Universe) -> str:
    """Render a universe in the file format `parse_universe_csv` reads (a template for operators)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for i in universe.instruments:
        writer.writerow(
            [
                i.symbol,
                i.name,
                i.asset_class,
                i.exchange,
                str(i.start_price),
                str(i.tick_size),
                str(i.lot_size),
                i.round_lot,
                "true" if i.fractionable else "false",
                "true" if i.shortable else "false",
                repr(i.volatility),
            ]
        )
    return out.getvalue()
