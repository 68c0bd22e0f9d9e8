// Runs the test suite with node's built-in runner: test/*.test.mjs, two files at a time
// (test/hibernation.test.mjs mostly sleeps).
// Node 20 needs --experimental-websocket for the global WebSocket the tests use as clients.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const files = readdirSync(join(root, "test"))
  .filter((f) => f.endsWith(".test.mjs"))
  .sort()
  .map((f) => join("test", f));
const flags = typeof WebSocket === "function" ? [] : ["--experimental-websocket", "--no-warnings=ExperimentalWarning"];
const r = spawnSync(
  process.execPath,
  [...flags, "--test", "--test-concurrency=2", ...process.argv.slice(2), ...files],
  { cwd: root, stdio: "inherit" },
);
process.exit(r.status ?? 1);
