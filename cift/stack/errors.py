"""The one error the launcher reports to an operator instead of a traceback.

A `StackError` message is one line naming what is wrong and where (a port, an
address, a binary, a service and its log), because `cift up` prints exactly that
line and exits non-zero. Anything else escaping the launcher is a bug in it.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


class StackError(Exception):
    """Something the operator can fix kept the stack from starting or answering."""

    def __init__(self, message: str, detail: str = "") -> None:
        # str() carries the detail too, so a failing test fixture shows the log tail.
        super().__init__(f"{message}\n{detail}" if detail else message)
        self.message = message
        # Extra lines (a log tail) shown under the message; never needed to understand it.
        self.detail = detail


def redact_url(url: str) -> str:
    """Hide a password in a DSN before it reaches a terminal or a log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
