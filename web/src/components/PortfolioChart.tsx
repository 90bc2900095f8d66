// The account's equity over time (GetPortfolioHistory), for a chosen period.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { AreaSeries, createChart, type IChartApi, type ISeriesApi, type UTCTimestamp } from "lightweight-charts";
import { createEffect, createSignal, For, on, onCleanup, onMount } from "solid-js";
import { useApp } from "../context";
import { formatSignedMoney, pnlClass } from "../lib/format";
import { chartColors, theme } from "../lib/theme";

const PERIODS = [
  { label: "1D", period: "1D", timeframe: "5Min" },
  { label: "1W", period: "1W", timeframe: "1Hour" },
  { label: "1M", period: "1M", timeframe: "1Day" },
  { label: "3M", period: "3M", timeframe: "1Day" },
  { label: "1Y", period: "1A", timeframe: "1Day" },
] as const;

export function PortfolioChart() {
  const { api } = useApp();
  const [choice, setChoice] = createSignal<(typeof PERIODS)[number]>(PERIODS[0]);
  const [profitLoss, setProfitLoss] = createSignal("");
  const [error, setError] = createSignal("");
  let container!: HTMLDivElement;
  let chart: IChartApi | undefined;
  let area: ISeriesApi<"Area"> | undefined;

  onMount(() => {
    const colors = chartColors(theme());
    chart = createChart(container, {
      autoSize: true,
      layout: { background: { color: colors.background }, textColor: colors.text, attributionLogo: false },
      grid: { vertLines: { color: colors.grid }, horzLines: { color: colors.grid } },
      timeScale: { timeVisible: true },
    });
    area = chart.addSeries(AreaSeries, { lineColor: "#0f766e", topColor: "rgba(15,118,110,0.35)", bottomColor: "rgba(15,118,110,0.02)" });
  });
  onCleanup(() => chart?.remove());

  createEffect(
    on(theme, (value) => {
      const colors = chartColors(value);
      chart?.applyOptions({
        layout: { background: { color: colors.background }, textColor: colors.text },
        grid: { vertLines: { color: colors.grid }, horzLines: { color: colors.grid } },
      });
    }),
  );

  createEffect(
    on(choice, async (selected) => {
      setError("");
      try {
        const history = await api.execution.getPortfolioHistory({ period: selected.period, timeframe: selected.timeframe });
        const byTime = new Map<number, number>();
        history.timestamps.forEach((timestamp, index) => {
          byTime.set(Math.floor(timestampMs(timestamp) / 1000), Number(history.equity[index]));
        });
        const points = [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time: time as UTCTimestamp, value }));
        area?.setData(points);
        chart?.timeScale().fitContent();
        setProfitLoss(history.profitLoss.at(-1) ?? "");
      } catch (failure) {
        setError(failure instanceof Error ? failure.message : String(failure));
      }
    }),
  );

  return (
    <section class="panel" aria-label="Portfolio history">
      <div class="mb-2 flex flex-wrap items-center gap-2">
        <h2 class="panel-title mb-0">Portfolio history</h2>
        <div role="group" aria-label="Period" class="flex gap-1">
          <For each={PERIODS}>
            {(item) => (
              <button
                type="button"
                aria-pressed={choice() === item}
                class={`btn px-2 py-0.5 text-xs ${choice() === item ? "bg-teal-700 text-white" : "btn-ghost"}`}
                onClick={() => setChoice(item)}
              >
                {item.label}
              </button>
            )}
          </For>
        </div>
        <span class={`ml-auto text-sm tabular-nums ${pnlClass(profitLoss())}`}>{error() || formatSignedMoney(profitLoss())}</span>
      </div>
      <div ref={container} class="h-64 w-full" />
    </section>
  );
}
