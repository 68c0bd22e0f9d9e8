// Test helpers: start a real workerd on a free loopback port, talk to it over WebSockets.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import workerdModule from "workerd";

// The platform binary itself (not a shim), so that stopping it stops workerd.
const workerd = workerdModule.default ?? workerdModule;

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const VECTORS = JSON.parse(
  readFileSync(join(ROOT, "..", "scenarios", "vectors", "admission.json"), "utf8"),
).vectors;
export const TOKEN = "test-token-0123456789";

if (typeof WebSocket !== "function") {
  throw new Error("no global WebSocket: run the tests with `npm test` (node --experimental-websocket)");
}

const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * Start workerd serving workerd.capnp on 127.0.0.1 with an OS-chosen port, reported on the
 * control fd. `env` maps DOSIM_* variables (without the prefix) to values.
 */
export async function startWorkerd(env = {}) {
  const childEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("DOSIM_")) childEnv[k] = v;
  childEnv.DOSIM_STATS_TOKEN = TOKEN;
  for (const [k, v] of Object.entries(env)) if (v !== null && v !== undefined) childEnv[`DOSIM_${k}`] = String(v);
  const child = spawn(
    workerd,
    ["serve", join(ROOT, "workerd.capnp"), "--socket-addr", "http=127.0.0.1:0", "--control-fd=3"],
    { cwd: ROOT, env: childEnv, stdio: ["ignore", process.env.DOSIM_TEST_VERBOSE ? "inherit" : "ignore", "pipe", "pipe"] },
  );
  running.add(child);
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
    if (stderr.length > 20000) stderr = stderr.slice(-20000);
  });
  const exited = new Promise((resolve) => child.on("exit", (code, sig) => resolve({ code, sig })));
  exited.then(() => running.delete(child));
  const port = await new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`workerd did not start:\n${stderr}`)), 15000);
    child.stdio[3].on("data", (d) => {
      buf += d;
      for (const line of buf.split("\n")) {
        try {
          const ev = JSON.parse(line);
          if (ev.event === "listen" && ev.socket === "http") {
            clearTimeout(timer);
            resolve(ev.port);
          }
        } catch {
          // partial line
        }
      }
    });
    exited.then(({ code, sig }) => {
      clearTimeout(timer);
      reject(new Error(`workerd exited (${code ?? sig}):\n${stderr}`));
    });
  });
  const http = `http://127.0.0.1:${port}`;
  return {
    pid: child.pid,
    port,
    http,
    ws: `ws://127.0.0.1:${port}`,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
    },
    async stats(strategy, { detail = true } = {}) {
      const r = await fetch(`${http}/s/${strategy}/stats${detail ? "?detail=1" : ""}`, {
        headers: { Authorization: `Bearer ${TOKEN}` },
      });
      if (r.status !== 200) throw new Error(`stats: ${r.status}`);
      return r.json();
    },
    async reset(strategy) {
      const r = await fetch(`${http}/s/${strategy}/reset`, {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}` },
      });
      if (r.status !== 200) throw new Error(`reset: ${r.status}`);
      return r.json();
    },
  };
}

/** A WebSocket client that keeps every frame it received, to be taken in order. */
export class Client {
  constructor(url) {
    this.url = url;
    this.inbox = [];
    this.waiters = [];
    this.ws = new WebSocket(url);
    this.opened = new Promise((resolve) => this.ws.addEventListener("open", () => resolve(true)));
    this.closed = new Promise((resolve) => {
      this.ws.addEventListener("close", (ev) => {
        resolve({ code: ev.code, reason: ev.reason });
        this.wake();
      });
    });
    this.isClosed = false;
    this.closed.then(() => (this.isClosed = true));
    this.ws.addEventListener("error", () => {});
    this.ws.addEventListener("message", (ev) => {
      let v;
      try {
        v = JSON.parse(ev.data);
      } catch {
        v = { type: "<unparsable>", raw: ev.data };
      }
      this.inbox.push(v);
      this.wake();
    });
  }

  wake() {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  /** The first not yet taken frame matching `pred` (remove it); rejects after `ms`. */
  async take(pred = () => true, ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0];
      if (this.isClosed) throw new Error(`${this.url}: closed while waiting`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.url}: timed out; inbox ${JSON.stringify(this.inbox)}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The first frame of the connection (joined, queued or rejected). */
  first(ms = 5000) {
    return this.take(() => true, ms);
  }

  send(v) {
    this.ws.send(typeof v === "string" ? v : JSON.stringify(v));
  }

  /** Resolves with {code, reason} of the close, or rejects after `ms`. */
  async closedWithin(ms = 5000) {
    let t;
    const timeout = new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`${this.url}: not closed within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(t);
    }
  }

  close() {
    try {
      this.ws.close();
    } catch {
      // already closed
    }
  }
}

/** A short unique tag for names in one run. */
export function tag() {
  return Math.random().toString(36).slice(2, 8);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns a truthy value (returned) or `ms` pass (last value returned). */
export async function eventually(fn, ms = 3000) {
  const deadline = Date.now() + ms;
  let v;
  for (;;) {
    v = await fn();
    if (v || Date.now() > deadline) return v;
    await sleep(25);
  }
}

/** One user joins `room` of `strategy` (must be seated) and leaves at once. */
export async function joinAndLeave(w, strategy, room, user = "u1") {
  const c = new Client(`${w.ws}/s/${strategy}/rooms/${room}?user=${user}`);
  const f = await c.first(10000);
  if (f.type !== "joined") throw new Error(`${room}: ${JSON.stringify(f)}`);
  c.send({ type: "leave" });
  await c.closedWithin(10000);
}

/** `n` join-and-leave cycles, 50 at a time; `name(i)` gives room and user of cycle i. */
export async function cycles(w, strategy, n, name) {
  let next = 0;
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next < n) {
        const [room, user] = name(next++);
        await joinAndLeave(w, strategy, room, user);
      }
    }),
  );
}
