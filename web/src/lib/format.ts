// Number formatting for the dashboard. Money, quantities and ratios come from the API
// as exact decimal strings; Intl.NumberFormat formats a decimal string exactly (no
// float on the way), so a balance is shown to the cent as the server computed it.
// Quote prices are doubles (as every feed sends them) and are shown as prices.

const MONEY = new Map<string, Intl.NumberFormat>();

function moneyFormat(currency: string, signed: boolean): Intl.NumberFormat {
  const key = `${currency}:${signed}`;
  let format = MONEY.get(key);
  if (format === undefined) {
    format = new Intl.NumberFormat("en-US", {
      style: "currency",
      currency,
      minimumFractionDigits: 2,
      maximumFractionDigits: 2,
      signDisplay: signed ? "exceptZero" : "auto",
    });
    MONEY.set(key, format);
  }
  return format;
}

const EMPTY = "—";

/** True for a decimal string the API sends ("-12.5", "0", "100.25"). */
export function isDecimal(value: string | undefined | null): value is string {
  return typeof value === "string" && /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(value.trim());
}

type Formattable = string | number | undefined | null;

function usable(value: Formattable): value is string | number {
  if (typeof value === "number") return Number.isFinite(value);
  return isDecimal(value);
}

// Intl accepts exact decimal strings at run time (ECMA-402 "Intl.NumberFormat v3");
// TypeScript's lib declares only number and bigint.
function fmt(format: Intl.NumberFormat, value: string | number): string {
  return format.format(value as unknown as number);
}

/** "$1,234.56"; "—" when there is no value. */
export function formatMoney(value: Formattable, currency = "USD"): string {
  return usable(value) ? fmt(moneyFormat(currency, false), value) : EMPTY;
}

/** Profit and loss: "+$12.30", "-$4.00", "$0.00". */
export function formatSignedMoney(value: Formattable, currency = "USD"): string {
  return usable(value) ? fmt(moneyFormat(currency, true), value) : EMPTY;
}

const PERCENT = new Intl.NumberFormat("en-US", {
  style: "percent",
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
  signDisplay: "exceptZero",
});

/** A fraction as the API sends it ("0.015") shown as "+1.50%". */
export function formatPercent(fraction: Formattable): string {
  return usable(fraction) ? fmt(PERCENT, fraction) : EMPTY;
}

const QTY = new Intl.NumberFormat("en-US", { maximumFractionDigits: 9 });

/** A quantity: "1,200", "0.5"; signed quantities keep their sign. */
export function formatQty(value: Formattable): string {
  return usable(value) ? fmt(QTY, value) : EMPTY;
}

const PRICE = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const SMALL_PRICE = new Intl.NumberFormat("en-US", { minimumFractionDigits: 4, maximumFractionDigits: 4 });

/** A quote price (no currency sign, for dense tables): "227.51"; sub-dollar prices to 4 places. */
export function formatPrice(value: Formattable): string {
  if (!usable(value)) return EMPTY;
  const magnitude = Math.abs(Number(value));
  if (magnitude === 0) return EMPTY;
  return fmt(magnitude < 1 ? SMALL_PRICE : PRICE, value);
}

/** -1, 0 or 1: which way a figure points, for colouring gains and losses. */
export function direction(value: Formattable): -1 | 0 | 1 {
  if (!usable(value)) return 0;
  const number = Number(value);
  return number > 0 ? 1 : number < 0 ? -1 : 0;
}

/** Tailwind classes for a gain, a loss or nothing. */
export function pnlClass(value: Formattable): string {
  const sign = direction(value);
  return sign > 0
    ? "text-emerald-600 dark:text-emerald-400"
    : sign < 0
      ? "text-rose-600 dark:text-rose-400"
      : "";
}

const TIME = new Intl.DateTimeFormat("en-US", {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

/** A timestamp as a short local date and time; "—" when unset. */
export function formatTime(date: Date | undefined | null): string {
  return date ? TIME.format(date) : EMPTY;
}
