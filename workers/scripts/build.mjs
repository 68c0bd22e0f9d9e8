// Bundles the Worker for workerd and wrangler, and the admission module for the pure tests.
//   dist/worker.js     ES module: the Worker and its Durable Object classes
//   dist/admission.mjs ES module: src/admission.ts alone (imported by test/admission.test.mjs)
//   dist/strategy.mjs  ES module: src/strategy.ts alone (imported by test/worker.test.mjs)
//   dist/config.mjs    ES module: src/config.ts and limits.json (imported by test/config.test.mjs)
// Type checking is separate (`tsc --noEmit`, run by `npm run build` before this script).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const common = {
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "neutral",
  external: ["cloudflare:*"],
  logLevel: "warning",
  legalComments: "none",
};
await build({
  ...common,
  entryPoints: [join(root, "src/worker.ts")],
  outfile: join(root, "dist/worker.js"),
});
await build({
  ...common,
  entryPoints: [join(root, "src/admission.ts")],
  outfile: join(root, "dist/admission.mjs"),
});
await build({
  ...common,
  entryPoints: [join(root, "src/strategy.ts")],
  outfile: join(root, "dist/strategy.mjs"),
});
await build({
  ...common,
  entryPoints: [join(root, "src/config.ts")],
  outfile: join(root, "dist/config.mjs"),
});
