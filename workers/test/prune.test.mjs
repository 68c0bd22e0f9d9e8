// Stats follow live objects: room objects that came and went are held by the registry as
// idle lineages (the most recent ones, whole) or folded into its pruned sum, so a stats
// call's answer and cost do not grow with them, totals stay exact, and no lineage of theirs
// stays in the isolate's memory (src/registry.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { startWorkerd, Client, TOKEN, cycles, joinAndLeave } from "./helpers.mjs";

/** The stats document and its size in bytes. */
async function stats(w, strategy) {
  const r = await fetch(`${w.http}/s/${strategy}/stats`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(r.status, 200);
  const text = await r.text();
  return { doc: JSON.parse(text), bytes: text.length };
}

test("thousands of rooms that came and went: a bounded stats answer with exact totals", async () => {
  const w = await startWorkerd({});
  try {
    const first = 3000;
    await cycles(w, "per-room", first, (i) => [`a${i}`, "u1"]);
    const s1 = await stats(w, "per-room");
    const kept = s1.doc.pruned.idle_kept;
    assert.ok(kept > 0 && kept < first, `idle_kept ${kept}`);
    assert.equal(s1.doc.objects.length, kept);
    assert.ok(s1.doc.objects.every((o) => o.state === "idle" && o.connections === 0));
    assert.equal(s1.doc.pruned.objects, first - kept);
    assert.equal(s1.doc.pruned.lost, 0);
    for (const k of ["connects", "admitted", "left"]) assert.equal(s1.doc.total[k], first, k);
    assert.equal(s1.doc.total.pruned_objects, first - kept);
    // The most recent ones are the ones kept whole.
    assert.equal(s1.doc.pruned.connects, first - kept);

    // As many again: the answer does not grow.
    const more = 2000;
    await cycles(w, "per-room", more, (i) => [`b${i}`, "u1"]);
    const s2 = await stats(w, "per-room");
    assert.equal(s2.doc.objects.length, kept);
    assert.equal(s2.doc.pruned.objects, first + more - kept);
    assert.equal(s2.doc.total.connects, first + more);
    assert.equal(s2.doc.total.left, first + more);
    assert.ok(s2.bytes <= s1.bytes * 1.05, `${s2.bytes} bytes after, ${s1.bytes} before`);

    // A live room is asked itself; its isolate holds the lineages of live objects only.
    const c = new Client(`${w.ws}/s/per-room/rooms/live?user=u1`);
    assert.equal((await c.first()).type, "joined");
    const s3 = await stats(w, "per-room");
    const active = s3.doc.objects.filter((o) => o.state === "active");
    assert.deepEqual(
      active.map((o) => [o.name, o.connections, o.seated]),
      [["room:live", 1, 1]],
    );
    assert.equal(active[0].isolate_lineages, 1);
    assert.equal(s3.doc.objects.length, kept + 1);
    c.send({ type: "leave" });
    await c.closedWithin();
  } finally {
    await w.stop();
  }
});

test("an idle room takes its counters back; a pruned one starts anew; neither is lost", async () => {
  const w = await startWorkerd({});
  try {
    const find = (doc, name) => doc.objects.find((o) => o.name === name);
    await joinAndLeave(w, "per-room", "x");
    const s1 = (await stats(w, "per-room")).doc;
    const x1 = find(s1, "room:x");
    assert.equal(x1.state, "idle");
    assert.equal(x1.connects, 1);

    await joinAndLeave(w, "per-room", "x");
    const x2 = find((await stats(w, "per-room")).doc, "room:x");
    assert.equal(x2.instance, x1.instance, "the same lineage");
    assert.equal(x2.started_at, x1.started_at);
    assert.equal(x2.connects, 2);
    assert.equal(x2.left, 2);

    // Push x out of the idle lineages kept whole.
    const kept = s1.pruned.idle_kept;
    await cycles(w, "per-room", kept, (i) => [`p${i}`, "u1"]);
    const s3 = (await stats(w, "per-room")).doc;
    assert.equal(find(s3, "room:x"), undefined);
    assert.equal(s3.pruned.objects, 1);
    assert.equal(s3.pruned.connects, 2);
    assert.equal(s3.total.connects, kept + 2);

    const c = new Client(`${w.ws}/s/per-room/rooms/x?user=u1`);
    assert.equal((await c.first()).type, "joined");
    const s4 = (await stats(w, "per-room")).doc;
    const x4 = find(s4, "room:x");
    assert.equal(x4.state, "active");
    assert.notEqual(x4.instance, x1.instance, "a new lineage");
    assert.equal(x4.connects, 1);
    assert.equal(s4.pruned.lost, 0);
    assert.equal(s4.total.connects, kept + 3);
    c.close();
    await c.closedWithin();

    // Reset forgets all of it.
    const r = await w.reset("per-room");
    assert.equal(r.strategy, "per-room");
    const s5 = (await stats(w, "per-room")).doc;
    assert.deepEqual(s5.objects, []);
    assert.equal(s5.pruned.objects, 0);
    assert.equal(s5.total.connects, 0);
    assert.notEqual(s5.pruned.instance, s4.pruned.instance);
  } finally {
    await w.stop();
  }
});
