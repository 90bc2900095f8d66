"""The leg state machine of bracket, OCO and OTO orders: what a fill or a close sets off.

Given the groups it was told about, `ContingentOrders` answers each fill or close
of a grouped order with the actions that follow (it never touches an order
itself; the fill engine applies them in the same tick):

- an entry (bracket, OTO) fill of q releases its held exits, or grows the working
  ones, by q: exits are sized to what the entry filled, never more;
- the first fill of an exit — even a partial one (Alpaca's rule) — cancels the
  other exit, and the entry's unfilled rest: the group is exiting, and an entry
  filling further would leave shares no exit covers;
- a parent that leaves the book unfilled (canceled, rejected, or expired before any
  fill) cancels its open legs; an entry that expires after filling keeps the
  exits that protect what it bought;
- an exit canceled alone leaves the others working.

Because cancellations are returned at the fill that causes them, the engine
removes the other exit before the same tick can reach it: one tick never fills
both exits. No I/O.
"""

from __future__ import annotations

from collections.abc import KeysView
from dataclasses import dataclass, field
from decimal import Decimal

from cift.trading.orders import OrderClass, OrderStatus


@dataclass(frozen=True, slots=True)
class ReleaseLeg:
    """Let exit `order_id` work for `qty` more (a held leg starts from zero)."""

    order_id: str
    qty: Decimal


@dataclass(frozen=True, slots=True)
class CancelLeg:
    """Take `order_id` out of the book as canceled, for `reason`."""

    order_id: str
    reason: str


ContingentAction = ReleaseLeg | CancelLeg


@dataclass(slots=True)
class OrderGroup:
    """One parent and its legs, as far as the leg rules care.

    `entry_id` is the bracket or OTO parent (None for OCO, whose parent is an
    exit). `exited` is set by the first exit fill and never cleared.
    """

    parent_id: str
    order_class: OrderClass
    entry_id: str | None
    exit_ids: list[str]
    exited: bool = False
    open_ids: set[str] = field(default_factory=set)


class ContingentOrders:
    """Every group with an open order, keyed by each member's id."""

    __slots__ = ("_group_of", "member_ids")

    def __init__(self) -> None:
        self._group_of: dict[str, OrderGroup] = {}
        # The ids of every member, a live view: `order_id in member_ids` asks what
        # `order_id in self` does without a Python call, for the fill engine's
        # once-per-fill question whether an order belongs to a group.
        self.member_ids: KeysView[str] = self._group_of.keys()

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._group_of

    def __len__(self) -> int:
        return len({id(group) for group in self._group_of.values()})

    def group_of(self, order_id: str) -> OrderGroup | None:
        return self._group_of.get(order_id)

    def register(
        self,
        parent_id: str,
        order_class: OrderClass,
        leg_ids: list[str],
        *,
        open_ids: set[str] | None = None,
        exited: bool = False,
    ) -> OrderGroup:
        """Track a group; `open_ids` (default: all) and `exited` restore one after a restart."""
        if order_class is OrderClass.SIMPLE:
            raise ValueError("a simple order has no legs")
        entry_id = None if order_class is OrderClass.OCO else parent_id
        exit_ids = [parent_id, *leg_ids] if entry_id is None else list(leg_ids)
        members = {parent_id, *leg_ids}
        group = OrderGroup(
            parent_id,
            order_class,
            entry_id,
            exit_ids,
            exited,
            set(members if open_ids is None else open_ids & members),
        )
        for order_id in group.open_ids:
            self._group_of[order_id] = group
        return group

    def members(self, order_id: str) -> set[str]:
        """Every order of `order_id`'s group the rules still track, itself included."""
        group = self._group_of.get(order_id)
        if group is None:
            return {order_id}
        entry = {group.entry_id} if group.entry_id is not None else set()
        return {order_id, group.parent_id, *group.exit_ids, *entry}

    def forget(self, order_id: str) -> None:
        """Stop tracking `order_id` without any rule firing: it leaves to be registered again."""
        group = self._group_of.pop(order_id, None)
        if group is not None:
            group.open_ids.discard(order_id)

    def replaced(self, old_id: str, new_id: str) -> None:
        """A leg was replaced: its successor takes its place in the group."""
        group = self._group_of.pop(old_id, None)
        if group is None:
            return
        group.exit_ids = [new_id if oid == old_id else oid for oid in group.exit_ids]
        if group.entry_id == old_id:
            group.entry_id = new_id
        if group.parent_id == old_id:
            group.parent_id = new_id
        group.open_ids.discard(old_id)
        group.open_ids.add(new_id)
        self._group_of[new_id] = group

    def max_exit_qty(self, order_id: str, entry_filled_qty: Decimal) -> Decimal | None:
        """The most a replace may give exit `order_id`: what its entry filled (None: no bound here)."""
        group = self._group_of.get(order_id)
        if group is None or group.entry_id is None or order_id not in group.exit_ids:
            return None
        return entry_filled_qty

    def on_fill(self, order_id: str, qty: Decimal, *, completes: bool) -> list[ContingentAction]:
        """`order_id` filled `qty` (`completes`: nothing of it is left working)."""
        group = self._group_of.get(order_id)
        if group is None:
            return []
        if completes:
            self._closed(group, order_id)
        if order_id == group.entry_id:
            if group.exited:
                return []
            return [ReleaseLeg(leg, qty) for leg in group.exit_ids if leg in group.open_ids]
        if group.exited:
            return []
        group.exited = True
        actions: list[ContingentAction] = [
            CancelLeg(
                other, f"canceled because its {group.order_class.value} exit {order_id} filled"
            )
            for other in group.exit_ids
            if other != order_id and other in group.open_ids
        ]
        if group.entry_id is not None and group.entry_id in group.open_ids:
            actions.append(
                CancelLeg(
                    group.entry_id,
                    f"unfilled rest canceled because its {group.order_class.value} exit "
                    f"{order_id} filled",
                )
            )
        return actions

    def on_close(
        self, order_id: str, status: OrderStatus, filled_qty: Decimal
    ) -> list[ContingentAction]:
        """`order_id` left the book without filling completely (canceled, expired, rejected)."""
        group = self._group_of.get(order_id)
        if group is None:
            return []
        self._closed(group, order_id)
        if order_id != group.parent_id or group.exited:
            return []  # a leg alone, or an entry whose rest an exit's fill canceled
        if order_id == group.entry_id and status is OrderStatus.EXPIRED and filled_qty > 0:
            return []  # its released exits protect what it bought
        return [
            CancelLeg(leg, f"canceled with its parent order {order_id}")
            for leg in group.exit_ids
            if leg != order_id and leg in group.open_ids
        ]

    def _closed(self, group: OrderGroup, order_id: str) -> None:
        group.open_ids.discard(order_id)
        self._group_of.pop(order_id, None)
