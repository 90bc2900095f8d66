// Sign in, or register and then sign in, with an email and a password.
import { createSignal, Show } from "solid-js";
import type { Clients } from "../lib/api";
import { serverError } from "../lib/errors";
import type { Session } from "../lib/session";

export function SignIn(props: { api: Clients; session: Session }) {
  const [email, setEmail] = createSignal("");
  const [password, setPassword] = createSignal("");
  const [error, setError] = createSignal("");
  const [busy, setBusy] = createSignal(false);

  async function signIn(register: boolean): Promise<void> {
    setError("");
    setBusy(true);
    try {
      if (register) await props.api.auth.register({ email: email(), password: password() });
      const grant = await props.api.auth.login({ email: email(), password: password() });
      props.session.signIn(email(), grant);
    } catch (failure) {
      setError(serverError(failure).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="flex min-h-screen items-center justify-center p-4">
      <form
        class="panel w-full max-w-sm space-y-3"
        onSubmit={(event) => {
          event.preventDefault();
          void signIn(false);
        }}
      >
        <h1 class="text-xl font-semibold">CIFT Markets</h1>
        <p class="text-sm text-slate-500 dark:text-slate-400">Paper trading. Sign in, or register a new account.</p>
        <label class="block text-sm">
          Email
          <input class="field mt-1" type="email" name="email" autocomplete="username" required value={email()} onInput={(e) => setEmail(e.currentTarget.value)} />
        </label>
        <label class="block text-sm">
          Password
          <input class="field mt-1" type="password" name="password" autocomplete="current-password" required value={password()} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        <Show when={error()}>
          <p role="alert" class="field-error">{error()}</p>
        </Show>
        <div class="flex gap-2">
          <button type="submit" class="btn-primary flex-1" disabled={busy()}>
            Sign in
          </button>
          <button
            type="button"
            class="btn-ghost flex-1"
            disabled={busy()}
            onClick={(event) => {
              if (event.currentTarget.form?.reportValidity()) void signIn(true);
            }}
          >
            Register
          </button>
        </div>
      </form>
    </main>
  );
}
