// Open orders (cancel, or replace quantity and prices) and the order history; both follow
// StreamOrderUpdates, so a fill or a cancel shows without a reload.
import { createSignal, For, Show } from "solid-js";
import { useApp } from "../context";
import { OrderType, type Order } from "../gen/cift/execution/v1/orders_pb";
import { formatMoney, formatQty, formatTime } from "../lib/format";
import { serverError } from "../lib/errors";
import { SIDE_LABELS, STATUS_LABELS, TIF_LABELS, TYPE_LABELS } from "../lib/labels";
import { closedOrders, openOrders } from "../lib/orders";
import { timestampDate } from "@bufbuild/protobuf/wkt";

function priceOf(order: Order): string {
  const parts: string[] = [];
  if (order.limitPrice) parts.push(`limit ${formatMoney(order.limitPrice)}`);
  if (order.stopPrice) parts.push(`stop ${formatMoney(order.stopPrice)}`);
  if (order.trailPrice) parts.push(`trail ${formatMoney(order.trailPrice)}`);
  if (order.trailPercent) parts.push(`trail ${order.trailPercent}%`);
  return parts.join(", ") || "market";
}

function sizeOf(order: Order): string {
  return order.qty ? formatQty(order.qty) : `${formatMoney(order.notional)} notional`;
}

function ReplaceForm(props: { order: Order; onDone: () => void }) {
  const { api, trading } = useApp();
  const [qty, setQty] = createSignal(props.order.qty);
  const [limit, setLimit] = createSignal(props.order.limitPrice);
  const [stop, setStop] = createSignal(props.order.stopPrice);
  const [error, setError] = createSignal("");
  const hasLimit = () => props.order.type === OrderType.LIMIT || props.order.type === OrderType.STOP_LIMIT;
  const hasStop = () => props.order.type === OrderType.STOP || props.order.type === OrderType.STOP_LIMIT;
  return (
    <form
      class="flex flex-wrap items-end gap-2 py-2"
      onSubmit={async (event) => {
        event.preventDefault();
        setError("");
        try {
          const response = await api.execution.replaceOrder({
            orderId: props.order.id,
            qty: qty() !== props.order.qty ? qty() : undefined,
            limitPrice: hasLimit() && limit() !== props.order.limitPrice ? limit() : undefined,
            stopPrice: hasStop() && stop() !== props.order.stopPrice ? stop() : undefined,
          });
          if (response.order) trading.upsert(response.order);
          props.onDone();
        } catch (failure) {
          setError(serverError(failure).message);
        }
      }}
    >
      <label class="text-xs">
        New qty
        <input class="field mt-1 w-24" inputmode="decimal" value={qty()} onInput={(e) => setQty(e.currentTarget.value)} />
      </label>
      <Show when={hasLimit()}>
        <label class="text-xs">
          New limit price
          <input class="field mt-1 w-28" inputmode="decimal" value={limit()} onInput={(e) => setLimit(e.currentTarget.value)} />
        </label>
      </Show>
      <Show when={hasStop()}>
        <label class="text-xs">
          New stop price
          <input class="field mt-1 w-28" inputmode="decimal" value={stop()} onInput={(e) => setStop(e.currentTarget.value)} />
        </label>
      </Show>
      <button class="btn-primary" type="submit">Replace order</button>
      <button class="btn-ghost" type="button" onClick={() => props.onDone()}>Keep</button>
      <Show when={error()}>
        <p role="alert" class="field-error w-full">{error()}</p>
      </Show>
    </form>
  );
}

function OpenOrderRow(props: { order: Order }) {
  const { api, trading } = useApp();
  const [replacing, setReplacing] = createSignal(false);
  const [error, setError] = createSignal("");
  const order = () => props.order;
  return (
    <>
      <tr class="border-t border-slate-100 dark:border-slate-800" data-order-id={order().id}>
        <td class="py-1 font-medium">{order().symbol}</td>
        <td>{SIDE_LABELS[order().side]}</td>
        <td>{TYPE_LABELS[order().type]}</td>
        <td class="num">{sizeOf(order())}</td>
        <td class="num">{formatQty(order().filledQty)}</td>
        <td>{priceOf(order())}</td>
        <td>{TIF_LABELS[order().timeInForce]}</td>
        <td data-testid="order-status">{STATUS_LABELS[order().status]}</td>
        <td class="space-x-1 text-right whitespace-nowrap">
          <button class="btn-ghost px-2 py-0.5 text-xs" onClick={() => setReplacing(!replacing())}>
            Replace
          </button>
          <button
            class="btn-ghost px-2 py-0.5 text-xs"
            onClick={async () => {
              setError("");
              try {
                const response = await api.execution.cancelOrder({ orderId: order().id });
                if (response.order) trading.upsert(response.order);
              } catch (failure) {
                setError(serverError(failure).message);
              }
            }}
          >
            Cancel
          </button>
        </td>
      </tr>
      <Show when={replacing() || error()}>
        <tr>
          <td colspan="9">
            <Show when={error()}>
              <p role="alert" class="field-error">{error()}</p>
            </Show>
            <Show when={replacing()}>
              <ReplaceForm order={order()} onDone={() => setReplacing(false)} />
            </Show>
          </td>
        </tr>
      </Show>
    </>
  );
}

export function OpenOrders(props: { symbol?: string }) {
  const { trading } = useApp();
  const shown = () => openOrders(trading.orders()).filter((order) => !props.symbol || order.symbol === props.symbol);
  return (
    <section class="panel" aria-label="Open orders">
      <h2 class="panel-title">Open orders</h2>
      <Show when={shown().length > 0} fallback={<p class="text-sm text-slate-500">No open orders.</p>}>
        <div class="overflow-x-auto">
          <table class="w-full text-sm">
            <thead class="text-left text-xs text-slate-500">
              <tr>
                <th>Symbol</th>
                <th>Side</th>
                <th>Type</th>
                <th class="num">Qty</th>
                <th class="num">Filled</th>
                <th>Price</th>
                <th>TIF</th>
                <th>Status</th>
                <th />
              </tr>
            </thead>
            <tbody>
              <For each={shown()}>{(order) => <OpenOrderRow order={order} />}</For>
            </tbody>
          </table>
        </div>
      </Show>
    </section>
  );
}

export function OrderHistory() {
  const { trading } = useApp();
  return (
    <section class="panel" aria-label="Order history">
      <h2 class="panel-title">Order history</h2>
      <Show when={closedOrders(trading.orders()).length > 0} fallback={<p class="text-sm text-slate-500">No orders yet.</p>}>
        <div class="overflow-x-auto">
          <table class="w-full text-sm">
            <thead class="text-left text-xs text-slate-500">
              <tr>
                <th>Time</th>
                <th>Symbol</th>
                <th>Side</th>
                <th>Type</th>
                <th class="num">Qty</th>
                <th class="num">Filled at</th>
                <th>Status</th>
              </tr>
            </thead>
            <tbody>
              <For each={closedOrders(trading.orders())}>
                {(order) => (
                  <tr class="border-t border-slate-100 dark:border-slate-800" data-order-id={order.id}>
                    <td class="py-1 whitespace-nowrap">{formatTime(order.updatedAt ? timestampDate(order.updatedAt) : undefined)}</td>
                    <td class="font-medium">{order.symbol}</td>
                    <td>{SIDE_LABELS[order.side]}</td>
                    <td>{TYPE_LABELS[order.type]}</td>
                    <td class="num">{formatQty(order.filledQty)} / {sizeOf(order)}</td>
                    <td class="num">{formatMoney(order.filledAvgPrice)}</td>
                    <td data-testid="order-status" title={order.rejectReason}>{STATUS_LABELS[order.status]}</td>
                  </tr>
                )}
              </For>
            </tbody>
          </table>
        </div>
      </Show>
    </section>
  );
}
