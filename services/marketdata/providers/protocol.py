"""What every provider module gives the live session and the backfill: shared shapes only.

A provider's WebSocket speaks in frames; `decode` turns one frame into the ticks
it carries, the control messages (connected, authenticated, subscribed, errors)
and a count of items that could not be mapped. The session drives any provider
through the same handshake with these, and the backfill pages any provider's REST
history through `PageRequest` and `Page`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.marketdata.bars import Bar
from services.marketdata.ticks import Tick, Trade


class Control(enum.Enum):
    """Control messages of the documented handshakes (both providers have the same three)."""

    CONNECTED = "connected"
    AUTHENTICATED = "authenticated"
    SUBSCRIBED = "subscribed"
    ERROR = "error"


class Problem(enum.Enum):
    """What a provider error means for the connection."""

    AUTH_FAILED = "auth_failed"  # wrong key, wrong plan or feed: retrying soon will not help
    CONNECTION_LIMIT = "connection_limit"  # another client holds the account's one connection
    SYMBOL_LIMIT = "symbol_limit"  # the plan allows fewer channels than were asked for
    TRANSIENT = "transient"  # slow client, internal error, bad syntax: reconnect and carry on


@dataclass(frozen=True, slots=True)
class ControlMessage:
    kind: Control
    text: str = ""
    code: str = ""
    problem: Problem | None = None


@dataclass(slots=True)
class Decoded:
    """One frame's content in arrival order (ticks keep the provider's order)."""

    ticks: list[Tick] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    controls: list[ControlMessage] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)


class StreamProtocol(Protocol):
    """A provider's live protocol: where to connect, what to send, how to read."""

    name: str

    @property
    def url(self) -> str: ...

    def auth_message(self) -> str:
        """The auth frame; it holds the credentials, so it is sent and never logged."""
        ...

    def subscribe_message(self, symbols: Sequence[str]) -> str: ...

    def decode(self, frame: str | bytes) -> Decoded: ...


@dataclass(frozen=True)
class PageRequest:
    """One REST call: a URL and its query (a `next_url` carries its query inside)."""

    url: str
    params: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"url": self.url, "params": self.params}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PageRequest:
        raw = json.loads(text)
        return cls(str(raw["url"]), {str(k): str(v) for k, v in raw["params"].items()})


@dataclass(frozen=True)
class Page:
    bars: list[Bar]
    trades: list[Trade]
    next: PageRequest | None


class HistoryProtocol(Protocol):
    """A provider's REST history of bars and trades."""

    name: str

    def headers(self) -> dict[str, str]:
        """Credentials as headers (never in the URL, which HTTP clients log)."""
        ...

    def bars_request(
        self, symbol: str, timeframe: str, start_ns: int, end_ns: int
    ) -> PageRequest: ...

    def trades_request(self, symbol: str, start_ns: int, end_ns: int) -> PageRequest: ...

    def parse_bars(self, request: PageRequest, symbol: str, timeframe: str, body: Any) -> Page:
        """One page of bars and the request of the next page (None after the last)."""
        ...

    def parse_trades(self, request: PageRequest, symbol: str, body: Any) -> Page: ...
