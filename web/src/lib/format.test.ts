import { describe, expect, it } from "vitest";
import { direction, formatMoney, formatPercent, formatPrice, formatQty, formatSignedMoney, isDecimal, pnlClass } from "./format";

describe("money", () => {
  it("formats decimal strings exactly, to the cent, with grouping", () => {
    expect(formatMoney("100000")).toBe("$100,000.00");
    expect(formatMoney("1234.5")).toBe("$1,234.50");
    // A float would print 0.30000000000000004 somewhere on the way; the string does not.
    expect(formatMoney("0.3")).toBe("$0.30");
    expect(formatMoney("-12.345")).toBe("-$12.35");
  });

  it("keeps digits a double cannot hold", () => {
    expect(formatMoney("90071992547409.93")).toBe("$90,071,992,547,409.93");
  });

  it("shows a dash for nothing", () => {
    expect(formatMoney("")).toBe("—");
    expect(formatMoney(undefined)).toBe("—");
    expect(formatMoney("abc")).toBe("—");
    expect(formatMoney(Number.NaN)).toBe("—");
  });

  it("signs profit and loss", () => {
    expect(formatSignedMoney("12.3")).toBe("+$12.30");
    expect(formatSignedMoney("-4")).toBe("-$4.00");
    expect(formatSignedMoney("0")).toBe("$0.00");
  });

  it("uses the account's currency", () => {
    expect(formatMoney("5", "EUR")).toBe("€5.00");
  });
});

describe("other figures", () => {
  it("formats fractions as signed percentages", () => {
    expect(formatPercent("0.015")).toBe("+1.50%");
    expect(formatPercent("-0.2")).toBe("-20.00%");
    expect(formatPercent("")).toBe("—");
  });

  it("formats quantities without padding", () => {
    expect(formatQty("1200")).toBe("1,200");
    expect(formatQty("0.5")).toBe("0.5");
    expect(formatQty("-3")).toBe("-3");
  });

  it("formats quote prices with two places, sub-dollar prices with four", () => {
    expect(formatPrice(227.5)).toBe("227.50");
    expect(formatPrice(0.1234)).toBe("0.1234");
    expect(formatPrice(0)).toBe("—");
  });

  it("recognises decimal strings", () => {
    expect(isDecimal("1.5")).toBe(true);
    expect(isDecimal("-0.25")).toBe(true);
    expect(isDecimal("1e-7")).toBe(true);
    expect(isDecimal("")).toBe(false);
    expect(isDecimal("1.2.3")).toBe(false);
  });

  it("colours gains and losses", () => {
    expect(direction("-0.01")).toBe(-1);
    expect(direction("0")).toBe(0);
    expect(pnlClass("5")).toContain("emerald");
    expect(pnlClass("-5")).toContain("rose");
    expect(pnlClass("0")).toBe("");
  });
});
