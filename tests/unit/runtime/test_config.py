"""Typed configuration from CIFT_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from cift.runtime.config import (
    CommonConfig,
    ConfigError,
    declared_settings,
    load,
    load_service,
    setting,
    to_environ,
)


@dataclass(frozen=True)
class ExampleConfig(CommonConfig):
    symbols: tuple[str, ...] = setting(("AAPL",), "Symbols to trade.")
    margin_multiplier: Decimal = setting(Decimal("1"), "Buying power multiplier.")


def test_defaults_apply_when_nothing_is_set() -> None:
    config = load(CommonConfig, {})
    assert config.redis_url == "redis://127.0.0.1:56379/0"
    assert config.opening_cash == Decimal("100000")
    assert config.trust_gateway_identity is False


def test_every_type_is_parsed_from_its_variable() -> None:
    config = load(
        ExampleConfig,
        {
            "CIFT_GRPC_PORT": "6000",
            "CIFT_DRAIN_TIMEOUT_S": "2.5",
            "CIFT_TRUST_GATEWAY_IDENTITY": "yes",
            "CIFT_OPENING_CASH": "2500.50",
            "CIFT_SYMBOLS": "AAPL, MSFT,,SPY",
        },
    )
    assert config.grpc_port == 6000
    assert config.drain_timeout_s == 2.5
    assert config.trust_gateway_identity is True
    assert config.opening_cash == Decimal("2500.50")
    assert config.symbols == ("AAPL", "MSFT", "SPY")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CIFT_GRPC_PORT", "http", "CIFT_GRPC_PORT must be an integer"),
        (
            "CIFT_TRUST_GATEWAY_IDENTITY",
            "maybe",
            "CIFT_TRUST_GATEWAY_IDENTITY must be true or false",
        ),
        ("CIFT_OPENING_CASH", "lots", "CIFT_OPENING_CASH must be a decimal"),
        ("CIFT_OPENING_CASH", "NaN", "CIFT_OPENING_CASH must be finite"),
        ("CIFT_JWKS_CACHE_S", "soon", "CIFT_JWKS_CACHE_S must be a number"),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load(CommonConfig, {name: value})


def test_service_defaults_fill_ports_unless_set() -> None:
    assert (
        load_service(CommonConfig, "risk", {}).grpc_port,
        load_service(CommonConfig, "risk", {}).metrics_port,
    ) == (
        50054,
        9104,
    )
    assert load_service(CommonConfig, "risk", {"CIFT_GRPC_PORT": "7000"}).grpc_port == 7000


def test_rendered_environment_loads_back_to_the_same_config() -> None:
    original = load(
        ExampleConfig, {"CIFT_SYMBOLS": "A,B", "CIFT_OPENING_CASH": "1.10"}, service_name="x"
    )
    assert load(ExampleConfig, to_environ(original)) == original


def test_declared_settings_list_every_variable_with_a_sentence() -> None:
    declared = declared_settings(ExampleConfig)
    assert "CIFT_DATABASE_URL" in declared
    assert "CIFT_MARGIN_MULTIPLIER" in declared
    assert all(doc for doc in declared.values())
