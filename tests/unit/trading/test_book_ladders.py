"""The book's indexes on their own: which resting order each price reaches, and how many rest.

The fill engine's tests reach these through ticks; here each index's contract is stated
directly: best first with time priority among equal prices, a discard that removes exactly
the order asked for (and only from the index holding it), counts that stay right through
many discards, and trailing-stop groups that trigger their tightest live member.
"""

from __future__ import annotations

from decimal import Decimal

from cift.trading.book import Locations, PriceLadder, SymbolBook, TrailingLadder
from cift.trading.vocabulary import Side

D = Decimal


def drain(ladder: PriceLadder) -> list[tuple[Decimal, str]]:
    """Every live (price, id) in the order the ladder serves them."""
    served = []
    while (best := ladder.best()) is not None:
        assert ladder.pop_best() == best[1]
        served.append(best)
    return served


def test_a_highest_first_ladder_serves_the_highest_price_then_the_earliest_arrival() -> None:
    ladder = PriceLadder({}, highest_first=True)
    for seq, (price, oid) in enumerate([("10", "a"), ("12", "b"), ("11", "c"), ("12", "d")]):
        ladder.add(D(price), seq, oid)
    assert len(ladder) == 4
    assert drain(ladder) == [(D(12), "b"), (D(12), "d"), (D(11), "c"), (D(10), "a")]
    assert len(ladder) == 0 and ladder.best() is None


def test_a_lowest_first_ladder_serves_the_lowest_price_then_the_earliest_arrival() -> None:
    ladder = PriceLadder({}, highest_first=False)
    for seq, (price, oid) in enumerate([("10.5", "a"), ("9.25", "b"), ("9.25", "c"), ("11", "d")]):
        ladder.add(D(price), seq, oid)
    assert drain(ladder) == [(D("9.25"), "b"), (D("9.25"), "c"), (D("10.5"), "a"), (D(11), "d")]


def test_a_discard_removes_that_order_only_and_only_from_the_ladder_holding_it() -> None:
    locations: Locations = {}
    buys = PriceLadder(locations, highest_first=True)
    sells = PriceLadder(locations, highest_first=False)
    buys.add(D(10), 1, "b1")
    buys.add(D(9), 2, "b2")
    sells.add(D(11), 3, "s1")
    sells.discard("b1")  # held by the other ladder: nothing happens
    buys.discard("s1")
    buys.discard("unknown")
    assert (len(buys), len(sells)) == (2, 1)
    assert locations == {"b1": buys, "b2": buys, "s1": sells}
    buys.discard("b1")
    buys.discard("b1")  # twice is once
    assert len(buys) == 1 and "b1" not in locations
    assert drain(buys) == [(D(9), "b2")] and drain(sells) == [(D(11), "s1")]
    assert locations == {}


def test_counts_and_order_survive_many_discards_and_later_additions() -> None:
    """Enough discards that stale entries are compacted away, more than once."""
    locations: Locations = {}
    ladder = PriceLadder(locations, highest_first=True)
    for n in range(300):
        ladder.add(D(n), n, f"o{n}")
    live = 300
    for n in range(300):
        if n % 10:
            ladder.discard(f"o{n}")
            live -= 1
            assert len(ladder) == live
    kept = [n for n in range(300) if n % 10 == 0]
    assert len(ladder) == len(kept) == 30
    for n in range(300, 310):
        ladder.add(D(n), n, f"o{n}")
    assert len(ladder) == 40
    assert drain(ladder) == [(D(n), f"o{n}") for n in reversed(kept + list(range(300, 310)))]
    assert locations == {}


def test_a_sell_trailing_ladder_tracks_the_high_and_triggers_at_the_mark_less_the_trail() -> None:
    locations: Locations = {}
    ladder = TrailingLadder(locations, side=Side.SELL, percent=False)
    ladder.add(D(3), 1, "wide", D(100))
    ladder.add(D(1), 2, "tight", D(100))
    assert len(ladder) == 2 and ladder.water_mark("tight") == D(100)
    assert ladder.on_price(D(105)) == []
    assert ladder.water_mark("wide") == D(105) and ladder.water_mark("absent") is None
    assert ladder.on_price(D("104.01")) == []
    assert ladder.on_price(D(104)) == [("tight", D(105))]  # exactly at 105 - 1
    assert len(ladder) == 1 and ladder.water_mark("tight") is None
    assert ladder.on_price(D(102)) == [("wide", D(105))]  # through 105 - 3
    assert len(ladder) == 0 and locations == {}


def test_a_buy_percent_trailing_ladder_tracks_the_low_and_triggers_at_the_mark_plus_percent() -> (
    None
):
    ladder = TrailingLadder({}, side=Side.BUY, percent=True)
    ladder.add(D("0.10"), 1, "b", D(100))
    assert ladder.on_price(D(80)) == [] and ladder.water_mark("b") == D(80)
    assert ladder.on_price(D("87.99")) == []
    assert ladder.on_price(D(88)) == [("b", D(80))]  # 80 * 1.10


def test_a_discarded_trailing_stop_never_triggers_and_the_next_tightest_takes_its_place() -> None:
    locations: Locations = {}
    ladder = TrailingLadder(locations, side=Side.SELL, percent=False)
    ladder.add(D(1), 1, "tightest", D(100))
    ladder.add(D(2), 2, "middle", D(100))
    ladder.add(D(5), 3, "widest", D(100))
    ladder.discard("tightest")
    ladder.discard("never-added")
    assert len(ladder) == 2 and "tightest" not in locations
    assert ladder.on_price(D(101)) == []  # the group moves and re-indexes without it
    assert ladder.on_price(D("99.5")) == []
    ladder.discard("middle")
    assert ladder.on_price(D(99)) == []  # middle's level (101 - 2) is gone with it
    assert ladder.on_price(D(96)) == [("widest", D(101))]


def test_a_discard_inside_a_group_leaves_the_group_to_its_other_members() -> None:
    ladder = TrailingLadder({}, side=Side.SELL, percent=False)
    ladder.add(D(1), 1, "first", D(100))
    ladder.add(D(1), 2, "second", D(100))
    ladder.add(D(1), 3, "third", D(100))
    ladder.discard("second")
    assert ladder.on_price(D(99)) == [("first", D(100)), ("third", D(100))]


def test_trailing_stops_added_before_any_price_wait_and_anchor_on_the_first() -> None:
    ladder = TrailingLadder({}, side=Side.SELL, percent=False)
    ladder.add(D(2), 1, "early", None)
    assert len(ladder) == 1 and ladder.water_mark("early") is None
    assert ladder.on_price(D(50)) == []
    assert ladder.water_mark("early") == D(50)
    assert ladder.on_price(D(48)) == [("early", D(50))]


def test_groups_formed_at_different_prices_each_trigger_from_their_own_mark() -> None:
    moved: dict[str, Decimal] = {}
    ladder = TrailingLadder({}, side=Side.SELL, percent=False, moved=moved)
    ladder.add(D(1), 1, "at-100", D(100))
    assert ladder.on_price(D(99)) == [("at-100", D(100))]
    ladder.add(D(5), 2, "at-99", D(99))
    ladder.add(D(1), 3, "at-99-tight", D(99))
    assert moved == {"at-100": D(100), "at-99": D(99), "at-99-tight": D(99)}
    assert ladder.on_price(D(98)) == [("at-99-tight", D(99))]
    assert ladder.on_price(D(94)) == [("at-99", D(99))]


def test_a_symbol_book_discards_from_whichever_index_holds_the_order() -> None:
    book = SymbolBook("AAPL")
    book.buy_limits.add(D(10), 1, "limit")
    book.sell_stops.add(D(9), 2, "stop")
    book.sell_trail_percent.add(D("0.01"), 3, "trail", D(10))
    book.enqueue_market(Side.BUY, "mkt-buy")
    book.enqueue_market(Side.SELL, "mkt-sell")
    assert list(book.buy_market) == ["mkt-buy"] and list(book.sell_market) == ["mkt-sell"]
    for oid in ("limit", "stop", "trail", "mkt-buy", "nothing"):
        book.discard(oid)
    assert list(book.locations) == ["mkt-sell"]
    assert (len(book.buy_limits), len(book.sell_stops), len(book.sell_trail_percent)) == (0, 0, 0)
    assert not book.buy_market and list(book.sell_market) == ["mkt-sell"]


def test_a_group_that_emptied_stays_gone_when_the_price_rises_past_its_mark() -> None:
    ladder = TrailingLadder({}, side=Side.SELL, percent=False)
    ladder.add(D(1), 1, "filled-out", D(100))
    ladder.add(D(2), 2, "canceled", D(90))
    assert ladder.on_price(D(99)) == [("filled-out", D(100))]
    ladder.discard("canceled")
    assert ladder.on_price(D(120)) == [] and len(ladder) == 0
    ladder.add(D(1), 3, "new", D(120))
    assert ladder.on_price(D(119)) == [("new", D(120))]


def test_every_group_reached_by_a_fall_triggers_past_levels_left_by_merged_groups() -> None:
    ladder = TrailingLadder({}, side=Side.SELL, percent=False)
    ladder.add(D(1), 1, "a", D(100))  # level 99, until the rise merges it into the 101 group
    assert ladder.on_price(D(101)) == []
    ladder.add(D("2.5"), 2, "c", D(101))  # its own group: level 98.5, below a's old 99
    assert ladder.on_price(D("98.5")) == [("a", D(101)), ("c", D(101))]


def test_the_count_stays_right_when_discarded_heads_are_skipped() -> None:
    ladder = PriceLadder({}, highest_first=False)
    for seq, oid in enumerate(["a", "b", "c", "d"]):
        ladder.add(D(10 + seq), seq, oid)
    ladder.discard("a")
    ladder.discard("b")
    assert len(ladder) == 2
    assert ladder.best() == (D(12), "c")  # skips the two discarded heads
    assert len(ladder) == 2
    ladder.add(D(1), 9, "e")
    assert len(ladder) == 3 and ladder.best() == (D(1), "e")


def test_a_symbol_books_trailing_indexes_each_trail_by_their_own_kind() -> None:
    # Trail 0.05 from a mark of 100: five cents for the price indexes, five percent
    # (five dollars) for the percent ones.
    book = SymbolBook("AAPL")
    book.sell_trail_price.add(D("0.05"), 1, "sell-price", D(100))
    book.sell_trail_percent.add(D("0.05"), 2, "sell-percent", D(100))
    book.buy_trail_price.add(D("0.05"), 3, "buy-price", D(100))
    book.buy_trail_percent.add(D("0.05"), 4, "buy-percent", D(100))
    assert book.sell_trail_price.on_price(D("99.95")) == [("sell-price", D(100))]
    assert book.sell_trail_percent.on_price(D("99.95")) == []
    assert book.sell_trail_percent.on_price(D("95.01")) == []
    assert book.sell_trail_percent.on_price(D(95)) == [("sell-percent", D(100))]
    assert book.buy_trail_price.on_price(D("100.05")) == [("buy-price", D(100))]
    assert book.buy_trail_percent.on_price(D("100.05")) == []
    assert book.buy_trail_percent.on_price(D("104.99")) == []
    assert book.buy_trail_percent.on_price(D(105)) == [("buy-percent", D(100))]
