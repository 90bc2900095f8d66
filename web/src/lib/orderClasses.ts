// Order classes on the ticket and in the order lists. The ticket turns its exit fields
// into SubmitOrder's take_profit / stop_loss (only what the chosen class takes, so the
// server judges exactly what the trader typed); the lists show each exit leg under its
// parent, whether it arrived inside the parent's `legs` or as an order of its own.
import { OrderClass, OrderType, type Order } from "../gen/cift/execution/v1/orders_pb";

export type StopLossKind = "stop" | "stop_limit" | "trail_price" | "trail_percent";

export interface ExitFields {
  orderClass: OrderClass;
  takeProfitLimit: string;
  stopLossKind: StopLossKind;
  stopLossStop: string;
  stopLossLimit: string;
  stopLossTrail: string;
}

export interface ExitRequest {
  orderClass: OrderClass;
  takeProfit?: { limitPrice: string };
  stopLoss?: { stopPrice: string; limitPrice: string; trailPrice: string; trailPercent: string };
}

/** True for the classes that carry exits (everything but simple). */
export function hasExits(orderClass: OrderClass): boolean {
  return orderClass === OrderClass.BRACKET || orderClass === OrderClass.OCO || orderClass === OrderClass.OTO;
}

/**
 * The order class and exits to send. Bracket and OCO always send both exits (the server
 * says which one is missing); OTO sends the one the trader filled in (both when both are,
 * so the server can refuse that).
 */
export function exitRequest(fields: ExitFields): ExitRequest {
  if (!hasExits(fields.orderClass)) return { orderClass: OrderClass.SIMPLE };
  const take = fields.takeProfitLimit.trim();
  const kind = fields.stopLossKind;
  const stop = fields.stopLossStop.trim();
  const trail = fields.stopLossTrail.trim();
  const stopLoss = {
    stopPrice: kind === "stop" || kind === "stop_limit" ? stop : "",
    limitPrice: kind === "stop_limit" ? fields.stopLossLimit.trim() : "",
    trailPrice: kind === "trail_price" ? trail : "",
    trailPercent: kind === "trail_percent" ? trail : "",
  };
  const stopGiven = Object.values(stopLoss).some((value) => value !== "");
  if (fields.orderClass === OrderClass.OTO) {
    return {
      orderClass: OrderClass.OTO,
      takeProfit: take || !stopGiven ? { limitPrice: take } : undefined,
      stopLoss: stopGiven ? stopLoss : undefined,
    };
  }
  return { orderClass: fields.orderClass, takeProfit: { limitPrice: take }, stopLoss };
}

/** "Take profit" or "Stop loss": what a leg does, read from its type. */
export function legRole(leg: Pick<Order, "type">): string {
  return leg.type === OrderType.LIMIT ? "Take profit" : "Stop loss";
}

export interface OrderGroup {
  order: Order;
  legs: Order[];
}

/**
 * `orders` (a filtered view of `held`, e.g. the open ones) as parents each followed by
 * their legs, in the given order of parents. A leg held as its own order wins over the
 * copy inside its parent (it is the newer: every event on a leg carries it alone), and
 * then shows only where its own status puts it. A leg whose parent is not in `orders`
 * stands alone.
 */
export function groupLegs(orders: readonly Order[], held: readonly Order[] = orders): OrderGroup[] {
  const ids = new Set(orders.map((order) => order.id));
  const heldIds = new Set(held.map((order) => order.id));
  const standalone = new Map<string, Order[]>();
  for (const order of orders) {
    if (order.parentOrderId && ids.has(order.parentOrderId)) {
      standalone.set(order.parentOrderId, [...(standalone.get(order.parentOrderId) ?? []), order]);
    }
  }
  return orders
    .filter((order) => !(order.parentOrderId && ids.has(order.parentOrderId)))
    .map((order) => {
      const own = standalone.get(order.id) ?? [];
      const ownIds = new Set(own.map((leg) => leg.id));
      const nested = order.legs.filter((leg) => !ownIds.has(leg.id) && !heldIds.has(leg.id));
      // Take-profit first, as the server lists a bracket's legs.
      const legs = [...nested, ...own].sort((a, b) => Number(b.type === OrderType.LIMIT) - Number(a.type === OrderType.LIMIT));
      return { order, legs };
    });
}
