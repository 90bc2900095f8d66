// Live unrealized profit and loss of a position at the latest quote, in exact decimals
// (big.js): market value = qty x price, unrealized = market value - cost basis, as the
// execution service computes them. The quote's last price is a double; it is read
// through its shortest decimal representation, so 227.51 is exactly 227.51.
import Big from "big.js";
import type { Position } from "../gen/cift/execution/v1/execution_pb";

export interface LivePnl {
  price: string;
  marketValue: string;
  unrealizedPl: string;
  /** A fraction of |cost basis| ("0.0123"), or "" when the cost basis is zero. */
  unrealizedPlpc: string;
}

/** The position revalued at `last`; the server's figures when there is no usable price. */
export function livePnl(position: Pick<Position, "qty" | "costBasis" | "currentPrice" | "marketValue" | "unrealizedPl" | "unrealizedPlpc">, last: number | undefined): LivePnl {
  if (last === undefined || !Number.isFinite(last) || last <= 0) {
    return {
      price: position.currentPrice,
      marketValue: position.marketValue,
      unrealizedPl: position.unrealizedPl,
      unrealizedPlpc: position.unrealizedPlpc,
    };
  }
  const price = new Big(String(last));
  const marketValue = new Big(position.qty || "0").times(price);
  const cost = new Big(position.costBasis || "0");
  const unrealized = marketValue.minus(cost);
  return {
    price: price.toString(),
    marketValue: marketValue.toString(),
    unrealizedPl: unrealized.toString(),
    unrealizedPlpc: cost.eq(0) ? "" : unrealized.div(cost.abs()).toFixed(6),
  };
}
