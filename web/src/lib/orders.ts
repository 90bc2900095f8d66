// The trader's orders as the dashboard holds them: the lists from ListOrders, then every
// OrderEvent from StreamOrderUpdates applied on top (an event carries the whole order
// as it is after the event, so applying one is a replace by id).
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { OrderStatus, type Order } from "../gen/cift/execution/v1/orders_pb";

const FINAL = new Set([
  OrderStatus.FILLED,
  OrderStatus.CANCELED,
  OrderStatus.EXPIRED,
  OrderStatus.REJECTED,
  OrderStatus.REPLACED,
]);

/** True while the order can still fill, be canceled or replaced. */
export function isOpen(order: Pick<Order, "status">): boolean {
  return order.status !== OrderStatus.UNSPECIFIED && !FINAL.has(order.status);
}

function updatedMs(order: Order): number {
  return order.updatedAt ? timestampMs(order.updatedAt) : 0;
}

/**
 * `orders` with `order` put in by id. An update older than the one held is ignored, so a
 * list fetched before an event cannot undo it.
 */
export function upsertOrder(orders: readonly Order[], order: Order): Order[] {
  const index = orders.findIndex((held) => held.id === order.id);
  if (index === -1) return [order, ...orders];
  if (updatedMs(orders[index]) > updatedMs(order)) return [...orders];
  const next = [...orders];
  next[index] = order;
  return next;
}

/** Newest first, by creation time. */
export function newestFirst(orders: readonly Order[]): Order[] {
  const created = (order: Order) => (order.createdAt ? timestampMs(order.createdAt) : 0);
  return [...orders].sort((a, b) => created(b) - created(a));
}

export function openOrders(orders: readonly Order[]): Order[] {
  return newestFirst(orders.filter(isOpen));
}

export function closedOrders(orders: readonly Order[]): Order[] {
  return newestFirst(orders.filter((order) => !isOpen(order)));
}
