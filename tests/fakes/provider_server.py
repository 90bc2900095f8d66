"""What both fake providers share: a WebSocket server with one account's rules, and a REST server.

The stream side keeps each connection's subscriptions, enforces the account's
connection limit (one, as both providers' entry plans) and lets a test publish
data, inject raw frames and cut every connection. The REST side serves pages from
a handler per path prefix in a thread, counting requests and able to answer 429.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed


@dataclass
class Client:
    socket: ServerConnection
    channels: dict[str, set[str]] = field(default_factory=dict)  # kind → symbols

    def wants(self, kind: str, symbol: str) -> bool:
        symbols = self.channels.get(kind, set())
        return symbol in symbols or "*" in symbols


class FakeStream:
    """The generic server loop; a provider subclass says what each step sends."""

    def __init__(self, max_connections: int = 1, symbol_limit: int | None = None) -> None:
        self.max_connections = max_connections
        self.symbol_limit = symbol_limit
        self.clients: list[Client] = []
        self.connections = 0
        self.auth_attempts = 0
        self.subscribes = 0
        self.received: list[dict[str, Any]] = []
        self._server: Server | None = None
        self.port = 0
        self._changed = asyncio.Condition()

    # ---- what a provider subclass defines --------------------------------------
    def hello(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def check_auth(self, message: dict[str, Any]) -> bool:
        raise NotImplementedError

    def auth_failed(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def too_many_connections(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def authenticated(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def subscribe(self, client: Client, message: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def kind_and_symbol(self, item: dict[str, Any]) -> tuple[str, str]:
        raise NotImplementedError

    # ---- the server ------------------------------------------------------------
    async def start(self) -> str:
        self._server = await serve(self._serve, "127.0.0.1", 0, compression=None)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, socket: ServerConnection) -> None:
        self.connections += 1
        await socket.send(json.dumps(self.hello()))
        client: Client | None = None
        try:
            async for raw in socket:
                message = json.loads(raw)
                self.received.append(message)
                if client is None:
                    self.auth_attempts += 1
                    if message.get("action") != "auth" or not self.check_auth(message):
                        await socket.send(json.dumps(self.auth_failed()))
                        await socket.close()
                        return
                    if len(self.clients) >= self.max_connections:
                        await socket.send(json.dumps(self.too_many_connections()))
                        await socket.close()
                        return
                    client = Client(socket)
                    self.clients.append(client)
                    await socket.send(json.dumps(self.authenticated()))
                elif message.get("action") == "subscribe":
                    reply = self.subscribe(client, message)
                    await socket.send(json.dumps(reply))
                    self.subscribes += 1
                    async with self._changed:
                        self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            if client is not None:
                self.clients.remove(client)

    async def publish(self, items: Iterable[dict[str, Any]]) -> int:
        """Send `items` as one frame to each client subscribed to them; returns frames sent."""
        sent = 0
        for client in list(self.clients):
            mine = [i for i in items if client.wants(*self.kind_and_symbol(i))]
            if mine:
                try:
                    await client.socket.send(json.dumps(mine))
                    sent += 1
                except ConnectionClosed:
                    pass
        return sent

    async def send_raw(self, frame: str | bytes) -> None:
        for client in list(self.clients):
            await client.socket.send(frame)

    async def drop_everyone(self) -> None:
        """Cut every connection without a goodbye (as a network failure would)."""
        for client in list(self.clients):
            client.socket.transport.abort()

    async def wait_subscribed(self, subscribes: int = 1, timeout_s: float = 20.0) -> None:
        """Until `subscribes` subscribe requests were answered in all (a reconnect's count too)."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.subscribes >= subscribes), timeout_s
            )


Handler = Callable[[str, dict[str, str], dict[str, str]], tuple[int, dict[str, str], Any]]


class FakeRest:
    """A threaded HTTP server: `routes` maps a path prefix to a handler(path, query, headers)."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.throttle_next = 0  # answer the next N requests with 429
        self.retry_after = "1"
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                fake.requests.append((parts.path, query))
                if fake.throttle_next > 0:
                    fake.throttle_next -= 1
                    self._reply(
                        429, {"Retry-After": fake.retry_after}, {"message": "too many requests"}
                    )
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                for prefix, handler in fake.routes.items():
                    if parts.path.startswith(prefix):
                        status, extra, body = handler(parts.path, query, headers)
                        self._reply(status, extra, body)
                        return
                self._reply(404, {}, {"message": "not found"})

            def _reply(self, status: int, headers: dict[str, str], body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
