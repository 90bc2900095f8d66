"""The control channel of a running `cift up`: status, stop, start and restart of one component.

`cift up` listens on a Unix socket in its home (mode 0600: only its owner may stop
its processes; nothing listens on the network). Each request and each answer is one
JSON object on one line:

    {"command": "status"}                        → {"ok": true, "components": [...]}
    {"command": "restart", "component": "risk"}  → {"ok": true, "message": "..."}
    anything refused                             → {"ok": false, "error": "..."}

A request that stops or starts something is answered once it is done (the component
healthy again, for start and restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cift.stack.errors import StackError
from cift.stack.supervisor import Supervisor

SOCKET_NAME = "control.sock"
COMMANDS = ("status", "stop", "start", "restart")
# sun_path holds 108 bytes; a deep home (a test's temp dir) gets a socket in the temp dir.
_MAX_SOCKET_PATH = 100
_MAX_REQUEST_BYTES = 4096


def socket_path(home: Path) -> Path:
    """Where the control socket of the stack in `home` lives."""
    path = home / SOCKET_NAME
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(home)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"cift-{digest}.sock"


class ControlServer:
    """Answers control requests for one supervised stack."""

    def __init__(self, home: Path, supervisor: Supervisor) -> None:
        self.path = socket_path(home)
        self.supervisor = supervisor
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        # A socket file left by a killed launcher is stale: the home lock proves it.
        self.path.unlink(missing_ok=True)
        previous = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(previous)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            answer = await self.answer(line[:_MAX_REQUEST_BYTES])
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            command = request["command"]
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": "a request is one JSON object with a 'command'"}
        if command not in COMMANDS:
            return {"ok": False, "error": f"unknown command {command!r}; one of {COMMANDS}"}
        if command == "status":
            return {"ok": True, "components": self.supervisor.status()}
        name = str(request.get("component", ""))
        actions = {
            "stop": self.supervisor.stop_component,
            "start": self.supervisor.start_component,
            "restart": self.supervisor.restart_component,
        }
        try:
            return {"ok": True, "message": await actions[command](name)}
        except StackError as exc:
            return {"ok": False, "error": exc.message}


async def request(home: Path, command: str, component: str = "", timeout_s: float = 120.0) -> Any:
    """Send one request to the `cift up` running in `home`; its answer, or StackError."""
    path = socket_path(home)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        raise StackError(f"no cift up runs with home {home} (nothing listens on {path})") from None
    try:
        writer.write(json.dumps({"command": command, "component": component}).encode() + b"\n")
        await writer.drain()
        async with asyncio.timeout(timeout_s):
            line = await reader.readline()
    except TimeoutError:
        raise StackError(f"cift up did not answer {command!r} within {timeout_s:g} s") from None
    finally:
        writer.close()
    if not line:
        raise StackError("cift up closed the control connection without an answer")
    answer = json.loads(line)
    if not answer.get("ok"):
        raise StackError(str(answer.get("error", "refused")))
    return answer.get("components") if command == "status" else answer.get("message")
