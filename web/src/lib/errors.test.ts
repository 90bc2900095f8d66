import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { fieldOfError, serverError, type ServerError } from "./errors";

const invalid = (message: string, reason = ""): ServerError => ({ message, code: "InvalidArgument", reason });

describe("fieldOfError", () => {
  it("finds the field the execution service names", () => {
    expect(fieldOfError(invalid("limit_price 10.001 is not on AAPL's tick grid of 0.01."))).toBe("limit_price");
    expect(fieldOfError(invalid("stop_price is required for this order type."))).toBe("stop_price");
    expect(fieldOfError(invalid("trail_percent must be below 100."))).toBe("trail_percent");
    expect(fieldOfError(invalid("qty must be a positive number, not -1."))).toBe("qty");
    expect(fieldOfError(invalid("time_in_force ioc applies to market and limit orders only."))).toBe("time_in_force");
    expect(fieldOfError(invalid("side is required: ORDER_SIDE_BUY or ORDER_SIDE_SELL."))).toBe("side");
  });

  it("does not read trail_price as a price of another kind", () => {
    expect(fieldOfError(invalid("trail_price 0.001 is not on AAPL's tick grid of 0.01."))).toBe("trail_price");
  });

  it("puts size errors on the field the trader sized the order by", () => {
    const both = invalid("Send exactly one of qty (shares) or notional (dollars).");
    expect(fieldOfError(both, "qty")).toBe("qty");
    expect(fieldOfError(both, "notional")).toBe("notional");
    expect(fieldOfError(invalid("AAPL does not trade in fractional shares; send a whole quantity, not 1.5."))).toBe("qty");
  });

  it("maps risk's reasons to the field they concern", () => {
    const rejected: ServerError = { message: "Buying power 100.00 does not cover 2275.00.", code: "FailedPrecondition", reason: "INSUFFICIENT_BUYING_POWER" };
    expect(fieldOfError(rejected)).toBe("qty");
    expect(fieldOfError(rejected, "notional")).toBe("notional");
    expect(fieldOfError({ ...rejected, message: "Shorting is off.", reason: "SHORT_NOT_ALLOWED" })).toBe("side");
  });

  it("puts unknown symbols on the symbol", () => {
    expect(fieldOfError(invalid("Unknown symbol 'ZZZZ': no instrument is listed under it."))).toBe("symbol");
  });

  it("leaves errors about the order as a whole to the form", () => {
    expect(fieldOfError(invalid("The paper broker is closed."))).toBeUndefined();
  });
});

describe("serverError", () => {
  it("reads the message, the code and the cift-reason trailer", () => {
    const error = new ConnectError("Not enough buying power.", Code.FailedPrecondition, { "cift-reason": "INSUFFICIENT_BUYING_POWER" });
    expect(serverError(error)).toEqual({ message: "Not enough buying power.", code: "FailedPrecondition", reason: "INSUFFICIENT_BUYING_POWER" });
  });

  it("turns anything thrown into a message", () => {
    expect(serverError(new Error("network down")).message).toBe("network down");
  });
});

describe("fieldOfError for order classes", () => {
  it("puts an exit's refusal by the exit field it names first", () => {
    expect(fieldOfError(invalid("bracket rule: for a buy entry take_profit.limit_price 90 must be above the entry price 100."))).toBe("take_profit.limit_price");
    expect(fieldOfError(invalid("bracket rule: for a buy entry stop_loss.stop_price 110 must be below the entry price 100."))).toBe("stop_loss.stop_price");
    expect(fieldOfError(invalid("oco rule: take_profit.limit_price 90 must be above stop_loss.stop_price 95 when closing a long position."))).toBe("take_profit.limit_price");
    expect(fieldOfError(invalid("stop_loss.limit_price 91 must be at or below stop_price 90 for a sell stop-loss."))).toBe("stop_loss.limit_price");
  });

  it("reads a leg's own check by the exit it is prefixed with", () => {
    expect(fieldOfError(invalid("stop_loss: stop_price 1.001 is not on AAPL's tick grid of 0.01."))).toBe("stop_loss.stop_price");
    expect(fieldOfError(invalid("stop_loss: trail_percent must be below 100."))).toBe("stop_loss.trail_percent");
    expect(fieldOfError(invalid("take_profit: limit_price 0 must be positive."))).toBe("take_profit.limit_price");
    expect(fieldOfError(invalid("take_profit.limit_price is required."))).toBe("take_profit.limit_price");
  });

  it("puts a missing exit on the order class", () => {
    expect(fieldOfError(invalid("A bracket order needs both take_profit and stop_loss."))).toBe("order_class");
    expect(fieldOfError(invalid("An oto order needs exactly one of take_profit or stop_loss."))).toBe("order_class");
  });
});
