// Dark and light theme: the trader's choice (kept in localStorage), else the system's.
import { createSignal } from "solid-js";

export type Theme = "dark" | "light";
const KEY = "cift.theme";

export function initialTheme(stored: string | null, prefersDark: boolean): Theme {
  if (stored === "dark" || stored === "light") return stored;
  return prefersDark ? "dark" : "light";
}

const [theme, setThemeSignal] = createSignal<Theme>(
  initialTheme(localStorage.getItem(KEY), window.matchMedia?.("(prefers-color-scheme: dark)").matches ?? false),
);

function apply(value: Theme): void {
  document.documentElement.classList.toggle("dark", value === "dark");
}
apply(theme());

export { theme };

export function toggleTheme(): void {
  const next: Theme = theme() === "dark" ? "light" : "dark";
  localStorage.setItem(KEY, next);
  setThemeSignal(next);
  apply(next);
}

/** Colours the charts draw with (canvas, so not Tailwind classes). */
export function chartColors(value: Theme) {
  return value === "dark"
    ? { background: "#020617", text: "#cbd5e1", grid: "#1e293b", up: "#34d399", down: "#fb7185" }
    : { background: "#ffffff", text: "#334155", grid: "#e2e8f0", up: "#059669", down: "#e11d48" };
}
