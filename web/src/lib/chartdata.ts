// API bars and indicator series as Lightweight Charts data points (time in UTC seconds).
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Bar, GetIndicatorsResponse } from "../gen/cift/marketdata/v1/marketdata_pb";

export interface Candle {
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
}

export interface LinePoint {
  time: number;
  value: number;
}

export const TIMEFRAMES = ["1Sec", "1Min", "5Min", "15Min", "1Hour", "1Day"] as const;
export type Timeframe = (typeof TIMEFRAMES)[number];

const TIMEFRAME_SECONDS: Record<Timeframe, number> = {
  "1Sec": 1,
  "1Min": 60,
  "5Min": 300,
  "15Min": 900,
  "1Hour": 3600,
  "1Day": 86400,
};

/** How far back to ask for `count` bars of `timeframe`, from `nowMs`. */
export function historyStartMs(timeframe: Timeframe, nowMs: number, count = 300): number {
  return nowMs - TIMEFRAME_SECONDS[timeframe] * count * 1000;
}

export function toCandle(bar: Bar): Candle {
  return {
    time: bar.startTime ? Math.floor(timestampMs(bar.startTime) / 1000) : 0,
    open: bar.open,
    high: bar.high,
    low: bar.low,
    close: bar.close,
  };
}

/** Candles in time order with one per start time (a later copy of a bar wins). */
export function mergeCandles(held: readonly Candle[], incoming: readonly Candle[]): Candle[] {
  const byTime = new Map<number, Candle>();
  for (const candle of [...held, ...incoming]) byTime.set(candle.time, candle);
  return [...byTime.values()].sort((a, b) => a.time - b.time);
}

/**
 * One output of one indicator as points, skipping the warm-up NaNs. `spec` is the spec as
 * requested (e.g. "bbands:20:2"), `output` the column (e.g. "upper").
 */
export function indicatorLine(response: GetIndicatorsResponse, spec: string, output?: string): LinePoint[] {
  const series = response.indicators.find((item) => item.spec === spec);
  if (!series) return [];
  const column = output === undefined ? series.outputs[0] : series.outputs.find((item) => item.name === output);
  if (!column) return [];
  const points: LinePoint[] = [];
  response.timestamps.forEach((timestamp, index) => {
    const value = column.values[index];
    if (value !== undefined && Number.isFinite(value)) {
      points.push({ time: Math.floor(timestampMs(timestamp) / 1000), value });
    }
  });
  return points;
}
