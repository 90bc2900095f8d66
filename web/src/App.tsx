// The dashboard: the sign-in page until there is a session, then the signed-in shell
// (navigation, theme, sign out) around the pages. Routes live in the URL's hash
// (#/symbol/AAPL), so the gateway serves one page at / for every view.
import { A, HashRouter, Route, type RouteSectionProps } from "@solidjs/router";
import { type JSX, Show } from "solid-js";
import { BacktestsPage } from "./components/Backtests";
import { SignIn } from "./components/SignIn";
import { App as AppContextProvider } from "./context";
import type { Clients } from "./lib/api";
import type { Session } from "./lib/session";
import { theme, toggleTheme } from "./lib/theme";
import { DashboardPage, OrdersPage, PortfolioPage, SymbolPage } from "./pages";
import { createTrading } from "./trading";

function Shell(props: { session: Session; children?: JSX.Element }) {
  const link = "rounded px-2 py-1 hover:bg-slate-100 dark:hover:bg-slate-800";
  const active = "bg-slate-100 dark:bg-slate-800";
  return (
    <div class="mx-auto max-w-7xl p-2 sm:p-4">
      <nav class="mb-3 flex flex-wrap items-center gap-1 text-sm" aria-label="Main">
        <span class="mr-2 font-semibold text-teal-700 dark:text-teal-400">CIFT Markets</span>
        <A class={link} activeClass={active} href="/" end>Dashboard</A>
        <A class={link} activeClass={active} href="/orders">Orders</A>
        <A class={link} activeClass={active} href="/portfolio">Portfolio</A>
        <A class={link} activeClass={active} href="/backtests">Backtests</A>
        <a class={link} href="/docs">API docs</a>
        <span class="ml-auto hidden text-xs text-slate-500 sm:inline" data-testid="signed-in-as">{props.session.tokens()?.email}</span>
        <button class="btn-ghost px-2 py-1 text-xs" onClick={toggleTheme} aria-label="Switch theme">
          {theme() === "dark" ? "Light" : "Dark"}
        </button>
        <button class="btn-ghost px-2 py-1 text-xs" onClick={() => void props.session.signOut()}>
          Sign out
        </button>
      </nav>
      {props.children}
    </div>
  );
}

/** The signed-in dashboard; its streams stop when it unmounts (sign-out). */
function SignedIn(props: { api: Clients; session: Session }) {
  const trading = createTrading(props.api, props.session);
  const layout = (route: RouteSectionProps) => (
    <AppContextProvider.Provider value={{ api: props.api, session: props.session, trading }}>
      <Shell session={props.session}>{route.children}</Shell>
    </AppContextProvider.Provider>
  );
  return (
    <HashRouter root={layout}>
      <Route path="/" component={DashboardPage} />
      <Route path="/symbol/:symbol" component={SymbolPage} />
      <Route path="/orders" component={OrdersPage} />
      <Route path="/portfolio" component={PortfolioPage} />
      <Route path="/backtests" component={BacktestsPage} />
      <Route path="*" component={DashboardPage} />
    </HashRouter>
  );
}

export function App(props: { api: Clients; session: Session }) {
  return (
    <Show when={props.session.tokens()?.email} keyed fallback={<SignIn api={props.api} session={props.session} />}>
      <SignedIn api={props.api} session={props.session} />
    </Show>
  );
}
