// Candlesticks of one symbol: history from GetBars, continued live from StreamBars, with
// indicator overlays from GetIndicators (SMA, EMA and Bollinger bands on the price; RSI
// and MACD in panes below). The timeframe and the overlays can be switched.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  CandlestickSeries,
  createChart,
  HistogramSeries,
  type IChartApi,
  type ISeriesApi,
  LineSeries,
  type SeriesType,
  type UTCTimestamp,
} from "lightweight-charts";
import { createEffect, createSignal, For, on, onCleanup, onMount, Show } from "solid-js";
import { useApp } from "../context";
import { type Candle, historyStartMs, indicatorLine, type LinePoint, mergeCandles, type Timeframe, TIMEFRAMES, toCandle } from "../lib/chartdata";
import { keepStreaming } from "../lib/streams";
import { chartColors, theme } from "../lib/theme";

const OVERLAYS = ["SMA 20", "EMA 12", "Bollinger", "RSI 14", "MACD"] as const;
type Overlay = (typeof OVERLAYS)[number];
const SPECS = "sma:20,ema:12,bbands:20:2,rsi:14,macd:12:26:9";

function asTime<T extends { time: number }>(points: readonly T[]) {
  return points.map((point) => ({ ...point, time: point.time as UTCTimestamp }));
}

export function PriceChart(props: { symbol: string }) {
  const { api, session } = useApp();
  const [timeframe, setTimeframe] = createSignal<Timeframe>("1Min");
  const [overlays, setOverlays] = createSignal<Set<Overlay>>(new Set(["SMA 20", "RSI 14"]));
  const [candleCount, setCandleCount] = createSignal(0);
  const [status, setStatus] = createSignal("");
  const [indicatorSeries, setIndicatorSeries] = createSignal(0);
  // Checked overlays with no value yet: too few bars of this timeframe to warm them up.
  const [warming, setWarming] = createSignal<Overlay[]>([]);
  let container!: HTMLDivElement;
  let chart: IChartApi | undefined;
  let candles: ISeriesApi<"Candlestick"> | undefined;
  let lines: ISeriesApi<SeriesType>[] = [];
  let held: Candle[] = [];

  onMount(() => {
    const colors = chartColors(theme());
    chart = createChart(container, {
      autoSize: true,
      layout: { background: { color: colors.background }, textColor: colors.text, attributionLogo: false },
      grid: { vertLines: { color: colors.grid }, horzLines: { color: colors.grid } },
      timeScale: { timeVisible: true, secondsVisible: true },
    });
    candles = chart.addSeries(CandlestickSeries, {
      upColor: colors.up,
      downColor: colors.down,
      borderVisible: false,
      wickUpColor: colors.up,
      wickDownColor: colors.down,
    });
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

  async function drawIndicators(): Promise<void> {
    if (!chart) return;
    const response = await api.marketdata.getIndicators({
      symbol: props.symbol,
      timeframe: timeframe(),
      indicators: SPECS,
      limit: 300,
    });
    for (const line of lines) chart.removeSeries(line);
    lines = [];
    const shown = overlays();
    const waiting: Overlay[] = [];
    const add = (points: LinePoint[], color: string, pane = 0, histogram = false): boolean => {
      if (!chart || points.length === 0) return false;
      const series = histogram
        ? chart.addSeries(HistogramSeries, { color, priceLineVisible: false, lastValueVisible: false }, pane)
        : chart.addSeries(LineSeries, { color, lineWidth: 1, priceLineVisible: false, lastValueVisible: false }, pane);
      series.setData(asTime(points));
      lines.push(series);
      return true;
    };
    // Each checked overlay is drawn, or named as waiting for bars (every line empty).
    const overlay = (name: Overlay, draw: () => boolean[]) => {
      if (shown.has(name) && !draw().includes(true)) waiting.push(name);
    };
    overlay("SMA 20", () => [add(indicatorLine(response, "sma:20"), "#f59e0b")]);
    overlay("EMA 12", () => [add(indicatorLine(response, "ema:12"), "#8b5cf6")]);
    overlay("Bollinger", () => ["upper", "middle", "lower"].map((output) => add(indicatorLine(response, "bbands:20:2", output), "#0ea5e9")));
    // A pane below the price only for a study that has values, so none stands empty.
    let pane = 1;
    overlay("RSI 14", () => {
      const drawn = add(indicatorLine(response, "rsi:14"), "#14b8a6", pane);
      if (drawn) pane++;
      return [drawn];
    });
    overlay("MACD", () => [
      add(indicatorLine(response, "macd:12:26:9", "histogram"), "#94a3b8", pane, true),
      add(indicatorLine(response, "macd:12:26:9", "macd"), "#2563eb", pane),
      add(indicatorLine(response, "macd:12:26:9", "signal"), "#f97316", pane),
    ]);
    setWarming(waiting);
    setIndicatorSeries(lines.length);
  }

  // History, then live bars, for the current symbol and timeframe.
  createEffect(
    on([() => props.symbol, timeframe], ([symbol, frame]) => {
      held = [];
      candles?.setData([]);
      setCandleCount(0);
      setStatus("loading");
      let disposed = false;
      const now = Date.now();
      api.marketdata
        .getBars({ symbol, timeframe: frame, start: timestampFromMs(historyStartMs(frame, now)), pageSize: 1000 })
        .then((response) => {
          if (disposed) return;
          held = mergeCandles(held, response.bars.map(toCandle));
          candles?.setData(asTime(held));
          setCandleCount(held.length);
          setStatus("");
          chart?.timeScale().fitContent();
          return drawIndicators();
        })
        .catch((error: unknown) => {
          if (!disposed) setStatus(error instanceof Error ? error.message : String(error));
        });
      const stop = keepStreaming({
        open: (signal) => api.marketdata.streamBars({ symbols: [symbol], timeframe: frame }, { signal }),
        onMessage: (batch) => {
          const fresh = batch.bars.filter((bar) => bar.symbol === symbol).map(toCandle);
          if (fresh.length === 0) return;
          const lastTime = held.at(-1)?.time ?? 0;
          held = mergeCandles(held, fresh);
          // The chart appends or amends its newest candle; anything older means a redraw.
          if (fresh.every((candle, index) => candle.time >= lastTime && (index === 0 || candle.time >= fresh[index - 1].time))) {
            for (const candle of fresh) candles?.update({ ...candle, time: candle.time as UTCTimestamp });
          } else {
            candles?.setData(asTime(held));
          }
          setCandleCount(held.length);
          void drawIndicators().catch(() => undefined);
        },
        onUnauthenticated: session.refreshNow,
      });
      onCleanup(() => {
        disposed = true;
        stop();
      });
    }),
  );

  createEffect(on(overlays, () => void drawIndicators().catch(() => undefined), { defer: true }));

  return (
    <section class="panel" aria-label="Chart">
      <div class="mb-2 flex flex-wrap items-center gap-2">
        <div role="group" aria-label="Timeframe" class="flex flex-wrap gap-1">
          <For each={TIMEFRAMES}>
            {(frame) => (
              <button
                type="button"
                aria-pressed={timeframe() === frame}
                class={`btn px-2 py-0.5 text-xs ${timeframe() === frame ? "bg-teal-700 text-white" : "btn-ghost"}`}
                onClick={() => setTimeframe(frame)}
              >
                {frame}
              </button>
            )}
          </For>
        </div>
        <div role="group" aria-label="Indicators" class="flex flex-wrap gap-2 text-xs">
          <For each={OVERLAYS}>
            {(overlay) => (
              <label class="flex items-center gap-1">
                <input
                  type="checkbox"
                  checked={overlays().has(overlay)}
                  onChange={(event) => {
                    const next = new Set(overlays());
                    if (event.currentTarget.checked) next.add(overlay);
                    else next.delete(overlay);
                    setOverlays(next);
                  }}
                />
                {overlay}
              </label>
            )}
          </For>
        </div>
        <span class="ml-auto text-xs text-slate-500" data-testid="candle-count" data-count={candleCount()}>
          {status() || `${candleCount()} bars`}
        </span>
      </div>
      <Show when={warming().length > 0}>
        <p class="mb-1 text-xs text-slate-500" data-testid="indicators-warming">
          Not enough {timeframe()} bars yet for {warming().join(", ")}: a shorter timeframe has more.
        </p>
      </Show>
      <div ref={container} class="h-80 w-full sm:h-[28rem]" data-testid="price-chart" data-indicator-series={indicatorSeries()} />
    </section>
  );
}
