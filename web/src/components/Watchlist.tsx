// Live bid, ask, last and change of the watched symbols; each row opens the symbol's page.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { A, useNavigate } from "@solidjs/router";
import { createResource, createSignal, For, onCleanup, Show } from "solid-js";
import { useApp } from "../context";
import { historyStartMs } from "../lib/chartdata";
import { formatPercent, formatPrice, pnlClass } from "../lib/format";
import { type ChangeBasis, change, changeBasis, parseSymbols } from "../lib/quotes";

// The previous close changes once a day: read again this often, for a page left open,
// and every minute while a symbol has none yet (a new stack's first daily bar).
const BASIS_REFRESH_MS = 15 * 60_000;
const BASIS_RETRY_MS = 60_000;

export function Watchlist() {
  const { api, trading } = useApp();
  const [adding, setAdding] = createSignal("");
  const navigate = useNavigate();
  // Each watched symbol's daily bars of the last week give its change basis; a symbol
  // whose bars cannot be read keeps the first price this page saw.
  const [bases, { refetch }] = createResource(trading.watchlist, async (symbols) => {
    const start = timestampFromMs(historyStartMs("1Day", Date.now(), 7));
    const found = await Promise.all(
      symbols.map(async (symbol): Promise<[string, ChangeBasis | undefined]> => {
        try {
          const { bars } = await api.marketdata.getBars({ symbol, timeframe: "1Day", start, pageSize: 10 });
          return [symbol, changeBasis(bars)];
        } catch {
          return [symbol, undefined];
        }
      }),
    );
    return Object.fromEntries(found) as Record<string, ChangeBasis | undefined>;
  });
  let readAt = Date.now();
  const refresh = setInterval(() => {
    const known = bases.latest ?? {};
    const missing = trading.watchlist().some((symbol) => !known[symbol]);
    if (missing || Date.now() - readAt >= BASIS_REFRESH_MS) {
      readAt = Date.now();
      void refetch();
    }
  }, BASIS_RETRY_MS);
  onCleanup(() => clearInterval(refresh));

  return (
    <section class="panel" aria-label="Watchlist">
      <div class="flex items-center justify-between">
        <h2 class="panel-title">Watchlist</h2>
        <span class="text-xs text-slate-500" data-testid="quote-stream">{trading.quoteStream()}</span>
      </div>
      <div class="overflow-x-auto">
        <table class="w-full text-sm">
          <thead class="text-xs text-slate-500">
            <tr>
              <th class="text-left">Symbol</th>
              <th class="num">Bid</th>
              <th class="num">Ask</th>
              <th class="num">Last</th>
              <th class="num">Chg</th>
              <th />
            </tr>
          </thead>
          <tbody>
            <For each={trading.watchlist()}>
              {(symbol) => {
                const row = () => trading.quotes()[symbol];
                const basis = () => bases.latest?.[symbol];
                const moved = () => (row() ? change(row()!, basis()) : undefined);
                const page = `/symbol/${encodeURIComponent(symbol)}`;
                return (
                  <tr
                    class="cursor-pointer border-t border-slate-100 hover:bg-slate-50 dark:border-slate-800 dark:hover:bg-slate-800/60"
                    data-symbol={symbol}
                    // The whole row opens the symbol, as in a broker's watchlist; the link stays
                    // for the keyboard, and the remove button does only its own job.
                    onClick={(event) => {
                      if (!(event.target as HTMLElement).closest("a, button")) navigate(page);
                    }}
                  >
                    <td class="py-1">
                      <A class="font-medium text-teal-700 hover:underline dark:text-teal-400" href={page}>
                        {symbol}
                      </A>
                    </td>
                    <td class="num" data-testid="bid">{formatPrice(row()?.bid)}</td>
                    <td class="num" data-testid="ask">{formatPrice(row()?.ask)}</td>
                    <td class={`num ${row()?.tick === 1 ? "text-emerald-600 dark:text-emerald-400" : row()?.tick === -1 ? "text-rose-600 dark:text-rose-400" : ""}`} data-testid="last">
                      {formatPrice(row()?.last)}
                    </td>
                    <td class={`num ${pnlClass(moved()?.amount ?? 0)}`} title={`Change since ${basis()?.since ?? "this page opened"}`} data-testid="change">
                      <Show when={moved()} fallback="—">
                        {(value) => formatPercent(value().fraction)}
                      </Show>
                    </td>
                    <td class="text-right">
                      <button
                        class="text-xs text-slate-400 hover:text-rose-500"
                        aria-label={`Remove ${symbol}`}
                        onClick={() => trading.setWatchlist(trading.watchlist().filter((item) => item !== symbol))}
                      >
                        ✕
                      </button>
                    </td>
                  </tr>
                );
              }}
            </For>
          </tbody>
        </table>
      </div>
      <form
        class="mt-2 flex gap-2"
        onSubmit={(event) => {
          event.preventDefault();
          const added = parseSymbols(adding()).filter((symbol) => !trading.watchlist().includes(symbol));
          if (added.length > 0) trading.setWatchlist([...trading.watchlist(), ...added]);
          setAdding("");
        }}
      >
        <input class="field" aria-label="Add symbols" placeholder="Add symbol, e.g. IBM" value={adding()} onInput={(e) => setAdding(e.currentTarget.value)} />
        <button class="btn-ghost" type="submit">Add</button>
      </form>
    </section>
  );
}
