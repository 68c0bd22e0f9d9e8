#!/usr/bin/env node
// Serve the built Worker (dist/worker.js) on workerd, locally, with no account and no network.
//
//   node scripts/serve.mjs [--port N] [--host 127.0.0.1]
//
// --port 0 (the default is 8787) lets the OS choose. Once workerd listens, one line goes to
// stdout:
//
//   ready http://127.0.0.1:PORT
//
// Limits come from DOSIM_* environment variables (README.md). SIGINT/SIGTERM stop workerd;
// the script exits with workerd's status. Run `npm run build` first.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import workerdModule from "workerd";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const workerd = workerdModule.default ?? workerdModule;

let port = "8787";
let host = "127.0.0.1";
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--port") port = args[++i];
  else if (args[i] === "--host") host = args[++i];
  else {
    console.error(`usage: node scripts/serve.mjs [--port N] [--host ADDR]`);
    process.exit(2);
  }
}
if (!/^[0-9]+$/.test(port ?? "")) {
  console.error(`bad port: ${port}`);
  process.exit(2);
}
if (!existsSync(join(root, "dist", "worker.js"))) {
  console.error("dist/worker.js is missing: run `npm run build` first");
  process.exit(1);
}

const child = spawn(
  workerd,
  ["serve", join(root, "workerd.capnp"), "--socket-addr", `http=${host}:${port}`, "--control-fd=3"],
  { cwd: root, stdio: ["ignore", "inherit", "inherit", "pipe"] },
);
let buf = "";
child.stdio[3].on("data", (d) => {
  buf += d;
  const lines = buf.split("\n");
  buf = lines.pop();
  for (const line of lines) {
    try {
      const ev = JSON.parse(line);
      if (ev.event === "listen" && ev.socket === "http") {
        const shown = host.includes(":") ? `[${host}]` : host;
        process.stdout.write(`ready http://${shown}:${ev.port}\n`);
      }
    } catch {
      // not a control message we know
    }
  }
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
