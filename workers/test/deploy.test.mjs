// The deployment path: `wrangler deploy --dry-run` bundles the very code workerd runs, with
// wrangler.toml's Durable Object bindings and migration, without an account or network.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

test("wrangler deploy --dry-run bundles the Worker with its three Durable Objects", () => {
  const out = mkdtempSync(join(tmpdir(), "dosim-wrangler-"));
  try {
    const r = spawnSync(
      process.execPath,
      [join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js"), "deploy", "--dry-run", "--outdir", out],
      {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" },
      },
    );
    const said = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, said);
    for (const binding of ["env.ROOMS (Room)", "env.LOBBY (Lobby)", "env.REGISTRY (Registry)"]) {
      assert.ok(said.includes(binding), `${binding} missing:\n${said}`);
    }
    const bundle = readFileSync(join(out, "worker.js"), "utf8");
    assert.ok(statSync(join(out, "worker.js")).size > 1000);
    for (const cls of ["Room", "Lobby", "Registry"]) {
      assert.match(bundle, new RegExp(`\\b${cls} = class\\b|class ${cls}\\b`), `${cls} not in the bundle`);
    }
    // Cloudflare finds Durable Object classes among the module's exports.
    const exported = /export\s*\{([^}]*)\}/.exec(bundle)?.[1] ?? "";
    for (const name of ["Room", "Lobby", "Registry", "as default"]) {
      assert.ok(exported.includes(name), `${name} not exported: ${exported}`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
