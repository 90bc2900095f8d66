/// <reference types="vitest/config" />
// The dashboard's build: SolidJS + Tailwind, two pages (the dashboard at / and the API
// docs at /docs), written to dist/ under fixed names. The gateway serves exactly the
// files in served-files.json (one Envoy route each, the same list for `cift up` and
// Kubernetes), so the build fails when it emits a file that list does not name.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import tailwindcss from "@tailwindcss/vite";
import { defineConfig, type Plugin } from "vite";
import solid from "vite-plugin-solid";

const served = new Set(
  Object.values(JSON.parse(readFileSync(resolve(import.meta.dirname, "served-files.json"), "utf8")) as string[]),
);

function onlyServedFiles(): Plugin {
  return {
    name: "cift-only-served-files",
    apply: "build",
    generateBundle(_options, bundle) {
      const unserved = Object.keys(bundle).filter((name) => !served.has(name));
      if (unserved.length > 0) {
        this.error(`built files the gateway would not serve (add them to served-files.json): ${unserved.join(", ")}`);
      }
    },
  };
}

export default defineConfig({
  plugins: [solid(), tailwindcss(), onlyServedFiles()],
  build: {
    target: "es2022",
    // No source maps: the gateway serves only the listed files.
    sourcemap: false,
    // Every browser the dashboard targets preloads modules natively.
    modulePreload: { polyfill: false },
    // The docs page carries Swagger UI (about 1.5 MB); the dashboard stays far below.
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      input: { app: resolve(import.meta.dirname, "index.html"), docs: resolve(import.meta.dirname, "docs.html") },
      output: {
        // Fixed names: the gateway's routes are known before the build (see above).
        entryFileNames: "assets/[name].js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
        // Each page is one script: no shared chunk between the dashboard and the docs.
        manualChunks: undefined,
        inlineDynamicImports: false,
      },
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
