import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { BacktestSpecSchema, BacktestStatsSchema, BacktestStatus, EquityPointSchema, StrategySchema } from "../gen/cift/backtest/v1/backtest_pb";
import {
  formProblem,
  limitsOf,
  backtestFieldOf,
  dayOf,
  defaultParams,
  defaultStrategy,
  describeSpec,
  equitySeries,
  formatBarTime,
  formatDuration,
  formOf,
  formatPercentPoints,
  isRunning,
  paramsStruct,
  progressText,
  specOf,
  statRows,
} from "./backtests";

const smaCross = create(StrategySchema, {
  name: "sma_cross",
  params: [
    { name: "fast", default: 10, min: 1, max: 500 },
    { name: "slow", default: 30, min: 2, max: 1000 },
  ],
});

describe("the backtest form", () => {
  it("starts a strategy's parameters at their defaults", () => {
    expect(defaultParams(smaCross)).toEqual({ fast: "10", slow: "30" });
    expect(defaultParams(undefined)).toEqual({});
  });

  it("opens on sma_cross when the service offers it, else on the first strategy", () => {
    const bbands = create(StrategySchema, { name: "bbands_breakout" });
    expect(defaultStrategy([bbands, smaCross])).toBe("sma_cross");
    expect(defaultStrategy([bbands])).toBe("bbands_breakout");
    expect(defaultStrategy([])).toBeUndefined();
  });

  it("sends numbers as numbers and anything else as typed, for the server to refuse", () => {
    expect(paramsStruct({ fast: " 5 ", slow: "20.5", other: "ten", empty: "" })).toEqual({ fast: 5, slow: 20.5, other: "ten", empty: "" });
  });

  it("builds the spec with the range as UTC midnights", () => {
    const form = {
      strategy: "sma_cross",
      params: { fast: "10", slow: "30" },
      symbol: " goog ",
      timeframe: "1Day",
      start: "2004-08-19",
      end: "2013-03-02",
      cash: "10000",
      commission: "0.002",
      engine: "vector",
      marginMultiplier: "2",
      limits: { max_order_qty: "5" },
      allowShort: "false",
    };
    const spec = specOf(form);
    // The risk inputs belong to the event engine: hidden with the vector one, not sent.
    expect(spec.marginMultiplier).toBeUndefined();
    expect(spec.limits).toBeUndefined();
    expect(spec.symbol).toBe("GOOG");
    expect(timestampMs(spec.start as Timestamp)).toBe(Date.UTC(2004, 7, 19));
    expect(timestampMs(spec.end as Timestamp)).toBe(Date.UTC(2013, 2, 2));
    expect(spec.params).toEqual({ fast: 10, slow: 30 });
    expect(specOf({ ...form, start: "", end: "2024-13-45" }).start).toBeUndefined();
    expect(dayOf(Date.UTC(2024, 0, 31, 23, 59))).toBe("2024-01-31");
  });
});

describe("backtestFieldOf", () => {
  const names = ["fast", "slow"];
  it("puts a parameter's refusal by the first parameter it names", () => {
    expect(backtestFieldOf("fast (30) must be shorter than slow (10).", names)).toBe("param:fast");
    expect(backtestFieldOf("Parameter slow of sma_cross must be between 2 and 1000, not 0.", names)).toBe("param:slow");
    // "slowest" is not "slow".
    expect(backtestFieldOf("Unknown parameter slowest for sma_cross; it takes fast, slow.", ["slow"])).toBe("param:slow");
  });

  it("puts the spec's refusals by their fields", () => {
    expect(backtestFieldOf("cash must be a positive amount, not -5.", names)).toBe("cash");
    expect(backtestFieldOf("commission is a fraction of each fill's notional between 0 and 0.1 (0.002 = 0.2%), not 2.", names)).toBe("commission");
    expect(backtestFieldOf("timeframe must be one of 1Sec, 1Min, not '2Min'.", names)).toBe("timeframe");
    expect(backtestFieldOf("The range is empty: start must be before end (end is exclusive).", names)).toBe("start");
    expect(backtestFieldOf("Market data holds no 1Day bars from 2020-01-01 to 2021-01-01 of ZZZ: the range is empty.", names)).toBe("start");
    expect(backtestFieldOf("'1X' is not a symbol.", names)).toBe("symbol");
    expect(
      backtestFieldOf(
        "sma_cross (fast=10, slow=30, short=1) can trade at bar 31 at the earliest (its first signal needs 30 bars, then the next bar's open); these bars hold 1: give it more bars, over a longer range or a shorter timeframe.",
        names,
      ),
    ).toBe("start");
    expect(backtestFieldOf("Too many backtests are running.", names)).toBeUndefined();
  });
});

describe("a run's figures", () => {
  it("formats money as money and the stats' percentages as percentages", () => {
    const rows = Object.fromEntries(
      statRows(create(BacktestStatsSchema, { finalEquity: "39770.03", peakEquity: "41000", commissions: "1234.5", totalReturnPct: 297.7003, maxDrawdownPct: -33.1, trades: 65n, sharpe: 0.6789 })),
    );
    expect(rows["Final equity"]).toBe("$39,770.03");
    expect(rows["Commissions"]).toBe("$1,234.50");
    expect(rows["Return"]).toBe("+297.70%");
    expect(rows["Max drawdown"]).toBe("-33.10%");
    expect(rows["Trades"]).toBe("65");
    expect(rows["Sharpe"]).toBe("0.68");
    expect(rows["Sortino"]).toBe("—");
    expect(formatPercentPoints(0)).toBe("0.00%");
    expect(formatPercentPoints(Number.NaN)).toBe("—");
  });

  it("shows progress as a whole percent, clamped", () => {
    expect(progressText(0.426)).toBe("42%");
    expect(progressText(1.2)).toBe("100%");
    expect(progressText(Number.NaN)).toBe("0%");
    expect(isRunning(BacktestStatus.RUNNING)).toBe(true);
    expect(isRunning(BacktestStatus.QUEUED)).toBe(true);
    expect(isRunning(BacktestStatus.CANCELED)).toBe(false);
  });

  it("turns the equity curve into chart points in time order, one per second", () => {
    const point = (ms: number, equity: string) => create(EquityPointSchema, { timestamp: timestampFromMs(ms), equity });
    expect(equitySeries({ equity: [point(2_000, "10100.5"), point(1_000, "10000"), point(2_500, "10200"), create(EquityPointSchema, { equity: "1" })] })).toEqual([
      { time: 1, value: 10000 },
      { time: 2, value: 10200 },
    ]);
  });

  it("describes a past run in one line and dates bars with their year", () => {
    expect(describeSpec(create(BacktestSpecSchema, { strategy: "sma_cross", params: { fast: 10, slow: 30 }, symbol: "GOOG", timeframe: "1Day" }))).toBe("sma_cross fast=10 slow=30 · GOOG 1Day");
    expect(describeSpec(undefined)).toBe("—");
    const stored = create(BacktestSpecSchema, { strategy: "sma_cross", params: { short: 1, slow: 30, fast: 10 }, symbol: "AAPL", timeframe: "1Min" });
    expect(describeSpec(stored, [smaCross])).toBe("sma_cross fast=10 slow=30 short=1 · AAPL 1Min");
    expect(describeSpec(stored)).toBe("sma_cross fast=10 short=1 slow=30 · AAPL 1Min");
    expect(formatBarTime(new Date(Date.UTC(2004, 7, 19)))).toBe("Aug 19, 2004, 00:00");
  });
});

describe("reopening a run", () => {
  it("puts its spec back into the form", () => {
    const form = {
      strategy: "sma_cross",
      params: { fast: "10", slow: "30" },
      symbol: "GOOG",
      timeframe: "1Day",
      start: "2004-01-01",
      end: "2014-01-01",
      cash: "10000",
      commission: "0.002",
      engine: "event",
      marginMultiplier: "2",
      limits: { max_order_qty: "5", max_open_orders: "3", price_collar_pct: "2.5" },
      allowShort: "false",
    };
    const spec = create(BacktestSpecSchema, specOf(form));
    expect(formOf(spec)).toEqual(form);
    const rows = Object.fromEntries(statRows(create(BacktestStatsSchema, { winRatePct: 43.0769, exposurePct: 93.99, durationDays: 3116.4 })));
    expect(rows["Win rate"]).toBe("43.08%");
    expect(rows["Duration"]).toBe("3,116 days");
  });

  it("gives a run's duration in minutes or hours when it is shorter than a day", () => {
    expect(formatDuration(undefined)).toBe("—");
    expect(formatDuration(0)).toBe("0 min");
    expect(formatDuration(59 / 1440)).toBe("59 min");
    expect(formatDuration(60 / 1440)).toBe("1 h");
    expect(formatDuration(61.4 / 1440)).toBe("1 h 1 min");
    expect(formatDuration(1439 / 1440)).toBe("23 h 59 min");
    expect(formatDuration(1)).toBe("1 day");
    expect(formatDuration(2.6)).toBe("3 days");
  });
});

describe("the event engine's risk inputs", () => {
  const form = {
    strategy: "sma_cross",
    params: { fast: "10", slow: "30" },
    symbol: "GOOG",
    timeframe: "1Day",
    start: "2004-01-01",
    end: "2014-01-01",
    cash: "10000",
    commission: "0.002",
    engine: "event",
    marginMultiplier: " 2 ",
    limits: {},
    allowShort: "",
  };

  it("sends only the limits typed, as the wire's types, and none at all when none is typed", () => {
    expect(limitsOf(form)).toBeUndefined();
    expect(specOf(form).limits).toBeUndefined();
    expect(specOf(form).marginMultiplier).toBe("2");
    const pinned = { ...form, limits: { max_order_qty: " 5 ", max_open_orders: "3", max_gross_exposure: "" }, allowShort: "false" };
    expect(limitsOf(pinned)).toEqual({ maxOrderQty: "5", maxOpenOrders: 3, allowShort: false });
    expect(limitsOf({ ...form, allowShort: "true" })).toEqual({ allowShort: true });
  });

  it("refuses an open-order count that is not a whole number before sending, by its field", () => {
    expect(formProblem({ ...form, limits: { max_open_orders: "500" } })).toBeUndefined();
    expect(formProblem({ ...form, limits: { max_open_orders: "2.5" } })).toEqual({
      field: "limit:max_open_orders",
      message: "max_open_orders must be a whole number of orders, such as 500 (got 2.5).",
    });
  });

  it("puts the server's refusals by the risk field they name", () => {
    const names = ["fast", "slow"];
    expect(backtestFieldOf("Invalid risk limits: max_order_qty must be greater than zero (got 0); max_open_orders must be at least 1 (got 0).", names)).toBe(
      "limit:max_order_qty",
    );
    expect(backtestFieldOf("Invalid risk limits: price_collar_pct must be above 0 and at most 100 (got 150).", names)).toBe("limit:price_collar_pct");
    expect(backtestFieldOf('limits.max_position_notional is required and must be a decimal string such as "10.5".', names)).toBe("limit:max_position_notional");
    expect(backtestFieldOf("margin_multiplier is between 1 (a cash account) and 4, not 5.", names)).toBe("margin_multiplier");
    expect(backtestFieldOf('Risk limits and margin_multiplier apply to the event engine\'s orders; set engine to "event".', names)).toBe("engine");
    expect(backtestFieldOf("cash must be greater than zero.", names)).toBe("cash");
  });
});
