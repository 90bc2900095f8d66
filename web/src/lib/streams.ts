// A server stream kept open: reopened with a growing pause (up to 5 s) when it ends or
// fails, until it is stopped. Stopping aborts the call; that abort is not an error.
import { Code, ConnectError } from "@connectrpc/connect";

export type StreamState = "connecting" | "live" | "retrying" | "stopped";

export interface StreamOptions<T> {
  open: (signal: AbortSignal) => AsyncIterable<T>;
  onMessage: (message: T) => void;
  onState?: (state: StreamState, error?: ConnectError) => void;
  /** Called on UNAUTHENTICATED before the next attempt (e.g. to refresh the token). */
  onUnauthenticated?: () => Promise<void>;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Next pause after `previous` ms: doubling from 250 ms, at most 5 s. */
export function nextBackoffMs(previous: number): number {
  return previous <= 0 ? 250 : Math.min(5_000, previous * 2);
}

/** Starts the stream; the returned function stops it for good. */
export function keepStreaming<T>(options: StreamOptions<T>): () => void {
  const controller = new AbortController();
  const sleep = options.sleep ?? defaultSleep;
  const report = options.onState ?? (() => undefined);
  void (async () => {
    let backoff = 0;
    while (!controller.signal.aborted) {
      report("connecting");
      try {
        let first = true;
        for await (const message of options.open(controller.signal)) {
          if (first) {
            report("live");
            first = false;
            backoff = 0;
          }
          options.onMessage(message);
        }
      } catch (error) {
        if (controller.signal.aborted) break;
        const connect = ConnectError.from(error);
        if (connect.code === Code.Canceled && controller.signal.aborted) break;
        report("retrying", connect);
        if (connect.code === Code.Unauthenticated && options.onUnauthenticated) {
          await options.onUnauthenticated().catch(() => undefined);
        }
      }
      if (controller.signal.aborted) break;
      backoff = nextBackoffMs(backoff);
      await sleep(backoff, controller.signal);
    }
    report("stopped");
  })();
  return () => controller.abort();
}
