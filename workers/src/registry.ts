/**
 * The registry (`registry:<strategy>`) of `per-room` and `sharded-N`: which room-hosting
 * objects are live, so that the stats and reset endpoints reach those and no others, and
 * what the others counted.
 *
 * A room object's counters are a *lineage* (stats.ts). It registers its lineage when it
 * starts holding sockets (`register`, before its first join, and again after each idle
 * spell), and hands it back here when its last socket goes (`idle`). Here:
 * - **active** objects (name → lineage instance; also in storage, `o:<name>`) are asked
 *   for their counters by each stats call (`collect`);
 * - **idle** lineages are kept whole, the `IDLE_KEPT` most recent ones, and reported
 *   without waking their objects; an object that joins again takes its lineage back
 *   (`register` returns it), so its counters go on as before;
 * - older idle lineages are **pruned**: folded into one retained sum, forgotten one by one.
 *
 * So a stats call costs one RPC per active object (each holds a socket or a join in flight)
 * and its answer lists at most the active objects and `IDLE_KEPT` idle ones, whatever ran
 * before; room objects that came and went leave nothing behind but the sum (their memory in
 * the isolate's lineage map is released when they go idle). Totals stay exact: every
 * counter is in an active object, an idle lineage or the pruned sum, and `collect` runs
 * with the registry's other calls held back (`blockConcurrencyWhile`), so a lineage handed
 * over during a stats call is counted once (its object answers from the lineage it is
 * handing over until this registry has taken it).
 *
 * A registered lineage that its object no longer has (a new isolate: a workerd restart, or
 * on Cloudflare the object moved) is `lost`: noticed when the object registers a different
 * lineage, or when a stats call finds it gone; that is a restart with counters lost.
 *
 * Cost: one RPC and one storage row per start of an object's busy spell (`register`), one
 * RPC and one row deleted at its end (`idle`); none of it is in dosim's cost model. The idle
 * lineages and the pruned sum are in memory only (as the objects' own counters are): the
 * registry is pinned in memory locally; on Cloudflare, if it restarts, its `instance`
 * changes and the driver reports the pruned counters as lost.
 */
import { DurableObject } from "cloudflare:workers";
import { roomStub, type Env } from "./env";
import {
  addCounters,
  countersOf,
  zeroRoomCounters,
  type LostLineage,
  type ObjectStats,
  type Pruned,
  type RoomCounters,
} from "./stats";
import { objectKind } from "./strategy";

/** Idle lineages kept whole (the most recent); older ones are pruned into the sum. */
export const IDLE_KEPT = 1000;
/** Lost lineages named in `pruned.lost_recent`. */
const LOST_KEPT = 20;

/** A lineage as a room object hands it over, and takes it back. */
export interface LineageSnapshot {
  name: string;
  instance: string;
  started_at: number;
  incarnation_started_at: number;
  restarts: number;
  counters: RoomCounters;
}

/** What a stats call collects. */
export interface Collected {
  /** Active objects (as they answered) and idle lineages, sorted by name. */
  objects: ObjectStats[];
  pruned: Pruned;
  /** Active objects that did not answer (their counters are missing from the sums). */
  unanswered: string[];
}

function zeroPruned(): Pruned {
  return {
    instance: crypto.randomUUID(),
    started_at: Date.now(),
    idle_kept: IDLE_KEPT,
    objects: 0,
    restarts: 0,
    lost: 0,
    lost_recent: [],
    ...zeroRoomCounters(),
  };
}

const byName = (a: { name: string }, b: { name: string }) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

export class Registry extends DurableObject<Env> {
  /** Active objects: name → the instance of the lineage they registered. */
  private active = new Map<string, string>();
  /** Idle lineages by name, the longest idle first (Map order). */
  private idleLineages = new Map<string, LineageSnapshot>();
  private pruned: Pruned = zeroPruned();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      const rows = await ctx.storage.list({ prefix: "o:" });
      for (const [k, v] of rows) this.active.set(k.slice(2), typeof v === "string" ? v : "");
    });
  }

  /**
   * RPC: object `name` starts holding sockets with lineage `instance`. Returns its idle
   * lineage if this registry still holds it whole (the object goes on with it), else null.
   */
  async register(name: string, instance: string): Promise<LineageSnapshot | null> {
    const prev = this.active.get(name);
    if (prev !== undefined && prev !== instance) this.lose(name, prev);
    const held = this.idleLineages.get(name) ?? null;
    if (held) this.idleLineages.delete(name);
    const now = held ? held.instance : instance;
    this.active.set(name, now);
    if (prev !== now) await this.ctx.storage.put(`o:${name}`, now);
    return held;
  }

  /**
   * RPC: object `name` holds no socket any more; here is its lineage. False if this
   * registry does not take it: a lineage registered before the last reset, or replaced.
   */
  async idle(snap: LineageSnapshot): Promise<boolean> {
    const cur = this.active.get(snap.name);
    if (cur !== undefined && cur !== snap.instance) return false;
    // Never registered (its register call failed): taken unless it predates a reset.
    if (cur === undefined && snap.started_at < this.pruned.started_at) return false;
    if (cur !== undefined) {
      this.active.delete(snap.name);
      void this.ctx.storage.delete(`o:${snap.name}`);
    }
    this.idleLineages.delete(snap.name);
    this.idleLineages.set(snap.name, { ...snap, counters: countersOf(snap.counters) });
    while (this.idleLineages.size > IDLE_KEPT) {
      const [oldest, s] = this.idleLineages.entries().next().value as [string, LineageSnapshot];
      this.idleLineages.delete(oldest);
      this.pruned.objects += 1;
      this.pruned.restarts += s.restarts;
      addCounters(this.pruned, s.counters);
    }
    return true;
  }

  /** RPC: every active object's answer, the idle lineages and the pruned sum, at once. */
  async collect(detail: boolean): Promise<Collected> {
    return this.ctx.blockConcurrencyWhile(async () => {
      const names = [...this.active.entries()].sort((a, b) => byName({ name: a[0] }, { name: b[0] }));
      const answers = await Promise.all(
        names.map(([name, instance]) =>
          roomStub(this.env, name)
            .stats(detail, instance)
            .then((s) => s as ObjectStats)
            .catch(() => null),
        ),
      );
      const objects: ObjectStats[] = [];
      const unanswered: string[] = [];
      names.forEach(([name, instance], i) => {
        const a = answers[i];
        if (!a) {
          unanswered.push(name);
          return;
        }
        if (a.instance !== instance) {
          this.lose(name, instance);
          if (a.instance === "") {
            // Nothing left there: no lineage, no socket.
            this.active.delete(name);
            void this.ctx.storage.delete(`o:${name}`);
            return;
          }
          this.active.set(name, a.instance);
          void this.ctx.storage.put(`o:${name}`, a.instance);
        }
        objects.push({ ...a, name, kind: objectKind(name), state: "active" });
      });
      for (const s of this.idleLineages.values()) objects.push(idleStats(s));
      objects.sort(byName);
      return { objects, pruned: structuredClone(this.pruned), unanswered };
    });
  }

  /** RPC: reset every active object, then forget everything; returns (objects, sockets closed). */
  async resetAll(): Promise<{ objects: number; closed: number }> {
    return this.ctx.blockConcurrencyWhile(async () => {
      const names = [...this.active.keys()];
      const closed = await Promise.all(
        names.map((n) =>
          roomStub(this.env, n)
            .reset()
            .catch(() => 0),
        ),
      );
      this.active.clear();
      this.idleLineages.clear();
      this.pruned = zeroPruned();
      await this.ctx.storage.deleteAll();
      return { objects: names.length, closed: closed.reduce((a, b) => a + b, 0) };
    });
  }

  /** The lineage `instance` of `name` is gone with its counters. */
  private lose(name: string, instance: string): void {
    this.pruned.lost += 1;
    const l: LostLineage = { name, instance, detected_at: Date.now() };
    this.pruned.lost_recent.push(l);
    if (this.pruned.lost_recent.length > LOST_KEPT) this.pruned.lost_recent.shift();
  }
}

function idleStats(s: LineageSnapshot): ObjectStats {
  return {
    name: s.name,
    kind: objectKind(s.name),
    state: "idle",
    instance: s.instance,
    started_at: s.started_at,
    incarnation_started_at: s.incarnation_started_at,
    restarts: s.restarts,
    ...countersOf(s.counters),
    connections: 0,
    seated: 0,
    queued: 0,
    active_rooms: 0,
    max_queue_length: 0,
  };
}
