"""Resting orders of one symbol, indexed by the price at which each can act.

A tick must touch only the orders it can fill or trigger, never scan every open
order: buy limits sit in a ladder best (highest) first, sell limits lowest first,
buy stops lowest trigger first, sell stops highest first, so each tick compares
against the head of each ladder and stops at the first order that cannot act.
Trailing stops share a water mark per group (see `TrailingLadder`) so a price move
updates one group, not every order.

Deletion is lazy: an order is live in an index while `locations[order_id]` points
at it; stale heap entries are skipped when they surface and compacted when they
outnumber live ones. This module holds ids and prices only; no fill logic.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from cift.trading.vocabulary import Side

# Compact a heap once stale entries outnumber live ones by this much.
_COMPACT_MIN_STALE = 64

Locations = dict[str, object]


class PriceLadder:
    """Order ids keyed by a price, best first; ties broken by arrival (time priority)."""

    __slots__ = ("_heap", "_locations", "_sign", "_stale")

    def __init__(self, locations: Locations, *, highest_first: bool) -> None:
        self._heap: list[tuple[Decimal, int, str]] = []
        self._locations = locations
        self._sign = -1 if highest_first else 1
        self._stale = 0

    def __len__(self) -> int:
        return len(self._heap) - self._stale

    def add(self, price: Decimal, seq: int, order_id: str) -> None:
        heapq.heappush(self._heap, (price * self._sign, seq, order_id))
        self._locations[order_id] = self

    def best(self) -> tuple[Decimal, str] | None:
        """The best live (price, order id), or None when the ladder is empty."""
        heap = self._heap
        locations = self._locations
        while heap:
            key, _, order_id = heap[0]
            if locations.get(order_id) is self:
                return key * self._sign, order_id
            heapq.heappop(heap)
            self._stale -= 1
        return None

    def pop_best(self) -> str:
        """Remove the head returned by the last `best()` call."""
        _, _, order_id = heapq.heappop(self._heap)
        del self._locations[order_id]
        return order_id

    def discard(self, order_id: str) -> None:
        """Forget `order_id` (its heap entry is skipped later)."""
        if self._locations.get(order_id) is self:
            del self._locations[order_id]
            self._stale += 1
            if self._stale > _COMPACT_MIN_STALE and self._stale > len(self._heap) // 2:
                self._heap = [e for e in self._heap if self._locations.get(e[2]) is self]
                heapq.heapify(self._heap)
                self._stale = 0


@dataclass(slots=True)
class _TrailGroup:
    """Trailing stops whose water mark is the same price since the market made it so."""

    mark: Decimal  # in the ladder's direction-normalized space (see TrailingLadder)
    members: list[tuple[Decimal, int, str]]  # (trail amount or fraction, seq, id), tightest first
    level: Decimal | None = None  # trigger level of the tightest live member, as last indexed


class TrailingLadder:
    """Trailing stops of one side and one trail kind (price or percent) of a symbol.

    Prices are mapped to x = price for sells and x = -price for buys, so both sides
    become "track the highest x, trigger when x falls to mark minus distance". For
    a price trail the distance is the trail; for a percent trail it is |mark| times
    the fraction, which maps a buy's `low * (1 + f)` onto the same rule.

    Every order added while the price stood at x joins a group with mark x. When
    x rises above some marks, all of those groups now share the mark x and merge;
    a falling x only has to look at the highest trigger level across groups. So a
    tick costs two heap-head comparisons unless an order triggers or marks move.
    """

    __slots__ = (
        "_by_level",
        "_by_mark",
        "_direction",
        "_groups",
        "_locations",
        "_moved",
        "_next_gid",
        "_pending",
        "_percent",
    )

    def __init__(
        self,
        locations: Locations,
        *,
        side: Side,
        percent: bool,
        moved: dict[str, Decimal] | None = None,
    ) -> None:
        self._locations = locations
        # order id -> its water mark (a price), for every order whose mark was set or
        # moved since the owner last took them (persisted so a restart cannot loosen it).
        self._moved: dict[str, Decimal] = {} if moved is None else moved
        self._direction = 1 if side is Side.SELL else -1
        self._percent = percent
        self._groups: dict[int, _TrailGroup] = {}
        self._by_mark: list[tuple[Decimal, int]] = []
        self._by_level: list[tuple[Decimal, int]] = []
        self._next_gid = 0
        self._pending: list[tuple[Decimal, int, str]] = []  # added before any price was seen

    def __len__(self) -> int:
        return sum(1 for loc in self._locations.values() if loc is self)

    def _distance(self, mark: Decimal, trail: Decimal) -> Decimal:
        return abs(mark) * trail if self._percent else trail

    def add(self, trail: Decimal, seq: int, order_id: str, price: Decimal | None) -> None:
        """Track a new trailing stop; `trail` is a price amount or a fraction (0.05 = 5%)."""
        self._locations[order_id] = self
        if price is None:
            self._pending.append((trail, seq, order_id))
            return
        self._new_group(price * self._direction, [(trail, seq, order_id)])
        self._moved[order_id] = price

    def discard(self, order_id: str) -> None:
        if self._locations.get(order_id) is self:
            del self._locations[order_id]

    def _live(self, members: list[tuple[Decimal, int, str]]) -> list[tuple[Decimal, int, str]]:
        return [m for m in members if self._locations.get(m[2]) is self]

    def _new_group(self, mark: Decimal, members: list[tuple[Decimal, int, str]]) -> None:
        gid = self._next_gid
        self._next_gid += 1
        group = _TrailGroup(mark, members)
        self._groups[gid] = group
        heapq.heappush(self._by_mark, (mark, gid))
        self._index_level(gid, group)

    def _index_level(self, gid: int, group: _TrailGroup) -> None:
        members = group.members
        while members and self._locations.get(members[0][2]) is not self:
            members.pop(0)
        if not members:
            del self._groups[gid]
            return
        group.level = group.mark - self._distance(group.mark, members[0][0])
        heapq.heappush(self._by_level, (-group.level, gid))

    def water_mark(self, order_id: str) -> Decimal | None:
        """The high (sell) or low (buy) water mark an order currently trails."""
        for group in self._groups.values():
            if any(m[2] == order_id for m in group.members):
                return group.mark * self._direction
        return None

    def on_price(self, price: Decimal) -> list[tuple[str, Decimal]]:
        """Move water marks to `price`; return (id, water mark) of each order that triggers."""
        x = price * self._direction
        groups = self._groups
        by_mark = self._by_mark
        if self._pending or (by_mark and by_mark[0][0] < x):
            merged = self._live(self._pending)
            self._pending = []
            while by_mark and by_mark[0][0] < x:
                _, gid = heapq.heappop(by_mark)
                group = groups.pop(gid, None)
                if group is not None:
                    merged.extend(self._live(group.members))
            if merged:
                merged.sort()
                self._new_group(x, merged)
                moved = self._moved
                for member in merged:
                    moved[member[2]] = price
        triggered: list[tuple[str, Decimal]] = []
        by_level = self._by_level
        while by_level and -by_level[0][0] >= x:
            neg_level, gid = heapq.heappop(by_level)
            group = groups.get(gid)
            if group is None or group.level != -neg_level:
                continue  # merged away or re-indexed since this entry was pushed
            members = group.members
            while members:
                trail, _, order_id = members[0]
                if self._locations.get(order_id) is not self:
                    members.pop(0)
                    continue
                if group.mark - self._distance(group.mark, trail) < x:
                    break
                members.pop(0)
                del self._locations[order_id]
                triggered.append((order_id, group.mark * self._direction))
            self._index_level(gid, group)
        return triggered


@dataclass(slots=True)
class SymbolBook:
    """Everything resting on one symbol, plus the last market state seen for it."""

    symbol: str
    locations: Locations = field(default_factory=dict)
    buy_limits: PriceLadder = field(init=False)
    sell_limits: PriceLadder = field(init=False)
    buy_stops: PriceLadder = field(init=False)
    sell_stops: PriceLadder = field(init=False)
    buy_trail_price: TrailingLadder = field(init=False)
    buy_trail_percent: TrailingLadder = field(init=False)
    sell_trail_price: TrailingLadder = field(init=False)
    sell_trail_percent: TrailingLadder = field(init=False)
    # Market orders (and triggered stops) waiting for a quote or for displayed size.
    buy_market: deque[str] = field(default_factory=deque)
    sell_market: deque[str] = field(default_factory=deque)
    bid: Decimal | None = None
    ask: Decimal | None = None
    bid_left: Decimal = Decimal(0)  # displayed size not yet consumed on this quote
    ask_left: Decimal = Decimal(0)
    last_trade: Decimal | None = None
    # Water marks set or moved since last taken (shared with the engine, see TrailingLadder).
    moved_water_marks: dict[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        loc = self.locations
        moved = self.moved_water_marks
        self.buy_limits = PriceLadder(loc, highest_first=True)
        self.sell_limits = PriceLadder(loc, highest_first=False)
        self.buy_stops = PriceLadder(loc, highest_first=False)
        self.sell_stops = PriceLadder(loc, highest_first=True)
        self.buy_trail_price = TrailingLadder(loc, side=Side.BUY, percent=False, moved=moved)
        self.buy_trail_percent = TrailingLadder(loc, side=Side.BUY, percent=True, moved=moved)
        self.sell_trail_price = TrailingLadder(loc, side=Side.SELL, percent=False, moved=moved)
        self.sell_trail_percent = TrailingLadder(loc, side=Side.SELL, percent=True, moved=moved)

    def discard(self, order_id: str) -> None:
        """Remove an order from whichever index holds it (no-op when it holds none)."""
        index = self.locations.get(order_id)
        if isinstance(index, PriceLadder | TrailingLadder):
            index.discard(order_id)
        elif isinstance(index, deque):
            # Market queues are short-lived; drop the entry outright.
            index.remove(order_id)
            del self.locations[order_id]

    def enqueue_market(self, side: Side, order_id: str) -> None:
        queue = self.buy_market if side is Side.BUY else self.sell_market
        queue.append(order_id)
        self.locations[order_id] = queue
