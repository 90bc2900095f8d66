"""From the market data settings to a provider's protocols and symbols, checked up front.

A missing key or an unknown symbol ends the process at start with one line naming
the setting, instead of a feed that connects and is refused forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from cift.runtime.errors import InvalidArgument
from services.marketdata.config import MarketDataConfig
from services.marketdata.instruments import Universe
from services.marketdata.providers.alpaca import AlpacaHistory, AlpacaStream
from services.marketdata.providers.massive import MassiveHistory, MassiveStream
from services.marketdata.providers.protocol import HistoryProtocol, StreamProtocol

PROVIDERS = ("alpaca", "massive")


class ProviderProtocols(NamedTuple):
    stream: StreamProtocol
    history: HistoryProtocol


def provider_protocols(config: MarketDataConfig, provider: str) -> ProviderProtocols:
    """The provider's live and REST protocols, from its settings (refused when missing)."""
    if provider == "alpaca":
        if not (config.alpaca_key_id and config.alpaca_secret_key):
            raise InvalidArgument(
                "The alpaca provider needs CIFT_ALPACA_KEY_ID and CIFT_ALPACA_SECRET_KEY."
            )
        keys = (config.alpaca_key_id, config.alpaca_secret_key)
        # The stream refuses a data feed other than iex or sip.
        return ProviderProtocols(
            AlpacaStream(*keys, config.alpaca_stream_url, config.alpaca_data_feed),
            AlpacaHistory(*keys, config.alpaca_data_url, config.alpaca_data_feed),
        )
    if provider == "massive":
        if not config.massive_api_key:
            raise InvalidArgument("The massive provider needs CIFT_MASSIVE_API_KEY.")
        return ProviderProtocols(
            MassiveStream(config.massive_api_key, config.massive_stream_url),
            MassiveHistory(config.massive_api_key, config.massive_rest_url),
        )
    raise InvalidArgument(f"Unknown provider {provider!r}; use alpaca or massive.")


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
