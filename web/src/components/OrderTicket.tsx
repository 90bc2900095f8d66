// The order ticket: side, type, size by quantity or notional, the prices the type needs,
// time in force. The server validates; its message appears under the field it is about.
import { createSignal, For, type JSX, Show } from "solid-js";
import { useApp } from "../context";
import { OrderSide, OrderType, TimeInForce } from "../gen/cift/execution/v1/orders_pb";
import { fieldOfError, serverError, type TicketField } from "../lib/errors";
import { SIDE_LABELS, STATUS_LABELS, TIF_LABELS, TYPE_LABELS } from "../lib/labels";

const TYPES = [OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP];
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
  const [errors, setErrors] = createSignal<Partial<Record<TicketField | "form", string>>>({});
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
      });
      const order = response.order;
      if (order) {
        trading.upsert(order);
        setResult(`${SIDE_LABELS[order.side]} ${order.qty || order.notional} ${order.symbol}: ${STATUS_LABELS[order.status]}`);
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

  const errorFor = (field: TicketField | "form") => (
    <Show when={errors()[field]}>
      <p role="alert" class="field-error" data-error-for={field}>
        {errors()[field]}
      </p>
    </Show>
  );

  // The label names its control by id (a wrapping label would add a select's value to
  // the control's accessible name); the server's message follows the control.
  const labelled = (label: string, field: TicketField, input: (id: string) => JSX.Element) => {
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
