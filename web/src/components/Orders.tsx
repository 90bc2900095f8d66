// Open orders (cancel, or replace quantity and prices) and the order history; both follow
// StreamOrderUpdates, so a fill or a cancel shows without a reload. The exit legs of a
// bracket, OCO or OTO order are shown under their parent; canceling the parent cancels them.
import { createSignal, For, Show } from "solid-js";
import { useApp } from "../context";
import { OrderClass, OrderType, type Order } from "../gen/cift/execution/v1/orders_pb";
import { formatMoney, formatQty, formatTime } from "../lib/format";
import { serverError } from "../lib/errors";
import { CLASS_LABELS, SIDE_LABELS, STATUS_LABELS, TIF_LABELS, TYPE_LABELS } from "../lib/labels";
import { groupLegs, legRole } from "../lib/orderClasses";
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

/** The type column: a leg says which exit it is; a parent names its class. */
function kindOf(order: Order): string {
  if (order.parentOrderId) return `${legRole(order)} · ${TYPE_LABELS[order.type]}`;
  const grouped = order.orderClass !== OrderClass.UNSPECIFIED && order.orderClass !== OrderClass.SIMPLE;
  return grouped ? `${TYPE_LABELS[order.type]} · ${CLASS_LABELS[order.orderClass].split(" ")[0]}` : TYPE_LABELS[order.type];
}

/** The first cell: the symbol, or for a leg shown under its parent an arrow and the symbol. */
function symbolCell(order: Order, nested: boolean) {
  return nested ? <span class="pl-3 text-slate-500">↳ {order.symbol}</span> : order.symbol;
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

function OpenOrderRow(props: { order: Order; nested?: boolean }) {
  const { api, trading } = useApp();
  const [replacing, setReplacing] = createSignal(false);
  const [error, setError] = createSignal("");
  const order = () => props.order;
  return (
    <>
      <tr
        class="border-t border-slate-100 dark:border-slate-800"
        data-order-id={order().id}
        data-parent-order-id={order().parentOrderId || undefined}
      >
        <td class="py-1 font-medium whitespace-nowrap">{symbolCell(order(), props.nested ?? false)}</td>
        <td>{SIDE_LABELS[order().side]}</td>
        <td data-testid="order-kind">{kindOf(order())}</td>
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
              <For each={groupLegs(shown(), trading.orders())}>
                {(group) => (
                  <>
                    <OpenOrderRow order={group.order} />
                    <For each={group.legs}>{(leg) => <OpenOrderRow order={leg} nested />}</For>
                  </>
                )}
              </For>
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
              <For each={groupLegs(closedOrders(trading.orders()), trading.orders())}>
                {(group) => (
                  <>
                    <HistoryRow order={group.order} />
                    <For each={group.legs}>{(leg) => <HistoryRow order={leg} nested />}</For>
                  </>
                )}
              </For>
            </tbody>
          </table>
        </div>
      </Show>
    </section>
  );
}

function HistoryRow(props: { order: Order; nested?: boolean }) {
  const order = () => props.order;
  return (
    <tr
      class="border-t border-slate-100 dark:border-slate-800"
      data-order-id={order().id}
      data-parent-order-id={order().parentOrderId || undefined}
    >
      <td class="py-1 whitespace-nowrap">{formatTime(order().updatedAt ? timestampDate(order().updatedAt!) : undefined)}</td>
      <td class="font-medium whitespace-nowrap">{symbolCell(order(), props.nested ?? false)}</td>
      <td>{SIDE_LABELS[order().side]}</td>
      <td data-testid="order-kind">{kindOf(order())}</td>
      <td class="num">{formatQty(order().filledQty)} / {sizeOf(order())}</td>
      <td class="num">{formatMoney(order().filledAvgPrice)}</td>
      <td data-testid="order-status" title={order().rejectReason}>{STATUS_LABELS[order().status]}</td>
    </tr>
  );
}
