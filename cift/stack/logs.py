"""`cift up --verbose`: every child's log file, followed and prefixed with its name.

Children write only to their files (so nothing is lost when nobody watches); this
follower reads the new lines of every `*.log` file in the logs directory, including
files that appear later, and never writes to them.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO


class LogFollower:
    def __init__(self, logs_dir: Path, out: TextIO | None = None, interval_s: float = 0.25) -> None:
        self.logs_dir = logs_dir
        self.out = out
        self.interval_s = interval_s
        self._offsets: dict[Path, int] = {}

    def print_new_lines(self) -> None:
        out = self.out or sys.stdout
        for path in sorted(self.logs_dir.glob("*.log")):
            offset = self._offsets.get(path, 0)
            try:
                size = path.stat().st_size
                if size < offset:  # rewritten by a new run of that process
                    offset = 0
                with path.open("rb") as log_file:
                    log_file.seek(offset)
                    chunk = log_file.read()
            except OSError:
                continue
            # Keep a partial last line for the next round.
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._offsets[path] = offset + len(complete)
            for line in complete.decode(errors="replace").splitlines():
                out.write(f"[{path.stem}] {line}\n")
        out.flush()

    async def run(self) -> None:
        while True:
            self.print_new_lines()
            await asyncio.sleep(self.interval_s)
