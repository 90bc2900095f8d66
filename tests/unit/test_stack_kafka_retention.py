"""When the embedded broker may be restarted: only once every active group read what it holds."""

from __future__ import annotations

import os

import pytest

from cift.stack.kafka_retention import MemoryPolicy, anonymous_bytes, unread

NEWEST = {("ticks", 0): 100, ("ticks", 1): 40, ("fills", 0): 7}


def test_groups_past_the_newest_batch_of_each_partition_hold_nothing_back() -> None:
    # Fully read: each group committed one past the newest batch's last record, or more.
    assert unread(NEWEST, [{("ticks", 0): 130, ("ticks", 1): 41}, {("fills", 0): 9}]) == []


def test_a_group_at_or_below_the_newest_batch_start_has_not_read_it() -> None:
    # Committed 100 on ticks[0]: the batch starting at 100 is unread, however old it is.
    assert unread(NEWEST, [{("ticks", 0): 100, ("ticks", 1): 41}]) == [("ticks", 0)]
    assert unread(NEWEST, [{("ticks", 1): 41}, {("fills", 0): 3}]) == [("fills", 0)]


def test_a_group_without_offsets_on_a_partition_is_not_waited_for_there() -> None:
    assert unread(NEWEST, [{}, {("fills", 0): 8}]) == []


def test_the_check_interval_stays_inside_the_outbox_re_relay_window() -> None:
    assert MemoryPolicy(limit_bytes=1, interval_s=30.0).interval_s == 30.0
    with pytest.raises(ValueError, match="outbox"):
        MemoryPolicy(limit_bytes=1, interval_s=120.0)


def test_anonymous_memory_is_read_for_a_live_process_only() -> None:
    mine = anonymous_bytes(os.getpid())
    assert mine is not None and mine > 1_000_000
    assert anonymous_bytes(2**22 + 1) is None
