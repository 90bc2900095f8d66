"""What both providers' stream frames and bar objects have in common, read one way.

Both providers send JSON arrays of tagged items and both describe a bar with the same
`o h l c v vw` letters; only the tag field, the kinds and the time encoding differ.
Keeping the frame walk and the bar arithmetic here means a fix to the fast-path
fallback or to the notional (vwap times volume) reaches every provider at once.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Protocol

import msgspec
import orjson

from services.marketdata.bars import Bar
from services.marketdata.providers.protocol import ControlMessage, Decoded
from services.marketdata.ticks import Quote, Tick, Trade

# What one item of a frame becomes; the frame walk files it by its type.
Item = Quote | Trade | Bar | ControlMessage
ItemReader = Callable[[dict[str, Any]], Item]
# A price or size in a compiled stream item: checked in C while the frame is parsed.
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class TickItem(Protocol):
    """A compiled stream item in its documented shape."""

    def tick(self) -> Tick: ...


def non_negative(value: Any, name: str) -> float:
    """A size or price as a float, refused when negative or NaN (the comparison fails)."""
    number = float(value)
    if not number >= 0:
        raise ValueError(f"{name} must be a non-negative number, not {value!r}")
    return number


def bar_from_letters(
    item: dict[str, Any], symbol: str, timeframe: str, start_ns: int, trade_count: int
) -> Bar:
    """A bar from `o h l c v vw`; the notional is vwap times volume (vwap = close if absent)."""
    volume = non_negative(item["v"], "v")
    close = float(item["c"])
    return Bar(
        symbol,
        timeframe,
        start_ns,
        float(item["o"]),
        float(item["h"]),
        float(item["l"]),
        close,
        volume,
        float(item.get("vw", close)) * volume,
        trade_count,
    )


def decode_frame(
    frame: str | bytes,
    tick_frame: msgspec.json.Decoder[list[Any]],
    kind_field: str,
    readers: Mapping[str, ItemReader],
) -> Decoded:
    """The compiled quotes-and-trades path, or item by item when anything else is in it.

    The per-item path yields the same ticks as the compiled one (a unit test per
    provider holds the two equal), so the choice only changes the cost.
    """
    try:
        items: list[TickItem] = tick_frame.decode(frame)
        return Decoded([item.tick() for item in items])
    except (msgspec.MsgspecError, ValueError):
        # Not only documented quotes and trades, or a bad value inside one.
        return decode_items(frame, kind_field, readers)


def decode_items(frame: str | bytes, kind_field: str, readers: Mapping[str, ItemReader]) -> Decoded:
    """Item by item: a kind without a reader is skipped, a malformed item counted."""
    decoded = Decoded()
    try:
        items = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        decoded.malformed.append(f"not JSON: {exc}")
        return decoded
    if not isinstance(items, list):
        items = [items]
    ticks = decoded.ticks
    for item in items:
        try:
            kind = item[kind_field]
            reader = readers.get(kind) if isinstance(kind, str) else None
            if reader is None:
                continue
            read = reader(item)
        except (KeyError, TypeError, ValueError) as exc:
            decoded.malformed.append(f"{type(exc).__name__}: {exc}")
            continue
        if isinstance(read, Bar):
            decoded.bars.append(read)
        elif isinstance(read, ControlMessage):
            decoded.controls.append(read)
        else:
            ticks.append(read)
    return decoded


class TaggedFrames:
    """A stream at `url` whose frames are JSON arrays of tagged items.

    A provider's stream class names its tag field, its compiled tick frame and its
    readers; the two decoding paths themselves are the functions above.
    """

    kind_field: ClassVar[str]
    tick_frame: ClassVar[msgspec.json.Decoder[list[Any]]]
    readers: ClassVar[Mapping[str, ItemReader]]

    def __init__(self, url: str) -> None:
        self._url = url

    def __repr__(self) -> str:
        # The URL only: the credentials a provider's stream holds never reach a log.
        return f"{type(self).__name__}(url={self._url!r})"

    @property
    def url(self) -> str:
        return self._url

    def decode(self, frame: str | bytes) -> Decoded:
        """The hot path: one call per frame."""
        return decode_frame(frame, self.tick_frame, self.kind_field, self.readers)

    def decode_items(self, frame: str | bytes) -> Decoded:
        """Item by item: controls, bars and malformed items (skipped, counted, the rest kept)."""
        return decode_items(frame, self.kind_field, self.readers)
