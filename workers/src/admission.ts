/**
 * Admission: who gets a seat, who waits, who is turned away.
 *
 * A line-for-line port of the Rust module `sim/src/model/admission.rs`; the two must agree
 * on every shared vector in `scenarios/vectors/admission.json`. Pure and deterministic: no
 * clock, no randomness, no I/O. Users and rooms are strings here (the Rust module uses
 * integers); nothing else differs.
 *
 * Rules (also written in `scenarios/vectors/README.md`):
 * - A room is **active** while at least one user is seated in it; queued users do not make a
 *   room active.
 * - `join(user, room)`: a user already seated or queued anywhere is rejected `duplicate`.
 *   If the room's queue is non-empty the user queues behind it (no overtaking). Otherwise the
 *   user is admitted when the room has a free seat, the room is active or fewer than
 *   `maxActiveRooms` rooms are active, and fewer than `maxTotalConnections` users are
 *   seated. If not admitted, the user is queued at the end of the room's queue (position is
 *   1-based) when the room's queue holds fewer than `queueLimit` users; otherwise rejected,
 *   with reason `queue_full` when a queue exists (`queueLimit > 0`), or else with the first
 *   limit that blocked, checked in the order `room_full`, `max_active_rooms`,
 *   `max_total_connections`.
 * - `leave(user)`: a seated user frees a seat; a queued user leaves the queue (abandons).
 *   Then waiting users are promoted: among the heads of all room queues, the one that has
 *   waited longest (global enqueue order) and could be admitted now is admitted; repeat until
 *   no head can be admitted. Promotions are returned in the order they happened.
 * - `timeout(user)`: a queued user's patience ran out: same as `leave` for a queued user; for
 *   a seated or unknown user it does nothing.
 */

/** A user (session) identifier. */
export type UserId = string;
/** A room identifier. */
export type RoomId = string;

/** The admission limits. `null` means unlimited. */
export interface Limits {
  /** Seats per room (`max_connections_per_room`). */
  roomCapacity: number;
  /** Rooms that may be active at once. */
  maxActiveRooms: number | null;
  /** Users that may be seated at once, over all rooms. */
  maxTotalConnections: number | null;
  /** Users that may wait in one room's queue; 0 disables queueing. */
  queueLimit: number;
}

/** Why a join was refused; the wire and report names. */
export type RejectReason =
  | "room_full"
  | "max_active_rooms"
  | "max_total_connections"
  | "queue_full"
  | "duplicate"
  /** An object on the join path was overloaded (Worker only, never produced here). */
  | "overloaded";

/** Every reason, in report order. */
export const REJECT_REASONS: readonly RejectReason[] = [
  "room_full",
  "max_active_rooms",
  "max_total_connections",
  "queue_full",
  "duplicate",
  "overloaded",
];

/** The answer to a join. */
export type JoinOutcome =
  | { outcome: "admitted" }
  | { outcome: "queued"; position: number }
  | { outcome: "rejected"; reason: RejectReason };

/** A queued user who got a seat. */
export interface Promotion {
  user: UserId;
  room: RoomId;
}

/** The answer to a leave or a timeout. */
export type LeaveOutcome =
  | { outcome: "left"; promoted: Promotion[] }
  | { outcome: "abandoned"; promoted: Promotion[] }
  | { outcome: "unknown" };

interface Room {
  seated: UserId[];
  /** [user, global enqueue sequence], first in line first. */
  queue: Array<[UserId, number]>;
}

type Place = { kind: "seated"; room: RoomId } | { kind: "queued"; room: RoomId };

/**
 * A min-heap of queue heads keyed by their (unique) enqueue sequence. Entries are never
 * removed in place: an entry is skipped when it no longer describes a ready head (lazy
 * deletion), which gives the same answers as the Rust module's `BTreeSet`s.
 */
class HeadHeap {
  private seqs: number[] = [];
  private rooms = new Map<number, RoomId>();

  push(seq: number, room: RoomId): void {
    if (this.rooms.has(seq)) return;
    this.rooms.set(seq, room);
    const a = this.seqs;
    a.push(seq);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= a[i]) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }

  /** The smallest entry for which `valid` holds, discarding invalid ones on the way. */
  first(valid: (seq: number, room: RoomId) => boolean): [number, RoomId] | null {
    while (this.seqs.length > 0) {
      const seq = this.seqs[0];
      const room = this.rooms.get(seq)!;
      if (valid(seq, room)) return [seq, room];
      this.pop();
    }
    return null;
  }

  clear(): void {
    this.seqs = [];
    this.rooms.clear();
  }

  private pop(): void {
    const a = this.seqs;
    const top = a[0];
    this.rooms.delete(top);
    const last = a.pop()!;
    if (a.length === 0) return;
    a[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && a[l] < a[m]) m = l;
      if (r < a.length && a[r] < a[m]) m = r;
      if (m === i) break;
      [a[m], a[i]] = [a[i], a[m]];
      i = m;
    }
  }
}

/** The admission state of every room. */
export class Admission {
  readonly limits: Limits;
  private rooms = new Map<RoomId, Room>();
  private places = new Map<UserId, Place>();
  private seatedCount = 0;
  private activeCount = 0;
  private queuedCount = 0;
  private nextSeq = 0;
  /** Heads of rooms with a free seat and someone seated. */
  private readyActive = new HeadHeap();
  /** Heads of rooms with nobody seated. */
  private readyInactive = new HeadHeap();

  /** An empty building with these limits. */
  constructor(limits: Limits) {
    this.limits = { ...limits };
  }

  /** Users seated over all rooms. */
  seatedTotal(): number {
    return this.seatedCount;
  }

  /** Rooms with at least one seated user. */
  activeRooms(): number {
    return this.activeCount;
  }

  /** Users waiting in all queues. */
  queuedTotal(): number {
    return this.queuedCount;
  }

  /** Users seated in `room`, in the order they were seated. */
  seatedIn(room: RoomId): UserId[] {
    return this.rooms.get(room)?.seated.slice() ?? [];
  }

  /** Users waiting for `room`, first in line first. */
  queueOf(room: RoomId): UserId[] {
    return this.rooms.get(room)?.queue.map(([u]) => u) ?? [];
  }

  /** Rooms with anyone seated or queued, in the order they were first used. */
  roomIds(): RoomId[] {
    return [...this.rooms.keys()];
  }

  /** The 1-based queue position of a queued user. */
  positionOf(user: UserId): number | null {
    const p = this.places.get(user);
    if (!p || p.kind !== "queued") return null;
    const i = this.rooms.get(p.room)!.queue.findIndex(([u]) => u === user);
    return i < 0 ? null : i + 1;
  }

  /** Whether `user` holds a seat. */
  isSeated(user: UserId): boolean {
    return this.places.get(user)?.kind === "seated";
  }

  /** Where `user` is, if anywhere. */
  placeOf(user: UserId): { kind: "seated" | "queued"; room: RoomId } | null {
    const p = this.places.get(user);
    return p ? { kind: p.kind, room: p.room } : null;
  }

  /** A user asks for a seat in `room`. */
  join(user: UserId, room: RoomId): JoinOutcome {
    if (this.places.has(user)) return { outcome: "rejected", reason: "duplicate" };
    const existing = this.rooms.get(room);
    const queueEmpty = !existing || existing.queue.length === 0;
    if (queueEmpty) {
      const reason = this.blocker(room);
      if (reason === null) {
        this.seat(user, room);
        return { outcome: "admitted" };
      }
      if (this.limits.queueLimit === 0) return { outcome: "rejected", reason };
    }
    const r = this.roomEntry(room);
    if (r.queue.length >= this.limits.queueLimit) {
      // queueLimit 0 with a non-empty queue cannot happen; kept total for safety.
      const reason: RejectReason = this.limits.queueLimit === 0 ? "room_full" : "queue_full";
      if (r.seated.length === 0 && r.queue.length === 0) this.rooms.delete(room);
      return { outcome: "rejected", reason };
    }
    const seq = this.nextSeq++;
    r.queue.push([user, seq]);
    const position = r.queue.length;
    this.places.set(user, { kind: "queued", room });
    this.queuedCount += 1;
    if (position === 1) this.refreshHead(room);
    return { outcome: "queued", position };
  }

  /** A user leaves (closes the socket), seated or queued. */
  leave(user: UserId): LeaveOutcome {
    const p = this.places.get(user);
    if (!p) return { outcome: "unknown" };
    if (p.kind === "queued") {
      this.dequeue(user, p.room);
      return { outcome: "abandoned", promoted: this.promote() };
    }
    const room = p.room;
    this.places.delete(user);
    const r = this.rooms.get(room)!;
    r.seated.splice(r.seated.indexOf(user), 1);
    this.seatedCount -= 1;
    if (r.seated.length === 0) this.activeCount -= 1;
    this.refreshHead(room);
    this.dropRoomIfEmpty(room);
    return { outcome: "left", promoted: this.promote() };
  }

  /** A queued user's patience ran out. Seated or unknown users are left alone. */
  timeout(user: UserId): LeaveOutcome {
    return this.places.get(user)?.kind === "queued" ? this.leave(user) : { outcome: "unknown" };
  }

  /**
   * Rebuild a state that an object lost (a Durable Object that hibernated or restarted):
   * `seated` in seating order, `queued` in enqueue order. Limits are not checked and nobody
   * is promoted: the entries are taken as they were. Users already present are skipped.
   */
  restore(seated: Array<[UserId, RoomId]>, queued: Array<[UserId, RoomId]>): void {
    for (const [user, room] of seated) {
      if (!this.places.has(user)) this.seat(user, room);
    }
    for (const [user, room] of queued) {
      if (this.places.has(user)) continue;
      const r = this.roomEntry(room);
      r.queue.push([user, this.nextSeq++]);
      this.places.set(user, { kind: "queued", room });
      this.queuedCount += 1;
      if (r.queue.length === 1) this.refreshHead(room);
    }
    // A room that got seats after its head was filed must be refiled.
    for (const room of this.rooms.keys()) this.refreshHead(room);
  }

  /** The first limit that keeps a newcomer out of `room`, ignoring the queue. */
  private blocker(room: RoomId): RejectReason | null {
    const seated = this.rooms.get(room)?.seated.length ?? 0;
    if (seated >= this.limits.roomCapacity) return "room_full";
    const mar = this.limits.maxActiveRooms;
    if (seated === 0 && mar !== null && this.activeCount >= mar) return "max_active_rooms";
    const mtc = this.limits.maxTotalConnections;
    if (mtc !== null && this.seatedCount >= mtc) return "max_total_connections";
    return null;
  }

  private roomEntry(room: RoomId): Room {
    let r = this.rooms.get(room);
    if (!r) {
      r = { seated: [], queue: [] };
      this.rooms.set(room, r);
    }
    return r;
  }

  private seat(user: UserId, room: RoomId): void {
    const r = this.roomEntry(room);
    if (r.seated.length === 0) this.activeCount += 1;
    r.seated.push(user);
    this.seatedCount += 1;
    this.places.set(user, { kind: "seated", room });
  }

  private dequeue(user: UserId, room: RoomId): void {
    const r = this.rooms.get(room)!;
    r.queue.splice(
      r.queue.findIndex(([u]) => u === user),
      1,
    );
    this.places.delete(user);
    this.queuedCount -= 1;
    this.refreshHead(room);
    this.dropRoomIfEmpty(room);
  }

  private dropRoomIfEmpty(room: RoomId): void {
    const r = this.rooms.get(room);
    if (r && r.seated.length === 0 && r.queue.length === 0) this.rooms.delete(room);
  }

  /** File `room`'s head in the ready heap it belongs to, if any (after the room changed). */
  private refreshHead(room: RoomId): void {
    const r = this.rooms.get(room);
    if (!r || r.queue.length === 0) return;
    if (r.seated.length < this.limits.roomCapacity) {
      const seq = r.queue[0][1];
      if (r.seated.length > 0) this.readyActive.push(seq, room);
      else this.readyInactive.push(seq, room);
    }
  }

  /** Whether `seq` is still the head of `room` and the room is ready in the given class. */
  private isReady(seq: number, room: RoomId, active: boolean): boolean {
    const r = this.rooms.get(room);
    if (!r || r.queue.length === 0 || r.queue[0][1] !== seq) return false;
    if (r.seated.length >= this.limits.roomCapacity) return false;
    return r.seated.length > 0 === active;
  }

  /** Admit queue heads, longest-waiting first, while any can be admitted. */
  private promote(): Promotion[] {
    const promoted: Promotion[] = [];
    for (;;) {
      const mtc = this.limits.maxTotalConnections;
      if (mtc !== null && this.seatedCount >= mtc) break;
      const mar = this.limits.maxActiveRooms;
      const activeOk = mar === null || this.activeCount < mar;
      const a = this.readyActive.first((s, r) => this.isReady(s, r, true));
      const b = activeOk ? this.readyInactive.first((s, r) => this.isReady(s, r, false)) : null;
      let pick: [number, RoomId];
      if (a && b) pick = a[0] < b[0] ? a : b;
      else if (a) pick = a;
      else if (b) pick = b;
      else break;
      const room = pick[1];
      const r = this.rooms.get(room)!;
      const [user] = r.queue.shift()!;
      this.queuedCount -= 1;
      this.places.delete(user);
      this.seat(user, room);
      this.refreshHead(room);
      promoted.push({ user, room });
    }
    return promoted;
  }
}
