"""Provider timestamps to integer nanoseconds, exactly (no float ever holds a time).

Alpaca sends RFC 3339 text with up to nine fractional digits; `datetime` keeps only
six, so the fraction is read as an integer. A stream's messages share their second
for long runs, so the whole-second part is parsed once per distinct second.
"""

from __future__ import annotations

import datetime as dt

from cift.runtime.timestamps import NS_PER_S

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SECONDS: dict[str, int] = {}
_SECONDS_CAP = 4096


def _whole_seconds(prefix: str) -> int:
    seconds = _SECONDS.get(prefix)
    if seconds is None:
        if len(prefix) != 19 or prefix[10] not in "Tt ":
            raise ValueError(f"not an RFC 3339 date-time: {prefix!r}")
        moment = dt.datetime.fromisoformat(prefix).replace(tzinfo=dt.UTC)
        seconds = (moment - _EPOCH) // dt.timedelta(seconds=1)
        if len(_SECONDS) >= _SECONDS_CAP:
            _SECONDS.clear()
        _SECONDS[prefix] = seconds
    return seconds


def rfc3339_ns(text: str) -> int:
    """`2021-02-22T15:51:45.335689322Z` (or with a ±hh:mm offset) as ns since the epoch."""
    seconds = _whole_seconds(text[:19])
    if text[-1:] == "Z" and text[19:20] == ".":
        # The stream's own shape, fast: `…:45.335689322Z`.
        digits = text[20:-1]
        if 0 < len(digits) <= 9 and digits.isdigit():
            return seconds * NS_PER_S + int(digits.ljust(9, "0"))
    rest = text[19:]
    nanos = 0
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        if not digits or len(digits) > 9:
            raise ValueError(f"bad fraction of a second in {text!r}")
        nanos = int(digits.ljust(9, "0"))
        rest = rest[end:]
    if rest in ("Z", "z"):
        offset_s = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        sign = 1 if rest[0] == "+" else -1
        offset_s = sign * (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60)
    else:
        raise ValueError(f"RFC 3339 time without a zone: {text!r}")
    return (seconds - offset_s) * NS_PER_S + nanos


def rfc3339(ts_ns: int) -> str:
    """Whole-second RFC 3339 in UTC (what REST queries take: fractions are refused)."""
    moment = _EPOCH + dt.timedelta(seconds=ts_ns // NS_PER_S)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def unix_ms_ns(ms: int) -> int:
    """Massive's Unix milliseconds as ns; refuses non-integers (a float would be inexact)."""
    if not isinstance(ms, int) or isinstance(ms, bool):
        raise ValueError(f"timestamp must be integer milliseconds, not {ms!r}")
    return ms * 1_000_000
