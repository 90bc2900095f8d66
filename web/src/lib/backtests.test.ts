import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { BacktestSpecSchema, BacktestStatsSchema, BacktestStatus, EquityPointSchema, StrategySchema } from "../gen/cift/backtest/v1/backtest_pb";
import {
  backtestFieldOf,
  dayOf,
  defaultParams,
  describeSpec,
  equitySeries,
  formatBarTime,
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
    };
    const spec = specOf(form);
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
    };
    const spec = create(BacktestSpecSchema, specOf(form));
    expect(formOf(spec)).toEqual(form);
    const rows = Object.fromEntries(statRows(create(BacktestStatsSchema, { winRatePct: 43.0769, exposurePct: 93.99, durationDays: 3116.4 })));
    expect(rows["Win rate"]).toBe("43.08%");
    expect(rows["Duration"]).toBe("3,116 days");
  });
});
