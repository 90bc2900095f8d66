import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { cleanup, fireEvent, render, screen, waitFor } from "@solidjs/testing-library";
import { afterEach, describe, expect, it, vi } from "vitest";
import { App, type AppContext } from "../context";
import { OrderClass, OrderSchema, OrderSide, OrderStatus, OrderType, TimeInForce } from "../gen/cift/execution/v1/orders_pb";
import { OrderTicket } from "./OrderTicket";

function renderTicket(submitOrder: (request: unknown) => Promise<unknown>) {
  const upsert = vi.fn();
  const context = { api: { execution: { submitOrder } }, trading: { upsert } } as unknown as AppContext;
  render(() => (
    <App.Provider value={context}>
      <OrderTicket symbol="AAPL" />
    </App.Provider>
  ));
  return { upsert };
}

afterEach(cleanup);

describe("OrderTicket", () => {
  it("sends the fields the chosen order type needs", async () => {
    const order = create(OrderSchema, { id: "o1", symbol: "AAPL", side: OrderSide.BUY, qty: "3", status: OrderStatus.ACCEPTED });
    const submitOrder = vi.fn(async () => ({ order }));
    const { upsert } = renderTicket(submitOrder);
    fireEvent.change(screen.getByLabelText("Order type"), { target: { value: String(OrderType.LIMIT) } });
    fireEvent.input(screen.getByLabelText("Quantity"), { target: { value: "3" } });
    fireEvent.input(screen.getByLabelText("Limit price"), { target: { value: "200.50" } });
    fireEvent.change(screen.getByLabelText("Time in force"), { target: { value: String(TimeInForce.GTC) } });
    fireEvent.click(screen.getByRole("button", { name: "Submit order" }));
    await waitFor(() => expect(upsert).toHaveBeenCalledWith(order));
    expect(submitOrder).toHaveBeenCalledWith(
      expect.objectContaining({
        symbol: "AAPL",
        side: OrderSide.BUY,
        type: OrderType.LIMIT,
        timeInForce: TimeInForce.GTC,
        qty: "3",
        notional: "",
        limitPrice: "200.50",
        stopPrice: "",
      }),
    );
    expect(screen.getByRole("status").textContent).toContain("Accepted");
  });

  it("shows the server's message under the field it concerns, and clears it on the next try", async () => {
    const submitOrder = vi
      .fn()
      .mockRejectedValueOnce(new ConnectError("limit_price 10.001 is not on AAPL's tick grid of 0.01.", Code.InvalidArgument))
      .mockRejectedValueOnce(new ConnectError("The paper broker is closed.", Code.Unavailable));
    renderTicket(submitOrder);
    fireEvent.change(screen.getByLabelText("Order type"), { target: { value: String(OrderType.LIMIT) } });
    fireEvent.click(screen.getByRole("button", { name: "Submit order" }));
    const error = await screen.findByText(/tick grid/);
    expect(error.getAttribute("data-error-for")).toBe("limit_price");
    expect(error.previousElementSibling).toBe(screen.getByLabelText("Limit price"));

    fireEvent.click(screen.getByRole("button", { name: "Submit order" }));
    const general = await screen.findByText("The paper broker is closed.");
    expect(general.getAttribute("data-error-for")).toBe("form");
    expect(screen.queryByText(/tick grid/)).toBeNull();
  });

  it("sends a bracket's exits, and puts a refused take-profit under its field", async () => {
    const submitOrder = vi
      .fn()
      .mockRejectedValueOnce(
        new ConnectError("bracket rule: for a buy entry take_profit.limit_price 190 must be above the entry price 200.", Code.InvalidArgument),
      );
    renderTicket(submitOrder);
    expect(screen.queryByLabelText("Take-profit limit price")).toBeNull();
    fireEvent.change(screen.getByLabelText("Order class"), { target: { value: String(OrderClass.BRACKET) } });
    fireEvent.change(screen.getByLabelText("Order type"), { target: { value: String(OrderType.LIMIT) } });
    fireEvent.input(screen.getByLabelText("Quantity"), { target: { value: "1" } });
    fireEvent.input(screen.getByLabelText("Limit price"), { target: { value: "200" } });
    fireEvent.input(screen.getByLabelText("Take-profit limit price"), { target: { value: "190" } });
    fireEvent.change(screen.getByLabelText("Stop-loss type"), { target: { value: "stop_limit" } });
    fireEvent.input(screen.getByLabelText("Stop-loss stop price"), { target: { value: "180" } });
    fireEvent.input(screen.getByLabelText("Stop-loss limit price"), { target: { value: "179.50" } });
    fireEvent.click(screen.getByRole("button", { name: "Submit order" }));
    const error = await screen.findByText(/must be above the entry price/);
    expect(error.getAttribute("data-error-for")).toBe("take_profit.limit_price");
    expect(error.previousElementSibling).toBe(screen.getByLabelText("Take-profit limit price"));
    expect(submitOrder).toHaveBeenCalledWith(
      expect.objectContaining({
        type: OrderType.LIMIT,
        limitPrice: "200",
        orderClass: OrderClass.BRACKET,
        takeProfit: { limitPrice: "190" },
        stopLoss: { stopPrice: "180", limitPrice: "179.50", trailPrice: "", trailPercent: "" },
      }),
    );
  });
});
