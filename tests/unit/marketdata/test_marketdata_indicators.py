"""Indicators agree with TA-Lib after warm-up and handle NaN, empty and short input."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from cift import indicators as ind
from cift.runtime.errors import InvalidArgument
from services.marketdata import indicators as spec_language

RTOL = 1e-9


def prices(n: int = 5000, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))


def assert_matches(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Same NaN warm-up, and every later value within 1e-9 relative."""
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    valid = ~np.isnan(theirs)
    assert valid.any()
    np.testing.assert_allclose(ours[valid], theirs[valid], rtol=RTOL, atol=0)


@pytest.mark.parametrize("period", [1, 2, 20, 200])
def test_sma_matches_talib(period: int) -> None:
    x = prices()
    assert_matches(ind.sma(x, period), talib.SMA(x, period))


@pytest.mark.parametrize("period", [1, 2, 12, 26, 200])
def test_ema_matches_talib(period: int) -> None:
    x = prices()
    assert_matches(ind.ema(x, period), talib.EMA(x, period))


@pytest.mark.parametrize("period", [2, 14, 50])
def test_rsi_matches_talib(period: int) -> None:
    x = prices()
    assert_matches(ind.rsi(x, period), talib.RSI(x, period))


@pytest.mark.parametrize(
    ("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (26, 12, 9), (3, 4, 1)]
)
def test_macd_line_signal_and_histogram_match_talib(fast: int, slow: int, signal: int) -> None:
    x = prices()
    for ours, theirs in zip(
        ind.macd(x, fast, slow, signal), talib.MACD(x, fast, slow, signal), strict=True
    ):
        assert_matches(ours, theirs)


def test_macd_matches_talib_even_where_the_line_crosses_zero() -> None:
    # The line is a difference of two EMAs; near a crossing, relative error shows any
    # difference in operation order. It must still agree to 1e-9 relative.
    x = 100.0 + np.sin(np.linspace(0, 60, 5000))
    for ours, theirs in zip(ind.macd(x), talib.MACD(x, 12, 26, 9), strict=True):
        assert_matches(ours, theirs)


@pytest.mark.parametrize(
    ("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (26, 12, 9), (3, 4, 1)]
)
@pytest.mark.parametrize("seed", [1, 2])
def test_macd_is_bit_for_bit_talib(fast: int, slow: int, signal: int, seed: int) -> None:
    # Same operation order and rounding as TA-Lib: every value identical, not just close,
    # so a faster kernel cannot trade agreement for speed unnoticed.
    for x in (prices(20_000, seed), 100.0 + np.sin(np.linspace(0, 60, 5000))):
        for ours, theirs in zip(
            ind.macd(x, fast, slow, signal), talib.MACD(x, fast, slow, signal), strict=True
        ):
            np.testing.assert_array_equal(ours, theirs)


def split_macd(x: np.ndarray, lead: int, window: int, cores: int = 2) -> tuple[np.ndarray, ...]:
    outputs = (np.empty(len(x)), np.empty(len(x)), np.empty(len(x)))
    ind._macd_split(x, 12, 26, 9, *outputs, cores=cores, lead=lead, window=window)
    return outputs


def serial_macd(x: np.ndarray) -> tuple[np.ndarray, ...]:
    outputs = (np.empty(len(x)), np.empty(len(x)), np.empty(len(x)))
    ind._macd_kernel(x, 12, 26, 9, *outputs)
    return outputs


@pytest.mark.parametrize("spare", [True, False])
def test_macd_of_a_long_series_in_parts_is_still_bit_for_bit_talib(
    monkeypatch: pytest.MonkeyPatch, spare: bool
) -> None:
    # In parts on one core, or on the free cores as well.
    monkeypatch.setattr(ind, "core_to_spare", lambda: spare)
    x = prices(ind._SPLIT_MIN_POINTS + 1_001, seed=3)
    for ours, theirs in zip(ind.macd(x), talib.MACD(x, 12, 26, 9), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(
    ("lead", "window", "cores"), [(1, 8, 2), (1, 4096, 2), (3000, 4096, 1), (4096, 4096, 3)]
)
def test_macd_split_repairs_parts_whose_guess_had_not_become_true(
    lead: int, window: int, cores: int
) -> None:
    # A lead of one point leaves each guessed state wrong at its cut: the outputs past
    # it are recomputed until the true state meets a recorded one (window 4096), or to
    # the end (window 8). Every way every value equals the serial kernel's and TA-Lib's.
    x = prices(50_000, seed=4)
    for ours, serial, theirs in zip(
        split_macd(x, lead, window, cores),
        serial_macd(x),
        talib.MACD(x, 12, 26, 9),
        strict=True,
    ):
        np.testing.assert_array_equal(ours, serial)
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("at", [100, 30_000])
def test_macd_split_turns_to_nan_after_a_nan_in_either_half_as_the_serial_kernel(at: int) -> None:
    x = prices(50_000, seed=5)
    x[at] = np.nan
    for ours, serial in zip(split_macd(x, 4096, 4096), serial_macd(x), strict=True):
        np.testing.assert_array_equal(ours, serial)
        assert np.isnan(ours[at:]).all()


@pytest.mark.parametrize(("period", "dev"), [(20, 2.0), (5, 1.5), (50, 3.0)])
def test_bollinger_bands_match_talib(period: int, dev: float) -> None:
    x = prices()
    for ours, theirs in zip(
        ind.bbands(x, period, dev), talib.BBANDS(x, period, dev, dev), strict=True
    ):
        assert_matches(ours, theirs)


def test_bollinger_bands_on_a_flat_series_collapse_to_the_mean() -> None:
    x = np.full(30, 42.5)
    upper, middle, lower = ind.bbands(x, 20, 2.0)
    assert_matches(upper, talib.BBANDS(x, 20, 2, 2)[0])
    assert upper[-1] == middle[-1] == lower[-1] == 42.5


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=1.0, max_value=1e4, allow_nan=False), min_size=0, max_size=120))
def test_every_indicator_agrees_with_talib_on_arbitrary_series(values: list[float]) -> None:
    x = np.array(values, dtype=np.float64)
    assert_or_empty(ind.sma(x, 10), talib.SMA(x, 10))
    assert_or_empty(ind.ema(x, 10), talib.EMA(x, 10))
    assert_or_empty(ind.rsi(x, 14), talib.RSI(x, 14))
    for ours, theirs in zip(ind.macd(x, 12, 26, 9), talib.MACD(x, 12, 26, 9), strict=True):
        assert_or_empty(ours, theirs)


def assert_or_empty(ours: np.ndarray, theirs: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    valid = ~np.isnan(theirs)
    # RSI of a flat stretch: TA-Lib and we both output exactly 0 or 100 there.
    np.testing.assert_allclose(ours[valid], theirs[valid], rtol=RTOL, atol=1e-9)


def test_leading_nans_are_skipped_as_talib_does() -> None:
    x = prices(300)
    x[:7] = np.nan
    assert_matches(ind.sma(x, 20), talib.SMA(x, 20))
    assert_matches(ind.ema(x, 20), talib.EMA(x, 20))
    assert_matches(ind.rsi(x, 14), talib.RSI(x, 14))
    for ours, theirs in zip(ind.macd(x), talib.MACD(x, 12, 26, 9), strict=True):
        assert_matches(ours, theirs)
    for ours, theirs in zip(ind.bbands(x, 20, 2.0), talib.BBANDS(x, 20, 2, 2), strict=True):
        assert_matches(ours, theirs)


def test_a_nan_after_warm_up_makes_every_later_output_nan() -> None:
    x = prices(100)
    x[50] = np.nan
    for out in (
        ind.sma(x, 5),
        ind.ema(x, 5),
        ind.rsi(x, 5),
        *ind.macd(x, 3, 6, 2),
        *ind.bbands(x, 5, 2.0),
    ):
        assert not np.isnan(out[49])
        assert np.isnan(out[50:]).all()
    # For SMA and EMA this is exactly what TA-Lib does.
    np.testing.assert_array_equal(np.isnan(ind.sma(x, 5)), np.isnan(talib.SMA(x, 5)))
    np.testing.assert_array_equal(np.isnan(ind.ema(x, 5)), np.isnan(talib.EMA(x, 5)))


def test_empty_and_too_short_input_give_empty_and_all_nan_like_talib() -> None:
    empty = np.array([], dtype=np.float64)
    assert ind.sma(empty, 5).size == 0 and ind.rsi(empty, 14).size == 0
    assert all(a.size == 0 for a in ind.macd(empty))
    short = prices(20)
    assert np.isnan(ind.rsi(short, 20)).all() and np.isnan(talib.RSI(short, 20)).all()
    assert all(np.isnan(a).all() for a in ind.macd(short))
    assert np.isnan(ind.sma(np.full(10, np.nan), 3)).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: ind.sma(x, 0), "SMA period"),
        (lambda x: ind.ema(x, -3), "EMA period"),
        (lambda x: ind.rsi(x, 1), "RSI period"),
        (lambda x: ind.rsi(x, 10**9), "RSI period"),
        (lambda x: ind.macd(x, 12, 26, 0), "signal"),
        (lambda x: ind.bbands(x, 20, 0.0), "deviation"),
        (lambda x: ind.bbands(x, 20, float("nan")), "deviation"),
        (lambda x: ind.bbands(x, 20, 1e6), "deviation"),
        (lambda x: ind.sma(x, 2.5), "integer"),  # type: ignore[arg-type]
        (lambda x: ind.sma(x.reshape(2, -1), 3), "one-dimensional"),
        (lambda x: ind.vwap(x, x[:-1]), "same length"),
        (lambda x: ind.vwap(x, -x), "negative"),
        (lambda x: ind.order_flow_imbalance(x, x, x, x, 0), "OFI window"),
    ],
)
def test_absurd_parameters_are_invalid_argument(call: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        call(prices(10))  # type: ignore[operator]


def test_vwap_cumulative_and_rolling_weight_by_volume() -> None:
    price = np.array([10.0, 11.0, 12.0, 13.0])
    volume = np.array([0.0, 100.0, 300.0, 100.0])
    cumulative = ind.vwap(price, volume)
    assert np.isnan(cumulative[0])
    np.testing.assert_allclose(
        cumulative[1:], [11.0, (1100 + 3600) / 400, (1100 + 3600 + 1300) / 500]
    )
    rolling = ind.vwap(price, volume, 2)
    assert np.isnan(rolling[0])
    np.testing.assert_allclose(rolling[1:], [11.0, (1100 + 3600) / 400, (3600 + 1300) / 400])


def test_ofi_follows_the_cont_kukanov_stoikov_definition() -> None:
    bid = np.array([10.00, 10.00, 10.01, 10.01, 10.00])
    bid_size = np.array([100.0, 300.0, 200.0, 200.0, 500.0])
    ask = np.array([10.02, 10.02, 10.02, 10.01, 10.01])
    ask_size = np.array([100.0, 100.0, 400.0, 100.0, 100.0])
    ofi = ind.order_flow_imbalance(bid, bid_size, ask, ask_size)
    # 1: bid size +200 at the same price; 2: bid up (new 200), ask size +300;
    # 3: ask down to 10.01 (new 100 supply); 4: bid down (old 200 gone), ask unchanged.
    np.testing.assert_array_equal(ofi, [np.nan, 200.0, 200.0 - 300.0, -100.0, -200.0])
    np.testing.assert_array_equal(
        ind.order_flow_imbalance(bid, bid_size, ask, ask_size, 2),
        [np.nan, np.nan, 100.0, -200.0, -300.0],
    )


def test_book_imbalance_is_signed_depth_share_and_nan_on_an_empty_book() -> None:
    out = ind.book_imbalance(np.array([300.0, 100.0, 0.0]), np.array([100.0, 100.0, 0.0]))
    np.testing.assert_array_equal(out[:2], [0.5, 0.0])
    assert np.isnan(out[2])


def test_indicator_specs_parse_with_defaults_and_canonical_labels() -> None:
    specs = spec_language.parse_indicator_specs(
        "sma:20, EMA:12,rsi:14,macd:12:26:9,bbands:20:2,vwap,ofi,imbalance,rsi:14"
    )
    assert [s.label for s in specs] == [
        "sma:20",
        "ema:12",
        "rsi:14",
        "macd:12:26:9",
        "bbands:20:2",
        "vwap:0",
        "ofi:1",
        "imbalance",
    ]
    assert spec_language.parse_indicator_specs("macd")[0].params == (12, 26, 9)
    assert spec_language.parse_indicator_specs("bbands:10:1.5")[0].params == (10, 1.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one"),
        ("sma:0", "SMA period"),
        ("sma:abc", "integer"),
        ("rsi:999999999", "RSI period"),
        ("macd:12:26:9:4", "at most 3"),
        ("bbands:20:-2", "deviation"),
        ("stoch:14", "Unknown indicator"),
        (",".join(f"sma:{n}" for n in range(1, 30)), "At most"),
    ],
)
def test_bad_indicator_specs_are_refused_before_any_data_is_read(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        spec_language.parse_indicator_specs(text)


def test_compute_names_each_output_series() -> None:
    x = prices(100)
    volume = np.full(100, 10.0)
    outputs = {
        spec.label: spec_language.compute(spec, close=x, volume=volume, vwap_price=x)
        for spec in spec_language.parse_indicator_specs("macd,bbands,vwap")
    }
    assert set(outputs["macd:12:26:9"]) == {"macd", "signal", "histogram"}
    assert set(outputs["bbands:20:2"]) == {"upper", "middle", "lower"}
    np.testing.assert_allclose(outputs["vwap:0"]["vwap"], np.cumsum(x) / np.arange(1, 101))
