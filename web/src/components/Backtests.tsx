// The Backtests page: pick a built-in strategy and its parameters, a symbol, timeframe and
// range of stored bars, cash, commission and engine (and, for the event engine, the margin
// multiplier and the pre-trade risk limits its orders are checked against); run it (RunBacktest streams progress,
// then the result), cancel a running one; read the stats, the equity curve and the trades;
// open a past run. The server checks everything; its message appears by the field it names.
import { timestampDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { createEffect, createResource, createSignal, For, type JSX, on, onCleanup, Show } from "solid-js";
import { useApp } from "../context";
import { BacktestStatus, type Backtest, type Strategy } from "../gen/cift/backtest/v1/backtest_pb";
import {
  BACKTEST_STATUS_LABELS,
  backtestFieldOf,
  type BacktestField,
  dayOf,
  defaultParams,
  defaultStrategy,
  describeSpec,
  formatBarTime,
  formOf,
  ENGINES,
  formatPercentPoints,
  formProblem,
  type LimitName,
  RISK_LIMITS,
  isRunning,
  progressText,
  specOf,
  statRows,
  TIMEFRAMES,
} from "../lib/backtests";
import { serverError } from "../lib/errors";
import { formatMoney, formatQty, formatSignedMoney, formatTime, pnlClass } from "../lib/format";
import { EquityChart } from "./EquityChart";

interface Running {
  id: string;
  status: BacktestStatus;
  progress: number;
  stage: string;
}

const DAY_MS = 86_400_000;

export function BacktestsPage() {
  const { api } = useApp();
  const [strategies] = createResource(async () => (await api.backtest.listStrategies({})).strategies);
  const [strategyName, setStrategyName] = createSignal("");
  const [params, setParams] = createSignal<Record<string, string>>({});
  const [symbol, setSymbol] = createSignal("AAPL");
  // Minute bars of the last day: `cift up` starts a new stack with an hour of them, enough
  // for every built-in strategy at its defaults (daily bars take a replay or a backfill).
  const [timeframe, setTimeframe] = createSignal("1Min");
  const [start, setStart] = createSignal(dayOf(Date.now() - DAY_MS));
  const [end, setEnd] = createSignal(dayOf(Date.now() + DAY_MS));
  const [cash, setCash] = createSignal("10000");
  const [commission, setCommission] = createSignal("0.002");
  const [engine, setEngine] = createSignal("vector");
  const [marginMultiplier, setMarginMultiplier] = createSignal("");
  const [limits, setLimits] = createSignal<Partial<Record<LimitName, string>>>({});
  const [allowShort, setAllowShort] = createSignal("");
  const [errors, setErrors] = createSignal<Partial<Record<BacktestField | "form", string>>>({});
  const [running, setRunning] = createSignal<Running | undefined>();
  const [shown, setShown] = createSignal<Backtest | undefined>();
  const [firstBar, setFirstBar] = createSignal<number | undefined>();
  const [past, { refetch: refetchPast }] = createResource(async () => (await api.backtest.listBacktests({ pageSize: 20 })).backtests);
  let controller: AbortController | undefined;
  onCleanup(() => controller?.abort());

  const strategy = (): Strategy | undefined => strategies()?.find((item) => item.name === strategyName());

  // sma_cross (or the first strategy) once they arrive; its parameters at their defaults.
  createEffect(
    on(strategies, (list) => {
      const name = list && defaultStrategy(list);
      if (name && !strategyName()) chooseStrategy(name);
    }),
  );

  function chooseStrategy(name: string): void {
    setStrategyName(name);
    setParams(defaultParams(strategies()?.find((item) => item.name === name)));
    setErrors({});
  }

  // Where the stored bars of the symbol and timeframe begin, to offer that range.
  createEffect(
    on([symbol, timeframe], async ([name, frame]) => {
      setFirstBar(undefined);
      const wanted = name.trim().toUpperCase();
      if (!/^[A-Z][A-Z0-9.]{0,9}$/.test(wanted)) return;
      try {
        const response = await api.marketdata.getBars({
          symbol: wanted,
          timeframe: frame,
          start: { seconds: 86_400n, nanos: 0 },
          end: { seconds: BigInt(Math.floor(Date.now() / 1000) + 86_400), nanos: 0 },
          pageSize: 1,
        });
        const bar = response.bars[0];
        if (bar?.startTime && symbol() === name && timeframe() === frame) setFirstBar(timestampMs(bar.startTime));
      } catch {
        // No hint: the range stays as typed.
      }
    }),
  );

  async function run(): Promise<void> {
    setErrors({});
    setShown(undefined);
    const form = {
      strategy: strategyName(),
      params: params(),
      symbol: symbol(),
      timeframe: timeframe(),
      start: start(),
      end: end(),
      cash: cash(),
      commission: commission(),
      engine: engine(),
      marginMultiplier: marginMultiplier(),
      limits: limits(),
      allowShort: allowShort(),
    };
    const problem = formProblem(form);
    if (problem) {
      setErrors({ [problem.field]: problem.message });
      return;
    }
    controller?.abort();
    controller = new AbortController();
    setRunning({ id: "", status: BacktestStatus.QUEUED, progress: 0, stage: "starting" });
    try {
      for await (const message of api.backtest.runBacktest({ spec: specOf(form) }, { signal: controller.signal })) {
        if (message.event.case === "progress") {
          const progress = message.event.value;
          setRunning({ id: progress.backtestId, status: progress.status, progress: progress.progress, stage: progress.stage });
        } else if (message.event.case === "backtest") {
          const result = message.event.value;
          setShown(result);
          if (result.status === BacktestStatus.FAILED && result.error) showError(result.error);
        }
      }
    } catch (failure) {
      if (!controller.signal.aborted) showError(serverError(failure).message);
    } finally {
      setRunning(undefined);
      void refetchPast();
    }
  }

  function showError(message: string): void {
    const field = backtestFieldOf(message, strategy()?.params.map((param) => param.name) ?? []);
    setErrors({ [field ?? "form"]: message });
  }

  async function cancel(): Promise<void> {
    const id = running()?.id;
    if (!id) return;
    try {
      const response = await api.backtest.cancelBacktest({ backtestId: id });
      if (response.backtest) setShown(response.backtest);
    } catch (failure) {
      setErrors({ form: serverError(failure).message });
    }
  }

  async function open(id: string): Promise<void> {
    try {
      const response = await api.backtest.getBacktest({ backtestId: id });
      setShown(response.backtest);
      setErrors({});
      // The form as that run had it, to change one thing and run again.
      if (response.backtest?.spec) {
        const form = formOf(response.backtest.spec);
        setStrategyName(form.strategy);
        setParams(form.params);
        setSymbol(form.symbol);
        setTimeframe(form.timeframe);
        setStart(form.start);
        setEnd(form.end);
        setCash(form.cash);
        setCommission(form.commission);
        setEngine(form.engine);
        setMarginMultiplier(form.marginMultiplier);
        setLimits(form.limits);
        setAllowShort(form.allowShort);
      }
    } catch (failure) {
      setErrors({ form: serverError(failure).message });
    }
  }

  const errorFor = (field: BacktestField | "form") => (
    <Show when={errors()[field]}>
      <p role="alert" class="field-error" data-error-for={field}>
        {errors()[field]}
      </p>
    </Show>
  );

  const labelled = (label: string, field: BacktestField, input: (id: string) => JSX.Element) => {
    const id = `backtest-${field.replace(":", "-")}`;
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
    <div class="grid grid-cols-1 gap-3 lg:grid-cols-4">
      <section class="panel lg:col-span-1" aria-label="New backtest">
        <h2 class="panel-title">New backtest</h2>
        <form
          class="space-y-2"
          onSubmit={(event) => {
            event.preventDefault();
            void run();
          }}
        >
          {labelled("Strategy", "strategy", (id) => (
            <select id={id} class="field mt-1" value={strategyName()} onChange={(e) => chooseStrategy(e.currentTarget.value)}>
              <For each={strategies() ?? []}>{(item) => <option value={item.name}>{item.name}</option>}</For>
            </select>
          ))}
          <Show when={strategy()?.description}>
            <p class="text-xs text-slate-500">{strategy()?.description}</p>
          </Show>
          <div class="grid grid-cols-2 gap-2">
            <For each={strategy()?.params ?? []}>
              {(param) =>
                labelled(param.name, `param:${param.name}`, (id) => (
                  <input
                    id={id}
                    class="field mt-1"
                    inputmode="decimal"
                    title={`${param.description} (${param.min}–${param.max})`}
                    value={params()[param.name] ?? ""}
                    onInput={(e) => setParams({ ...params(), [param.name]: e.currentTarget.value })}
                  />
                ))
              }
            </For>
          </div>
          <div class="grid grid-cols-2 gap-2">
            {labelled("Symbol", "symbol", (id) => <input id={id} class="field mt-1" value={symbol()} onInput={(e) => setSymbol(e.currentTarget.value)} />)}
            {labelled("Timeframe", "timeframe", (id) => (
              <select id={id} class="field mt-1" value={timeframe()} onChange={(e) => setTimeframe(e.currentTarget.value)}>
                <For each={TIMEFRAMES}>{(value) => <option value={value}>{value}</option>}</For>
              </select>
            ))}
            {labelled("Start", "start", (id) => <input id={id} type="date" class="field mt-1" value={start()} onInput={(e) => setStart(e.currentTarget.value)} />)}
            {labelled("End", "end", (id) => <input id={id} type="date" class="field mt-1" value={end()} onInput={(e) => setEnd(e.currentTarget.value)} />)}
          </div>
          <Show when={firstBar()}>
            {(first) => (
              <p class="text-xs text-slate-500" data-testid="stored-bars">
                Stored bars from {dayOf(first())}.{" "}
                <button
                  type="button"
                  class="underline"
                  onClick={() => {
                    setStart(dayOf(first()));
                    setEnd(dayOf(Date.now() + DAY_MS));
                  }}
                >
                  Use all stored bars
                </button>
              </p>
            )}
          </Show>
          <div class="grid grid-cols-2 gap-2">
            {labelled("Cash", "cash", (id) => <input id={id} class="field mt-1" inputmode="decimal" value={cash()} onInput={(e) => setCash(e.currentTarget.value)} />)}
            {labelled("Commission", "commission", (id) => <input id={id} class="field mt-1" inputmode="decimal" title="A fraction of each fill's notional: 0.002 = 0.2%" value={commission()} onInput={(e) => setCommission(e.currentTarget.value)} />)}
          </div>
          {labelled("Engine", "engine", (id) => (
            <select id={id} class="field mt-1" value={engine()} onChange={(e) => setEngine(e.currentTarget.value)}>
              <For each={ENGINES}>{(value) => <option value={value}>{value}</option>}</For>
            </select>
          ))}
          <Show when={engine() === "event"}>
            <fieldset class="space-y-2" aria-label="Pre-trade risk">
              <legend class="text-xs font-medium">Pre-trade risk (each order, as on the paper account)</legend>
              <p class="text-xs text-slate-500">Empty fields keep a new account's limits (shown greyed).</p>
              <div class="grid grid-cols-2 gap-2">
                {labelled("Margin multiplier", "margin_multiplier", (id) => (
                  <input
                    id={id}
                    class="field mt-1"
                    inputmode="decimal"
                    placeholder="1"
                    title="Buying power as a multiple of equity: 1 is a cash account, up to 4"
                    value={marginMultiplier()}
                    onInput={(e) => setMarginMultiplier(e.currentTarget.value)}
                  />
                ))}
                {labelled("Short selling", "allow_short", (id) => (
                  <select id={id} class="field mt-1" title="Whether sells may open or grow a short position; a new account may" value={allowShort()} onChange={(e) => setAllowShort(e.currentTarget.value)}>
                    <option value="">Default (yes)</option>
                    <option value="true">Allowed</option>
                    <option value="false">Not allowed</option>
                  </select>
                ))}
                <For each={RISK_LIMITS}>
                  {(limit) =>
                    labelled(limit.label, `limit:${limit.name}`, (id) => (
                      <input
                        id={id}
                        class="field mt-1"
                        inputmode={limit.name === "max_open_orders" ? "numeric" : "decimal"}
                        placeholder={limit.fallback}
                        title={`${limit.label} (${limit.unit}); empty: ${limit.fallback}`}
                        value={limits()[limit.name] ?? ""}
                        onInput={(e) => setLimits({ ...limits(), [limit.name]: e.currentTarget.value })}
                      />
                    ))
                  }
                </For>
              </div>
            </fieldset>
          </Show>
          {errorFor("form")}
          <Show
            when={running()}
            fallback={
              <button type="submit" class="btn-primary w-full" disabled={!strategyName()}>
                Run backtest
              </button>
            }
          >
            {(now) => (
              <div class="space-y-1" role="status" aria-label="Backtest progress">
                <progress class="w-full" max="1" value={now().progress} />
                <p class="text-xs text-slate-500" data-testid="backtest-progress">
                  {BACKTEST_STATUS_LABELS[now().status]} · {now().stage} · {progressText(now().progress)}
                </p>
                <button type="button" class="btn-ghost w-full" disabled={!now().id || !isRunning(now().status)} onClick={() => void cancel()}>
                  Cancel backtest
                </button>
              </div>
            )}
          </Show>
        </form>
      </section>
      <div class="min-w-0 space-y-3 lg:col-span-3">
        <Show when={shown()}>{(backtest) => <BacktestResult backtest={backtest()} strategies={strategies() ?? []} />}</Show>
        <section class="panel" aria-label="Past backtests">
          <h2 class="panel-title">Past backtests</h2>
          <Show when={(past() ?? []).length > 0} fallback={<p class="text-sm text-slate-500">No backtests yet.</p>}>
            <div class="overflow-x-auto">
              <table class="w-full text-sm">
                <thead class="text-left text-xs text-slate-500">
                  <tr>
                    <th class="hidden sm:table-cell">Created</th>
                    <th>Run</th>
                    <th>Status</th>
                    <th class="num">Final equity</th>
                    <th class="num">Return</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  <For each={past() ?? []}>
                    {(item) => (
                      <tr class="border-t border-slate-100 dark:border-slate-800" data-backtest-id={item.id}>
                        <td class="hidden py-1 whitespace-nowrap sm:table-cell">{formatTime(item.createdAt ? timestampDate(item.createdAt) : undefined)}</td>
                        <td class="min-w-40 py-1">{describeSpec(item.spec, strategies() ?? [])}</td>
                        <td>{BACKTEST_STATUS_LABELS[item.status]}</td>
                        <td class="num">{formatMoney(item.stats?.finalEquity)}</td>
                        <td class={`num ${pnlClass(item.stats?.totalReturnPct)}`}>{formatPercentPoints(item.stats?.totalReturnPct)}</td>
                        <td class="text-right">
                          <button class="btn-ghost px-2 py-0.5 text-xs" onClick={() => void open(item.id)}>
                            Open
                          </button>
                        </td>
                      </tr>
                    )}
                  </For>
                </tbody>
              </table>
            </div>
          </Show>
        </section>
      </div>
    </div>
  );
}

function BacktestResult(props: { backtest: Backtest; strategies: readonly Strategy[] }) {
  const backtest = () => props.backtest;
  return (
    <section class="panel space-y-3" aria-label="Backtest result" data-backtest-id={backtest().id}>
      <div class="flex flex-wrap items-baseline gap-x-3">
        <h2 class="panel-title mb-0">Result</h2>
        <span class="text-sm">{describeSpec(backtest().spec, props.strategies)}</span>
        <span class="text-sm font-medium" data-testid="backtest-status">
          {BACKTEST_STATUS_LABELS[backtest().status]}
        </span>
        <Show when={backtest().error}>
          <span class="field-error">{backtest().error}</span>
        </Show>
      </div>
      <Show when={backtest().stats}>
        {(stats) => (
          <dl class="grid grid-cols-2 gap-x-4 gap-y-1 text-sm sm:grid-cols-4" data-testid="backtest-stats">
            <For each={statRows(stats())}>
              {([label, value]) => (
                <div class="flex justify-between gap-2 border-b border-slate-100 py-0.5 dark:border-slate-800">
                  <dt class="text-slate-500">{label}</dt>
                  <dd class="tabular-nums" data-stat={label}>
                    {value}
                  </dd>
                </div>
              )}
            </For>
          </dl>
        )}
      </Show>
      <Show when={backtest().equity.length > 0}>
        <EquityChart backtest={backtest()} />
      </Show>
      <Show when={backtest().rejections.length > 0}>
        <div aria-label="Rejected orders" role="region">
          <h3 class="panel-title">Rejected orders ({backtest().rejections.length})</h3>
          <div class="max-h-64 overflow-auto">
            <table class="w-full text-sm">
              <thead class="sticky top-0 bg-white text-left text-xs text-slate-500 dark:bg-slate-900">
                <tr>
                  <th>Time</th>
                  <th>Symbol</th>
                  <th>Side</th>
                  <th class="num">Qty</th>
                  <th>Type</th>
                  <th>Reason</th>
                </tr>
              </thead>
              <tbody>
                <For each={backtest().rejections}>
                  {(rejection) => (
                    <tr class="border-t border-slate-100 dark:border-slate-800" data-testid="backtest-rejection" title={rejection.message}>
                      <td class="py-1 whitespace-nowrap">{formatBarTime(rejection.time ? timestampDate(rejection.time) : undefined)}</td>
                      <td>{rejection.symbol}</td>
                      <td>{rejection.side}</td>
                      <td class="num">{formatQty(rejection.qty)}</td>
                      <td>{rejection.type}</td>
                      <td>
                        <span class="font-mono text-xs">{rejection.reason}</span> {rejection.message}
                      </td>
                    </tr>
                  )}
                </For>
              </tbody>
            </table>
          </div>
        </div>
      </Show>
      <div aria-label="Backtest trades" role="region">
        <h3 class="panel-title">Trades ({backtest().trades.length})</h3>
        <Show when={backtest().trades.length > 0} fallback={<p class="text-sm text-slate-500">No trades.</p>}>
          <div class="max-h-96 overflow-auto">
            <table class="w-full text-sm">
              <thead class="sticky top-0 bg-white text-left text-xs text-slate-500 dark:bg-slate-900">
                <tr>
                  <th>Entry</th>
                  <th>Exit</th>
                  <th>Side</th>
                  <th class="num">Qty</th>
                  <th class="num">Entry price</th>
                  <th class="num">Exit price</th>
                  <th class="num">P&amp;L</th>
                  <th class="num">Return</th>
                </tr>
              </thead>
              <tbody>
                <For each={backtest().trades}>
                  {(trade) => (
                    <tr class="border-t border-slate-100 dark:border-slate-800" data-testid="backtest-trade">
                      <td class="py-1 whitespace-nowrap">{formatBarTime(trade.entryTime ? timestampDate(trade.entryTime) : undefined)}</td>
                      <td class="whitespace-nowrap">{formatBarTime(trade.exitTime ? timestampDate(trade.exitTime) : undefined)}</td>
                      <td>{trade.side}</td>
                      <td class="num">{formatQty(trade.qty)}</td>
                      <td class="num">{formatMoney(trade.entryPrice)}</td>
                      <td class="num">{formatMoney(trade.exitPrice)}</td>
                      <td class={`num ${pnlClass(trade.pnl)}`}>{formatSignedMoney(trade.pnl)}</td>
                      <td class={`num ${pnlClass(trade.returnPct)}`}>{formatPercentPoints(trade.returnPct)}</td>
                    </tr>
                  )}
                </For>
              </tbody>
            </table>
          </div>
        </Show>
      </div>
    </section>
  );
}
