import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { OrderClass, OrderSchema, OrderStatus, OrderType } from "../gen/cift/execution/v1/orders_pb";
import { exitRequest, type ExitFields, groupLegs, hasExits, legRole } from "./orderClasses";
import { isOpen } from "./orders";

const fields = (overrides: Partial<ExitFields>): ExitFields => ({
  orderClass: OrderClass.BRACKET,
  takeProfitLimit: " 110 ",
  stopLossKind: "stop",
  stopLossStop: "90",
  stopLossLimit: "89",
  stopLossTrail: "2",
  ...overrides,
});

describe("exitRequest", () => {
  it("sends no exits for a simple order, whatever the hidden fields hold", () => {
    expect(exitRequest(fields({ orderClass: OrderClass.SIMPLE }))).toEqual({ orderClass: OrderClass.SIMPLE });
    expect(hasExits(OrderClass.SIMPLE)).toBe(false);
    expect(hasExits(OrderClass.UNSPECIFIED)).toBe(false);
  });

  it("sends a bracket's take-profit and only the stop-loss fields of the chosen kind", () => {
    expect(exitRequest(fields({}))).toEqual({
      orderClass: OrderClass.BRACKET,
      takeProfit: { limitPrice: "110" },
      stopLoss: { stopPrice: "90", limitPrice: "", trailPrice: "", trailPercent: "" },
    });
    expect(exitRequest(fields({ stopLossKind: "stop_limit" })).stopLoss).toEqual({ stopPrice: "90", limitPrice: "89", trailPrice: "", trailPercent: "" });
    expect(exitRequest(fields({ stopLossKind: "trail_price" })).stopLoss).toEqual({ stopPrice: "", limitPrice: "", trailPrice: "2", trailPercent: "" });
    expect(exitRequest(fields({ stopLossKind: "trail_percent", orderClass: OrderClass.OCO })).stopLoss).toEqual({ stopPrice: "", limitPrice: "", trailPrice: "", trailPercent: "2" });
  });

  it("sends a bracket's empty exits too, so the server names what is missing", () => {
    const empty = exitRequest(fields({ takeProfitLimit: "", stopLossStop: "" }));
    expect(empty.takeProfit).toEqual({ limitPrice: "" });
    expect(empty.stopLoss?.stopPrice).toBe("");
  });

  it("sends an OTO's one filled-in exit", () => {
    const stopOnly = exitRequest(fields({ orderClass: OrderClass.OTO, takeProfitLimit: "" }));
    expect(stopOnly.takeProfit).toBeUndefined();
    expect(stopOnly.stopLoss?.stopPrice).toBe("90");
    const takeOnly = exitRequest(fields({ orderClass: OrderClass.OTO, stopLossStop: "" }));
    expect(takeOnly.takeProfit).toEqual({ limitPrice: "110" });
    expect(takeOnly.stopLoss).toBeUndefined();
    const both = exitRequest(fields({ orderClass: OrderClass.OTO }));
    expect(both.takeProfit && both.stopLoss).toBeTruthy();
  });
});

const order = (id: string, init: Partial<{ type: OrderType; status: OrderStatus; parentOrderId: string; legs: ReturnType<typeof leg>[] }> = {}) =>
  create(OrderSchema, { id, symbol: "AAPL", type: OrderType.MARKET, status: OrderStatus.ACCEPTED, ...init });
const leg = (id: string, parent: string, type: OrderType, status = OrderStatus.HELD) =>
  create(OrderSchema, { id, symbol: "AAPL", type, status, parentOrderId: parent });

describe("groupLegs", () => {
  it("puts legs held as their own orders under their parent, take-profit first", () => {
    const groups = groupLegs([leg("s", "p", OrderType.STOP), order("p"), leg("t", "p", OrderType.LIMIT), order("q")]);
    expect(groups.map((group) => group.order.id)).toEqual(["p", "q"]);
    expect(groups[0].legs.map((item) => item.id)).toEqual(["t", "s"]);
    expect(groups[1].legs).toEqual([]);
  });

  it("uses the copies inside the parent only for legs not held on their own", () => {
    const nestedStop = leg("s", "p", OrderType.STOP);
    const nestedTake = leg("t", "p", OrderType.LIMIT, OrderStatus.HELD);
    const ownTake = leg("t", "p", OrderType.LIMIT, OrderStatus.ACCEPTED);
    const [group] = groupLegs([order("p", { legs: [nestedTake, nestedStop] }), ownTake]);
    expect(group.legs.map((item) => [item.id, item.status])).toEqual([
      ["t", OrderStatus.ACCEPTED],
      ["s", OrderStatus.HELD],
    ]);
  });

  it("does not show a leg under a parent of another list (a filled entry's open exits)", () => {
    const take = leg("t", "p", OrderType.LIMIT, OrderStatus.ACCEPTED);
    const parent = order("p", { status: OrderStatus.FILLED, legs: [leg("t", "p", OrderType.LIMIT)] });
    const held = [parent, take];
    const open = groupLegs(held.filter(isOpen), held);
    expect(open).toHaveLength(1);
    expect(open[0].order.id).toBe("t");
    const closed = groupLegs(held.filter((item) => !isOpen(item)), held);
    expect(closed[0].legs).toEqual([]);
  });

  it("names each leg's role by its type", () => {
    expect(legRole({ type: OrderType.LIMIT })).toBe("Take profit");
    expect(legRole({ type: OrderType.STOP })).toBe("Stop loss");
    expect(legRole({ type: OrderType.TRAILING_STOP })).toBe("Stop loss");
  });
});
