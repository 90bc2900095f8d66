// The Backtests page's pure parts: the form's values turned into a BacktestSpec, the
// server's refusals put next to the field they name, a run's figures formatted (money
// as money, the stats' percentages as percentages) and its equity curve as chart points.
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { UTCTimestamp } from "lightweight-charts";
import {
  BacktestStatus,
  type Backtest,
  type BacktestRiskLimits,
  type BacktestSpec,
  type BacktestRiskLimitsSchema,
  type BacktestSpecSchema,
  type BacktestStats,
  type Strategy,
} from "../gen/cift/backtest/v1/backtest_pb";
import { formatMoney, formatQty } from "./format";

export const TIMEFRAMES = ["1Sec", "1Min", "5Min", "15Min", "1Hour", "1Day"] as const;
export const ENGINES = ["vector", "event"] as const;

export interface BacktestForm {
  strategy: string;
  params: Record<string, string>;
  symbol: string;
  timeframe: string;
  /** "YYYY-MM-DD", UTC. */
  start: string;
  /** "YYYY-MM-DD", UTC; the end is exclusive, as the server reads it. */
  end: string;
  cash: string;
  commission: string;
  engine: string;
  /** Event engine: "1" (a cash account) to "4"; empty keeps the server's default, 1. */
  marginMultiplier: string;
  /** Event engine: each limit as typed; empty keeps a new live account's default. */
  limits: Partial<Record<LimitName, string>>;
  /** Event engine: "" (the default: allowed), "true" or "false". */
  allowShort: string;
}

/**
 * The pre-trade limits a backtest's orders can be checked against (BacktestRiskLimits),
 * with the default a new live account has, which an empty field keeps. `name` is the
 * field's name in the server's messages, so a refusal lands by its input.
 */
export const RISK_LIMITS = [
  { key: "maxOrderQty", name: "max_order_qty", label: "Max order qty", unit: "shares", fallback: "10,000" },
  { key: "maxOrderNotional", name: "max_order_notional", label: "Max order notional", unit: "$", fallback: "250,000" },
  { key: "maxPositionQty", name: "max_position_qty", label: "Max position qty", unit: "shares", fallback: "50,000" },
  { key: "maxPositionNotional", name: "max_position_notional", label: "Max position notional", unit: "$", fallback: "500,000" },
  { key: "maxGrossExposure", name: "max_gross_exposure", label: "Max gross exposure", unit: "$", fallback: "1,000,000" },
  { key: "maxOpenOrders", name: "max_open_orders", label: "Max open orders", unit: "orders", fallback: "500" },
  { key: "priceCollarPct", name: "price_collar_pct", label: "Price collar %", unit: "%", fallback: "10" },
] as const satisfies readonly { key: keyof BacktestRiskLimits; name: string; label: string; unit: string; fallback: string }[];

export type LimitName = (typeof RISK_LIMITS)[number]["name"];

const WHOLE_NUMBER = /^\d+$/;

/**
 * What the form cannot even send: max_open_orders is a whole number on the wire, so
 * "2.5" or "ten" is refused here, by its field, with the server's kind of sentence.
 * Everything else is sent as typed and checked by the server.
 */
export function formProblem(form: BacktestForm): { field: BacktestField; message: string } | undefined {
  const open = form.limits.max_open_orders?.trim();
  if (open && !WHOLE_NUMBER.test(open)) {
    return { field: "limit:max_open_orders", message: `max_open_orders must be a whole number of orders, such as 500 (got ${open}).` };
  }
  return undefined;
}

/** The limits the form pins, or undefined when it pins none (the server's defaults). */
export function limitsOf(form: BacktestForm): MessageInitShape<typeof BacktestRiskLimitsSchema> | undefined {
  const limits: Record<string, string | number | boolean> = {};
  for (const limit of RISK_LIMITS) {
    const text = form.limits[limit.name]?.trim();
    if (!text) continue;
    limits[limit.key] = limit.key === "maxOpenOrders" ? Number(text) : text;
  }
  if (form.allowShort === "true" || form.allowShort === "false") limits.allowShort = form.allowShort === "true";
  return Object.keys(limits).length > 0 ? limits : undefined;
}

/** The strategy the form opens on: the moving-average cross the README and most tutorials start with, when offered. */
export function defaultStrategy(strategies: readonly Strategy[]): string | undefined {
  return (strategies.find((item) => item.name === "sma_cross") ?? strategies[0])?.name;
}

/** A strategy's parameters at their defaults, as the form's text. */
export function defaultParams(strategy: Strategy | undefined): Record<string, string> {
  const values: Record<string, string> = {};
  for (const param of strategy?.params ?? []) values[param.name] = String(param.default);
  return values;
}

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;

/** Parameters as numbers; text that is not a number goes as typed, for the server to refuse by name. */
export function paramsStruct(params: Record<string, string>): JsonObject {
  const struct: JsonObject = {};
  for (const [name, text] of Object.entries(params)) {
    const value = text.trim();
    struct[name] = NUMBER.test(value) ? Number(value) : value;
  }
  return struct;
}

function utcDay(text: string) {
  const trimmed = text.trim();
  if (!/^\d{4}-\d{2}-\d{2}$/.test(trimmed)) return undefined;
  const ms = Date.parse(`${trimmed}T00:00:00Z`);
  return Number.isNaN(ms) ? undefined : timestampFromMs(ms);
}

/** The spec RunBacktest takes; every check is the server's. */
export function specOf(form: BacktestForm): MessageInitShape<typeof BacktestSpecSchema> {
  return {
    strategy: form.strategy,
    params: paramsStruct(form.params),
    symbol: form.symbol.trim().toUpperCase(),
    timeframe: form.timeframe,
    start: utcDay(form.start),
    end: utcDay(form.end),
    cash: form.cash.trim(),
    commission: form.commission.trim(),
    engine: form.engine,
    // The risk inputs show with the event engine only; hidden, they are not sent.
    ...(form.engine === "event" ? { marginMultiplier: form.marginMultiplier.trim(), limits: limitsOf(form) } : {}),
  };
}

/** "2024-01-31" for an input of type date (UTC, as the spec's times are). */
export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export type BacktestField =
  | "strategy"
  | "symbol"
  | "timeframe"
  | "start"
  | "end"
  | "cash"
  | "commission"
  | "engine"
  | "margin_multiplier"
  | "allow_short"
  | `limit:${LimitName}`
  | `param:${string}`;

const WORD = (name: string) => new RegExp(`(^|[^A-Za-z_])${name}([^A-Za-z_]|$)`);

/**
 * The form field a refusal is about. A parameter named in the message wins (the first
 * one: "fast (30) must be shorter than slow (10)" is about fast); then a risk limit (the
 * first one named: "Invalid risk limits: max_order_qty must be ..."); then the spec's
 * fields, the engine before margin_multiplier (limits sent with the vector engine are
 * about the engine) and margin_multiplier before cash ("between 1 (a cash account) and
 * 4" is about the multiplier); a range without stored bars is about the dates.
 */
export function backtestFieldOf(message: string, paramNames: readonly string[]): BacktestField | undefined {
  // Bars too few for the periods: the range (or timeframe) is what to change, not the
  // parameters the message quotes.
  if (/\bthese bars hold \d+/.test(message)) return "start";
  let first: string | undefined;
  let at = Infinity;
  for (const name of paramNames) {
    const match = WORD(name).exec(message);
    if (match && match.index < at) [first, at] = [name, match.index];
  }
  if (first) return `param:${first}`;
  let limit: LimitName | undefined;
  at = Infinity;
  for (const { name } of RISK_LIMITS) {
    const match = WORD(name).exec(message);
    if (match && match.index < at) [limit, at] = [name, match.index];
  }
  if (limit) return `limit:${limit}`;
  if (WORD("allow_short").test(message)) return "allow_short";
  for (const field of ["timeframe", "engine", "margin_multiplier", "cash", "commission", "strategy", "start"] as const) {
    if (WORD(field).test(message)) return field;
  }
  if (/holds no .* bars|range is empty|\bend\b/i.test(message)) return "start";
  if (/symbol/i.test(message)) return "symbol";
  return undefined;
}

export const BACKTEST_STATUS_LABELS: Record<BacktestStatus, string> = {
  [BacktestStatus.UNSPECIFIED]: "—",
  [BacktestStatus.QUEUED]: "Queued",
  [BacktestStatus.RUNNING]: "Running",
  [BacktestStatus.SUCCEEDED]: "Succeeded",
  [BacktestStatus.FAILED]: "Failed",
  [BacktestStatus.CANCELED]: "Canceled",
};

/** True while a run can still move (and be canceled). */
export function isRunning(status: BacktestStatus): boolean {
  return status === BacktestStatus.QUEUED || status === BacktestStatus.RUNNING;
}

/** Progress (0..1) as "42%". */
export function progressText(progress: number): string {
  const clamped = Math.min(1, Math.max(0, Number.isFinite(progress) ? progress : 0));
  return `${Math.floor(clamped * 100)}%`;
}

const POINTS = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2, signDisplay: "exceptZero" });
const PLAIN = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

/** A figure already in percent (12.3 → "+12.30%"); "—" when absent. */
export function formatPercentPoints(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? "—" : `${POINTS.format(value)}%`;
}

function ratio(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? "—" : PLAIN.format(value);
}

const WHOLE = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** A share of something (win rate, time in the market): "43.08%", never signed. */
function share(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? "—" : `${PLAIN.format(value)}%`;
}

const MINUTES_PER_DAY = 1440;

/** A span given in days, in the unit it is read in: a run on minute bars lasts hours, not "0 days". */
export function formatDuration(days: number | undefined): string {
  if (days === undefined || !Number.isFinite(days)) return "—";
  const minutes = Math.round(days * MINUTES_PER_DAY);
  if (minutes < 60) return `${minutes} min`;
  if (minutes < MINUTES_PER_DAY) {
    const rest = minutes % 60;
    return rest ? `${Math.floor(minutes / 60)} h ${rest} min` : `${minutes / 60} h`;
  }
  return Math.round(days) === 1 ? "1 day" : `${WHOLE.format(days)} days`;
}

/** The stats a trader reads first, each formatted as what it is. */
export function statRows(stats: BacktestStats): [string, string][] {
  return [
    ["Final equity", formatMoney(stats.finalEquity)],
    ["Peak equity", formatMoney(stats.peakEquity)],
    ["Return", formatPercentPoints(stats.totalReturnPct)],
    ["Buy & hold", formatPercentPoints(stats.buyHoldReturnPct)],
    ["Annual return", formatPercentPoints(stats.annualReturnPct)],
    ["Max drawdown", formatPercentPoints(stats.maxDrawdownPct)],
    ["Sharpe", ratio(stats.sharpe)],
    ["Sortino", ratio(stats.sortino)],
    ["Trades", formatQty(Number(stats.trades))],
    ["Rejected orders", formatQty(Number(stats.rejectedOrders))],
    ["Win rate", share(stats.winRatePct)],
    ["Profit factor", ratio(stats.profitFactor)],
    ["Exposure", share(stats.exposurePct)],
    ["Commissions", formatMoney(stats.commissions)],
    ["Duration", formatDuration(stats.durationDays)],
  ];
}

/** The equity curve as chart points, one per second at most, in time order. */
export function equitySeries(backtest: Pick<Backtest, "equity">): { time: UTCTimestamp; value: number }[] {
  const byTime = new Map<number, number>();
  for (const point of backtest.equity) {
    if (!point.timestamp) continue;
    byTime.set(Math.floor(timestampMs(point.timestamp) / 1000), Number(point.equity));
  }
  return [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time: time as UTCTimestamp, value }));
}

const BAR_TIME = new Intl.DateTimeFormat("en-US", {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
  timeZone: "UTC",
});

/** A bar's time with its year, in UTC (as the spec's range is): "Aug 19, 2004, 00:00". */
export function formatBarTime(date: Date | undefined): string {
  return date ? BAR_TIME.format(date) : "—";
}

/** The form that would run `spec` again (what "Open" on a past run puts back). */
export function formOf(spec: BacktestSpec): BacktestForm {
  const params: Record<string, string> = {};
  for (const [name, value] of Object.entries(spec.params ?? {})) params[name] = String(value);
  return {
    strategy: spec.strategy,
    params,
    symbol: [spec.symbol, ...spec.symbols].filter(Boolean).join(","),
    timeframe: spec.timeframe,
    start: spec.start ? dayOf(timestampMs(spec.start)) : "",
    end: spec.end ? dayOf(timestampMs(spec.end)) : "",
    cash: spec.cash,
    commission: spec.commission,
    engine: spec.engine,
    marginMultiplier: spec.marginMultiplier,
    limits: limitTexts(spec.limits),
    allowShort: spec.limits?.allowShort === undefined ? "" : String(spec.limits.allowShort),
  };
}

function limitTexts(limits: BacktestRiskLimits | undefined): Partial<Record<LimitName, string>> {
  const texts: Partial<Record<LimitName, string>> = {};
  for (const limit of RISK_LIMITS) {
    const value = limits?.[limit.key];
    if (value !== undefined) texts[limit.name] = String(value);
  }
  return texts;
}

/** "sma_cross fast=10 slow=30 · GOOG 1Day": a past run in one line. */
export function describeSpec(spec: BacktestSpec | undefined, strategies: readonly Strategy[] = []): string {
  if (!spec) return "—";
  // In the order the strategy declares them (fast before slow), as the form shows them;
  // the stored run's own order is the database's. Unknown names go last, by name.
  const declared = strategies.find((item) => item.name === spec.strategy)?.params.map((param) => param.name) ?? [];
  const rank = (name: string): number => {
    const at = declared.indexOf(name);
    return at < 0 ? declared.length : at;
  };
  const params = Object.entries(spec.params ?? {})
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([name, value]) => `${name}=${String(value)}`)
    .join(" ");
  const symbols = [spec.symbol, ...spec.symbols].filter(Boolean).join(",");
  return `${spec.strategy}${params ? ` ${params}` : ""} · ${symbols} ${spec.timeframe}`;
}
