// The mesh as the dashboard reaches it: gRPC-Web through the gateway that served the
// page (same origin, so no CORS), with clients generated from protos/ by `make gen`.
// Every call carries the signed-in trader's access token.
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AuthService } from "../gen/cift/auth/v1/auth_pb";
import { BacktestService } from "../gen/cift/backtest/v1/backtest_pb";
import { ExecutionService } from "../gen/cift/execution/v1/execution_pb";
import { MarketDataService } from "../gen/cift/marketdata/v1/marketdata_pb";

/** Puts `authorization: Bearer <token>` on every call while `token()` returns one. */
export function bearer(token: () => string | undefined): Interceptor {
  return (next) => (request) => {
    const value = token();
    if (value) request.header.set("authorization", `Bearer ${value}`);
    return next(request);
  };
}

export function gatewayTransport(token: () => string | undefined, baseUrl = window.location.origin): Transport {
  return createGrpcWebTransport({ baseUrl, interceptors: [bearer(token)] });
}

export function clients(transport: Transport) {
  return {
    auth: createClient(AuthService, transport),
    marketdata: createClient(MarketDataService, transport),
    execution: createClient(ExecutionService, transport),
    backtest: createClient(BacktestService, transport),
  };
}

export type Clients = ReturnType<typeof clients>;
