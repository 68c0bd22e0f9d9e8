// The Worker's configuration: the numeric settings' ranges are those of src/limits.json
// (which dosim reads too), and a value outside them fails every request, /healthz included,
// with 500 naming the setting.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readConfig, ConfigError } from "../dist/config.mjs";
import { startWorkerd, ROOT } from "./helpers.mjs";

const LIMITS = JSON.parse(readFileSync(join(ROOT, "src", "limits.json"), "utf8")).settings;

test("every numeric setting accepts exactly its limits.json range", () => {
  assert.deepEqual(Object.keys(LIMITS).sort(), [
    "MAX_ACTIVE_ROOMS",
    "MAX_CONNECTIONS_PER_ROOM",
    "MAX_MESSAGE_BYTES",
    "MAX_TOTAL_CONNECTIONS",
    "QUEUE_LIMIT",
  ]);
  const read = (name, v) => {
    const c = readConfig({ [name]: v });
    return {
      MAX_CONNECTIONS_PER_ROOM: c.limits.roomCapacity,
      MAX_ACTIVE_ROOMS: c.limits.maxActiveRooms,
      MAX_TOTAL_CONNECTIONS: c.limits.maxTotalConnections,
      QUEUE_LIMIT: c.limits.queueLimit,
      MAX_MESSAGE_BYTES: c.maxMessageBytes,
    }[name];
  };
  for (const [name, r] of Object.entries(LIMITS)) {
    assert.equal(read(name, String(r.min)), r.min, name);
    assert.equal(read(name, String(r.max)), r.max, name);
    assert.equal(read(name, undefined), r.default, `${name} default`);
    assert.equal(read(name, ""), r.default, `${name} empty`);
    assert.throws(() => read(name, String(r.max + 1)), ConfigError, `${name} max + 1`);
    if (r.min > 0) assert.throws(() => read(name, String(r.min - 1)), ConfigError, `${name} min - 1`);
    if (r.unlimited) assert.equal(read(name, "none"), null, name);
    else assert.throws(() => read(name, "none"), ConfigError, `${name} none`);
  }
});

test("a setting out of range: every request answers 500 naming it, /healthz too", async () => {
  const max = LIMITS.MAX_MESSAGE_BYTES.max;
  const w = await startWorkerd({ MAX_MESSAGE_BYTES: max + 1 });
  try {
    for (const path of ["/healthz", "/s/per-room/rooms/r?user=u"]) {
      const r = await fetch(`${w.http}${path}`);
      assert.equal(r.status, 500, path);
      assert.equal(
        (await r.text()).trim(),
        `configuration error: MAX_MESSAGE_BYTES must be in 1..${max}, got ${max + 1}`,
        path,
      );
    }
  } finally {
    await w.stop();
  }
});
