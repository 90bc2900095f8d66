// How enum values read on screen ("Stop limit", not ORDER_TYPE_STOP_LIMIT).
import { OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce } from "../gen/cift/execution/v1/orders_pb";

export const SIDE_LABELS: Record<OrderSide, string> = {
  [OrderSide.UNSPECIFIED]: "—",
  [OrderSide.BUY]: "Buy",
  [OrderSide.SELL]: "Sell",
};

export const TYPE_LABELS: Record<OrderType, string> = {
  [OrderType.UNSPECIFIED]: "—",
  [OrderType.MARKET]: "Market",
  [OrderType.LIMIT]: "Limit",
  [OrderType.STOP]: "Stop",
  [OrderType.STOP_LIMIT]: "Stop limit",
  [OrderType.TRAILING_STOP]: "Trailing stop",
};

export const TIF_LABELS: Record<TimeInForce, string> = {
  [TimeInForce.UNSPECIFIED]: "—",
  [TimeInForce.DAY]: "Day",
  [TimeInForce.GTC]: "GTC",
  [TimeInForce.IOC]: "IOC",
  [TimeInForce.FOK]: "FOK",
  [TimeInForce.OPG]: "At the open",
  [TimeInForce.CLS]: "At the close",
  [TimeInForce.GTD]: "Good till date",
};

export const STATUS_LABELS: Record<OrderStatus, string> = {
  [OrderStatus.UNSPECIFIED]: "—",
  [OrderStatus.NEW]: "New",
  [OrderStatus.ACCEPTED]: "Accepted",
  [OrderStatus.PARTIALLY_FILLED]: "Partially filled",
  [OrderStatus.FILLED]: "Filled",
  [OrderStatus.CANCELED]: "Canceled",
  [OrderStatus.EXPIRED]: "Expired",
  [OrderStatus.REJECTED]: "Rejected",
  [OrderStatus.REPLACED]: "Replaced",
  [OrderStatus.HELD]: "Held (waits for its entry)",
};

export const CLASS_LABELS: Record<OrderClass, string> = {
  [OrderClass.UNSPECIFIED]: "Simple",
  [OrderClass.SIMPLE]: "Simple",
  [OrderClass.BRACKET]: "Bracket",
  [OrderClass.OCO]: "OCO (one cancels other)",
  [OrderClass.OTO]: "OTO (one triggers other)",
};
