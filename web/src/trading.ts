// Everything the signed-in dashboard shows, kept live: quotes of the watchlist and of
// held symbols (StreamQuotes), the trader's orders (ListOrders, then StreamOrderUpdates),
// positions and the account (re-read after every fill and every few seconds, since the
// account's equity moves with prices). Created once per sign-in, disposed at sign-out.
import { createEffect, createMemo, createSignal, on, onCleanup } from "solid-js";
import type { Account, Position } from "./gen/cift/execution/v1/execution_pb";
import type { Order } from "./gen/cift/execution/v1/orders_pb";
import type { Clients } from "./lib/api";
import { upsertOrder } from "./lib/orders";
import { applyQuotes, DEFAULT_WATCHLIST, type QuoteBook } from "./lib/quotes";
import type { Session } from "./lib/session";
import { keepStreaming, type StreamState } from "./lib/streams";

const WATCHLIST_KEY = "cift.watchlist";
const ACCOUNT_POLL_MS = 5_000;

function storedWatchlist(): string[] {
  try {
    const value = JSON.parse(localStorage.getItem(WATCHLIST_KEY) ?? "null") as unknown;
    if (Array.isArray(value) && value.every((item) => typeof item === "string") && value.length > 0) {
      return value as string[];
    }
  } catch {
    // Fall back to the default list.
  }
  return DEFAULT_WATCHLIST;
}

export function createTrading(api: Clients, session: Session) {
  const [watchlist, setWatchlistSignal] = createSignal<string[]>(storedWatchlist());
  const [quotes, setQuotes] = createSignal<QuoteBook>({});
  const [quoteStream, setQuoteStream] = createSignal<StreamState>("connecting");
  const [orders, setOrders] = createSignal<Order[]>([]);
  const [orderStream, setOrderStream] = createSignal<StreamState>("connecting");
  const [positions, setPositions] = createSignal<Position[]>([]);
  const [account, setAccount] = createSignal<Account | undefined>();
  const [loadError, setLoadError] = createSignal<string>("");

  function setWatchlist(symbols: string[]): void {
    localStorage.setItem(WATCHLIST_KEY, JSON.stringify(symbols));
    setWatchlistSignal(symbols);
  }

  async function refreshAccount(): Promise<void> {
    try {
      const [accountResponse, positionsResponse] = await Promise.all([
        api.execution.getAccount({}),
        api.execution.listPositions({}),
      ]);
      setAccount(accountResponse.account);
      setPositions(positionsResponse.positions);
      setLoadError("");
    } catch (error) {
      setLoadError(error instanceof Error ? error.message : String(error));
    }
  }

  async function loadOrders(): Promise<void> {
    const [open, closed] = await Promise.all([
      api.execution.listOrders({ status: "open", pageSize: 200 }),
      api.execution.listOrders({ status: "closed", pageSize: 100 }),
    ]);
    let next = orders();
    for (const order of [...open.orders, ...closed.orders]) next = upsertOrder(next, order);
    setOrders(next);
  }

  // Quotes of the watchlist and of every held symbol, on one stream; a new symbol set
  // reopens it.
  const streamed = createMemo(
    () => [...new Set([...watchlist(), ...positions().map((position) => position.symbol)])].sort(),
    [],
    { equals: (a, b) => a.join(",") === b.join(",") },
  );
  createEffect(
    on(streamed, (symbols) => {
      if (symbols.length === 0) return;
      // Latest quotes first, so the rows fill at once, not at each symbol's next tick.
      api.marketdata
        .getLatestQuotes({ symbols })
        .then((response) => setQuotes((book) => applyQuotes(book, Object.values(response.quotes))))
        .catch(() => undefined);
      let resumeAfter = 0n;
      const stop = keepStreaming({
        open: (signal) =>
          api.marketdata.streamQuotes({ symbols, resumeAfterSequence: resumeAfter }, { signal }),
        onMessage: (batch) => {
          resumeAfter = batch.lastSequence;
          setQuotes((book) => applyQuotes(book, batch.quotes));
        },
        onState: setQuoteStream,
        onUnauthenticated: session.refreshNow,
      });
      onCleanup(stop);
    }),
  );

  // Order events: each carries the whole order as it is after the event.
  let lastSequence = 0n;
  const stopOrders = keepStreaming({
    open: (signal) => api.execution.streamOrderUpdates({ resumeAfterSequence: lastSequence }, { signal }),
    onMessage: (response) => {
      const event = response.event;
      if (!event?.order) return;
      lastSequence = event.sequence;
      setOrders((held) => upsertOrder(held, event.order!));
      // Fills move positions and cash; acceptances, cancels and replaces move the
      // reserved buying power.
      void refreshAccount();
    },
    onState: setOrderStream,
    onUnauthenticated: session.refreshNow,
  });
  onCleanup(stopOrders);

  void refreshAccount();
  void loadOrders().catch((error) => setLoadError(error instanceof Error ? error.message : String(error)));
  const poll = setInterval(() => void refreshAccount(), ACCOUNT_POLL_MS);
  onCleanup(() => clearInterval(poll));

  return {
    watchlist,
    setWatchlist,
    quotes,
    quoteStream,
    orders,
    setOrders,
    orderStream,
    positions,
    account,
    loadError,
    refreshAccount,
    upsert: (order: Order) => setOrders((held) => upsertOrder(held, order)),
  };
}

export type Trading = ReturnType<typeof createTrading>;
