/**
 * The room-hosting Durable Object: `single`, `room:R` (per-room) or `shard:N:K` (sharded).
 *
 * It holds the users' WebSockets and fans chat messages out to the other members of a room.
 * Admission is done here (the local mode) for `single`, and for `per-room`/`sharded-N` when
 * no global limit is configured (per-room capacity and queue only; a user is then only
 * `duplicate` within one object). Otherwise (the lobby mode) this object asks the strategy's
 * lobby on every join and tells it on every departure; the lobby calls `promoted()` back
 * when a queued user here gets a seat.
 *
 * Sockets are accepted with the Hibernation API (`ctx.acceptWebSocket`) when HIBERNATION is
 * true, else with `ws.accept()` and event listeners. Under hibernation the object may be
 * evicted between events; each socket's attachment records who it is and whether it is
 * seated or queued (with its order), and the constructor rebuilds the rooms from them.
 *
 * Counters (a lineage, see `counters` below) are registered with the strategy's registry
 * while the object holds sockets and handed to it when the last one goes (registry.ts), so
 * an object that came and went costs nothing here. `single` keeps its one lineage.
 */
import { DurableObject } from "cloudflare:workers";
import { Admission, type JoinOutcome, type Promotion, type RejectReason } from "./admission";
import { readConfig, type Config } from "./config";
import { lobbyStub, registryStub, type Env } from "./env";
import { Close, closeCodeFor, exceedsBytes, parseClientFrame, type ChatIn } from "./protocol";
import type { LineageSnapshot } from "./registry";
import {
  addCounters,
  countersOf,
  zeroRoomCounters,
  type ObjectStats,
  type RoomCounters,
  type RoomDetail,
} from "./stats";
import { lobbyName, NAME_RE, objectKind, registryName, usesLobby } from "./strategy";

type Status = "pending" | "queued" | "seated" | "closed";

interface Conn {
  ws: WebSocket | null;
  user: string;
  room: string;
  status: Status;
  /** Seating order (seated) or enqueue order (queued), object-local. */
  order: number;
  /** Last queue position sent. */
  position: number;
  /** The lobby promoted this user while its join was still in flight. */
  promotedEarly: boolean;
}

/** What each socket carries across hibernation. */
interface Attachment {
  /** user */
  u: string;
  /** room */
  r: string;
  /** this object's name */
  o: string;
  /** strategy */
  st: string;
  /** status: seated, queued, or closed */
  s: "s" | "q" | "x";
  /** order */
  n: number;
}

const encoder = new TextEncoder();

/** What an object counts, kept beyond its own eviction (see `Room.counters`). */
interface Lineage {
  instance: string;
  started_at: number;
  /** Times the object was started again after an eviction. */
  restarts: number;
  name: string | null;
  strategy: string | null;
  counters: RoomCounters;
  /** The registry knows this lineage (always true for `single`, which has no registry). */
  registered: boolean;
}

/**
 * The lineage of every room-hosting object of this isolate that holds sockets (or a join in
 * flight), by object id; an object's entry goes when it hands its lineage to the registry.
 */
const LINEAGES = new Map<string, Lineage>();

export class Room extends DurableObject<Env> {
  private cfg: Config | null = null;
  private cfgError: string | null = null;
  private name: string | null = null;
  private strategy: string | null = null;
  private lobbyMode = false;
  /** Local-mode admission; null in lobby mode. */
  private admission: Admission | null = null;
  private conns = new Map<WebSocket, Conn>();
  private byUser = new Map<string, Conn>();
  private seatedByRoom = new Map<string, Set<Conn>>();
  /** The counters; null when the object has none (never joined, idle, or reset). */
  private lineage: Lineage | null = null;
  /** A registration in flight (joins wait for it). */
  private registering: Promise<void> | null = null;
  /** The lineage being handed to the registry, until it has taken it. */
  private retiring: { snap: Lineage; done: Promise<void> } | null = null;
  /** Joins in `fetch` not yet settled. */
  private pending = 0;
  private nextOrder = 0;
  private epoch = 0;
  /** When this incarnation (this constructor call) started. */
  private incarnationStartedAt = Date.now();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    try {
      this.cfg = readConfig(env as unknown as Record<string, unknown>);
    } catch (e) {
      this.cfgError = String((e as Error).message ?? e);
    }
    this.restoreCounters();
    if (this.cfg?.hibernation) this.restoreFromSockets();
  }

  // ---------------------------------------------------------------- counters

  /**
   * Counters outlive this instance of the object: while it holds sockets they are kept per
   * object id in the isolate's memory (`LINEAGES`), so an object evicted between events
   * (hibernating) and started again goes on counting where it stopped — at no cost: no
   * storage write, no timer. When its last socket goes, the lineage is handed to the
   * registry (`retire`), which gives it back on the object's next join (`ready`). Only a new
   * isolate (a workerd restart; on Cloudflare, the runtime moving or recycling it) loses
   * them: the object starts a new lineage, with a new `instance`, and the registry counts
   * the old one as lost. (Durable Object storage would not do locally: workerd's in-memory
   * storage is dropped with an evicted object.)
   */
  private get counters(): RoomCounters {
    return this.ensureLineage().counters;
  }

  private get key(): string {
    return this.ctx.id.toString();
  }

  private ensureLineage(): Lineage {
    if (!this.lineage) {
      this.lineage = {
        instance: crypto.randomUUID(),
        started_at: Date.now(),
        restarts: 0,
        name: this.name,
        strategy: this.strategy,
        counters: zeroRoomCounters(),
        registered: this.strategy === "single",
      };
      LINEAGES.set(this.key, this.lineage);
    }
    return this.lineage;
  }

  private restoreCounters(): void {
    const known = LINEAGES.get(this.key);
    if (!known) return;
    this.lineage = known;
    known.restarts += 1;
    const { name, strategy } = known;
    if (name && strategy && this.cfg) this.identify(name, strategy);
  }

  /**
   * Before a join is counted: the lineage is settled (not being handed over), exists, and
   * is registered (taking back the one the registry holds, if any).
   */
  private async ready(): Promise<void> {
    for (;;) {
      while (this.retiring) await this.retiring.done;
      const l = this.ensureLineage();
      if (l.registered) return;
      if (!this.registering) {
        l.registered = true;
        this.registering = (async () => {
          try {
            const held = await registryStub(this.env, registryName(this.strategy!)).register(
              this.name!,
              l.instance,
            );
            if (held) resume(l, held);
          } catch {
            // Counted anyway; registered on a later join (until then stats cannot see it).
            l.registered = false;
          } finally {
            this.registering = null;
          }
        })();
      }
      await this.registering;
      // Registered, or failed (go on unregistered); unless a reset replaced the lineage.
      if (this.lineage === l) return;
    }
  }

  /** A socket event on a lineage the registry does not know (restored in a new isolate). */
  private registerSoon(): void {
    if (this.lineage && !this.lineage.registered && this.strategy) {
      this.ready().catch(() => {});
    }
  }

  /**
   * Holding no socket and no join in flight: hand the lineage to the registry and forget it
   * here (if the registry cannot be reached, keep it and try again after the next event).
   */
  private maybeRetire(): void {
    const l = this.lineage;
    if (!l || this.strategy === null || this.strategy === "single") return;
    if (this.pending > 0 || this.conns.size > 0 || this.byUser.size > 0 || this.retiring) return;
    this.lineage = null;
    LINEAGES.delete(this.key);
    const snap: LineageSnapshot = {
      name: this.name!,
      instance: l.instance,
      started_at: l.started_at,
      incarnation_started_at: this.incarnationStartedAt,
      restarts: l.restarts,
      counters: countersOf(l.counters),
    };
    const epoch = this.epoch;
    const done = (async () => {
      try {
        await registryStub(this.env, registryName(this.strategy!)).idle(snap);
      } catch {
        // Still ours (unless a reset came meanwhile): keep counting on it.
        if (epoch !== this.epoch) return;
        if (this.lineage) {
          resume(this.lineage, snap);
          this.lineage.registered = l.registered;
        } else {
          this.lineage = l;
          LINEAGES.set(this.key, l);
        }
      } finally {
        this.retiring = null;
      }
    })();
    this.retiring = { snap: l, done };
  }

  // ---------------------------------------------------------------- joining

  /** A WebSocket upgrade forwarded by the Worker: `/connect?user&room&object&strategy`. */
  async fetch(request: Request): Promise<Response> {
    if (!this.cfg) return new Response(`configuration error: ${this.cfgError}`, { status: 500 });
    const cfg = this.cfg;
    const url = new URL(request.url);
    const user = url.searchParams.get("user") ?? "";
    const room = url.searchParams.get("room") ?? "";
    const object = url.searchParams.get("object") ?? "";
    const strategy = url.searchParams.get("strategy") ?? "";
    if (!NAME_RE.test(user) || !NAME_RE.test(room) || !object || !strategy) {
      return new Response(null, { status: 400 });
    }
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response(null, { status: 426 });
    }
    this.identify(object, strategy);
    this.pending += 1;
    try {
      return await this.join(cfg, user, room, object);
    } finally {
      this.pending -= 1;
      this.maybeRetire();
    }
  }

  private async join(cfg: Config, user: string, room: string, object: string): Promise<Response> {
    await this.ready();
    this.counters.connects += 1;
    const epoch = this.epoch;

    const conn: Conn = {
      ws: null,
      user,
      room,
      status: "pending",
      order: 0,
      position: 0,
      promotedEarly: false,
    };
    let outcome: JoinOutcome;
    if (this.byUser.has(user)) {
      outcome = { outcome: "rejected", reason: "duplicate" };
    } else if (this.lobbyMode) {
      this.byUser.set(user, conn);
      try {
        this.counters.lobby_rpcs += 1;
        outcome = await this.lobby().join(user, room, object);
      } catch {
        this.counters.lobby_errors += 1;
        outcome = { outcome: "rejected", reason: "overloaded" };
        // The lobby may have recorded the join before failing: release it (a no-op unless
        // the lobby holds this user for this very object).
        this.lobby()
          .leave(user, object)
          .catch(() => {});
      }
      if (this.byUser.get(user) === conn) this.byUser.delete(user);
    } else {
      outcome = this.admission!.join(user, room);
    }

    const pair = new WebSocketPair();
    const client = pair[0];
    const server = pair[1];
    const stale = epoch !== this.epoch;
    if (stale || outcome.outcome === "rejected") {
      // Closed at once: no need to hibernate (and a hibernatable socket closed before the
      // upgrade response is returned never finishes its closing handshake in workerd).
      server.accept();
    } else if (cfg.hibernation) {
      this.ctx.acceptWebSocket(server);
    } else {
      server.accept();
      server.addEventListener("message", (ev) => {
        this.onMessage(server, ev.data as string | ArrayBuffer).catch((e) => this.oops(server, e));
      });
      server.addEventListener("close", () => {
        this.onClose(server).catch((e) => this.oops(server, e));
      });
      server.addEventListener("error", () => {
        this.onError(server).catch(() => {});
      });
    }
    conn.ws = server;

    if (stale) {
      // A reset happened while the lobby answered: this join belongs to the old state.
      server.close(Close.RESET, "reset");
      return new Response(null, { status: 101, webSocket: client });
    }

    switch (outcome.outcome) {
      case "admitted":
        this.counters.admitted += 1;
        this.conns.set(server, conn);
        this.byUser.set(user, conn);
        this.seat(conn);
        break;
      case "queued":
        this.counters.queued_joins += 1;
        this.conns.set(server, conn);
        this.byUser.set(user, conn);
        if (conn.promotedEarly) {
          this.counters.promoted += 1;
          this.seat(conn);
        } else {
          conn.status = "queued";
          conn.order = this.nextOrder++;
          conn.position = outcome.position;
          this.attach(conn, "q");
          this.send(conn, { type: "queued", position: outcome.position });
        }
        break;
      case "rejected":
        this.reject(conn, outcome.reason);
        break;
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  private reject(conn: Conn, reason: RejectReason): void {
    this.counters.rejections[reason] += 1;
    conn.status = "closed";
    this.send(conn, { type: "rejected", reason });
    try {
      conn.ws!.close(closeCodeFor(reason), reason);
    } catch {
      // already closed
    }
  }

  /** Give `conn` its seat and tell it so. */
  private seat(conn: Conn): void {
    conn.status = "seated";
    conn.order = this.nextOrder++;
    let set = this.seatedByRoom.get(conn.room);
    if (!set) {
      set = new Set();
      this.seatedByRoom.set(conn.room, set);
    }
    set.add(conn);
    this.attach(conn, "s");
    this.send(conn, { type: "joined", room: conn.room, user: conn.user, members: set.size });
  }

  /** RPC from the lobby: a queued user of this object got a seat. False if they are gone. */
  async promoted(user: string, room: string): Promise<boolean> {
    const conn = this.byUser.get(user);
    if (!conn || conn.room !== room || conn.status === "closed") return false;
    if (conn.status === "pending") {
      conn.promotedEarly = true;
      return true;
    }
    if (conn.status === "queued") {
      this.counters.promoted += 1;
      this.seat(conn);
    }
    return true;
  }

  // ---------------------------------------------------------------- frames

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    await this.onMessage(ws, message);
  }

  async webSocketClose(ws: WebSocket): Promise<void> {
    await this.onClose(ws);
  }

  async webSocketError(ws: WebSocket): Promise<void> {
    await this.onError(ws);
  }

  private async onMessage(ws: WebSocket, data: string | ArrayBuffer | Blob): Promise<void> {
    const conn = this.conns.get(ws);
    if (!conn || conn.status === "closed" || !this.cfg) return;
    this.registerSoon();
    const max = this.cfg.maxMessageBytes;
    if (typeof data !== "string") {
      const size = data instanceof Blob ? data.size : data.byteLength;
      if (size > max) {
        this.counters.oversized += 1;
        await this.drop(conn, Close.TOO_BIG, "message too big");
      } else {
        this.counters.malformed += 1;
        await this.drop(conn, Close.BINARY, "binary frames are not supported");
      }
      return;
    }
    if (exceedsBytes(data, max)) {
      this.counters.oversized += 1;
      await this.drop(conn, Close.TOO_BIG, "message too big");
      return;
    }
    const frame = parseClientFrame(data);
    switch (frame.kind) {
      case "message":
        if (conn.status !== "seated") {
          this.counters.not_admitted += 1;
          this.send(conn, { type: "error", code: "not_admitted" });
          return;
        }
        this.fanOut(conn, frame.msg);
        return;
      case "leave":
        await this.depart(conn);
        this.closeWs(ws, Close.LEFT, "left");
        return;
      case "malformed":
        this.counters.malformed += 1;
        await this.drop(conn, Close.MALFORMED, frame.why);
        return;
      case "unknown":
        this.counters.unknown += 1;
        await this.drop(conn, Close.UNKNOWN_TYPE, frame.why);
        return;
    }
  }

  private fanOut(from: Conn, msg: ChatIn): void {
    this.counters.messages_in += 1;
    const members = this.seatedByRoom.get(from.room);
    if (!members) return;
    const out = JSON.stringify({
      type: "message",
      from: from.user,
      seq: msg.seq,
      ts: msg.ts,
      body: msg.body,
    });
    for (const other of members) {
      if (other === from || !other.ws) continue;
      try {
        other.ws.send(out);
        this.counters.messages_out += 1;
      } catch {
        // the recipient's socket is going away; its close event will release it
      }
    }
  }

  private async onClose(ws: WebSocket): Promise<void> {
    this.registerSoon();
    const conn = this.conns.get(ws);
    if (conn) await this.depart(conn);
    // Complete the closing handshake (a no-op where the runtime already replied).
    this.closeWs(ws, Close.LEFT);
  }

  private async onError(ws: WebSocket): Promise<void> {
    this.registerSoon();
    const conn = this.conns.get(ws);
    if (conn) await this.depart(conn);
  }

  private oops(ws: WebSocket, e: unknown): void {
    console.error("room handler failed", e);
    this.closeWs(ws, Close.INTERNAL, "internal error");
  }

  /** A protocol violation: release the user's place, then close with `code`. */
  private async drop(conn: Conn, code: number, reason: string): Promise<void> {
    const ws = conn.ws;
    await this.depart(conn);
    if (ws) this.closeWs(ws, code, reason);
  }

  private closeWs(ws: WebSocket, code: number, reason?: string): void {
    try {
      // Close reasons are at most 123 bytes.
      ws.close(code, reason && encoder.encode(reason).length <= 123 ? reason : undefined);
    } catch {
      // already closed
    }
  }

  // ---------------------------------------------------------------- leaving

  /**
   * The user of `conn` is gone: free its seat or queue place, promote, tell the lobby; then,
   * if nobody is left, hand the counters to the registry.
   */
  private async depart(conn: Conn): Promise<void> {
    await this.release(conn);
    this.maybeRetire();
  }

  private async release(conn: Conn): Promise<void> {
    if (conn.status === "closed") return;
    const was = conn.status;
    conn.status = "closed";
    if (conn.ws) {
      this.conns.delete(conn.ws);
      this.attach(conn, "x");
    }
    if (this.byUser.get(conn.user) === conn) this.byUser.delete(conn.user);
    if (was === "seated") {
      const set = this.seatedByRoom.get(conn.room);
      set?.delete(conn);
      if (set && set.size === 0) this.seatedByRoom.delete(conn.room);
      this.counters.left += 1;
    } else if (was === "queued") {
      this.counters.abandoned += 1;
    }
    if (was === "pending") return;
    if (this.admission) {
      const res = this.admission.leave(conn.user);
      if (res.outcome !== "unknown") {
        this.applyPromotions(res.promoted);
        this.sendPositions(conn.room, res.promoted);
      }
    } else if (this.lobbyMode) {
      try {
        this.counters.lobby_rpcs += 1;
        await this.lobby().leave(conn.user, this.name!);
      } catch {
        this.counters.lobby_errors += 1;
      }
    }
  }

  /** Local mode: seat the users that admission promoted. */
  private applyPromotions(promoted: Promotion[]): void {
    for (const p of promoted) {
      const conn = this.byUser.get(p.user);
      if (conn && conn.status === "queued" && conn.room === p.room) {
        this.counters.promoted += 1;
        this.seat(conn);
      } else {
        // Cannot happen (admission only knows this object's users); keep the two in step.
        const res = this.admission!.leave(p.user);
        if (res.outcome !== "unknown") this.applyPromotions(res.promoted);
      }
    }
  }

  /** Local mode: tell queued users of the rooms that changed their new positions. */
  private sendPositions(room: string, promoted: Promotion[]): void {
    const rooms = new Set<string>([room, ...promoted.map((p) => p.room)]);
    for (const r of rooms) {
      const queue = this.admission!.queueOf(r);
      queue.forEach((user, i) => {
        const conn = this.byUser.get(user);
        if (conn && conn.status === "queued" && conn.position !== i + 1) {
          conn.position = i + 1;
          this.send(conn, { type: "position", position: i + 1 });
        }
      });
    }
  }

  // ---------------------------------------------------------------- operations

  /**
   * RPC from the registry (or the Worker, for `single`): counters and gauges, with per-room
   * lists when `detail`. `expected`: the lineage the registry holds for this object; if it
   * is the one being handed over right now, that one answers (the registry holds the hand-
   * over back until this stats call is done, so it is counted once). No lineage: instance "".
   */
  async stats(detail: boolean, expected: string | null = null): Promise<ObjectStats> {
    const rooms = this.roomDetails();
    let seated = 0;
    let queued = 0;
    let active = 0;
    let maxQueue = 0;
    for (const d of Object.values(rooms)) {
      seated += d.seated.length;
      queued += d.queued.length;
      if (d.seated.length > 0) active += 1;
      maxQueue = Math.max(maxQueue, d.queued.length);
    }
    let l = this.lineage;
    if (expected !== null && l?.instance !== expected && this.retiring?.snap.instance === expected) {
      l = this.retiring.snap;
    }
    const out: ObjectStats = {
      name: this.name ?? "",
      kind: objectKind(this.name ?? ""),
      state: "active",
      instance: l?.instance ?? "",
      started_at: l?.started_at ?? 0,
      incarnation_started_at: this.incarnationStartedAt,
      restarts: l?.restarts ?? 0,
      ...countersOf(l?.counters ?? zeroRoomCounters()),
      connections: this.byUser.size,
      seated,
      queued,
      active_rooms: active,
      max_queue_length: maxQueue,
      isolate_lineages: LINEAGES.size,
    };
    if (detail) out.rooms = rooms;
    // An idle object whose hand-over failed earlier tries again (after this call).
    this.maybeRetire();
    return out;
  }

  /**
   * RPC from the Worker: close every socket (1012) and forget all state and counters.
   * Under hibernation, workerd sends the close frame but may keep the TCP connection open
   * until the client drops it (a close started outside a socket event); clients see 1012.
   */
  async reset(): Promise<number> {
    this.epoch += 1;
    const sockets = new Set<WebSocket>(this.conns.keys());
    if (this.cfg?.hibernation) for (const ws of this.ctx.getWebSockets()) sockets.add(ws);
    for (const conn of this.byUser.values()) conn.status = "closed";
    for (const ws of sockets) {
      try {
        ws.serializeAttachment(null);
      } catch {
        // not a hibernatable socket
      }
      this.closeWs(ws, Close.RESET, "reset");
    }
    this.conns.clear();
    this.byUser.clear();
    this.seatedByRoom.clear();
    this.lineage = null;
    LINEAGES.delete(this.key);
    if (this.cfg) this.admission = this.lobbyMode ? null : new Admission(this.cfg.limits);
    return sockets.size;
  }

  // ---------------------------------------------------------------- helpers

  private identify(object: string, strategy: string): void {
    if (this.name !== null) return;
    this.name = object;
    this.strategy = strategy;
    this.lobbyMode = usesLobby(strategy, this.cfg!);
    this.admission = this.lobbyMode ? null : new Admission(this.cfg!.limits);
    if (this.lineage) {
      this.lineage.name = object;
      this.lineage.strategy = strategy;
      if (strategy === "single") this.lineage.registered = true;
    }
  }

  private lobby() {
    return lobbyStub(this.env, lobbyName(this.strategy!));
  }

  private send(conn: Conn, msg: unknown): void {
    try {
      conn.ws?.send(JSON.stringify(msg));
    } catch {
      // the socket is going away; its close event will release it
    }
  }

  private attach(conn: Conn, s: Attachment["s"]): void {
    if (!this.cfg?.hibernation || !conn.ws) return;
    const a: Attachment = {
      u: conn.user,
      r: conn.room,
      o: this.name!,
      st: this.strategy!,
      s,
      n: conn.order,
    };
    try {
      conn.ws.serializeAttachment(a);
    } catch {
      // not a hibernatable socket
    }
  }

  /** Per-room seated and queued users, from the sockets (and local admission's queues). */
  private roomDetails(): Record<string, RoomDetail> {
    const rooms: Record<string, RoomDetail> = {};
    const get = (r: string) => (rooms[r] ??= { seated: [], queued: [] });
    if (this.admission) {
      for (const r of this.admission.roomIds()) {
        const d = get(r);
        d.seated = this.admission.seatedIn(r);
        d.queued = this.admission.queueOf(r);
      }
      return rooms;
    }
    for (const [r, set] of this.seatedByRoom) {
      get(r).seated = [...set].map((c) => c.user);
    }
    const queued = [...this.byUser.values()]
      .filter((c) => c.status === "queued")
      .sort((a, b) => a.order - b.order);
    for (const c of queued) get(c.room).queued.push(c.user);
    return rooms;
  }

  /** After hibernation: rebuild sockets, rooms and local admission from the attachments. */
  private restoreFromSockets(): void {
    const entries: Array<{ ws: WebSocket; a: Attachment }> = [];
    for (const ws of this.ctx.getWebSockets()) {
      const a = ws.deserializeAttachment() as Attachment | null;
      if (!a || a.s === "x") continue;
      entries.push({ ws, a });
    }
    if (entries.length === 0) return;
    entries.sort((x, y) => x.a.n - y.a.n);
    this.identify(entries[0].a.o, entries[0].a.st);
    // No lineage here although sockets are: a new isolate lost it (registerSoon tells the
    // registry at the next event, which then counts the old one as lost).
    this.ensureLineage();
    const seated: Array<[string, string]> = [];
    const queued: Array<[string, string]> = [];
    for (const { ws, a } of entries) {
      if (this.byUser.has(a.u)) continue;
      const conn: Conn = {
        ws,
        user: a.u,
        room: a.r,
        status: a.s === "s" ? "seated" : "queued",
        order: a.n,
        position: 0,
        promotedEarly: false,
      };
      this.conns.set(ws, conn);
      this.byUser.set(a.u, conn);
      this.nextOrder = Math.max(this.nextOrder, a.n + 1);
      if (conn.status === "seated") {
        let set = this.seatedByRoom.get(a.r);
        if (!set) {
          set = new Set();
          this.seatedByRoom.set(a.r, set);
        }
        set.add(conn);
        seated.push([a.u, a.r]);
      } else {
        queued.push([a.u, a.r]);
      }
    }
    this.admission?.restore(seated, queued);
    if (this.admission) {
      for (const r of new Set(queued.map(([, r]) => r))) {
        this.admission.queueOf(r).forEach((u, i) => {
          const c = this.byUser.get(u);
          if (c) c.position = i + 1;
        });
      }
    }
  }
}

/** Go on with `held` (a lineage the registry kept, or one being handed back): `l` adds to it. */
function resume(l: Lineage, held: LineageSnapshot | Lineage): void {
  l.instance = held.instance;
  l.started_at = held.started_at;
  l.restarts += held.restarts;
  addCounters(l.counters, held.counters);
}
