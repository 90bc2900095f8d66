// Entry point: one transport to the gateway that served this page, the session that
// signs its calls, and the app.
import { render } from "solid-js/web";
import { App } from "./App";
import { clients, gatewayTransport } from "./lib/api";
import { createSession, type Session } from "./lib/session";
import "./lib/theme";
import "./styles.css";

let session: Session | undefined;
const api = clients(gatewayTransport(() => session?.accessToken()));
session = createSession({
  refresh: (refreshToken) => api.auth.refreshToken({ refreshToken }),
  logout: (refreshToken) => api.auth.logout({ refreshToken }),
});
const signedIn = session;

render(() => <App api={api} session={signedIn} />, document.getElementById("root")!);
