import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { PositionSchema } from "../gen/cift/execution/v1/execution_pb";
import { OrderSchema, OrderStatus } from "../gen/cift/execution/v1/orders_pb";
import { QuoteSchema } from "../gen/cift/marketdata/v1/marketdata_pb";
import { closedOrders, isOpen, openOrders, upsertOrder } from "./orders";
import { livePnl } from "./pnl";
import { applyQuotes, change, changeBasis, parseSymbols } from "./quotes";

const order = (id: string, status: OrderStatus, createdMs: number, updatedMs = createdMs) =>
  create(OrderSchema, { id, status, symbol: "AAPL", createdAt: timestampFromMs(createdMs), updatedAt: timestampFromMs(updatedMs) });

describe("orders", () => {
  it("tells working orders from final ones", () => {
    expect(isOpen(order("a", OrderStatus.NEW, 1))).toBe(true);
    expect(isOpen(order("a", OrderStatus.PARTIALLY_FILLED, 1))).toBe(true);
    for (const status of [OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED, OrderStatus.REPLACED]) {
      expect(isOpen(order("a", status, 1))).toBe(false);
    }
  });

  it("applies an event over the listed order, and ignores an older copy", () => {
    let held = [order("a", OrderStatus.ACCEPTED, 1, 10)];
    held = upsertOrder(held, order("a", OrderStatus.FILLED, 1, 20));
    expect(held).toHaveLength(1);
    expect(held[0].status).toBe(OrderStatus.FILLED);
    held = upsertOrder(held, order("a", OrderStatus.ACCEPTED, 1, 10));
    expect(held[0].status).toBe(OrderStatus.FILLED);
  });

  it("splits open and closed orders, newest first", () => {
    const held = [order("old", OrderStatus.NEW, 1), order("new", OrderStatus.ACCEPTED, 3), order("done", OrderStatus.FILLED, 2)];
    expect(openOrders(held).map((item) => item.id)).toEqual(["new", "old"]);
    expect(closedOrders(held).map((item) => item.id)).toEqual(["done"]);
  });
});

describe("quotes", () => {
  const quote = (symbol: string, sequence: bigint, last: number, bid = last - 0.01, ask = last + 0.01) =>
    create(QuoteSchema, { symbol, sequence, last, bid, ask });

  it("keeps the latest quote per symbol and the first last price as the reference", () => {
    let book = applyQuotes({}, [quote("AAPL", 1n, 100)]);
    book = applyQuotes(book, [quote("AAPL", 2n, 101), quote("MSFT", 3n, 50)]);
    expect(book.AAPL.last).toBe(101);
    expect(book.AAPL.reference).toBe(100);
    expect(book.AAPL.tick).toBe(1);
    expect(change(book.AAPL).fraction).toBeCloseTo(0.01);
    expect(book.MSFT.last).toBe(50);
  });

  it("ignores a replayed older quote", () => {
    let book = applyQuotes({}, [quote("AAPL", 5n, 100)]);
    book = applyQuotes(book, [quote("AAPL", 4n, 90)]);
    expect(book.AAPL.last).toBe(100);
  });

  it("keeps the last trade price when a quote has none", () => {
    let book = applyQuotes({}, [quote("AAPL", 1n, 100)]);
    book = applyQuotes(book, [quote("AAPL", 2n, 0, 99, 101.5)]);
    expect(book.AAPL.last).toBe(100);
    expect(book.AAPL.ask).toBe(101.5);
  });

  it("measures change from the previous close, else the day's open, else the first price seen", () => {
    const row = applyQuotes({}, [quote("AAPL", 1n, 100), quote("AAPL", 2n, 105)]).AAPL;
    const days = [
      { open: 90, close: 95 },
      { open: 96, close: 98 },
      { open: 99, close: 104 },
    ];
    const previous = changeBasis(days);
    expect(previous).toEqual({ price: 98, since: "the previous close" });
    expect(change(row, previous).amount).toBeCloseTo(7);
    expect(change(row, previous).fraction).toBeCloseTo(7 / 98);
    const opened = changeBasis(days.slice(2));
    expect(opened).toEqual({ price: 99, since: "the day's open" });
    expect(change(row, opened).amount).toBeCloseTo(6);
    expect(changeBasis([])).toBeUndefined();
    expect(change(row, undefined).amount).toBeCloseTo(5);
  });

  it("reads typed symbol lists", () => {
    expect(parseSymbols(" aapl, msft  brk.b,AAPL ;; ")).toEqual(["AAPL", "MSFT", "BRK.B"]);
  });
});

describe("live P&L", () => {
  const position = create(PositionSchema, {
    symbol: "AAPL",
    qty: "3",
    costBasis: "682.53",
    currentPrice: "227.51",
    marketValue: "682.53",
    unrealizedPl: "0",
    unrealizedPlpc: "0",
  });

  it("revalues the position at the quote in exact decimals", () => {
    const live = livePnl(position, 227.61);
    expect(live.marketValue).toBe("682.83");
    expect(live.unrealizedPl).toBe("0.3");
    expect(live.unrealizedPlpc).toBe("0.000440");
  });

  it("computes a short's P&L with its sign", () => {
    const short = create(PositionSchema, { ...position, qty: "-2", costBasis: "-200" });
    expect(livePnl(short, 90).unrealizedPl).toBe("20");
  });

  it("falls back to the server's figures without a price", () => {
    expect(livePnl(position, undefined).unrealizedPl).toBe("0");
    expect(livePnl(position, 0).marketValue).toBe("682.53");
  });
});
