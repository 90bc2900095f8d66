"""A provider's settings are checked before anything connects, each refusal naming its setting."""

from __future__ import annotations

import pytest

from cift.runtime.errors import InvalidArgument
from services.marketdata.config import MarketDataConfig
from services.marketdata.providers.settings import provider_protocols

ALPACA = MarketDataConfig(
    alpaca_key_id="KEY-ID", alpaca_secret_key="S3CR3T", alpaca_data_feed="sip"
)


def test_alpaca_settings_give_the_stream_of_the_chosen_feed_and_the_rest_history() -> None:
    protocols = provider_protocols(ALPACA, "alpaca")
    assert protocols.stream.url == "wss://stream.data.alpaca.markets/v2/sip"
    assert protocols.history.headers() == {
        "APCA-API-KEY-ID": "KEY-ID",
        "APCA-API-SECRET-KEY": "S3CR3T",
    }


def test_massive_settings_give_its_cluster_and_rest_history() -> None:
    protocols = provider_protocols(MarketDataConfig(massive_api_key="API-KEY"), "massive")
    assert protocols.stream.url == "wss://socket.massive.com/stocks"
    assert protocols.history.headers() == {"Authorization": "Bearer API-KEY"}


@pytest.mark.parametrize(
    ("config", "provider", "message"),
    [
        (MarketDataConfig(alpaca_key_id="KEY-ID"), "alpaca", "needs CIFT_ALPACA_KEY_ID and "),
        (
            MarketDataConfig(alpaca_key_id="K", alpaca_secret_key="S", alpaca_data_feed="otc"),
            "alpaca",
            "CIFT_ALPACA_DATA_FEED must be iex or sip, not 'otc'",
        ),
        (MarketDataConfig(), "massive", "needs CIFT_MASSIVE_API_KEY"),
        (ALPACA, "polygon", "Unknown provider 'polygon'; use alpaca or massive"),
    ],
)
def test_missing_or_wrong_settings_are_refused_naming_the_setting(
    config: MarketDataConfig, provider: str, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        provider_protocols(config, provider)
