/**
 * Counters reported by `GET /s/{strategy}/stats`. A room-hosting object's counters form a
 * *lineage* (`instance`, `started_at`): they count from the object's first join (or a
 * reset) while it holds sockets, also across its evictions (`restarts`,
 * `incarnation_started_at`), kept in the isolate's memory by object id. When the object's
 * last socket goes, it hands its lineage to the registry (`idle`), which keeps the most
 * recent idle lineages whole (the object takes its lineage back on its next join) and folds
 * older ones into one retained sum (`pruned`): totals are kept exactly while memory and the
 * cost of a stats call follow live objects (registry.ts). A new isolate (a workerd restart)
 * loses the lineages it held: the registry counts those as `lost`. The lobby's counters live
 * in its own memory (it is kept in memory locally): its `instance` changes when it restarts.
 */
import { REJECT_REASONS, type RejectReason } from "./admission";

export type Rejections = Record<RejectReason, number>;

export function zeroRejections(): Rejections {
  const r = {} as Rejections;
  for (const k of REJECT_REASONS) r[k] = 0;
  return r;
}

/** Event counters of a room-hosting object (`single`, `room:R` or `shard:N:K`). */
export interface RoomCounters {
  /** WebSocket upgrades handled (one per join attempt). */
  connects: number;
  /** Joins answered `joined` at once. */
  admitted: number;
  /** Joins answered `queued`. */
  queued_joins: number;
  /** Queued users who later got a seat. */
  promoted: number;
  /** Seated users who left (leave, close, or a protocol error). */
  left: number;
  /** Queued users who left. */
  abandoned: number;
  /** Joins answered `rejected`, by reason. */
  rejections: Rejections;
  /** Chat messages accepted from seated users. */
  messages_in: number;
  /** Chat messages delivered (one per recipient). */
  messages_out: number;
  /** Chat messages from users without a seat (answered with an error frame). */
  not_admitted: number;
  /** Frames closed with 1007 (or 1003 for binary). */
  malformed: number;
  /** Frames closed with 1009. */
  oversized: number;
  /** Frames closed with 1008. */
  unknown: number;
  /** Calls to the lobby (join and leave). */
  lobby_rpcs: number;
  /** Calls to the lobby that failed. */
  lobby_errors: number;
}

export function zeroRoomCounters(): RoomCounters {
  return {
    connects: 0,
    admitted: 0,
    queued_joins: 0,
    promoted: 0,
    left: 0,
    abandoned: 0,
    rejections: zeroRejections(),
    messages_in: 0,
    messages_out: 0,
    not_admitted: 0,
    malformed: 0,
    oversized: 0,
    unknown: 0,
    lobby_rpcs: 0,
    lobby_errors: 0,
  };
}

/** Seated and queued users of one room, in seating and queue order. */
export interface RoomDetail {
  seated: string[];
  queued: string[];
}

/** What one room-hosting object reports. */
export interface ObjectStats extends RoomCounters {
  name: string;
  kind: "single" | "room" | "shard";
  /** `active`: answered by the object itself; `idle`: its lineage, held by the registry. */
  state: "active" | "idle";
  instance: string;
  started_at: number;
  /** When this incarnation of the object started (it starts again after an eviction). */
  incarnation_started_at: number;
  /** Times the object was started again after an eviction, its counters kept. */
  restarts: number;
  /** Open sockets that hold a seat or a queue place. */
  connections: number;
  seated: number;
  queued: number;
  active_rooms: number;
  max_queue_length: number;
  /**
   * Active objects: lineages held in this object's isolate (its own, and any other object's
   * there that holds sockets): a diagnostic of the memory idle objects do not keep.
   */
  isolate_lineages?: number;
  rooms?: Record<string, RoomDetail>;
}

/** Event counters of the lobby. */
export interface LobbyCounters {
  rpc_join: number;
  rpc_leave: number;
  /** Promotion calls made to room objects. */
  rpc_promote: number;
  /** Promotion calls whose user was gone (the seat was released again). */
  promote_failed: number;
  admitted: number;
  queued_joins: number;
  promoted: number;
  left: number;
  abandoned: number;
  rejections: Rejections;
  /** Storage rows written (one per admitted or queued join, leave, and promotion). */
  rows_written: number;
}

export function zeroLobbyCounters(): LobbyCounters {
  return {
    rpc_join: 0,
    rpc_leave: 0,
    rpc_promote: 0,
    promote_failed: 0,
    admitted: 0,
    queued_joins: 0,
    promoted: 0,
    left: 0,
    abandoned: 0,
    rejections: zeroRejections(),
    rows_written: 0,
  };
}

/** What the lobby reports. */
export interface LobbyStats extends LobbyCounters {
  name: string;
  instance: string;
  started_at: number;
  seated: number;
  queued: number;
  active_rooms: number;
  rooms?: Record<string, RoomDetail>;
}

/**
 * The lineages the registry has folded together: the objects that went idle longest ago
 * (beyond the registry's most recent `IDLE_KEPT`), their counters summed.
 */
export type Pruned = RoomCounters & {
  /** The registry's own lineage: the sum counts since then (a reset or its start). */
  instance: string;
  started_at: number;
  /** How many idle lineages the registry keeps whole (`IDLE_KEPT`); older ones are here. */
  idle_kept: number;
  /** Lineages folded in. */
  objects: number;
  /** Their evictions (`restarts`), summed. */
  restarts: number;
  /** Lineages found gone with their counters (an object in a new isolate): restarts. */
  lost: number;
  /** The most recent of those (at most 20), oldest first. */
  lost_recent: LostLineage[];
};

/** A lineage whose counters were lost (its object restarted in a new isolate). */
export interface LostLineage {
  name: string;
  instance: string;
  /** When the registry noticed (Unix ms). */
  detected_at: number;
}

/** The sum over room-hosting objects. */
export type Totals = RoomCounters & {
  objects: number;
  /** Lineages folded into `pruned` (their counters are in the sums). */
  pruned_objects: number;
  connections: number;
  seated: number;
  queued: number;
  active_rooms: number;
  max_queue_length: number;
};

/** The counters (summed over objects and the pruned lineages alike). */
export const COUNTERS = [
  "connects",
  "admitted",
  "queued_joins",
  "promoted",
  "left",
  "abandoned",
  "messages_in",
  "messages_out",
  "not_admitted",
  "malformed",
  "oversized",
  "unknown",
  "lobby_rpcs",
  "lobby_errors",
] as const;

const GAUGES = ["connections", "seated", "queued", "active_rooms"] as const;

/** Add the counters of `from` to `into`. */
export function addCounters(into: RoomCounters, from: RoomCounters): void {
  for (const k of COUNTERS) into[k] += from[k];
  for (const r of REJECT_REASONS) into.rejections[r] += from.rejections[r] ?? 0;
}

/** Only the counters of `c` (a copy). */
export function countersOf(c: RoomCounters): RoomCounters {
  const out = zeroRoomCounters();
  addCounters(out, c);
  return out;
}

/** Counters and gauges summed over `objects`, plus the counters of the pruned lineages. */
export function totals(objects: ObjectStats[], pruned: Pruned | null): Totals {
  const t: Totals = {
    ...zeroRoomCounters(),
    objects: objects.length,
    pruned_objects: pruned?.objects ?? 0,
    connections: 0,
    seated: 0,
    queued: 0,
    active_rooms: 0,
    max_queue_length: 0,
  };
  for (const o of objects) {
    addCounters(t, o);
    for (const k of GAUGES) t[k] += o[k];
    t.max_queue_length = Math.max(t.max_queue_length, o.max_queue_length);
  }
  if (pruned) addCounters(t, pruned);
  return t;
}
