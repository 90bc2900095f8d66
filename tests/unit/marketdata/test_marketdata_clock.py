"""The market clock: NYSE sessions, holidays, early closes, and the always-open mode."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cift.runtime.errors import InvalidArgument
from services.marketdata.clock import (
    AlwaysOpenCalendar,
    ExchangeCalendar,
    build_calendar,
    clock_offset_ns,
    nyse_early_closes,
    nyse_holidays,
    parse_dates,
)

NY = ZoneInfo("America/New_York")


def ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=NY).timestamp()) * 1_000_000_000


def test_published_nyse_holidays_for_2025_and_2026() -> None:
    assert sorted(nyse_holidays(2025)) == [
        dt.date(2025, m, d)
        for m, d in [
            (1, 1),
            (1, 20),
            (2, 17),
            (4, 18),
            (5, 26),
            (6, 19),
            (7, 4),
            (9, 1),
            (11, 27),
            (12, 25),
        ]
    ]
    # 2026: Independence Day falls on a Saturday and is observed on Friday 3 July.
    assert dt.date(2026, 7, 3) in nyse_holidays(2026)
    assert dt.date(2026, 4, 3) in nyse_holidays(2026)  # Good Friday
    assert sorted(nyse_early_closes(2025)) == [
        dt.date(2025, 7, 3),
        dt.date(2025, 11, 28),
        dt.date(2025, 12, 24),
    ]


def test_new_year_on_a_saturday_is_not_observed_the_friday_before() -> None:
    assert dt.date(2021, 12, 31) not in nyse_holidays(2022) | nyse_holidays(2021)


def test_regular_session_is_half_past_nine_to_four_new_york_time() -> None:
    calendar = ExchangeCalendar()
    tuesday = (2025, 3, 11)
    assert not calendar.is_open(ns(*tuesday, 9, 29))
    assert calendar.is_open(ns(*tuesday, 9, 30))
    assert calendar.is_open(ns(*tuesday, 15, 59))
    assert not calendar.is_open(ns(*tuesday, 16, 0))
    assert calendar.next_close(ns(*tuesday, 10, 0)) == ns(*tuesday, 16, 0)
    assert calendar.next_open(ns(*tuesday, 10, 0)) == ns(2025, 3, 12, 9, 30)


def test_after_friday_close_the_next_open_is_monday_and_skips_holidays() -> None:
    calendar = ExchangeCalendar()
    assert calendar.next_open(ns(2025, 3, 14, 17, 0)) == ns(2025, 3, 17, 9, 30)
    # Thursday before Good Friday 2025: next open is Monday 21 April.
    assert calendar.next_open(ns(2025, 4, 17, 16, 30)) == ns(2025, 4, 21, 9, 30)
    assert not calendar.is_open(ns(2025, 12, 25, 12, 0))


def test_early_close_days_end_at_one_pm() -> None:
    calendar = ExchangeCalendar()
    assert calendar.is_open(ns(2025, 11, 28, 12, 59))
    assert not calendar.is_open(ns(2025, 11, 28, 13, 0))
    assert calendar.next_close(ns(2025, 11, 28, 10, 0)) == ns(2025, 11, 28, 13, 0)


def test_sessions_follow_daylight_saving_in_utc() -> None:
    calendar = ExchangeCalendar()
    winter = calendar.session(dt.date(2025, 1, 8))
    summer = calendar.session(dt.date(2025, 7, 8))
    assert winter is not None and summer is not None
    assert dt.datetime.fromtimestamp(winter[0] / 1e9, dt.UTC).hour == 14
    assert dt.datetime.fromtimestamp(summer[0] / 1e9, dt.UTC).hour == 13


def test_always_open_mode_never_closes() -> None:
    state = AlwaysOpenCalendar().state(ns(2025, 12, 25, 3, 0))
    assert state.is_open and state.next_open_ns is None and state.next_close_ns is None


def test_configured_extra_and_removed_holidays_apply() -> None:
    calendar = build_calendar(
        "nyse", extra_holidays={dt.date(2025, 3, 11)}, removed_holidays={dt.date(2025, 12, 25)}
    )
    assert not calendar.is_open(ns(2025, 3, 11, 10, 0))
    assert calendar.is_open(ns(2025, 12, 25, 10, 0))
    assert isinstance(build_calendar("always_open"), AlwaysOpenCalendar)


def test_bad_calendar_settings_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="calendar mode"):
        build_calendar("lse")
    with pytest.raises(InvalidArgument, match="YYYY-MM-DD"):
        parse_dates("2025-13-01", "CIFT_MARKETDATA_EXTRA_HOLIDAYS")
    with pytest.raises(InvalidArgument, match="time zone"):
        ExchangeCalendar(timezone="Mars/Olympus")
    assert parse_dates(" 2025-01-02, ,2025-01-03", "x") == {
        dt.date(2025, 1, 2),
        dt.date(2025, 1, 3),
    }


def test_a_clock_start_puts_the_market_clock_at_that_instant_now() -> None:
    wall = ns(2026, 12, 6, 22, 27)  # a Sunday evening
    offset = clock_offset_ns("2026-12-07T09:20:00-05:00", wall, "SETTING")
    calendar = build_calendar("nyse")
    assert wall + offset == ns(2026, 12, 7, 9, 20)
    state = calendar.state(wall + offset)
    assert not state.is_open and state.next_open_ns == ns(2026, 12, 7, 9, 30)
    assert clock_offset_ns("2026-12-07T14:30:00Z", wall, "SETTING") == offset + 10 * 60 * 10**9
    assert clock_offset_ns("", wall, "SETTING") == 0


@pytest.mark.parametrize(
    ("start", "why"),
    [("2026-12-07T09:20:00", "needs a UTC offset"), ("next monday", "not an ISO 8601 instant")],
)
def test_a_clock_start_without_an_unambiguous_instant_is_refused(start: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=f"CIFT_MARKETDATA_CLOCK_START: .*{why}"):
        clock_offset_ns(start, 0, "CIFT_MARKETDATA_CLOCK_START")


def test_the_previous_close_is_the_last_session_end_at_or_before_now() -> None:
    calendar = ExchangeCalendar()
    # Monday morning before the open: Friday's close; exactly at a close: that close.
    assert calendar.previous_close(ns(2025, 3, 17, 8, 0)) == ns(2025, 3, 14, 16, 0)
    assert calendar.previous_close(ns(2025, 3, 14, 16, 0)) == ns(2025, 3, 14, 16, 0)
    # While open, the close before today's session.
    assert calendar.previous_close(ns(2025, 3, 18, 11, 0)) == ns(2025, 3, 17, 16, 0)
    # After Good Friday 2025 (closed) the close before is Thursday's; after the day
    # after Thanksgiving, its early close.
    assert calendar.previous_close(ns(2025, 4, 18, 17, 0)) == ns(2025, 4, 17, 16, 0)
    assert calendar.previous_close(ns(2025, 11, 28, 14, 0)) == ns(2025, 11, 28, 13, 0)
    state = calendar.state(ns(2025, 3, 14, 18, 0))
    assert state.previous_close_ns == ns(2025, 3, 14, 16, 0) and not state.is_open


def test_a_market_that_never_closes_has_no_previous_close() -> None:
    calendar = AlwaysOpenCalendar()
    assert calendar.previous_close(ns(2025, 3, 17, 8, 0)) is None
    assert calendar.state(ns(2025, 3, 17, 8, 0)).previous_close_ns is None
