// The shared admission vectors, replayed against src/admission.ts (bundled to dist/).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { Admission } from "../dist/admission.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const { vectors } = JSON.parse(
  readFileSync(join(here, "..", "..", "scenarios", "vectors", "admission.json"), "utf8"),
);

export function limitsOf(v) {
  return {
    roomCapacity: v.limits.max_connections_per_room,
    maxActiveRooms: v.limits.max_active_rooms,
    maxTotalConnections: v.limits.max_total_connections,
    queueLimit: v.limits.queue_limit,
  };
}

function expected(e) {
  switch (e.outcome) {
    case "admitted":
      return { outcome: "admitted" };
    case "queued":
      return { outcome: "queued", position: e.position };
    case "rejected":
      return { outcome: "rejected", reason: e.reason };
    case "unknown":
      return { outcome: "unknown" };
    default:
      return { outcome: e.outcome, promoted: e.promoted ?? [] };
  }
}

test("the vectors file has vectors", () => {
  assert.ok(vectors.length >= 10);
});

for (const v of vectors) {
  test(`vector ${v.name}`, () => {
    const a = new Admission(limitsOf(v));
    v.steps.forEach((s, i) => {
      const got = s.op === "join" ? a.join(s.user, s.room) : s.op === "leave" ? a.leave(s.user) : a.timeout(s.user);
      assert.deepEqual(got, expected(s.expect), `step ${i} ${JSON.stringify(s)}`);
    });
    if (v.final) {
      const seated = {};
      const queued = {};
      for (const r of a.roomIds()) {
        if (a.seatedIn(r).length) seated[r] = a.seatedIn(r);
        if (a.queueOf(r).length) queued[r] = a.queueOf(r);
      }
      assert.deepEqual(seated, v.final.seated);
      assert.deepEqual(queued, v.final.queued);
      assert.equal(a.activeRooms(), v.final.active_rooms);
      assert.equal(a.seatedTotal(), v.final.total_connections);
    }
  });
}

test("positions, placeOf and restore rebuild the same state", () => {
  const limits = { roomCapacity: 1, maxActiveRooms: null, maxTotalConnections: 2, queueLimit: 3 };
  const a = new Admission(limits);
  assert.deepEqual(a.join("a", "r1"), { outcome: "admitted" });
  assert.deepEqual(a.join("b", "r2"), { outcome: "admitted" });
  assert.deepEqual(a.join("c", "r3"), { outcome: "queued", position: 1 });
  assert.deepEqual(a.join("d", "r1"), { outcome: "queued", position: 1 });
  assert.deepEqual(a.join("e", "r1"), { outcome: "queued", position: 2 });
  assert.equal(a.positionOf("e"), 2);
  assert.deepEqual(a.placeOf("d"), { kind: "queued", room: "r1" });
  assert.equal(a.isSeated("a"), true);

  const b = new Admission(limits);
  b.restore(
    [
      ["a", "r1"],
      ["b", "r2"],
    ],
    [
      ["c", "r3"],
      ["d", "r1"],
      ["e", "r1"],
    ],
  );
  for (const x of [a, b]) {
    assert.deepEqual(x.leave("a"), {
      outcome: "left",
      promoted: [{ user: "c", room: "r3" }],
    });
    assert.deepEqual(x.leave("b"), {
      outcome: "left",
      promoted: [{ user: "d", room: "r1" }],
    });
    assert.equal(x.positionOf("e"), 1);
    assert.deepEqual(x.timeout("e"), { outcome: "abandoned", promoted: [] });
    assert.equal(x.queuedTotal(), 0);
  }
});

// A naive reading of the rules (scan every queue head on each promotion), to check the
// heap-based module on random operation sequences.
class Naive {
  constructor(l) {
    this.l = l;
    this.rooms = new Map();
    this.where = new Map();
    this.seq = 0;
  }
  room(r) {
    if (!this.rooms.has(r)) this.rooms.set(r, { seated: [], queue: [] });
    return this.rooms.get(r);
  }
  seatedTotal() {
    let n = 0;
    for (const r of this.rooms.values()) n += r.seated.length;
    return n;
  }
  active() {
    let n = 0;
    for (const r of this.rooms.values()) if (r.seated.length) n++;
    return n;
  }
  blocker(r) {
    const s = this.room(r).seated.length;
    if (s >= this.l.roomCapacity) return "room_full";
    if (s === 0 && this.l.maxActiveRooms !== null && this.active() >= this.l.maxActiveRooms) return "max_active_rooms";
    if (this.l.maxTotalConnections !== null && this.seatedTotal() >= this.l.maxTotalConnections) return "max_total_connections";
    return null;
  }
  join(u, r) {
    if (this.where.has(u)) return { outcome: "rejected", reason: "duplicate" };
    const room = this.room(r);
    if (room.queue.length === 0) {
      const b = this.blocker(r);
      if (b === null) {
        room.seated.push(u);
        this.where.set(u, r);
        return { outcome: "admitted" };
      }
      if (this.l.queueLimit === 0) return { outcome: "rejected", reason: b };
    }
    if (room.queue.length >= this.l.queueLimit) return { outcome: "rejected", reason: "queue_full" };
    room.queue.push([u, this.seq++]);
    this.where.set(u, r);
    return { outcome: "queued", position: room.queue.length };
  }
  leave(u, onlyQueued = false) {
    const r = this.where.get(u);
    if (r === undefined) return { outcome: "unknown" };
    const room = this.room(r);
    const qi = room.queue.findIndex(([x]) => x === u);
    if (onlyQueued && qi < 0) return { outcome: "unknown" };
    this.where.delete(u);
    let outcome;
    if (qi >= 0) {
      room.queue.splice(qi, 1);
      outcome = "abandoned";
    } else {
      room.seated.splice(room.seated.indexOf(u), 1);
      outcome = "left";
    }
    const promoted = [];
    for (;;) {
      const heads = [...this.rooms.entries()]
        .filter(([, x]) => x.queue.length > 0)
        .sort((a, b) => a[1].queue[0][1] - b[1].queue[0][1]);
      const pick = heads.find(([name]) => this.blocker(name) === null);
      if (!pick) break;
      const [name, x] = pick;
      const [v] = x.queue.shift();
      x.seated.push(v);
      promoted.push({ user: v, room: name });
    }
    return { outcome, promoted };
  }
}

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test("random operation sequences agree with a naive reading of the rules", () => {
  const rand = rng(12345);
  const pick = (n) => Math.floor(rand() * n);
  for (let run = 0; run < 200; run++) {
    const limits = {
      roomCapacity: 1 + pick(3),
      maxActiveRooms: rand() < 0.5 ? null : pick(4),
      maxTotalConnections: rand() < 0.5 ? null : pick(6),
      queueLimit: pick(4),
    };
    const a = new Admission(limits);
    const n = new Naive(limits);
    for (let step = 0; step < 80; step++) {
      const u = `u${pick(12)}`;
      const op = pick(3);
      const ctx = `run ${run} step ${step} ${JSON.stringify(limits)}`;
      if (op === 0) {
        const r = `r${pick(5)}`;
        assert.deepEqual(a.join(u, r), n.join(u, r), ctx);
      } else if (op === 1) {
        assert.deepEqual(a.leave(u), n.leave(u), ctx);
      } else {
        assert.deepEqual(a.timeout(u), n.leave(u, true), ctx);
      }
      assert.equal(a.seatedTotal(), n.seatedTotal(), ctx);
      assert.equal(a.activeRooms(), n.active(), ctx);
    }
  }
});
