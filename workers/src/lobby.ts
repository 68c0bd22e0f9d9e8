/**
 * The lobby: global admission for `per-room` and `sharded-N` (object `lobby:<strategy>`).
 *
 * Used only when a global limit (MAX_ACTIVE_ROOMS or MAX_TOTAL_CONNECTIONS) is configured,
 * or LOBBY_MODE=always. It runs the one admission module for every room of the strategy:
 * room objects call `join` on each join and `leave` on each departure (seated or queued);
 * when a departure promotes queued users, the lobby calls `promoted` on the room object
 * holding each of them, in promotion order, before `leave` returns. A promoted user whose
 * socket is already gone is released again (which may promote the next one).
 *
 * The lobby holds no sockets, so the runtime may evict it when idle; its seats and queues
 * are therefore kept in storage too (one row per seated or queued user, key `u:<user>`),
 * and reloaded on start. Counters are in memory only.
 */
import { DurableObject } from "cloudflare:workers";
import { Admission, type JoinOutcome, type LeaveOutcome, type Promotion } from "./admission";
import { readConfig, type Config } from "./config";
import { roomStub, type Env } from "./env";
import { zeroLobbyCounters, type LobbyCounters, type LobbyStats, type RoomDetail } from "./stats";

/** One seated or queued user, as stored. */
interface Rec {
  /** room */
  r: string;
  /** object holding the user's socket */
  o: string;
  /** seated or queued */
  s: "s" | "q";
  /** seating or enqueue order */
  n: number;
}

export class Lobby extends DurableObject<Env> {
  private cfg: Config | null = null;
  private cfgError: string | null = null;
  private admission: Admission | null = null;
  private users = new Map<string, Rec>();
  private nextOrder = 0;
  private counters: LobbyCounters = zeroLobbyCounters();
  private instance = crypto.randomUUID();
  private startedAt = Date.now();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    try {
      this.cfg = readConfig(env as unknown as Record<string, unknown>);
    } catch (e) {
      this.cfgError = String((e as Error).message ?? e);
      return;
    }
    this.admission = new Admission(this.cfg.limits);
    ctx.blockConcurrencyWhile(() => this.load());
  }

  private async load(): Promise<void> {
    const rows = await this.ctx.storage.list<Rec>({ prefix: "u:" });
    const entries = [...rows].map(([k, rec]) => ({ user: k.slice(2), rec }));
    entries.sort((a, b) => a.rec.n - b.rec.n);
    const seated: Array<[string, string]> = [];
    const queued: Array<[string, string]> = [];
    for (const { user, rec } of entries) {
      this.users.set(user, rec);
      this.nextOrder = Math.max(this.nextOrder, rec.n + 1);
      (rec.s === "s" ? seated : queued).push([user, rec.r]);
    }
    this.admission!.restore(seated, queued);
  }

  private ready(): Admission {
    if (!this.admission) throw new Error(`configuration error: ${this.cfgError}`);
    return this.admission;
  }

  private put(user: string, rec: Rec): void {
    this.users.set(user, rec);
    this.counters.rows_written += 1;
    // Not awaited: writes are coalesced and the output gate holds replies until they land.
    void this.ctx.storage.put(`u:${user}`, rec);
  }

  private forget(user: string): void {
    this.users.delete(user);
    this.counters.rows_written += 1;
    void this.ctx.storage.delete(`u:${user}`);
  }

  /** RPC: `user` asks for a seat in `room`; their socket is on object `object`. */
  async join(user: string, room: string, object: string): Promise<JoinOutcome> {
    const adm = this.ready();
    this.counters.rpc_join += 1;
    const out = adm.join(user, room);
    switch (out.outcome) {
      case "admitted":
        this.counters.admitted += 1;
        this.put(user, { r: room, o: object, s: "s", n: this.nextOrder++ });
        break;
      case "queued":
        this.counters.queued_joins += 1;
        this.put(user, { r: room, o: object, s: "q", n: this.nextOrder++ });
        break;
      case "rejected":
        this.counters.rejections[out.reason] += 1;
        break;
    }
    return out;
  }

  /**
   * RPC: `user` left (seated or queued). With `object`, only if the lobby holds the user for
   * that object (so a stale call cannot evict the same id elsewhere). Promoted users' room
   * objects have been told before this returns.
   */
  async leave(user: string, object?: string): Promise<LeaveOutcome> {
    const adm = this.ready();
    this.counters.rpc_leave += 1;
    const rec = this.users.get(user);
    if (!rec || (object !== undefined && rec.o !== object)) return { outcome: "unknown" };
    const out = adm.leave(user);
    if (out.outcome === "unknown") return out;
    this.counters[out.outcome === "left" ? "left" : "abandoned"] += 1;
    this.forget(user);
    await this.notify(out.promoted);
    return out;
  }

  /** Record promotions, then tell each promoted user's room object, in order. */
  private async notify(promoted: Promotion[]): Promise<void> {
    const recs: Array<[Promotion, Rec]> = [];
    for (const p of promoted) {
      const old = this.users.get(p.user)!;
      const rec: Rec = { ...old, s: "s", n: this.nextOrder++ };
      this.put(p.user, rec);
      this.counters.promoted += 1;
      recs.push([p, rec]);
    }
    for (const [p, rec] of recs) {
      let ok = false;
      try {
        this.counters.rpc_promote += 1;
        ok = await roomStub(this.env, rec.o).promoted(p.user, p.room);
      } catch {
        ok = false;
      }
      if (!ok) {
        // The user's socket is gone. Counted whether or not its leave reached the lobby
        // first (it then released the seat itself): either way no promotion reached a user.
        this.counters.promote_failed += 1;
      }
      if (!ok && this.users.get(p.user) === rec) {
        // The seat is still held for the user: release it again.
        const out = this.admission!.leave(p.user);
        if (out.outcome !== "unknown") {
          this.counters.left += 1;
          this.forget(p.user);
          await this.notify(out.promoted);
        }
      }
    }
  }

  /** RPC from the Worker: counters and gauges (`name` is filled in by the Worker). */
  async stats(detail: boolean): Promise<LobbyStats> {
    const adm = this.ready();
    const out: LobbyStats = {
      name: "",
      instance: this.instance,
      started_at: this.startedAt,
      ...structuredClone(this.counters),
      seated: adm.seatedTotal(),
      queued: adm.queuedTotal(),
      active_rooms: adm.activeRooms(),
    };
    if (detail) {
      const rooms: Record<string, RoomDetail> = {};
      for (const r of adm.roomIds()) rooms[r] = { seated: adm.seatedIn(r), queued: adm.queueOf(r) };
      out.rooms = rooms;
    }
    return out;
  }

  /** RPC from the Worker: forget all seats, queues and counters. */
  async reset(): Promise<void> {
    const adm = this.ready();
    await this.ctx.storage.deleteAll();
    this.users.clear();
    this.nextOrder = 0;
    this.counters = zeroLobbyCounters();
    this.admission = new Admission(adm.limits);
  }
}
