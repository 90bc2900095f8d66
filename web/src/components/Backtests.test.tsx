import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { cleanup, fireEvent, render, screen, waitFor } from "@solidjs/testing-library";
import { afterEach, describe, expect, it, vi } from "vitest";
import { App, type AppContext } from "../context";
import {
  BacktestSchema,
  BacktestStatus,
  type RunBacktestResponse,
  RunBacktestResponseSchema,
  StrategySchema,
} from "../gen/cift/backtest/v1/backtest_pb";
import { BacktestsPage } from "./Backtests";

// The chart draws on a canvas jsdom does not have; the page's state is what is tested here.
vi.mock("./EquityChart", () => ({ EquityChart: () => <div data-testid="equity-chart" /> }));

const strategies = [
  create(StrategySchema, {
    name: "sma_cross",
    params: [
      { name: "fast", default: 10, min: 1, max: 500 },
      { name: "slow", default: 30, min: 2, max: 1000 },
    ],
  }),
];

function renderPage(runBacktest: (request: unknown, options: unknown) => AsyncIterable<RunBacktestResponse>) {
  const cancelBacktest = vi.fn(async () => ({ backtest: create(BacktestSchema, { id: "b1", status: BacktestStatus.CANCELED }) }));
  const api = {
    backtest: {
      listStrategies: async () => ({ strategies }),
      listBacktests: async () => ({ backtests: [] }),
      runBacktest,
      cancelBacktest,
    },
    marketdata: { getBars: async () => Promise.reject(new ConnectError("no bars", Code.NotFound)) },
  };
  render(() => (
    <App.Provider value={{ api } as unknown as AppContext}>
      <BacktestsPage />
    </App.Provider>
  ));
  return { cancelBacktest };
}

afterEach(cleanup);

const progress = (value: number) =>
  create(RunBacktestResponseSchema, { event: { case: "progress", value: { backtestId: "b1", status: BacktestStatus.RUNNING, progress: value, stage: "simulating" } } });

describe("BacktestsPage", () => {
  it("shows progress while a run streams, cancels it, then shows the result", async () => {
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const runBacktest = vi.fn(async function* (_request: unknown, _options: unknown) {
      yield progress(0.25);
      await finished;
      yield create(RunBacktestResponseSchema, {
        event: {
          case: "backtest",
          value: {
            id: "b1",
            status: BacktestStatus.SUCCEEDED,
            stats: { finalEquity: "12345.6", totalReturnPct: 23.456, trades: 2n },
            trades: [{ symbol: "GOOG", side: "long", qty: "10", entryPrice: "100", exitPrice: "110", pnl: "100", returnPct: 10 }],
            equity: [{ equity: "10000" }],
          },
        },
      });
    });
    const { cancelBacktest } = renderPage(runBacktest);
    expect(await screen.findByLabelText("fast")).toHaveProperty("value", "10");
    fireEvent.input(screen.getByLabelText("Symbol"), { target: { value: "goog" } });
    fireEvent.click(screen.getByRole("button", { name: "Run backtest" }));
    await waitFor(() => expect(screen.getByTestId("backtest-progress").textContent).toContain("Running · simulating · 25%"));
    expect(runBacktest.mock.calls[0][0]).toMatchObject({ spec: { strategy: "sma_cross", symbol: "GOOG", params: { fast: 10, slow: 30 } } });

    fireEvent.click(screen.getByRole("button", { name: "Cancel backtest" }));
    await waitFor(() => expect(cancelBacktest).toHaveBeenCalledWith({ backtestId: "b1" }));

    finish();
    await screen.findByText("Succeeded");
    expect(screen.getByRole("button", { name: "Run backtest" })).toBeTruthy();
    const stat = (label: string) => document.querySelector(`[data-stat="${label}"]`)?.textContent;
    expect(stat("Final equity")).toBe("$12,345.60");
    expect(stat("Return")).toBe("+23.46%");
    expect(screen.getAllByTestId("backtest-trade")).toHaveLength(1);
    expect(screen.getByTestId("backtest-trade").textContent).toContain("+$100.00");
    expect(stat("Rejected orders")).toBe("0");
    expect(screen.queryByRole("region", { name: "Rejected orders" })).toBeNull();
  });

  it("counts the orders the pre-trade checks refused and lists them", async () => {
    const runBacktest = vi.fn(async function* (_request: unknown, _options: unknown) {
      yield create(RunBacktestResponseSchema, {
        event: {
          case: "backtest",
          value: {
            id: "b2",
            status: BacktestStatus.SUCCEEDED,
            stats: { finalEquity: "10000", trades: 0n, rejectedOrders: 2n },
            rejections: [
              { symbol: "GOOG", side: "buy", qty: "95", type: "market", reason: "MAX_ORDER_QTY", message: "Order quantity 95 exceeds the limit of 5." },
              { symbol: "GOOG", side: "sell", qty: "95", type: "market", reason: "SHORT_NOT_ALLOWED", message: "Short selling is not allowed." },
            ],
          },
        },
      });
    });
    renderPage(runBacktest);
    await screen.findByLabelText("fast");
    fireEvent.input(screen.getByLabelText("Symbol"), { target: { value: "goog" } });
    fireEvent.click(screen.getByRole("button", { name: "Run backtest" }));
    await screen.findByText("Succeeded");
    expect(document.querySelector('[data-stat="Rejected orders"]')?.textContent).toBe("2");
    const rows = screen.getAllByTestId("backtest-rejection");
    expect(rows).toHaveLength(2);
    expect(rows[0].textContent).toContain("MAX_ORDER_QTY");
    expect(rows[0].textContent).toContain("exceeds the limit of 5");
    expect(rows[1].textContent).toContain("sell");
    expect(screen.getByRole("region", { name: "Rejected orders" }).querySelector("h3")?.textContent).toBe("Rejected orders (2)");
  });

  it("puts the server's refusal by the parameter it names", async () => {
    const runBacktest = vi.fn(async function* (): AsyncGenerator<RunBacktestResponse> {
      throw new ConnectError("fast (30) must be shorter than slow (10).", Code.InvalidArgument);
    });
    renderPage(runBacktest);
    await screen.findByLabelText("fast");
    fireEvent.click(screen.getByRole("button", { name: "Run backtest" }));
    const error = await screen.findByText(/must be shorter than slow/);
    expect(error.getAttribute("data-error-for")).toBe("param:fast");
    expect(error.previousElementSibling).toBe(screen.getByLabelText("fast"));
  });

  it("offers the event engine's risk inputs, sends what is typed, and puts refusals by their field", async () => {
    const runBacktest = vi.fn(async function* (request: unknown): AsyncGenerator<RunBacktestResponse> {
      const limits = (request as { spec: { limits?: { maxOrderQty?: string } } }).spec.limits;
      if (limits?.maxOrderQty === "0") {
        throw new ConnectError("Invalid risk limits: max_order_qty must be greater than zero (got 0).", Code.InvalidArgument);
      }
      yield create(RunBacktestResponseSchema, { event: { case: "backtest", value: { id: "b3", status: BacktestStatus.SUCCEEDED } } });
    });
    renderPage(runBacktest);
    await screen.findByLabelText("fast");
    // With the vector engine there are no orders to check: no risk inputs.
    expect(screen.queryByLabelText("Max order qty")).toBeNull();
    fireEvent.change(screen.getByLabelText("Engine"), { target: { value: "event" } });
    const maxQty = await screen.findByLabelText("Max order qty");
    expect(maxQty.getAttribute("placeholder")).toBe("10,000");

    // Not a whole number of orders: refused here, by the field, nothing sent.
    fireEvent.input(screen.getByLabelText("Max open orders"), { target: { value: "2.5" } });
    fireEvent.click(screen.getByRole("button", { name: "Run backtest" }));
    const local = await screen.findByText(/max_open_orders must be a whole number/);
    expect(local.getAttribute("data-error-for")).toBe("limit:max_open_orders");
    expect(runBacktest).not.toHaveBeenCalled();

    // The server's refusal of a limit lands by that limit's input.
    fireEvent.input(screen.getByLabelText("Max open orders"), { target: { value: "" } });
    fireEvent.input(maxQty, { target: { value: "0" } });
    fireEvent.click(screen.getByRole("button", { name: "Run backtest" }));
    const error = await screen.findByText(/max_order_qty must be greater than zero/);
    expect(error.getAttribute("data-error-for")).toBe("limit:max_order_qty");
    expect(error.previousElementSibling).toBe(screen.getByLabelText("Max order qty"));
    expect(screen.queryByText(/max_open_orders must be/)).toBeNull();

    fireEvent.input(maxQty, { target: { value: "5" } });
    fireEvent.input(screen.getByLabelText("Margin multiplier"), { target: { value: "2" } });
    fireEvent.change(screen.getByLabelText("Short selling"), { target: { value: "false" } });
    fireEvent.click(screen.getByRole("button", { name: "Run backtest" }));
    await screen.findByText("Succeeded");
    expect(screen.queryByText(/max_order_qty must be/)).toBeNull();
    expect(runBacktest.mock.calls.at(-1)?.[0]).toMatchObject({
      spec: { engine: "event", marginMultiplier: "2", limits: { maxOrderQty: "5", allowShort: false } },
    });
  });
});
