// Open positions, revalued at every quote: market value and unrealized P&L move live.
import { A } from "@solidjs/router";
import { For, Show } from "solid-js";
import { useApp } from "../context";
import { formatMoney, formatPercent, formatQty, formatSignedMoney, pnlClass } from "../lib/format";
import { livePnl } from "../lib/pnl";

export function Positions() {
  const { trading } = useApp();
  return (
    <section class="panel" aria-label="Positions">
      <h2 class="panel-title">Positions</h2>
      <Show when={trading.positions().length > 0} fallback={<p class="text-sm text-slate-500">No open positions.</p>}>
        <div class="overflow-x-auto">
          <table class="w-full text-sm">
            <thead class="text-xs text-slate-500">
              <tr>
                <th class="text-left">Symbol</th>
                <th class="num">Qty</th>
                <th class="num">Avg entry</th>
                <th class="num">Price</th>
                <th class="num">Market value</th>
                <th class="num">Unrealized P&L</th>
              </tr>
            </thead>
            <tbody>
              <For each={trading.positions()}>
                {(position) => {
                  const live = () => livePnl(position, trading.quotes()[position.symbol]?.last);
                  return (
                    <tr class="border-t border-slate-100 dark:border-slate-800" data-position={position.symbol}>
                      <td class="py-1">
                        <A class="font-medium text-teal-700 hover:underline dark:text-teal-400" href={`/symbol/${encodeURIComponent(position.symbol)}`}>
                          {position.symbol}
                        </A>
                      </td>
                      <td class="num" data-testid="position-qty">{formatQty(position.qty)}</td>
                      <td class="num">{formatMoney(position.avgEntryPrice)}</td>
                      <td class="num">{formatMoney(live().price)}</td>
                      <td class="num">{formatMoney(live().marketValue)}</td>
                      <td class={`num ${pnlClass(live().unrealizedPl)}`} data-testid="unrealized-pl">
                        {formatSignedMoney(live().unrealizedPl)} <span class="text-xs">({formatPercent(live().unrealizedPlpc)})</span>
                      </td>
                    </tr>
                  );
                }}
              </For>
            </tbody>
          </table>
        </div>
      </Show>
    </section>
  );
}
