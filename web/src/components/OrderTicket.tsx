// The order ticket: side, type, size by quantity or notional, the prices the type needs,
// time in force, and the order class with its exits (a take-profit limit; a stop-loss as
// a stop, stop-limit or trailing stop). The server validates; its message appears under
// the field it is about.
import { createSignal, For, type JSX, Show } from "solid-js";
import { useApp } from "../context";
import { OrderClass, OrderSide, OrderType, TimeInForce } from "../gen/cift/execution/v1/orders_pb";
import { fieldOfError, serverError, type TicketField } from "../lib/errors";
import { CLASS_LABELS, SIDE_LABELS, STATUS_LABELS, TIF_LABELS, TYPE_LABELS } from "../lib/labels";
import { exitRequest, hasExits, type StopLossKind } from "../lib/orderClasses";

const TYPES = [OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP];
const CLASSES = [OrderClass.SIMPLE, OrderClass.BRACKET, OrderClass.OCO, OrderClass.OTO];
const STOP_LOSS_KINDS: [StopLossKind, string][] = [
  ["stop", "Stop"],
  ["stop_limit", "Stop limit"],
  ["trail_price", "Trailing ($)"],
  ["trail_percent", "Trailing (%)"],
];
const TIFS = [TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.OPG, TimeInForce.CLS];

export function OrderTicket(props: { symbol: string }) {
  const { api, trading } = useApp();
  const [side, setSide] = createSignal(OrderSide.BUY);
  const [type, setType] = createSignal(OrderType.MARKET);
  const [sizedBy, setSizedBy] = createSignal<"qty" | "notional">("qty");
  const [qty, setQty] = createSignal("");
  const [notional, setNotional] = createSignal("");
  const [limitPrice, setLimitPrice] = createSignal("");
  const [stopPrice, setStopPrice] = createSignal("");
  const [trailBy, setTrailBy] = createSignal<"price" | "percent">("percent");
  const [trail, setTrail] = createSignal("");
  const [tif, setTif] = createSignal(TimeInForce.DAY);
  const [orderClass, setOrderClass] = createSignal(OrderClass.SIMPLE);
  const [takeProfit, setTakeProfit] = createSignal("");
  const [stopLossKind, setStopLossKind] = createSignal<StopLossKind>("stop");
  const [stopLossStop, setStopLossStop] = createSignal("");
  const [stopLossLimit, setStopLossLimit] = createSignal("");
  const [stopLossTrail, setStopLossTrail] = createSignal("");
  const [errors, setErrors] = createSignal<Partial<Record<TicketField | "stop_loss_kind" | "form", string>>>({});
  const [result, setResult] = createSignal("");
  const [busy, setBusy] = createSignal(false);

  const needsLimit = () => type() === OrderType.LIMIT || type() === OrderType.STOP_LIMIT;
  const needsStop = () => type() === OrderType.STOP || type() === OrderType.STOP_LIMIT;
  const trailing = () => type() === OrderType.TRAILING_STOP;

  async function submit(): Promise<void> {
    setErrors({});
    setResult("");
    setBusy(true);
    try {
      const response = await api.execution.submitOrder({
        symbol: props.symbol,
        side: side(),
        type: type(),
        timeInForce: tif(),
        qty: sizedBy() === "qty" ? qty().trim() : "",
        notional: sizedBy() === "notional" ? notional().trim() : "",
        limitPrice: needsLimit() ? limitPrice().trim() : "",
        stopPrice: needsStop() ? stopPrice().trim() : "",
        trailPrice: trailing() && trailBy() === "price" ? trail().trim() : "",
        trailPercent: trailing() && trailBy() === "percent" ? trail().trim() : "",
        ...exitRequest({
          orderClass: orderClass(),
          takeProfitLimit: takeProfit(),
          stopLossKind: stopLossKind(),
          stopLossStop: stopLossStop(),
          stopLossLimit: stopLossLimit(),
          stopLossTrail: stopLossTrail(),
        }),
      });
      const order = response.order;
      if (order) {
        trading.upsert(order);
        const legs = order.legs.length > 0 ? ` with ${order.legs.length} exit leg${order.legs.length > 1 ? "s" : ""}` : "";
        setResult(`${SIDE_LABELS[order.side]} ${order.qty || order.notional} ${order.symbol}${legs}: ${STATUS_LABELS[order.status]}`);
      }
    } catch (failure) {
      const error = serverError(failure);
      let field = fieldOfError(error, sizedBy());
      if (field === "trail_price" || field === "trail_percent") field = trailBy() === "price" ? "trail_price" : "trail_percent";
      setErrors({ [field ?? "form"]: error.message });
    } finally {
      setBusy(false);
    }
  }

  const errorFor = (field: TicketField | "stop_loss_kind" | "form") => (
    <Show when={errors()[field]}>
      <p role="alert" class="field-error" data-error-for={field}>
        {errors()[field]}
      </p>
    </Show>
  );

  // The label names its control by id (a wrapping label would add a select's value to
  // the control's accessible name); the server's message follows the control.
  const labelled = (label: string, field: TicketField | "stop_loss_kind", input: (id: string) => JSX.Element) => {
    const id = `ticket-${field}`;
    return (
      <div>
        <label class="block text-xs" for={id}>
          {label}
        </label>
        {input(id)}
        {errorFor(field)}
      </div>
    );
  };

  return (
    <section class="panel" aria-label="Order ticket">
      <h2 class="panel-title">Order ticket · {props.symbol}</h2>
      <form
        class="space-y-2"
        onSubmit={(event) => {
          event.preventDefault();
          void submit();
        }}
      >
        <div role="radiogroup" aria-label="Side" class="grid grid-cols-2 gap-1">
          <For each={[OrderSide.BUY, OrderSide.SELL]}>
            {(value) => (
              <button
                type="button"
                role="radio"
                aria-checked={side() === value}
                class={`btn ${side() === value ? (value === OrderSide.BUY ? "bg-emerald-600 text-white" : "bg-rose-600 text-white") : "btn-ghost"}`}
                onClick={() => setSide(value)}
              >
                {SIDE_LABELS[value]}
              </button>
            )}
          </For>
        </div>
        {errorFor("side")}
        {labelled(
          "Order class",
          "order_class",
          (id) => <select id={id} class="field mt-1" value={orderClass()} onChange={(e) => setOrderClass(Number(e.currentTarget.value) as OrderClass)}>
            <For each={CLASSES}>{(value) => <option value={value}>{CLASS_LABELS[value]}</option>}</For>
          </select>,
        )}
        {labelled(
          "Order type",
          "type",
          (id) => <select id={id} class="field mt-1" value={type()} onChange={(e) => setType(Number(e.currentTarget.value) as OrderType)}>
            <For each={TYPES}>{(value) => <option value={value}>{TYPE_LABELS[value]}</option>}</For>
          </select>,
        )}
        <div class="flex gap-3 text-xs">
          <label class="flex items-center gap-1">
            <input type="radio" name="sized-by" checked={sizedBy() === "qty"} onChange={() => setSizedBy("qty")} /> Shares
          </label>
          <label class="flex items-center gap-1">
            <input type="radio" name="sized-by" checked={sizedBy() === "notional"} onChange={() => setSizedBy("notional")} /> Dollars
          </label>
        </div>
        <Show
          when={sizedBy() === "qty"}
          fallback={labelled("Notional", "notional", (id) => <input id={id} class="field mt-1" inputmode="decimal" value={notional()} onInput={(e) => setNotional(e.currentTarget.value)} />)}
        >
          {labelled("Quantity", "qty", (id) => <input id={id} class="field mt-1" inputmode="decimal" value={qty()} onInput={(e) => setQty(e.currentTarget.value)} />)}
        </Show>
        <Show when={needsLimit()}>
          {labelled("Limit price", "limit_price", (id) => <input id={id} class="field mt-1" inputmode="decimal" value={limitPrice()} onInput={(e) => setLimitPrice(e.currentTarget.value)} />)}
        </Show>
        <Show when={needsStop()}>
          {labelled("Stop price", "stop_price", (id) => <input id={id} class="field mt-1" inputmode="decimal" value={stopPrice()} onInput={(e) => setStopPrice(e.currentTarget.value)} />)}
        </Show>
        <Show when={trailing()}>
          <div class="flex gap-3 text-xs">
            <label class="flex items-center gap-1">
              <input type="radio" name="trail-by" checked={trailBy() === "percent"} onChange={() => setTrailBy("percent")} /> Trail %
            </label>
            <label class="flex items-center gap-1">
              <input type="radio" name="trail-by" checked={trailBy() === "price"} onChange={() => setTrailBy("price")} /> Trail $
            </label>
          </div>
          {labelled(
            trailBy() === "percent" ? "Trail percent" : "Trail price",
            trailBy() === "percent" ? "trail_percent" : "trail_price",
            (id) => <input id={id} class="field mt-1" inputmode="decimal" value={trail()} onInput={(e) => setTrail(e.currentTarget.value)} />,
          )}
        </Show>
        <Show when={hasExits(orderClass())}>
          <fieldset class="space-y-2 rounded border border-slate-200 p-2 dark:border-slate-700" aria-label="Exits">
            <legend class="px-1 text-xs text-slate-500">
              {orderClass() === OrderClass.OTO ? "Exit (fill in one)" : "Exits"}
            </legend>
            {labelled("Take-profit limit price", "take_profit.limit_price", (id) => <input id={id} class="field mt-1" inputmode="decimal" value={takeProfit()} onInput={(e) => setTakeProfit(e.currentTarget.value)} />)}
            {labelled(
              "Stop-loss type",
              "stop_loss_kind",
              (id) => <select id={id} class="field mt-1" value={stopLossKind()} onChange={(e) => setStopLossKind(e.currentTarget.value as StopLossKind)}>
                <For each={STOP_LOSS_KINDS}>{([value, label]) => <option value={value}>{label}</option>}</For>
              </select>,
            )}
            <Show when={stopLossKind() === "stop" || stopLossKind() === "stop_limit"}>
              {labelled("Stop-loss stop price", "stop_loss.stop_price", (id) => <input id={id} class="field mt-1" inputmode="decimal" value={stopLossStop()} onInput={(e) => setStopLossStop(e.currentTarget.value)} />)}
            </Show>
            <Show when={stopLossKind() === "stop_limit"}>
              {labelled("Stop-loss limit price", "stop_loss.limit_price", (id) => <input id={id} class="field mt-1" inputmode="decimal" value={stopLossLimit()} onInput={(e) => setStopLossLimit(e.currentTarget.value)} />)}
            </Show>
            <Show when={stopLossKind() === "trail_price"}>
              {labelled("Stop-loss trail price", "stop_loss.trail_price", (id) => <input id={id} class="field mt-1" inputmode="decimal" value={stopLossTrail()} onInput={(e) => setStopLossTrail(e.currentTarget.value)} />)}
            </Show>
            <Show when={stopLossKind() === "trail_percent"}>
              {labelled("Stop-loss trail percent", "stop_loss.trail_percent", (id) => <input id={id} class="field mt-1" inputmode="decimal" value={stopLossTrail()} onInput={(e) => setStopLossTrail(e.currentTarget.value)} />)}
            </Show>
          </fieldset>
        </Show>
        {labelled(
          "Time in force",
          "time_in_force",
          (id) => <select id={id} class="field mt-1" value={tif()} onChange={(e) => setTif(Number(e.currentTarget.value) as TimeInForce)}>
            <For each={TIFS}>{(value) => <option value={value}>{TIF_LABELS[value]}</option>}</For>
          </select>,
        )}
        {errorFor("symbol")}
        {errorFor("form")}
        <button type="submit" class="btn-primary w-full" disabled={busy()}>
          Submit order
        </button>
        <Show when={result()}>
          <p class="text-xs text-slate-500" role="status" data-testid="order-result">{result()}</p>
        </Show>
      </form>
    </section>
  );
}
