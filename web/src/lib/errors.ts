// What the server said, where the trader will see it. The execution service names the
// offending field in its message ("limit_price 10.001 is not on AAPL's tick grid …");
// risk rejections carry a machine-readable reason in the `cift-reason` trailer. The order
// ticket shows each message next to the field it concerns, else above the button.
import { Code, ConnectError } from "@connectrpc/connect";

export type TicketField =
  | "symbol"
  | "side"
  | "type"
  | "qty"
  | "notional"
  | "limit_price"
  | "stop_price"
  | "trail_price"
  | "trail_percent"
  | "time_in_force"
  | "order_class"
  | ExitField;

/** The exit fields of a bracket, OCO or OTO order, named as the server names them. */
export type ExitField =
  | "take_profit.limit_price"
  | "stop_loss.stop_price"
  | "stop_loss.limit_price"
  | "stop_loss.trail_price"
  | "stop_loss.trail_percent";

const EXIT_FIELDS: ExitField[] = [
  "take_profit.limit_price",
  "stop_loss.stop_price",
  "stop_loss.limit_price",
  "stop_loss.trail_price",
  "stop_loss.trail_percent",
];

// Longest names first, so "trail_price" is not read as "price".
const FIELD_NAMES: TicketField[] = [
  "time_in_force",
  "trail_percent",
  "trail_price",
  "limit_price",
  "stop_price",
  "notional",
  "symbol",
  "side",
  "qty",
];

// Risk's reasons that are about the order's size or price (cift.risk.v1.ReasonCode).
const REASON_FIELDS: Record<string, TicketField> = {
  UNKNOWN_INSTRUMENT: "symbol",
  INSTRUMENT_NOT_TRADABLE: "symbol",
  INSTRUMENT_HALTED: "symbol",
  NOT_SHORTABLE: "side",
  SHORT_NOT_ALLOWED: "side",
  QUANTITY_REQUIRED: "qty",
  NON_POSITIVE_QUANTITY: "qty",
  LOT_SIZE: "qty",
  MISSING_PRICE: "limit_price",
  PRICE_NOT_ALLOWED: "limit_price",
  NON_POSITIVE_PRICE: "limit_price",
  OFF_TICK_GRID: "limit_price",
  NOTIONAL_NOT_ALLOWED: "notional",
  PRICE_COLLAR: "limit_price",
  MAX_ORDER_QTY: "qty",
  MAX_ORDER_NOTIONAL: "qty",
  MAX_POSITION_QTY: "qty",
  MAX_POSITION_NOTIONAL: "qty",
  MAX_GROSS_EXPOSURE: "qty",
  INSUFFICIENT_BUYING_POWER: "qty",
};

export interface ServerError {
  message: string;
  code: string;
  reason: string;
}

/** A failed call as the trader should read it. */
export function serverError(error: unknown): ServerError {
  const connect = ConnectError.from(error);
  return {
    message: connect.rawMessage || Code[connect.code],
    code: Code[connect.code],
    reason: connect.metadata.get("cift-reason") ?? "",
  };
}

/**
 * The exit field an order-class message is about: the first dotted name it mentions
 * ("… take_profit.limit_price 90 must be above the entry price 100"), or a leg's own
 * check prefixed by its exit ("stop_loss: stop_price 1.001 is not on … tick grid").
 */
function exitFieldOf(message: string): TicketField | undefined {
  let first: ExitField | undefined;
  let at = Infinity;
  for (const name of EXIT_FIELDS) {
    const index = message.indexOf(name);
    if (index !== -1 && index < at) [first, at] = [name, index];
  }
  if (first) return first;
  const prefixed = /^(take_profit|stop_loss): .*?\b(limit_price|stop_price|trail_price|trail_percent)\b/.exec(message);
  if (prefixed) {
    const name = `${prefixed[1]}.${prefixed[2]}`;
    return (EXIT_FIELDS as string[]).includes(name) ? (name as ExitField) : undefined;
  }
  if (/^take_profit\b/.test(message)) return "take_profit.limit_price";
  if (/^stop_loss\b/.test(message)) return "stop_loss.stop_price";
  if (/\b(bracket|oco|oto)\b.*\b(take_profit|stop_loss)\b/i.test(message)) return "order_class";
  return undefined;
}

/** The ticket field a server error is about, or undefined when it is about the order as a whole. */
export function fieldOfError(error: ServerError, sizedBy: "qty" | "notional" = "qty"): TicketField | undefined {
  const exit = exitFieldOf(error.message);
  if (exit) return exit;
  const mentions = (name: string) => new RegExp(`(^|[^a-z_])${name}([^a-z_]|$)`, "i").test(error.message);
  if (mentions("qty") && mentions("notional")) return sizedBy;
  for (const name of FIELD_NAMES) {
    if (new RegExp(`(^|[^a-z_])${name}([^a-z_]|$)`, "i").test(error.message)) {
      return name === "qty" && sizedBy === "notional" ? "notional" : name;
    }
  }
  const byReason = REASON_FIELDS[error.reason];
  if (byReason === "qty" && sizedBy === "notional") return "notional";
  if (byReason) return byReason;
  if (/unknown symbol|is not tradable|halted/i.test(error.message)) return "symbol";
  if (/\bquantity\b|fractional shares/i.test(error.message)) return sizedBy;
  return undefined;
}
