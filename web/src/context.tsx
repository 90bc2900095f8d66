// What every page reads: the API clients, the session and (once signed in) the live
// trading state.
import { createContext, useContext } from "solid-js";
import type { Clients } from "./lib/api";
import type { Session } from "./lib/session";
import type { Trading } from "./trading";

export interface AppContext {
  api: Clients;
  session: Session;
  trading: Trading;
}

export const App = createContext<AppContext>();

export function useApp(): AppContext {
  const value = useContext(App);
  if (!value) throw new Error("useApp outside the signed-in dashboard");
  return value;
}
