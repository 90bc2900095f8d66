// The signed-in session: tokens, when to refresh them, and signing out.
//
// The access token is short-lived; it is renewed with the refresh token a little before
// it expires (a tenth of its lifetime, at least 5 s and at most a minute early), so a
// call never goes out with an expired token. The tokens live in sessionStorage: they
// survive a reload of the tab but not closing it, and other tabs do not share them.
import { createSignal } from "solid-js";

export interface Tokens {
  accessToken: string;
  refreshToken: string;
  /** Epoch milliseconds at which the access token expires. */
  expiresAt: number;
  email: string;
}

const STORAGE_KEY = "cift.session";

/** Milliseconds from now until the access token should be refreshed. */
export function refreshDelayMs(expiresAt: number, now: number, lifetimeMs: number): number {
  const early = Math.min(60_000, Math.max(5_000, lifetimeMs / 10));
  return Math.max(0, expiresAt - early - now);
}

/** Tokens as stored, or undefined when nothing (or something unreadable) is stored. */
export function parseStored(text: string | null, now: number): Tokens | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<Tokens>;
    if (
      typeof value.accessToken === "string" &&
      typeof value.refreshToken === "string" &&
      typeof value.expiresAt === "number" &&
      typeof value.email === "string" &&
      value.expiresAt > now
    ) {
      return value as Tokens;
    }
  } catch {
    // Unreadable: start signed out.
  }
  return undefined;
}

export interface TokenGrant {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
}

export interface SessionDeps {
  refresh: (refreshToken: string) => Promise<TokenGrant>;
  logout: (refreshToken: string) => Promise<unknown>;
  storage?: Pick<Storage, "getItem" | "setItem" | "removeItem">;
  now?: () => number;
}

export function createSession(deps: SessionDeps) {
  const now = deps.now ?? Date.now;
  const storage = deps.storage ?? window.sessionStorage;
  const [tokens, setTokens] = createSignal<Tokens | undefined>(parseStored(storage.getItem(STORAGE_KEY), now()));
  let timer: ReturnType<typeof setTimeout> | undefined;

  function store(next: Tokens | undefined): void {
    setTokens(next);
    if (next) storage.setItem(STORAGE_KEY, JSON.stringify(next));
    else storage.removeItem(STORAGE_KEY);
    schedule(next);
  }

  function schedule(current: Tokens | undefined, lifetimeMs?: number): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (!current) return;
    const lifetime = lifetimeMs ?? current.expiresAt - now();
    timer = setTimeout(() => void refreshNow(), refreshDelayMs(current.expiresAt, now(), lifetime));
  }

  /** Swap the refresh token for new tokens; an unusable refresh token signs out. */
  async function refreshNow(): Promise<void> {
    const current = tokens();
    if (!current) return;
    try {
      const grant = await deps.refresh(current.refreshToken);
      store({
        accessToken: grant.accessToken,
        refreshToken: grant.refreshToken,
        expiresAt: now() + grant.expiresIn * 1000,
        email: current.email,
      });
    } catch {
      store(undefined);
    }
  }

  function signIn(email: string, grant: TokenGrant): void {
    store({
      accessToken: grant.accessToken,
      refreshToken: grant.refreshToken,
      expiresAt: now() + grant.expiresIn * 1000,
      email,
    });
  }

  /** Revoke the refresh token (best effort) and forget both tokens. */
  async function signOut(): Promise<void> {
    const current = tokens();
    if (current) {
      try {
        // While the access token is still sent: Logout needs it.
        await deps.logout(current.refreshToken);
      } catch {
        // Signed out here all the same; the refresh token expires on its own.
      }
    }
    store(undefined);
  }

  schedule(tokens());
  return {
    tokens,
    accessToken: () => tokens()?.accessToken,
    signIn,
    signOut,
    refreshNow,
  };
}

export type Session = ReturnType<typeof createSession>;
