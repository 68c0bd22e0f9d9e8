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
 */
import { DurableObject } from "cloudflare:workers";
import { Admission, type JoinOutcome, type Promotion, type RejectReason } from "./admission";
import { readConfig, type Config } from "./config";
import { lobbyStub, registryStub, type Env } from "./env";
import { Close, closeCodeFor, exceedsBytes, parseClientFrame, type ChatIn } from "./protocol";
import {
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

/** What an object counts, kept beyond its own eviction (see `Room.restoreCounters`). */
interface Lineage {
  instance: string;
  started_at: number;
  /** Times the object was started again after an eviction. */
  restarts: number;
  name: string | null;
  strategy: string | null;
  counters: RoomCounters;
}

/** Every room-hosting object's lineage in this isolate, by object id. */
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
  private lineage!: Lineage;
  private nextOrder = 0;
  private registered = false;
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
   * Counters outlive this instance of the object: they are kept per object id in the
   * isolate's memory (`LINEAGES`), so an object evicted when idle (~10 s without events,
   * hibernating or not) and started again goes on counting where it stopped — at no cost:
   * no storage write, no timer. Only a new isolate (a workerd restart; on Cloudflare, the
   * runtime moving or recycling it) starts from zero, with a new `instance`.
   * (Durable Object storage would not do locally: workerd's in-memory storage is dropped
   * with an evicted object.)
   */
  private get counters(): RoomCounters {
    return this.lineage.counters;
  }

  private restoreCounters(): void {
    const key = this.ctx.id.toString();
    const known = LINEAGES.get(key);
    this.lineage = known ?? {
      instance: crypto.randomUUID(),
      started_at: Date.now(),
      restarts: 0,
      name: null,
      strategy: null,
      counters: zeroRoomCounters(),
    };
    if (!known) {
      LINEAGES.set(key, this.lineage);
      return;
    }
    this.lineage.restarts += 1;
    const { name, strategy } = this.lineage;
    if (name && strategy && this.cfg) this.identify(name, strategy);
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
    if (!this.registered && strategy !== "single") {
      this.registered = true;
      try {
        await registryStub(this.env, registryName(strategy)).register(object);
      } catch {
        this.registered = false;
      }
    }
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
    const conn = this.conns.get(ws);
    if (conn) await this.depart(conn);
    // Complete the closing handshake (a no-op where the runtime already replied).
    this.closeWs(ws, Close.LEFT);
  }

  private async onError(ws: WebSocket): Promise<void> {
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

  /** The user of `conn` is gone: free its seat or queue place, promote, tell the lobby. */
  private async depart(conn: Conn): Promise<void> {
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

  /** RPC from the Worker: counters and gauges, with per-room lists when `detail`. */
  async stats(detail: boolean): Promise<ObjectStats> {
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
    const out: ObjectStats = {
      name: this.name ?? "",
      kind: objectKind(this.name ?? ""),
      instance: this.lineage.instance,
      started_at: this.lineage.started_at,
      incarnation_started_at: this.incarnationStartedAt,
      restarts: this.lineage.restarts,
      ...structuredClone(this.lineage.counters),
      connections: this.byUser.size,
      seated,
      queued,
      active_rooms: active,
      max_queue_length: maxQueue,
    };
    if (detail) out.rooms = rooms;
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
    this.lineage.counters = zeroRoomCounters();
    this.lineage.instance = crypto.randomUUID();
    this.lineage.started_at = Date.now();
    this.lineage.restarts = 0;
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
    this.lineage.name = object;
    this.lineage.strategy = strategy;
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
    this.registered = true;
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
