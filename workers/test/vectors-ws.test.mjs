// The shared admission vectors, replayed over real WebSockets against the Worker on workerd,
// for every strategy. One workerd per vector (its limits come from the environment at
// start); every run uses fresh user and room names.
//
// Mapping of the vectors' operations onto sockets:
// - join: open `/s/{strategy}/rooms/{room}?user={user}` and read the first frame;
// - leave: send {"type":"leave"} and wait for the server's close (1000), which is sent only
//   once the departure is recorded (and, through the lobby, once promotions are delivered);
// - timeout: the queued client gives up by closing its socket; the test then polls the stats
//   endpoint until the user is gone;
// - an expected outcome `unknown` means there is no socket to act on (a user who is not
//   there, or a timeout for a seated user, whose client has no patience to run out).
// Promoted users must receive `joined`; within one room the order shows in `members`.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorkerd, Client, VECTORS, tag, sleep, eventually } from "./helpers.mjs";

const STRATEGIES = ["single", "per-room", "sharded-2"];

// Vectors whose expectations need one view of every user even without a global limit (a
// user seated in one room is `duplicate` in another). Without a global limit, per-room and
// sharded objects admit locally and only see their own users (README.md), so for these
// vectors those strategies run only with LOBBY_MODE=always.
const NEEDS_GLOBAL_VIEW = new Set(["duplicate-user"]);

function envFor(v, hibernation, lobbyMode) {
  return {
    MAX_CONNECTIONS_PER_ROOM: v.limits.max_connections_per_room,
    MAX_ACTIVE_ROOMS: v.limits.max_active_rooms,
    MAX_TOTAL_CONNECTIONS: v.limits.max_total_connections,
    QUEUE_LIMIT: v.limits.queue_limit,
    HIBERNATION: hibernation,
    LOBBY_MODE: lobbyMode,
  };
}

/** Rooms of this run (names carry the run's tag), with the tag stripped. */
function ours(rooms, t) {
  const seated = {};
  const queued = {};
  for (const [r, d] of Object.entries(rooms ?? {})) {
    if (!r.startsWith(`${t}-`)) continue;
    const strip = (u) => u.slice(t.length + 1);
    if (d.seated.length) seated[r.slice(t.length + 1)] = d.seated.map(strip);
    if (d.queued.length) queued[r.slice(t.length + 1)] = d.queued.map(strip);
  }
  return { seated, queued };
}

function present(rooms, user) {
  return Object.values(rooms ?? {}).some((d) => d.seated.includes(user) || d.queued.includes(user));
}

async function replay(w, strategy, v, expectLobby) {
  const t = tag();
  const N = (x) => `${t}-${x}`;
  const clients = new Map();
  const all = [];
  try {
    for (const [i, s] of v.steps.entries()) {
      const ctx = `${v.name} on ${strategy}, step ${i}: ${JSON.stringify(s)}`;
      const e = s.expect;
      if (s.op === "join") {
        const c = new Client(`${w.ws}/s/${strategy}/rooms/${N(s.room)}?user=${N(s.user)}`);
        all.push(c);
        const f = await c.first();
        if (e.outcome === "admitted") {
          assert.equal(f.type, "joined", ctx);
          assert.equal(f.room, N(s.room), ctx);
          assert.equal(f.user, N(s.user), ctx);
          clients.set(s.user, c);
        } else if (e.outcome === "queued") {
          assert.deepEqual(f, { type: "queued", position: e.position }, ctx);
          clients.set(s.user, c);
        } else {
          assert.deepEqual(f, { type: "rejected", reason: e.reason }, ctx);
          const cl = await c.closedWithin();
          assert.equal(cl.code, 4001, ctx);
          assert.equal(cl.reason, e.reason, ctx);
        }
        continue;
      }
      if (e.outcome === "unknown") {
        if (s.op === "leave") assert.ok(!clients.has(s.user), `${ctx}: expected no socket`);
        continue;
      }
      const c = clients.get(s.user);
      assert.ok(c, `${ctx}: no socket for the user`);
      clients.delete(s.user);
      if (s.op === "leave") {
        c.send({ type: "leave" });
        const cl = await c.closedWithin();
        assert.equal(cl.code, 1000, ctx);
      } else {
        // timeout: the client gives up and just closes.
        c.close();
        const gone = await eventually(async () => {
          const st = await w.stats(strategy);
          return !present(st.rooms, N(s.user)) && !present(st.lobby?.rooms, N(s.user));
        });
        assert.ok(gone, `${ctx}: user still present after closing`);
      }
      const members = new Map();
      for (const p of e.promoted ?? []) {
        const pc = clients.get(p.user);
        assert.ok(pc, `${ctx}: promoted user ${p.user} has no socket`);
        const j = await pc.take((m) => m.type === "joined");
        assert.equal(j.room, N(p.room), ctx);
        assert.equal(j.user, N(p.user), ctx);
        const prev = members.get(p.room);
        if (prev !== undefined) assert.ok(j.members > prev, `${ctx}: promotion order in ${p.room}`);
        members.set(p.room, j.members);
      }
    }
    // Nobody got a seat the vector did not give.
    await sleep(30);
    for (const [user, c] of clients) {
      assert.ok(!c.inbox.some((m) => m.type === "joined"), `${v.name}: unexpected promotion of ${user}`);
    }
    if (v.final) {
      const st = await w.stats(strategy);
      const views = [["objects", st.rooms]];
      if (st.lobby) views.push(["lobby", st.lobby.rooms]);
      for (const [view, rooms] of views) {
        const got = ours(rooms, t);
        assert.deepEqual(got.seated, v.final.seated, `${v.name} final seated (${view})`);
        assert.deepEqual(got.queued, v.final.queued, `${v.name} final queued (${view})`);
        assert.equal(Object.keys(got.seated).length, v.final.active_rooms, `${v.name} active (${view})`);
        const total = Object.values(got.seated).reduce((n, s) => n + s.length, 0);
        assert.equal(total, v.final.total_connections, `${v.name} total (${view})`);
      }
      // Each workerd serves one vector, so the totals are this run's.
      assert.equal(st.total.active_rooms, v.final.active_rooms);
      assert.equal(st.total.seated, v.final.total_connections);
      assert.equal(st.lobby_mode, expectLobby);
      assert.equal(st.lobby !== null, expectLobby);
    }
  } finally {
    for (const c of all) c.close();
  }
}

VECTORS.forEach((v, i) => {
  const hibernation = i % 2 === 0;
  const global = v.limits.max_active_rooms !== null || v.limits.max_total_connections !== null;
  describe(`vector ${v.name} (HIBERNATION=${hibernation})`, () => {
    let auto;
    let always;
    before(async () => {
      auto = await startWorkerd(envFor(v, hibernation, "auto"));
      if (!global) always = await startWorkerd(envFor(v, hibernation, "always"));
    });
    after(async () => {
      await auto?.stop();
      await always?.stop();
    });
    for (const s of STRATEGIES) {
      if (s !== "single" && NEEDS_GLOBAL_VIEW.has(v.name)) continue;
      const mode = s === "single" ? "" : global ? " (lobby)" : " (local admission)";
      test(`${s}${mode}`, () => replay(auto, s, v, s !== "single" && global));
    }
    if (!global) {
      for (const s of ["per-room", "sharded-2"]) {
        test(`${s} (LOBBY_MODE=always)`, () => replay(always, s, v, true));
      }
    }
  });
});
