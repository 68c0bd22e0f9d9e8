#!/usr/bin/env node
// Measures what idle room objects cost workerd, and what one stats call costs after many
// rooms have come and gone (results/worker-memory.md).
//
//   node --experimental-websocket scripts/memory.mjs [--rooms N] [--settle S] [--rounds K]
//
// Starts its own workerd on 127.0.0.1 (test/helpers.mjs) and reads its VmRSS from
// /proc/PID/status. Then, on `per-room`, K times (default 2): N new rooms are each joined by one user who
// leaves at once (each object goes idle, socket-less), VmRSS; S seconds' wait (workerd
// evicts idle objects after ~10 s), VmRSS; one authenticated GET /stats (bytes, ms,
// objects listed), VmRSS. Later rounds show whether memory freed by the first is used
// again. Control: a second workerd where the same N join-and-leave cycles all go to one
// object (`single`, one room), which separates the cost of N objects from the cost of N
// WebSocket connections. Prints one JSON document. Run `npm run build` first.
import { readFileSync } from "node:fs";
import { startWorkerd, cycles, joinAndLeave, sleep, TOKEN } from "../test/helpers.mjs";

let rooms = 10000;
let settle = 20;
let rounds = 2;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--rooms") rooms = Number(args[++i]);
  else if (args[i] === "--settle") settle = Number(args[++i]);
  else if (args[i] === "--rounds") rounds = Number(args[++i]);
  else {
    console.error("usage: scripts/memory.mjs [--rooms N] [--settle S] [--rounds K]");
    process.exit(2);
  }
}

const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
const perItem = (kb, n) => Math.round((kb * 1024) / n);

async function stats(w, strategy) {
  const t0 = Date.now();
  const r = await fetch(`${w.http}/s/${strategy}/stats`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const body = await r.text();
  const ms = Date.now() - t0;
  const doc = JSON.parse(body);
  return {
    bytes: body.length,
    ms,
    objects_listed: doc.objects.length,
    pruned_objects: doc.pruned?.objects ?? null,
    total_connects: doc.total.connects,
  };
}

async function warm(w, strategy) {
  for (let i = 0; i < 20; i++) await joinAndLeave(w, strategy, `warm${i}`, "u1");
  await sleep(1000);
}

const out = { rooms, settle_seconds: settle, per_room: [], control_single: null };
const w = await startWorkerd({});
try {
  await warm(w, "per-room");
  const base = rssKb(w.pid);
  out.baseline_rss_kb = base;
  for (let round = 1; round <= rounds; round++) {
    const before = rssKb(w.pid);
    const t0 = Date.now();
    await cycles(w, "per-room", rooms, (i) => [`r${round}m${i}`, "u1"]);
    const created = rssKb(w.pid);
    const seconds = (Date.now() - t0) / 1000;
    await sleep(settle * 1000);
    const settled = rssKb(w.pid);
    const s = await stats(w, "per-room");
    await sleep(1000);
    const afterStats = rssKb(w.pid);
    out.per_room.push({
      round,
      seconds,
      rss_kb: { before, after_rooms: created, after_settle: settled, after_stats: afterStats },
      bytes_per_room: {
        rooms: perItem(created - before, rooms),
        stats_call: perItem(afterStats - settled, rooms),
      },
      stats: s,
    });
  }
} finally {
  await w.stop();
}

const c = await startWorkerd({ MAX_CONNECTIONS_PER_ROOM: 1000 });
try {
  await warm(c, "single");
  const before = rssKb(c.pid);
  await cycles(c, "single", rooms, (i) => ["r", `u${i}`]);
  const after = rssKb(c.pid);
  out.control_single = {
    rss_kb: { before, after },
    bytes_per_cycle: perItem(after - before, rooms),
  };
} finally {
  await c.stop();
}
console.log(JSON.stringify(out, null, 2));
