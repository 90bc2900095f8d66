// A backtest's equity curve (Lightweight Charts), redrawn when the run or the theme changes.
import { AreaSeries, createChart, type IChartApi, type ISeriesApi } from "lightweight-charts";
import { createEffect, on, onCleanup, onMount } from "solid-js";
import type { Backtest } from "../gen/cift/backtest/v1/backtest_pb";
import { equitySeries } from "../lib/backtests";
import { formatMoney } from "../lib/format";
import { chartColors, theme } from "../lib/theme";

export function EquityChart(props: { backtest: Backtest }) {
  let container!: HTMLDivElement;
  let chart: IChartApi | undefined;
  let area: ISeriesApi<"Area"> | undefined;

  onMount(() => {
    const colors = chartColors(theme());
    chart = createChart(container, {
      autoSize: true,
      layout: { background: { color: colors.background }, textColor: colors.text, attributionLogo: false },
      grid: { vertLines: { color: colors.grid }, horzLines: { color: colors.grid } },
      // Years of daily bars fit a phone's width (bars may be closer than a pixel), and stay
      // fitted when the page narrows.
      timeScale: { timeVisible: true, minBarSpacing: 0.01, lockVisibleTimeRangeOnResize: true },
      localization: { priceFormatter: (value: number) => formatMoney(value) },
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

  createEffect(() => {
    const points = equitySeries(props.backtest);
    area?.setData(points);
    chart?.timeScale().fitContent();
    container.dataset.points = String(points.length);
  });

  return <div ref={container} class="h-64 w-full" data-testid="equity-chart" aria-label="Equity curve" role="img" />;
}
