"""From the market data settings to a provider's protocols and symbols, checked up front.

A missing key or an unknown symbol ends the process at start with one line naming
the setting, instead of a feed that connects and is refused forever.
"""

from __future__ import annotations

from collections.abc import Sequence

from cift.runtime.errors import InvalidArgument
from services.marketdata.config import ALPACA_DATA_FEEDS, MarketDataConfig
from services.marketdata.instruments import Universe
from services.marketdata.providers.alpaca import AlpacaHistory, AlpacaStream
from services.marketdata.providers.massive import MassiveHistory, MassiveStream
from services.marketdata.providers.protocol import HistoryProtocol, StreamProtocol

PROVIDERS = ("alpaca", "massive")


def _check(config: MarketDataConfig, provider: str) -> None:
    if provider == "alpaca":
        if not (config.alpaca_key_id and config.alpaca_secret_key):
            raise InvalidArgument(
                "The alpaca provider needs CIFT_ALPACA_KEY_ID and CIFT_ALPACA_SECRET_KEY."
            )
        if config.alpaca_data_feed not in ALPACA_DATA_FEEDS:
            raise InvalidArgument(
                f"CIFT_ALPACA_DATA_FEED must be iex or sip, not {config.alpaca_data_feed!r}."
            )
    elif provider == "massive":
        if not config.massive_api_key:
            raise InvalidArgument("The massive provider needs CIFT_MASSIVE_API_KEY.")
    else:
        raise InvalidArgument(f"Unknown provider {provider!r}; use alpaca or massive.")


def stream_protocol(config: MarketDataConfig, provider: str) -> StreamProtocol:
    _check(config, provider)
    if provider == "alpaca":
        return AlpacaStream(
            config.alpaca_key_id,
            config.alpaca_secret_key,
            config.alpaca_stream_url,
            config.alpaca_data_feed,
        )
    return MassiveStream(config.massive_api_key, config.massive_stream_url)


def history_protocol(config: MarketDataConfig, provider: str) -> HistoryProtocol:
    _check(config, provider)
    if provider == "alpaca":
        return AlpacaHistory(
            config.alpaca_key_id,
            config.alpaca_secret_key,
            config.alpaca_data_url,
            config.alpaca_data_feed,
        )
    return MassiveHistory(config.massive_api_key, config.massive_rest_url)


def chosen_symbols(requested: Sequence[str], universe: Universe) -> list[str]:
    """The symbols to subscribe or backfill: those asked for, else the whole universe."""
    symbols = [s.strip().upper() for s in requested if s.strip()] or list(universe.symbols)
    unknown = sorted(set(symbols) - set(universe.symbols))
    if unknown:
        raise InvalidArgument(
            f"Symbols outside the instrument universe: {', '.join(unknown)} "
            "(add them with CIFT_MARKETDATA_UNIVERSE_FILE)."
        )
    return list(dict.fromkeys(symbols))
