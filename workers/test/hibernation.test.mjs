// HIBERNATION=true: workerd evicts an idle room object (~10 s without events). The object
// must come back from its sockets' attachments with the same seats and queues, keep
// fanning out, and promote from its queue (locally, or through the lobby which is kept in
// memory), with its counters restored from storage. This test sleeps ~16 s once, for all three strategies together.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startWorkerd, Client, tag, sleep } from "./helpers.mjs";

const STRATEGIES = ["single", "per-room", "sharded-2"];

test("room objects rebuild their rooms after hibernation eviction", async () => {
  // A global limit, so per-room and sharded-2 go through the lobby.
  const w = await startWorkerd({
    HIBERNATION: true,
    MAX_CONNECTIONS_PER_ROOM: 2,
    QUEUE_LIMIT: 2,
    MAX_TOTAL_CONNECTIONS: 100,
  });
  const open = [];
  try {
    const runs = {};
    for (const s of STRATEGIES) {
      const t = tag();
      const room = `${t}-r`;
      const c = {};
      for (const u of ["a", "b", "c", "d"]) {
        c[u] = new Client(`${w.ws}/s/${s}/rooms/${room}?user=${t}-${u}`);
        open.push(c[u]);
        await c[u].first();
      }
      runs[s] = { t, room, c, before: await w.stats(s) };
    }
    await sleep(16000);
    for (const s of STRATEGIES) {
      const { t, room, c, before } = runs[s];
      const st = await w.stats(s);
      const [o, b] = [st.objects[0], before.objects[0]];
      console.log(JSON.stringify({o, b}));
      assert.ok(o.restarts > b.restarts, `${s}: object was evicted and started again`);
      assert.ok(o.incarnation_started_at > b.incarnation_started_at, `${s}: a new incarnation`);
      // Its counters were saved and restored: the same lineage, nothing lost.
      assert.equal(o.instance, b.instance, `${s}: same instance`);
      assert.equal(o.connects, 4, `${s}: connects kept`);
      assert.equal(o.admitted, 2, `${s}: admitted kept`);
      assert.equal(o.queued_joins, 2, `${s}: queued kept`);
      const want = { seated: [`${t}-a`, `${t}-b`], queued: [`${t}-c`, `${t}-d`] };
      assert.deepEqual(st.rooms[room], want, `${s}: rebuilt`);
      if (st.lobby) assert.deepEqual(st.lobby.rooms[room], want, `${s}: lobby kept`);
      c.a.send({ type: "message", seq: 1, ts: 2, body: "after" });
      assert.equal((await c.b.take((m) => m.type === "message")).body, "after");
      c.a.send({ type: "leave" });
      assert.equal((await c.a.closedWithin()).code, 1000);
      assert.deepEqual(await c.c.take((m) => m.type === "joined"), {
        type: "joined",
        room,
        user: `${t}-c`,
        members: 2,
      });
      c.d.send({ type: "message", seq: 1, ts: 2, body: "queued" });
      assert.deepEqual(await c.d.take((m) => m.type === "error"), { type: "error", code: "not_admitted" });
    }
  } finally {
    for (const x of open) x.close();
    await w.stop();
  }
});
