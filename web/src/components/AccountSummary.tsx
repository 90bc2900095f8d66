// Cash, equity, buying power and the day's profit and loss of the trader's account.
import { Show } from "solid-js";
import { useApp } from "../context";
import { formatMoney, formatSignedMoney, pnlClass } from "../lib/format";

export function AccountSummary() {
  const { trading } = useApp();
  const currency = () => trading.account()?.currency || "USD";
  const item = (label: string, value: () => string, testId: string, signed = false) => (
    <div>
      <dt class="text-xs text-slate-500">{label}</dt>
      <dd class={`text-lg font-semibold tabular-nums ${signed ? pnlClass(value()) : ""}`} data-testid={testId}>
        {signed ? formatSignedMoney(value(), currency()) : formatMoney(value(), currency())}
      </dd>
    </div>
  );
  return (
    <section class="panel" aria-label="Account">
      <h2 class="panel-title">Account</h2>
      <Show when={trading.account()} fallback={<p class="text-sm text-slate-500">Loading…</p>}>
        {(account) => (
          <dl class="grid grid-cols-2 gap-3 sm:grid-cols-4">
            {item("Cash", () => account().cash, "cash")}
            {item("Equity", () => account().equity, "equity")}
            {item("Buying power", () => account().buyingPower, "buying-power")}
            {item("Day P&L", () => account().dayPl, "day-pl", true)}
          </dl>
        )}
      </Show>
    </section>
  );
}
