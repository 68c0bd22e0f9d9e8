// The Worker on workerd: routing and validation, the stats endpoint's authentication,
// malformed input, fan-out and reset, under both HIBERNATION settings.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorkerd, Client, TOKEN, tag, sleep, eventually } from "./helpers.mjs";
import { request } from "node:http";
import { fnv1a32, objectFor, parseStrategy } from "../dist/strategy.mjs";

/** GET with arbitrary headers (fetch refuses `Upgrade`); resolves with the status. */
function rawGet(url, headers) {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve(res.statusCode);
    });
    req.on("error", reject);
    req.end();
  });
}

const STRATEGIES = ["single", "per-room", "sharded-2"];

test("FNV-1a 32-bit and shard choice", () => {
  // Published FNV-1a test values.
  assert.equal(fnv1a32(""), 0x811c9dc5);
  assert.equal(fnv1a32("a"), 0xe40c292c);
  assert.equal(fnv1a32("foobar"), 0xbf9cf968);
  const s8 = parseStrategy("sharded-8");
  assert.equal(objectFor(s8, "foobar"), `shard:8:${0xbf9cf968 % 8}`);
  assert.equal(objectFor(parseStrategy("per-room"), "r1"), "room:r1");
  assert.equal(objectFor(parseStrategy("single"), "r1"), "single");
  for (const bad of ["sharded-0", "sharded-1025", "sharded-01", "sharded-", "shard-2", "Single"]) {
    assert.equal(parseStrategy(bad), null, bad);
  }
  assert.equal(parseStrategy("sharded-1024").shards, 1024);
});

/** Open `n` members of one room and wait until all are joined. */
async function members(w, strategy, room, users) {
  const cs = users.map((u) => new Client(`${w.ws}/s/${strategy}/rooms/${room}?user=${u}`));
  for (const c of cs) assert.equal((await c.first()).type, "joined");
  return cs;
}

/** `from` sends one message; every other client must receive it exactly, `from` nothing. */
async function checkDelivery(from, others, seq) {
  const ts = 1_700_000_000_123.5 + seq;
  from.send({ type: "message", seq, ts, body: `hello ${seq}` });
  for (const o of others) {
    const m = await o.take((x) => x.type === "message");
    assert.deepEqual(m, { type: "message", from: from.userName, seq, ts, body: `hello ${seq}` });
  }
  await sleep(30);
  assert.ok(!from.inbox.some((x) => x.type === "message"), "no echo to the sender");
  for (const o of others) assert.ok(!o.inbox.some((x) => x.type === "message"), "exactly one copy");
}

function named(c, user) {
  c.userName = user;
  return c;
}

describe("routing and the stats endpoint", () => {
  let w;
  let noToken;
  before(async () => {
    w = await startWorkerd({});
    noToken = await startWorkerd({ STATS_TOKEN: "" });
  });
  after(async () => {
    await w?.stop();
    await noToken?.stop();
  });

  test("stats: missing token 401, wrong token 401, right token 200", async () => {
    const url = `${w.http}/s/single/stats`;
    for (const headers of [{}, { Authorization: "Bearer nope" }, { Authorization: TOKEN }, { Authorization: `Bearer ${TOKEN}x` }]) {
      const r = await fetch(url, { headers });
      assert.equal(r.status, 401);
      assert.equal(await r.text(), "");
    }
    const r = await fetch(url, { headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.status, 200);
    const body = await r.json();
    for (const k of ["strategy", "lobby_mode", "hibernation", "limits", "objects", "lobby", "total"]) {
      assert.ok(k in body, k);
    }
    assert.equal(body.strategy, "single");
    const reset = await fetch(`${w.http}/s/single/reset`, { method: "POST" });
    assert.equal(reset.status, 401);
    assert.equal(await reset.text(), "");
  });

  test("stats: with no STATS_TOKEN configured, always 401", async () => {
    for (const headers of [{}, { Authorization: "Bearer " }, { Authorization: `Bearer ${TOKEN}` }]) {
      const r = await fetch(`${noToken.http}/s/single/stats`, { headers });
      assert.equal(r.status, 401);
    }
  });

  test("bad strategy, room or user: 400 before any object is touched", async () => {
    const bad = [
      "/s/sharded-0/rooms/r?user=u",
      "/s/sharded-1025/rooms/r?user=u",
      "/s/nope/rooms/r?user=u",
      "/s/per-room/rooms/r?user=",
      "/s/per-room/rooms/r",
      "/s/per-room/rooms/a.b?user=u",
      `/s/per-room/rooms/${"x".repeat(65)}?user=u`,
      "/s/per-room/rooms/r?user=%20u",
      "/s/per-room/rooms/%C3%A9?user=u",
    ];
    for (const p of bad) {
      const status = await rawGet(`${w.http}${p}`, {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      });
      assert.equal(status, 400, p);
    }
    assert.equal((await fetch(`${w.http}/s/per-room/rooms/r?user=u`)).status, 426);
    assert.equal((await fetch(`${w.http}/nope`)).status, 404);
    assert.equal((await fetch(`${w.http}/healthz`)).status, 200);
    const st = await w.stats("per-room");
    assert.equal(st.objects.length, 0);
    assert.equal(st.total.connects, 0);
  });
});

for (const hibernation of [true, false]) {
  describe(`HIBERNATION=${hibernation}`, () => {
    let w;
    let q;
    before(async () => {
      w = await startWorkerd({ HIBERNATION: hibernation, MAX_CONNECTIONS_PER_ROOM: 8, QUEUE_LIMIT: 0 });
      q = await startWorkerd({ HIBERNATION: hibernation, MAX_CONNECTIONS_PER_ROOM: 1, QUEUE_LIMIT: 2 });
    });
    after(async () => {
      await w?.stop();
      await q?.stop();
    });

    for (const strategy of STRATEGIES) {
      test(`${strategy}: fan-out to exactly the other members, counted in stats`, async () => {
        await w.reset(strategy);
        const t = tag();
        const users = ["a", "b", "c"].map((u) => `${t}-${u}`);
        const [a, b, c] = (await members(w, strategy, `${t}-room`, users)).map((x, i) => named(x, users[i]));
        try {
          await checkDelivery(a, [b, c], 1);
          const st = await w.stats(strategy);
          assert.equal(st.hibernation, hibernation);
          assert.equal(st.total.messages_in, 1);
          assert.equal(st.total.messages_out, 2);
          assert.equal(st.total.connects, 3);
          assert.equal(st.total.admitted, 3);
          assert.equal(st.total.seated, 3);
          assert.equal(st.total.connections, 3);
          assert.equal(st.total.active_rooms, 1);
          assert.equal(st.objects.length, 1);
          assert.equal(st.objects[0].name, strategy === "single" ? "single" : strategy === "per-room" ? `room:${t}-room` : st.objects[0].name);
          if (strategy === "sharded-2") assert.match(st.objects[0].name, /^shard:2:[01]$/);
          assert.equal(st.lobby, null);
        } finally {
          for (const x of [a, b, c]) x.close();
        }
      });
    }

    test("malformed input is closed with its code, counted, and the room keeps working", async () => {
      const strategy = "per-room";
      await w.reset(strategy);
      const t = tag();
      const room = `${t}-room`;
      const users = ["a", "b", "c"].map((u) => `${t}-${u}`);
      const [a, b, c] = (await members(w, strategy, room, users)).map((x, i) => named(x, users[i]));
      const open = [a, b, c];
      try {
        const cases = [
          ["oversized", (x) => x.send({ type: "message", seq: 1, ts: 1, body: "x".repeat(5000) }), 1009],
          ["garbage", (x) => x.send("{not json"), 1007],
          ["not an object", (x) => x.send("[1,2]"), 1007],
          ["bad fields", (x) => x.send({ type: "message", seq: "one", ts: 1, body: "b" }), 1007],
          ["unknown type", (x) => x.send({ type: "dance" }), 1008],
          ["binary", (x) => x.ws.send(new Uint8Array([1, 2, 3])), 1003],
        ];
        let seq = 10;
        for (const [what, act, code] of cases) {
          const x = new Client(`${w.ws}/s/${strategy}/rooms/${room}?user=${t}-x`);
          assert.equal((await x.first()).type, "joined", what);
          act(x);
          const cl = await x.closedWithin();
          assert.equal(cl.code, code, what);
          // The offender's seat is released and the others are still served.
          await checkDelivery(b, [a, c], seq++);
          const st = await w.stats(strategy);
          assert.equal(st.total.seated, 3, what);
        }
        const st = await w.stats(strategy);
        assert.equal(st.total.oversized, 1);
        assert.equal(st.total.malformed, 4);
        assert.equal(st.total.unknown, 1);
        assert.equal(st.total.left, 6);

        // A 9th user in a full 8-seat room with no queue.
        const more = [];
        for (let i = 4; i <= 8; i++) {
          const x = new Client(`${w.ws}/s/${strategy}/rooms/${room}?user=${t}-m${i}`);
          more.push(x);
          open.push(x);
          assert.deepEqual(await x.first(), { type: "joined", room, user: `${t}-m${i}`, members: i });
        }
        const ninth = new Client(`${w.ws}/s/${strategy}/rooms/${room}?user=${t}-m9`);
        assert.deepEqual(await ninth.first(), { type: "rejected", reason: "room_full" });
        assert.deepEqual(await ninth.closedWithin(), { code: 4001, reason: "room_full" });
        // One id cannot take a second seat.
        const dup = new Client(`${w.ws}/s/${strategy}/rooms/${room}?user=${t}-a`);
        assert.deepEqual(await dup.first(), { type: "rejected", reason: "duplicate" });
        assert.equal((await dup.closedWithin()).code, 4001);
        await checkDelivery(c, [a, b, ...more], seq++);
        const st2 = await w.stats(strategy);
        assert.equal(st2.total.rejections.room_full, 1);
        assert.equal(st2.total.rejections.duplicate, 1);
        assert.equal(st2.total.seated, 8);

        // A plain close (no leave frame) frees the seat too.
        more[0].close();
        assert.ok(await eventually(async () => (await w.stats(strategy)).total.seated === 7));
        const again = new Client(`${w.ws}/s/${strategy}/rooms/${room}?user=${t}-m9`);
        open.push(again);
        assert.equal((await again.first()).type, "joined");
      } finally {
        for (const x of open) x.close();
      }
    });

    test("queued users: not_admitted error, position updates, promotion; reset closes all", async () => {
      const strategy = "single";
      await q.reset(strategy);
      const t = tag();
      const room = `${t}-r`;
      const a = named(new Client(`${q.ws}/s/${strategy}/rooms/${room}?user=${t}-a`), `${t}-a`);
      const b = named(new Client(`${q.ws}/s/${strategy}/rooms/${room}?user=${t}-b`), `${t}-b`);
      const c = named(new Client(`${q.ws}/s/${strategy}/rooms/${room}?user=${t}-c`), `${t}-c`);
      try {
        assert.equal((await a.first()).type, "joined");
        assert.deepEqual(await b.first(), { type: "queued", position: 1 });
        assert.deepEqual(await c.first(), { type: "queued", position: 2 });
        b.send({ type: "message", seq: 1, ts: 1, body: "let me in" });
        assert.deepEqual(await b.take(), { type: "error", code: "not_admitted" });
        b.send({ type: "leave" });
        assert.equal((await b.closedWithin()).code, 1000);
        assert.deepEqual(await c.take(), { type: "position", position: 1 });
        a.send({ type: "leave" });
        assert.equal((await a.closedWithin()).code, 1000);
        assert.deepEqual(await c.take(), { type: "joined", room, user: `${t}-c`, members: 1 });
        let st = await q.stats(strategy);
        assert.equal(st.total.not_admitted, 1);
        assert.equal(st.total.abandoned, 1);
        assert.equal(st.total.promoted, 1);
        assert.equal(st.total.messages_in, 0);
        const r = await q.reset(strategy);
        assert.equal(r.closed, 1);
        if (hibernation) {
          // workerd sends the close frame, but under hibernation may leave the TCP connection
          // to the client (room.ts, reset): the client has the frame once it is CLOSING.
          assert.ok(await eventually(() => c.ws.readyState >= 2), "close frame received");
        } else {
          assert.equal((await c.closedWithin()).code, 1012);
        }
        st = await q.stats(strategy);
        assert.equal(st.total.connects, 0);
        assert.equal(st.total.seated, 0);
      } finally {
        for (const x of [a, b, c]) x.close();
      }
    });
  });
}
