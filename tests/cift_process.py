"""Running the real `cift up` as a child process, as a user would, and reading what it prints."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path


def cift_command() -> str:
    beside_python = Path(sys.executable).parent / "cift"
    found = str(beside_python) if beside_python.exists() else shutil.which("cift")
    assert found, "the cift console script is not installed (pip install -e .)"
    return found


@dataclass
class RunningCift:
    process: asyncio.subprocess.Process
    output: list[str]
    started_s: float

    async def read_until(self, marker: str, timeout_s: float) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while marker not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no line " + repr(marker) + " in:\n" + "\n".join(self.output)
            raw = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            assert raw, "cift up ended early:\n" + "\n".join(self.output)
            self.output.append(raw.decode().rstrip("\n"))

    async def read_until_prefix(self, prefix: str, timeout_s: float) -> str:
        """The first line (read so far or next) that starts with `prefix`."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while True:
            found = next((line for line in self.output if line.startswith(prefix)), None)
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no line " + repr(prefix) + " in:\n" + "\n".join(self.output)
            raw = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            assert raw, "cift up ended early:\n" + "\n".join(self.output)
            self.output.append(raw.decode().rstrip("\n"))

    async def follow(self) -> None:
        """Keep reading what it prints (run as a task once started) until it exits."""
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
            self.output.append(raw.decode().rstrip("\n"))

    async def rest_of_output(self, timeout_s: float) -> str:
        assert self.process.stdout is not None
        rest = await asyncio.wait_for(self.process.stdout.read(), timeout_s)
        self.output.extend(rest.decode().splitlines())
        return "\n".join(self.output)


@asynccontextmanager
async def cift_up(environ: dict[str, str], *args: str) -> AsyncIterator[RunningCift]:
    process = await asyncio.create_subprocess_exec(
        cift_command(),
        "up",
        *args,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    running = RunningCift(process, [], time.monotonic())
    try:
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
