// The Kubernetes files of a sharded drive (sim/deploy/kubernetes/): every document is valid
// against the Kubernetes API's schema (kubernetes-models: the API's OpenAPI schemas compiled
// with ajv), and the Job is what `dosim merge` needs — an Indexed Job of N pods at once, no
// index ever re-run, each pod's index in `--shard I/N`, one `--start-at` for all, the report
// on a shared volume. The schemas accept unknown keys (as the API's OpenAPI does), so the
// fields that matter are checked by name here too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { Job } from "kubernetes-models/batch/v1/Job";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Pod } from "kubernetes-models/v1/Pod";

const DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "sim", "deploy", "kubernetes");
const MODELS = {
  "batch/v1 Job": Job,
  "v1 ConfigMap": ConfigMap,
  "v1 PersistentVolumeClaim": PersistentVolumeClaim,
  "v1 Pod": Pod,
};

/** The documents of a YAML file, parsed strictly (a syntax error fails the test). */
function documents(file) {
  const text = readFileSync(join(DIR, file), "utf8");
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  for (const d of docs) {
    assert.deepEqual(d.errors, [], `${file}: ${d.errors.join("; ")}`);
  }
  return { text, objects: docs.map((d) => d.toJS()).filter((o) => o !== null) };
}

/** Validate against the Kubernetes schema of its apiVersion and kind; returns the model. */
function validate(file, o) {
  const Model = MODELS[`${o.apiVersion} ${o.kind}`];
  assert.ok(Model, `${file}: no schema for ${o.apiVersion} ${o.kind}`);
  const m = new Model(o);
  m.validate(); // throws with the path of the first violation
  return m;
}

/** Mounts name declared volumes and every volume is mounted; $(VAR)s in args are declared. */
function checkPod(where, spec) {
  const volumes = new Set((spec.volumes ?? []).map((v) => v.name));
  const mounted = new Set();
  for (const c of spec.containers) {
    const env = new Set((c.env ?? []).map((e) => e.name));
    for (const m of c.volumeMounts ?? []) {
      assert.ok(volumes.has(m.name), `${where}: ${c.name} mounts undeclared volume ${m.name}`);
      mounted.add(m.name);
    }
    // Kubernetes leaves a reference to an undeclared variable as it is, silently.
    for (const a of [...(c.command ?? []), ...(c.args ?? [])]) {
      for (const [, name] of a.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
        assert.ok(env.has(name), `${where}: ${c.name} uses $(${name}) but declares no such env`);
      }
    }
  }
  for (const v of volumes) assert.ok(mounted.has(v), `${where}: volume ${v} is never mounted`);
}

function byKind(objects, kind, name) {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  assert.ok(o, `no ${kind} ${name ?? ""}`);
  return o;
}

test("every Kubernetes document is valid against the API's schema", () => {
  for (const file of ["job.yaml", "merge.yaml"]) {
    const { objects } = documents(file);
    assert.ok(objects.length >= 2, file);
    for (const o of objects) {
      validate(file, o);
      const spec = o.kind === "Pod" ? o.spec : o.kind === "Job" ? o.spec.template.spec : null;
      if (spec) checkPod(`${file} ${o.kind} ${o.metadata.name}`, spec);
    }
  }
});

test("the validator refuses what the API would (it is not a no-op)", () => {
  const { objects } = documents("job.yaml");
  const job = byKind(objects, "Job");
  const broken = [
    (j) => (j.spec.completionMode = "Indexd"),
    (j) => (j.spec.backoffLimitPerIndex = "0"),
    (j) => (j.spec.template.spec.containers[0].env[0].valueFrom.fieldRef = {}),
    (j) => delete j.spec.template.spec.containers,
  ];
  for (const breakIt of broken) {
    const j = structuredClone(job);
    breakIt(j);
    assert.throws(() => validate("job.yaml", j), Error, breakIt.toString());
  }
});

test("the shards' Job: Indexed, N pods at once, never re-run, --shard I/N and one --start-at", () => {
  const { text, objects } = documents("job.yaml");
  const job = byKind(objects, "Job", "dosim-shards");
  const s = job.spec;
  assert.equal(s.completionMode, "Indexed");
  assert.equal(s.backoffLimitPerIndex, 0);
  assert.ok(Number.isInteger(s.completions) && s.completions >= 2, `${s.completions}`);
  assert.equal(s.parallelism, s.completions, "every shard runs at once");
  // A re-run shard would count its rooms twice: the reason is written beside the field.
  const at = text.indexOf("backoffLimitPerIndex: 0");
  assert.match(text.slice(Math.max(0, at - 400), at), /count[\s#]+its rooms[\s#]+twice/);
  const pod = s.template.spec;
  assert.equal(pod.restartPolicy, "Never", "OnFailure would restart a shard in place");
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0];
  const env = Object.fromEntries(c.env.map((e) => [e.name, e]));
  assert.equal(
    env.JOB_COMPLETION_INDEX.valueFrom.fieldRef.fieldPath,
    "metadata.annotations['batch.kubernetes.io/job-completion-index']",
  );
  const arg = (flag) => {
    const i = c.args.indexOf(flag);
    assert.ok(i >= 0, `no ${flag} in ${c.args}`);
    return c.args[i + 1];
  };
  assert.equal(c.args[0], "drive");
  assert.equal(arg("--shard"), `$(JOB_COMPLETION_INDEX)/${s.completions}`);
  assert.equal(arg("--start-at"), "$(START_AT)");
  // START_AT, and the run's other settings, from a ConfigMap of the file that has them.
  const run = byKind(objects, "ConfigMap", env.START_AT.valueFrom.configMapKeyRef.name);
  for (const e of c.env.filter((e) => e.valueFrom?.configMapKeyRef)) {
    const ref = e.valueFrom.configMapKeyRef;
    assert.equal(ref.name, run.metadata.name, e.name);
    assert.ok(ref.key in run.data, `${e.name}: no key ${ref.key} in ${ref.name}`);
  }
  // The scenario from a ConfigMap volume, the report (and its .hlog) on the claim.
  const mountOf = (path) =>
    c.volumeMounts.find((m) => path.startsWith(`${m.mountPath}/`)) ??
    assert.fail(`nothing mounted at ${path}`);
  const volume = (name) => pod.volumes.find((v) => v.name === name);
  const scenario = c.args[1];
  const sm = mountOf(scenario);
  const scenarioMap = byKind(objects, "ConfigMap", volume(sm.name).configMap.name);
  assert.ok(scenario.slice(sm.mountPath.length + 1) in scenarioMap.data, scenario);
  assert.match(scenarioMap.data["scenario.toml"], /^seed = \d+$/m, "one seed for every shard");
  const json = arg("--json");
  assert.match(json, /\$\(JOB_COMPLETION_INDEX\)\.json$/, "one report per shard");
  const rm = mountOf(json);
  assert.notEqual(rm.readOnly, true);
  const claim = volume(rm.name).persistentVolumeClaim.claimName;
  byKind(objects, "PersistentVolumeClaim", claim);
  // The merge reads the same claim, where the shards wrote.
  const merge = byKind(documents("merge.yaml").objects, "Job", "dosim-merge").spec.template.spec;
  assert.ok(merge.volumes.some((v) => v.persistentVolumeClaim?.claimName === claim));
  assert.match(merge.containers[0].args.join(" "), /dosim merge \/reports\/shard-\*\.json/);
});

test("the Dockerfile builds dosim in a Rust stage and ships only the binary", () => {
  const text = readFileSync(join(DIR, "Dockerfile"), "utf8");
  const from = [...text.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gm)];
  assert.equal(from.length, 2, "two stages");
  assert.match(from[0][1], /^rust:/);
  const builder = from[0][2];
  assert.ok(builder, "the builder stage is named");
  assert.match(text, /cargo build --release --locked --bin dosim/);
  assert.match(text, new RegExp(`COPY --from=${builder} \\S+/target/release/dosim /usr/local/bin/dosim`));
  assert.match(text, /^ENTRYPOINT \["dosim"\]/m);
  // The runtime is the builder's Debian release (the binary links its glibc).
  const release = (image) => image.match(/(bookworm|trixie|forky)/)?.[1];
  assert.equal(release(from[0][1]), release(from[1][1]));
  // What the build needs is in the context it copies: dosim embeds workers/src/limits.json.
  assert.match(text, /COPY workers\/src\/limits\.json/);
});
