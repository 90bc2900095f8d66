// Live quotes of the watchlist. A row keeps the latest bid, ask and last, the first last
// price this page saw (the reference for "change" when no previous close is known) and
// which way the last tick moved.
import type { Quote } from "../gen/cift/marketdata/v1/marketdata_pb";

export interface QuoteRow {
  symbol: string;
  bid: number;
  ask: number;
  last: number;
  /** The first last price seen since the page opened; change is measured from it. */
  reference: number;
  /** -1, 0 or 1: the direction of the latest change of the last price. */
  tick: -1 | 0 | 1;
  sequence: bigint;
}

export type QuoteBook = Readonly<Record<string, QuoteRow>>;

/** The book with `quotes` applied in order; a quote older than the row's is ignored. */
export function applyQuotes(book: QuoteBook, quotes: readonly Quote[]): QuoteBook {
  if (quotes.length === 0) return book;
  const next: Record<string, QuoteRow> = { ...book };
  for (const quote of quotes) {
    const held = next[quote.symbol];
    if (held && held.sequence >= quote.sequence && quote.sequence !== 0n) continue;
    // A quote before any trade has last 0: keep the last price we had, else use the mid.
    const mid = quote.bid > 0 && quote.ask > 0 ? (quote.bid + quote.ask) / 2 : 0;
    const last = quote.last > 0 ? quote.last : (held?.last ?? mid);
    next[quote.symbol] = {
      symbol: quote.symbol,
      bid: quote.bid,
      ask: quote.ask,
      last,
      reference: held?.reference || last,
      tick: held === undefined || last === held.last ? (held?.tick ?? 0) : last > held.last ? 1 : -1,
      sequence: quote.sequence,
    };
  }
  return next;
}

/** What a watchlist's change is measured from, as a broker's is: the previous close. */
export interface ChangeBasis {
  price: number;
  /** Read in "Change since …". */
  since: string;
}

/**
 * The basis in a symbol's latest daily bars (oldest first, the day in progress last):
 * the close of the day before the latest, or the latest day's open when there is no
 * earlier day (a new stack); none without bars.
 */
export function changeBasis(dailyBars: readonly { open: number; close: number }[]): ChangeBasis | undefined {
  const count = dailyBars.length;
  if (count >= 2) return { price: dailyBars[count - 2].close, since: "the previous close" };
  if (count === 1 && dailyBars[0].open > 0) return { price: dailyBars[0].open, since: "the day's open" };
  return undefined;
}

/** Change of the last price since `basis` (else the first price this page saw), absolute and as a fraction. */
export function change(row: QuoteRow, basis?: ChangeBasis): { amount: number; fraction: number } {
  const reference = basis?.price || row.reference;
  if (!reference) return { amount: 0, fraction: 0 };
  const amount = row.last - reference;
  return { amount, fraction: amount / reference };
}

export const DEFAULT_WATCHLIST = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM"];

/** Symbols as typed ("aapl, msft") made into the API's upper-case list without repeats. */
export function parseSymbols(text: string): string[] {
  const seen = new Set<string>();
  for (const part of text.split(/[\s,]+/)) {
    const symbol = part.trim().toUpperCase();
    if (/^[A-Z][A-Z0-9.]{0,14}$/.test(symbol)) seen.add(symbol);
  }
  return [...seen];
}
