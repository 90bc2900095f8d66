"""The market clock: when the exchange is open, and when it next opens or closes.

Two modes. `ExchangeCalendar` models a US exchange: regular hours in the
exchange's time zone, closed on weekends and on holidays, closing early on some
days. The default holidays and early closes follow NYSE's published rules and are
computed per year (no table to go stale); operators add or remove dates through
configuration. `AlwaysOpenCalendar` is the simulator's default: the simulated
market trades around the clock, so orders fill at any hour in development.

A paper session may run its clock at another instant than the wall clock
(`clock_offset_ns`): an operator rehearses the open on a weekend, a test pins the
clock before an auction cutoff. The offset is fixed at start; time still runs.

Times are integer nanoseconds since the Unix epoch. No I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cift.runtime.errors import InvalidArgument
from cift.runtime.timestamps import NS_PER_S, to_ns

# Search horizon for the next session: longer than any run of weekends and holidays.
_MAX_SEARCH_DAYS = 30


@dataclass(frozen=True, slots=True)
class ClockState:
    """What GetClock reports. The session times are None when the market never closes."""

    timestamp_ns: int
    is_open: bool
    next_open_ns: int | None
    next_close_ns: int | None
    previous_close_ns: int | None = None


class MarketCalendar(Protocol):
    def is_open(self, ts_ns: int) -> bool: ...

    def next_open(self, ts_ns: int) -> int | None: ...

    def next_close(self, ts_ns: int) -> int | None: ...

    def previous_close(self, ts_ns: int) -> int | None: ...

    def state(self, ts_ns: int) -> ClockState: ...


class AlwaysOpenCalendar:
    """A market that never closes (the simulator's default)."""

    def is_open(self, ts_ns: int) -> bool:
        return True

    def next_open(self, ts_ns: int) -> int | None:
        return None

    def next_close(self, ts_ns: int) -> int | None:
        return None

    def previous_close(self, ts_ns: int) -> int | None:
        return None

    def state(self, ts_ns: int) -> ClockState:
        return ClockState(ts_ns, True, None, None)


def _easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return dt.date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + dt.timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> dt.date:
    next_month = dt.date(year + month // 12, month % 12 + 1, 1)
    last = next_month - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: dt.date) -> dt.date:
    """Saturday holidays move to Friday, Sunday holidays to Monday."""
    if day.weekday() == 5:
        return day - dt.timedelta(days=1)
    if day.weekday() == 6:
        return day + dt.timedelta(days=1)
    return day


MON, THU = 0, 3


def nyse_holidays(year: int) -> set[dt.date]:
    """Full-day NYSE closures in `year` under the current rules."""
    holidays = {
        _nth_weekday(year, 1, MON, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, MON, 3),  # Washington's Birthday
        _easter(year) - dt.timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, MON),  # Memorial Day
        _observed(dt.date(year, 7, 4)),  # Independence Day
        _nth_weekday(year, 9, MON, 1),  # Labor Day
        _nth_weekday(year, 11, THU, 4),  # Thanksgiving
        _observed(dt.date(year, 12, 25)),  # Christmas
    }
    # New Year's Day on a Saturday is not observed on the Friday before (NYSE rule 7.2).
    new_year = dt.date(year, 1, 1)
    if new_year.weekday() != 5:
        holidays.add(_observed(new_year))
    if year >= 2022:
        holidays.add(_observed(dt.date(year, 6, 19)))  # Juneteenth
    return holidays


def nyse_early_closes(year: int) -> set[dt.date]:
    """Days NYSE closes at 13:00: before Independence Day, after Thanksgiving, Christmas Eve."""
    days = {_nth_weekday(year, 11, THU, 4) + dt.timedelta(days=1)}
    for day in (dt.date(year, 7, 3), dt.date(year, 12, 24)):
        # Only when it is a weekday that is not itself the observed holiday.
        if day.weekday() <= THU:
            days.add(day)
    return days - nyse_holidays(year)


class ExchangeCalendar:
    """Regular sessions of an exchange in its own time zone."""

    def __init__(
        self,
        *,
        timezone: str = "America/New_York",
        open_time: dt.time = dt.time(9, 30),
        close_time: dt.time = dt.time(16, 0),
        early_close_time: dt.time = dt.time(13, 0),
        holidays: Iterable[dt.date] | None = None,
        early_closes: Iterable[dt.date] | None = None,
        years: Iterable[int] | None = None,
    ) -> None:
        """Holidays default to NYSE's for `years` (default: this year to ten years on)."""
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidArgument(f"Unknown time zone {timezone!r}.") from None
        if not open_time < early_close_time <= close_time:
            raise InvalidArgument("Sessions need open < early close <= close.")
        self.open_time = open_time
        self.close_time = close_time
        self.early_close_time = early_close_time
        span = list(years) if years is not None else list(range(2000, dt.date.today().year + 11))
        self.holidays = (
            frozenset(holidays)
            if holidays is not None
            else frozenset(d for y in span for d in nyse_holidays(y))
        )
        self.early_closes: frozenset[dt.date] = (
            frozenset(early_closes)
            if early_closes is not None
            else frozenset(d for y in span for d in nyse_early_closes(y))
        )

    def session(self, day: dt.date) -> tuple[int, int] | None:
        """Open and close of `day` in ns since the epoch, or None when the market is shut."""
        if day.weekday() >= 5 or day in self.holidays:
            return None
        close = self.early_close_time if day in self.early_closes else self.close_time
        opens = dt.datetime.combine(day, self.open_time, tzinfo=self.zone)
        closes = dt.datetime.combine(day, close, tzinfo=self.zone)
        return to_ns(opens), to_ns(closes)

    def _local_day(self, ts_ns: int) -> dt.date:
        return dt.datetime.fromtimestamp(ts_ns / NS_PER_S, tz=self.zone).date()

    def is_open(self, ts_ns: int) -> bool:
        session = self.session(self._local_day(ts_ns))
        return session is not None and session[0] <= ts_ns < session[1]

    def _sessions_from(self, ts_ns: int) -> Iterable[tuple[int, int]]:
        day = self._local_day(ts_ns)
        for offset in range(_MAX_SEARCH_DAYS):
            session = self.session(day + dt.timedelta(days=offset))
            if session is not None:
                yield session

    def next_open(self, ts_ns: int) -> int | None:
        """The first session open strictly after `ts_ns`."""
        return next((o for o, _ in self._sessions_from(ts_ns) if o > ts_ns), None)

    def next_close(self, ts_ns: int) -> int | None:
        """The first session close strictly after `ts_ns` (today's, while open)."""
        return next((c for _, c in self._sessions_from(ts_ns) if c > ts_ns), None)

    def previous_close(self, ts_ns: int) -> int | None:
        """The last session close at or before `ts_ns` (None beyond the search horizon)."""
        day = self._local_day(ts_ns)
        for offset in range(_MAX_SEARCH_DAYS):
            session = self.session(day - dt.timedelta(days=offset))
            if session is not None and session[1] <= ts_ns:
                return session[1]
        return None

    def state(self, ts_ns: int) -> ClockState:
        return ClockState(
            ts_ns,
            self.is_open(ts_ns),
            self.next_open(ts_ns),
            self.next_close(ts_ns),
            self.previous_close(ts_ns),
        )


def clock_offset_ns(start: str, now_ns: int, setting: str) -> int:
    """How far the market clock runs ahead of the wall clock (`now_ns`) so that it reads
    `start` now; 0 for an empty `start` (the wall clock)."""
    if not start.strip():
        return 0
    try:
        moment = dt.datetime.fromisoformat(start.strip())
    except ValueError:
        raise InvalidArgument(
            f"{setting}: {start.strip()!r} is not an ISO 8601 instant "
            "(e.g. 2026-12-07T09:20:00-05:00)."
        ) from None
    if moment.tzinfo is None:
        # A local time would move with the host's zone: the instant must be unambiguous.
        raise InvalidArgument(f"{setting}: {start.strip()!r} needs a UTC offset (or Z).")
    return to_ns(moment) - now_ns


def parse_dates(text: str, setting: str) -> set[dt.date]:
    """Comma-separated ISO dates from configuration."""
    days: set[dt.date] = set()
    for part in text.split(","):
        if part.strip():
            try:
                days.add(dt.date.fromisoformat(part.strip()))
            except ValueError:
                raise InvalidArgument(
                    f"{setting}: {part.strip()!r} is not a YYYY-MM-DD date."
                ) from None
    return days


def build_calendar(
    mode: str,
    *,
    extra_holidays: Iterable[dt.date] = (),
    removed_holidays: Iterable[dt.date] = (),
) -> MarketCalendar:
    """The calendar a configuration names: `always_open` or `nyse`."""
    if mode == "always_open":
        return AlwaysOpenCalendar()
    if mode == "nyse":
        base = ExchangeCalendar()
        holidays = (base.holidays | frozenset(extra_holidays)) - frozenset(removed_holidays)
        return ExchangeCalendar(holidays=holidays, early_closes=base.early_closes)
    raise InvalidArgument(f"Unknown calendar mode {mode!r}; use always_open or nyse.")
