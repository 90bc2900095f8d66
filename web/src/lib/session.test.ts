import { createRoot } from "solid-js";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createSession, parseStored, refreshDelayMs } from "./session";

function memoryStorage() {
  const items = new Map<string, string>();
  return {
    getItem: (key: string) => items.get(key) ?? null,
    setItem: (key: string, value: string) => void items.set(key, value),
    removeItem: (key: string) => void items.delete(key),
    items,
  };
}

describe("refreshDelayMs", () => {
  it("refreshes a tenth of the lifetime early, between 5 s and a minute", () => {
    expect(refreshDelayMs(900_000, 0, 900_000)).toBe(840_000);
    expect(refreshDelayMs(100_000, 0, 100_000)).toBe(90_000);
    expect(refreshDelayMs(20_000, 0, 20_000)).toBe(15_000);
    expect(refreshDelayMs(1_000, 0, 1_000)).toBe(0);
  });
});

describe("parseStored", () => {
  it("accepts a complete, unexpired session only", () => {
    const stored = { accessToken: "a", refreshToken: "r", expiresAt: 2_000, email: "e@x" };
    expect(parseStored(JSON.stringify(stored), 1_000)).toEqual(stored);
    expect(parseStored(JSON.stringify(stored), 3_000)).toBeUndefined();
    expect(parseStored(JSON.stringify({ accessToken: "a" }), 0)).toBeUndefined();
    expect(parseStored("{not json", 0)).toBeUndefined();
    expect(parseStored(null, 0)).toBeUndefined();
  });
});

describe("session", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("refreshes the access token before it expires and keeps the new tokens", async () => {
    const storage = memoryStorage();
    const refresh = vi.fn(async (token: string) => ({ accessToken: `access-after-${token}`, refreshToken: "r2", expiresIn: 900 }));
    await createRoot(async (dispose) => {
      const session = createSession({ refresh, logout: async () => undefined, storage, now: () => Date.now() });
      session.signIn("t@example.com", { accessToken: "a1", refreshToken: "r1", expiresIn: 900 });
      expect(session.accessToken()).toBe("a1");
      await vi.advanceTimersByTimeAsync(839_000);
      expect(refresh).not.toHaveBeenCalled();
      await vi.advanceTimersByTimeAsync(2_000);
      expect(refresh).toHaveBeenCalledWith("r1");
      expect(session.accessToken()).toBe("access-after-r1");
      expect(JSON.parse(storage.items.get("cift.session")!).refreshToken).toBe("r2");
      dispose();
    });
  });

  it("signs out when the refresh token is refused", async () => {
    const storage = memoryStorage();
    await createRoot(async (dispose) => {
      const session = createSession({ refresh: async () => Promise.reject(new Error("expired")), logout: async () => undefined, storage });
      session.signIn("t@example.com", { accessToken: "a1", refreshToken: "r1", expiresIn: 60 });
      await vi.advanceTimersByTimeAsync(60_000);
      expect(session.tokens()).toBeUndefined();
      expect(storage.items.has("cift.session")).toBe(false);
      dispose();
    });
  });

  it("signs out at once and revokes the refresh token", async () => {
    const logout = vi.fn(async () => undefined);
    await createRoot(async (dispose) => {
      const session = createSession({ refresh: vi.fn(), logout, storage: memoryStorage() });
      session.signIn("t@example.com", { accessToken: "a1", refreshToken: "r1", expiresIn: 900 });
      await session.signOut();
      expect(session.tokens()).toBeUndefined();
      expect(logout).toHaveBeenCalledWith("r1");
      dispose();
    });
  });
});
