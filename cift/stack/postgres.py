"""Embedded PostgreSQL 16 from the pgserver wheel, and the `cift` database on any server.

pgserver's own server handle starts PostgreSQL as a pg_ctl daemon on a Unix socket.
The launcher instead runs the bundled `postgres` binary in the foreground on TCP,
so the server is an ordinary supervised child: in the launcher's process tree,
logging to its file, stopped in order and killed with the launcher. pgserver's
helpers still do what it knows best: the unprivileged system user PostgreSQL needs
when the launcher runs as root, and the permissions that user needs.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import warnings
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from cift.stack.errors import StackError, redact_url
from cift.stack.ports import LOOPBACK
from cift.stack.processes import Child, run_to_end, spawn

DATABASE = "cift"
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; pgserver creates and uses this account instead.
SYSTEM_USER = "pgserver"


def _pgserver_utils() -> ModuleType:
    # platformdirs warns about XDG_RUNTIME_DIR when pgserver is imported as root; harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver.utils

    return pgserver.utils


def binaries_dir() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    path: Path = POSTGRES_BIN_PATH
    if not (path / "postgres").is_file():
        raise StackError(f"PostgreSQL binaries not found in {path}; reinstall the pgserver package")
    return path


def database_url(port: int, database: str = DATABASE) -> str:
    return f"postgresql://{SUPERUSER}@{LOOPBACK}:{port}/{database}"


def _ensure_readable_by_others(binaries: Path) -> None:
    """The system user must be able to run the wheel's binaries, installed by root."""
    postgres = binaries / "postgres"
    if postgres.stat().st_mode & stat.S_IXOTH:
        return
    utils = _pgserver_utils()
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    utils.ensure_prefix_permissions(binaries)
    utils.ensure_folder_permissions(binaries, read | execute)
    utils.ensure_folder_permissions(binaries.parent / "lib", read)
    utils.ensure_folder_permissions(binaries.parent / "share", read)


def prepare_data_dir(data_dir: Path) -> str | None:
    """Create the cluster once (later runs reuse it); return the user PostgreSQL runs as."""
    binaries = binaries_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    user: str | None = None
    if os.geteuid() == 0:
        utils = _pgserver_utils()
        utils.ensure_user_exists(SYSTEM_USER)
        _ensure_readable_by_others(binaries)
        utils.ensure_prefix_permissions(data_dir)
        account = pwd.getpwnam(SYSTEM_USER)
        os.chown(data_dir, account.pw_uid, account.pw_gid)
        user = SYSTEM_USER
    # PostgreSQL refuses a data directory others can read.
    data_dir.chmod(0o700)
    if not (data_dir / "PG_VERSION").exists():
        result = run_to_end(
            [
                str(binaries / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            user=user,
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise StackError(f"initdb failed in {data_dir}: {last}")
    return user


def server_argv(
    data_dir: Path, port: int, *, durable: bool, synchronous_commit: bool = True
) -> list[str]:
    """The server's command line: 127.0.0.1:`port` only (no Unix socket to collide with others)."""
    argv = [
        str(binaries_dir() / "postgres"),
        "-D",
        str(data_dir),
        "-h",
        LOOPBACK,
        "-p",
        str(port),
        "-k",
        "",
        # On: a commit (an accepted order, a fill) is confirmed only once its WAL is on
        # disk. Off answers before that: WAL buffers still in shared memory die with a
        # killed server, so up to 3 x wal_writer_delay of confirmed commits can vanish.
        "-c",
        f"synchronous_commit={'on' if synchronous_commit else 'off'}",
        "-c",
        "max_connections=200",
    ]
    if not durable:
        # Throwaway data (tests, --fresh temp homes): nothing to protect from a crash.
        argv += ["-c", "fsync=off", "-c", "full_page_writes=off"]
    return argv


def spawn_postgres(
    data_dir: Path,
    port: int,
    log_path: Path,
    *,
    user: str | None,
    durable: bool,
    synchronous_commit: bool = True,
) -> Child:
    """Run the server in the foreground, supervised like every other component."""
    return spawn(
        "postgres",
        server_argv(data_dir, port, durable=durable, synchronous_commit=synchronous_commit),
        log_path=log_path,
        user=user,
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client.
        stop_signal=signal.SIGINT,
        stop_timeout_s=10.0,
        # SIGQUIT (immediate shutdown) also takes the backends down when the launcher dies.
        death_signal=signal.SIGQUIT,
    )


async def ensure_database(url: str) -> None:
    """Create the database `url` names when the server does not have it yet."""
    try:
        conn = await asyncpg.connect(url, timeout=5.0)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    try:
        conn = await asyncpg.connect(maintenance, timeout=5.0)
        try:
            quoted = '"' + name.replace('"', '""') + '"'
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError) as exc:
        raise StackError(f"cannot create database {name!r} at {redact_url(url)}: {exc}") from None
