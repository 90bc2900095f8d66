"""A provider's live WebSocket, kept up: connect, authenticate, subscribe, read, reconnect.

The reader only decodes and appends to `LiveSource`, a bounded buffer the feed
task drains: however slow Kafka is, the socket is read at once (a provider drops
a client whose queue fills). When the buffer is full new ticks are dropped and
counted, never blocking the reader. Sequences are stamped later by the feed task,
so neither a reconnect nor a dropped or malformed message leaves a gap in them.

Failures: a network error or a dropped connection reconnects after a jittered
exponential delay, authenticating and subscribing again. A provider error (auth
failed, connection limit, symbol limit) is logged once as one line, reported as
the feed's health (`FeedHealth`), and retried on the same capped schedule rather
than crashing the process. Credentials are only ever in the auth frame, which is
sent and not logged; the websockets library's frame log is held above DEBUG.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Gauge
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from services.marketdata.feed import MAX_TICKS_PER_INTERVAL
from services.marketdata.providers.backoff import Backoff
from services.marketdata.providers.protocol import (
    Control,
    ControlMessage,
    Problem,
    StreamProtocol,
)
from services.marketdata.ticks import Tick

log = logging.getLogger(__name__)
# websockets logs every frame at DEBUG, the auth frame (the credentials) included.
_WIRE_LOG = logging.getLogger("cift.marketdata.providers.wire")
_WIRE_LOG.setLevel(logging.INFO)

FRAMES = Counter("cift_marketdata_provider_frames_total", "Frames read.", ["provider"])
MALFORMED = Counter(
    "cift_marketdata_provider_malformed_total", "Items skipped as malformed.", ["provider"]
)
DROPPED = Counter(
    "cift_marketdata_provider_dropped_total",
    "Ticks dropped because the buffer to Kafka was full.",
    ["provider"],
)
CONNECTS = Counter(
    "cift_marketdata_provider_connects_total",
    "Connection attempts by outcome.",
    ["provider", "outcome"],
)
UP = Gauge(
    "cift_marketdata_provider_up", "1 while authenticated and subscribed, else 0.", ["provider"]
)
HANDSHAKE_TIMEOUT_S = 10.0
PING_INTERVAL_S = 20.0


class ProviderRejected(Exception):
    """The provider refused us (auth, limits): reconnecting at once would fail the same way."""

    def __init__(self, message: ControlMessage) -> None:
        super().__init__(f"{message.code} {message.text}".strip())
        self.message = message


class LiveSource:
    """Ticks between the socket reader and the feed task: bounded, never blocking the reader."""

    def __init__(self, capacity: int, provider: str) -> None:
        if capacity < 1:
            raise ValueError("the live buffer needs room for at least one tick")
        self.capacity = capacity
        self.provider = provider
        self._ticks: deque[Tick] = deque()
        self._ready = asyncio.Event()
        self.dropped = 0
        self._overflowing = False

    @property
    def finished(self) -> bool:
        return False

    def __len__(self) -> int:
        return len(self._ticks)

    def push(self, ticks: Sequence[Tick]) -> None:
        room = self.capacity - len(self._ticks)
        if room >= len(ticks):
            self._ticks.extend(ticks)
            self._overflowing = False
        else:
            self._ticks.extend(ticks[: max(room, 0)])
            lost = len(ticks) - max(room, 0)
            self.dropped += lost
            DROPPED.labels(self.provider).inc(lost)
            if not self._overflowing:
                log.warning(
                    "%s feed: buffer to Kafka full (%d ticks); dropping new ticks until it drains",
                    self.provider,
                    self.capacity,
                )
                self._overflowing = True
        if self._ticks:
            self._ready.set()

    def due(self, now_ns: int) -> list[Tick]:
        """Everything buffered (up to one interval's bound), oldest first."""
        ticks = self._ticks
        count = min(len(ticks), MAX_TICKS_PER_INTERVAL)
        out = [ticks.popleft() for _ in range(count)]
        if not ticks:
            self._ready.clear()
        return out

    async def ready(self, timeout_s: float) -> None:
        """Return when ticks are buffered, or after `timeout_s`."""
        if self._ticks:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()


@dataclass(frozen=True)
class FeedHealth:
    """The feed's state as operators see it: serving or not, and why."""

    provider: str
    serving: bool
    state: str
    detail: str = ""


class ProviderFeed:
    """Runs one provider connection for the life of the process."""

    def __init__(
        self,
        protocol: StreamProtocol,
        symbols: Sequence[str],
        source: LiveSource,
        backoff: Backoff,
        *,
        on_health: Callable[[FeedHealth], None] = lambda _health: None,
    ) -> None:
        if not symbols:
            raise ValueError("a provider feed needs at least one symbol")
        self.protocol = protocol
        self.symbols = list(symbols)
        self.source = source
        self.backoff = backoff
        self.on_health = on_health
        self.connections = 0
        self.health = FeedHealth(protocol.name, False, "starting")
        self._last_problem: str | None = None

    def _report(self, serving: bool, state: str, detail: str = "") -> None:
        self.health = FeedHealth(self.protocol.name, serving, state, detail)
        UP.labels(self.protocol.name).set(1 if serving else 0)
        self.on_health(self.health)

    def _problem(self, state: str, detail: str) -> None:
        """Log a failure once as one line; the same failure again is only counted."""
        key = f"{state}:{detail}"
        if key != self._last_problem:
            log.error(
                "%s feed: %s (%s); retrying with backoff up to %.1f s",
                self.protocol.name,
                state.replace("_", " "),
                detail,
                self.backoff.max_s,
            )
            self._last_problem = key
        self._report(False, state, detail)

    async def run(self) -> None:
        """Connect and read until cancelled; every failure ends in a delay and a new attempt."""
        name = self.protocol.name
        while True:
            try:
                await self._session()
                CONNECTS.labels(name, "closed").inc()
                self._problem("disconnected", "the provider closed the connection")
            except ProviderRejected as exc:
                CONNECTS.labels(
                    name, exc.message.problem.value if exc.message.problem else "error"
                ).inc()
                problem = exc.message.problem or Problem.TRANSIENT
                self._problem(problem.value, str(exc))
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as exc:
                CONNECTS.labels(name, "network").inc()
                self._problem("disconnected", f"{type(exc).__name__}: {exc}")
            except InvalidURI as exc:
                CONNECTS.labels(name, "config").inc()
                self._problem("bad_url", str(exc))
            await asyncio.sleep(self.backoff.next_delay_s())

    async def _session(self) -> None:
        async with connect(
            self.protocol.url,
            open_timeout=HANDSHAKE_TIMEOUT_S,
            ping_interval=PING_INTERVAL_S,
            ping_timeout=PING_INTERVAL_S,
            max_size=64 * 1024 * 1024,
            max_queue=64,
            logger=_WIRE_LOG,
        ) as socket:
            await self._until(socket, Control.CONNECTED)
            await socket.send(self.protocol.auth_message())
            await self._until(socket, Control.AUTHENTICATED)
            await socket.send(self.protocol.subscribe_message(self.symbols))
            await self._until(socket, Control.SUBSCRIBED)
            self.connections += 1
            if self._last_problem is not None:
                log.info(
                    "%s feed: streaming again after %d failed attempt(s)",
                    self.protocol.name,
                    self.backoff.failures,
                )
            else:
                log.info("%s feed: streaming %d symbols", self.protocol.name, len(self.symbols))
            self._last_problem = None
            self.backoff.reset()
            self._report(True, "streaming")
            CONNECTS.labels(self.protocol.name, "streaming").inc()
            async for frame in socket:
                self._on_frame(frame)

    async def _until(self, socket: ClientConnection, wanted: Control) -> None:
        """Read frames (keeping any data in them) until the control `wanted` arrives."""
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {wanted.value} message within {HANDSHAKE_TIMEOUT_S:.0f} s")
            async with asyncio.timeout(remaining):
                frame = await socket.recv()
            if any(c.kind is wanted for c in self._on_frame(frame)):
                return

    def _on_frame(self, frame: str | bytes) -> list[ControlMessage]:
        name = self.protocol.name
        FRAMES.labels(name).inc()
        decoded = self.protocol.decode(frame)
        if decoded.ticks:
            self.source.push(decoded.ticks)
        if decoded.malformed:
            MALFORMED.labels(name).inc(len(decoded.malformed))
            log.warning(
                "%s feed: skipped %d malformed item(s): %s",
                name,
                len(decoded.malformed),
                decoded.malformed[0][:200],
            )
        for control in decoded.controls:
            if control.kind is not Control.ERROR:
                continue
            if control.problem is Problem.SYMBOL_LIMIT:
                # The connection stays: what was accepted keeps flowing.
                self._problem("symbol_limit", f"{control.code} {control.text}".strip())
            elif control.problem is Problem.TRANSIENT:
                log.warning("%s feed: provider error %s %s", name, control.code, control.text)
            else:
                raise ProviderRejected(control)
        return decoded.controls
