"""Page tokens of keyset pagination: the (time, id) of the last row a page returned.

A list read newest first by (time, id) resumes strictly after the row its token
names, so rows inserted meanwhile neither repeat nor shift a page. The token is
opaque to clients (URL-safe base64 of "<ISO time>|<id>"); one this server did not
issue is refused as INVALID_ARGUMENT naming page_token, never passed to a query.
Execution's and backtest's lists share this one format.
"""

from __future__ import annotations

import base64
from datetime import datetime

from cift.runtime.errors import InvalidArgument

FOREIGN_TOKEN = "page_token is not one this service issued; pass next_page_token as received."


def encode_cursor(moment: datetime, key: str) -> str:
    """The page token after the row at (`moment`, `key`)."""
    return base64.urlsafe_b64encode(f"{moment.isoformat()}|{key}".encode()).decode()


def decode_cursor(token: str) -> tuple[datetime, str] | None:
    """The (time, id) a token names; None for no token (the first page)."""
    if not token:
        return None
    try:
        moment, key = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return datetime.fromisoformat(moment), key
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        raise InvalidArgument(FOREIGN_TOKEN) from None
