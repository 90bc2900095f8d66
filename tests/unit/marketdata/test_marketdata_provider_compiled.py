"""The compiled frame decoders (msgspec) give exactly what the item-by-item path gives.

`decode` reads a frame of documented quotes and trades in one C call and falls back
to `decode_items` for anything else; these tests draw frames mixing documented and
wrong field values and hold the two paths equal tick for tick, and check that the
documented frames really take the compiled path (a decoder that always failed
would pass the equality and lose the speed).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.marketdata.providers import alpaca, massive
from services.marketdata.providers.alpaca import AlpacaStream
from services.marketdata.providers.massive import MassiveStream
from tests.fakes.alpaca import rfc3339_ns

ALPACA = AlpacaStream("KEY-ID", "SECRET", "wss://stream.data.alpaca.markets/v2/{feed}", "iex")
MASSIVE = MassiveStream("API-KEY", "wss://socket.massive.com/stocks")
MISSING = object()  # the field is left out of the item

prices = st.decimals(
    min_value=Decimal("0.0001"), max_value=Decimal("999999.9999"), places=4, allow_nan=False
).map(float)
sizes = st.integers(min_value=0, max_value=10**9) | st.floats(
    min_value=0, max_value=1e6, allow_nan=False
)
wrong = st.sampled_from([-1, -0.5, "12.5", True, None, [1], {"x": 1}])
ns_times = st.integers(min_value=0, max_value=4_102_444_800 * 10**9 - 1)
letters = st.sampled_from(["", "A", "B", "C", "V", "Q", "R", "@", "I"])


def item(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """An item with each field documented, or (now and then) wrong or left out."""
    out: dict[str, Any] = {}
    for name, good in fields.items():
        value = (
            draw(good | wrong | st.just(MISSING)) if draw(st.integers(0, 9)) == 0 else draw(good)
        )
        if value is not MISSING:
            out[name] = value
    return out


@st.composite
def alpaca_items(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["q", "t"]))
    common = {"S": st.sampled_from(["AAPL", "MSFT"]), "t": ns_times.map(rfc3339_ns)}
    venue = {"c": st.lists(letters, max_size=3) | st.none(), "z": letters | st.none()}
    if kind == "q":
        fields = {
            **common,
            "bp": prices,
            "ap": prices,
            "bs": sizes,
            "as": sizes,
            "bx": letters | st.none(),
            "ax": letters | st.none(),
            **venue,
        }
    else:
        fields = {
            **common,
            "p": prices,
            "s": sizes,
            "x": letters | st.none(),
            "i": st.integers(0, 2**62) | st.none(),
            **venue,
        }
    return {"T": kind, **item(draw, fields)}


@st.composite
def massive_items(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Q", "T"]))
    codes = st.integers(0, 60)
    common = {
        "sym": st.sampled_from(["AAPL", "MSFT"]),
        "t": st.integers(0, 4_102_444_800_000),
        "c": codes | st.lists(codes, max_size=3) | st.none(),
        "z": st.integers(0, 4) | st.none(),
    }
    if kind == "Q":
        fields = {
            **common,
            "bp": prices,
            "ap": prices,
            "bs": sizes,
            "as": sizes,
            "bx": st.integers(0, 20) | st.none(),
            "ax": st.integers(0, 20) | st.none(),
        }
    else:
        fields = {
            **common,
            "p": prices,
            "s": sizes,
            "x": st.integers(0, 20) | st.none(),
            "i": st.from_regex(r"[0-9]{1,12}", fullmatch=True) | st.none(),
        }
    return {"ev": kind, **item(draw, fields)}


@settings(max_examples=150)
@given(st.lists(alpaca_items(), min_size=1, max_size=6))
def test_alpaca_compiled_and_item_by_item_decoding_agree(items: list[dict[str, Any]]) -> None:
    frame = json.dumps(items)
    assert ALPACA.decode(frame) == ALPACA.decode_items(frame)


@settings(max_examples=150)
@given(st.lists(massive_items(), min_size=1, max_size=6))
def test_massive_compiled_and_item_by_item_decoding_agree(items: list[dict[str, Any]]) -> None:
    frame = json.dumps(items)
    assert MASSIVE.decode(frame) == MASSIVE.decode_items(frame)


def test_documented_frames_take_the_compiled_path() -> None:
    alpaca_frame = (
        '[{"T":"q","S":"AMD","bx":"U","bp":87.66,"bs":1,"ax":"Q","ap":87.68,"as":4,'
        '"t":"2021-02-22T15:51:45.335689322Z","c":["R"],"z":"C"},'
        '{"T":"t","i":96921,"S":"AAPL","x":"D","p":126.55,"s":1,'
        '"t":"2021-02-22T15:51:44.208Z","c":["@","I"],"z":"C"}]'
    )
    massive_frame = (
        '[{"ev":"Q","sym":"MSFT","bx":4,"bp":114.125,"bs":100,"ax":7,"ap":114.128,"as":160,'
        '"c":0,"i":[604],"t":1536036818784,"q":50385480,"z":3},'
        '{"ev":"T","sym":"MSFT","x":4,"i":"12345","z":3,"p":114.125,"s":100,"c":[0,12],'
        '"t":1536036818784,"q":3681328}]'
    )
    assert len(alpaca.TICK_FRAME.decode(alpaca_frame)) == 2
    assert len(massive.TICK_FRAME.decode(massive_frame)) == 2
    assert ALPACA.decode(alpaca_frame) == ALPACA.decode_items(alpaca_frame)
    assert MASSIVE.decode(massive_frame) == MASSIVE.decode_items(massive_frame)
