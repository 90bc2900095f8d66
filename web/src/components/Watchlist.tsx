// Live bid, ask, last and change of the watched symbols; each row opens the symbol's page.
import { A, useNavigate } from "@solidjs/router";
import { createSignal, For, Show } from "solid-js";
import { useApp } from "../context";
import { formatPercent, formatPrice, pnlClass } from "../lib/format";
import { change, parseSymbols } from "../lib/quotes";

export function Watchlist() {
  const { trading } = useApp();
  const [adding, setAdding] = createSignal("");
  const navigate = useNavigate();

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
                    <td class={`num ${pnlClass(row() ? change(row()!).amount : 0)}`} title="Change since this page opened">
                      <Show when={row()} fallback="—">
                        {formatPercent(change(row()!).fraction)}
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
