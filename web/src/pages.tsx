// The dashboard's pages, each a grid of panels that stacks to one column on a phone.
import { useParams } from "@solidjs/router";
import { Show } from "solid-js";
import { AccountSummary } from "./components/AccountSummary";
import { OpenOrders, OrderHistory } from "./components/Orders";
import { OrderTicket } from "./components/OrderTicket";
import { PortfolioChart } from "./components/PortfolioChart";
import { Positions } from "./components/Positions";
import { PriceChart } from "./components/PriceChart";
import { Watchlist } from "./components/Watchlist";
import { useApp } from "./context";
import { formatPrice } from "./lib/format";

export function DashboardPage() {
  return (
    <div class="grid grid-cols-1 gap-3 lg:grid-cols-3">
      <div class="min-w-0 space-y-3 lg:col-span-2">
        <AccountSummary />
        <Positions />
        <OpenOrders />
      </div>
      <Watchlist />
    </div>
  );
}

export function SymbolPage() {
  const params = useParams<{ symbol: string }>();
  const { trading } = useApp();
  const symbol = () => decodeURIComponent(params.symbol).toUpperCase();
  const quote = () => trading.quotes()[symbol()];
  return (
    <div class="space-y-3">
      <header class="flex flex-wrap items-baseline gap-x-4 gap-y-1">
        <h1 class="text-2xl font-semibold">{symbol()}</h1>
        <Show when={quote()}>
          {(row) => (
            <p class="text-sm tabular-nums text-slate-500" data-testid="symbol-quote">
              Bid {formatPrice(row().bid)} · Ask {formatPrice(row().ask)} · Last {formatPrice(row().last)}
            </p>
          )}
        </Show>
      </header>
      <div class="grid grid-cols-1 gap-3 lg:grid-cols-4">
        <div class="min-w-0 space-y-3 lg:col-span-3">
          <PriceChart symbol={symbol()} />
          <OpenOrders symbol={symbol()} />
        </div>
        <OrderTicket symbol={symbol()} />
      </div>
    </div>
  );
}

export function OrdersPage() {
  return (
    <div class="space-y-3">
      <OpenOrders />
      <OrderHistory />
    </div>
  );
}

export function PortfolioPage() {
  return (
    <div class="space-y-3">
      <AccountSummary />
      <PortfolioChart />
      <Positions />
    </div>
  );
}
