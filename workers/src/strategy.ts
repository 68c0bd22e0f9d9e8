/**
 * Strategies: which Durable Object hosts a room. See README.md for the object names.
 *
 * - `single`: every room on the object named `single`;
 * - `per-room`: room `R` on the object named `room:R`;
 * - `sharded-N` (N in 1..1024): room `R` on `shard:N:K` with `K = fnv1a32(R) mod N`, where
 *   `fnv1a32` is 32-bit FNV-1a over the UTF-8 bytes of the room name (offset basis
 *   2166136261, prime 16777619). Room names are ASCII, so bytes are char codes.
 *
 * In `per-room` and `sharded-N`, the global limits are enforced by the lobby object
 * `lobby:<strategy>`, and the objects that were used are listed by `registry:<strategy>`.
 */
import type { Config } from "./config";
import { hasGlobalLimits } from "./config";

/** A parsed strategy. `name` is its canonical spelling, as in the URL. */
export type Strategy =
  | { kind: "single"; name: "single" }
  | { kind: "per-room"; name: "per-room" }
  | { kind: "sharded"; name: string; shards: number };

/** Largest N accepted in `sharded-N`. */
export const MAX_SHARDS = 1024;

/** Names of rooms and users: 1 to 64 of `A-Z a-z 0-9 _ -`. */
export const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** Parse `single`, `per-room` or `sharded-N`; null if it is none of them. */
export function parseStrategy(s: string): Strategy | null {
  if (s === "single") return { kind: "single", name: "single" };
  if (s === "per-room") return { kind: "per-room", name: "per-room" };
  const m = /^sharded-([1-9][0-9]{0,3})$/.exec(s);
  if (m) {
    const n = Number(m[1]);
    if (n <= MAX_SHARDS) return { kind: "sharded", name: s, shards: n };
  }
  return null;
}

/** 32-bit FNV-1a of a string's UTF-8 bytes. */
export function fnv1a32(s: string): number {
  const bytes = new TextEncoder().encode(s);
  let h = 0x811c9dc5;
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The name of the object that hosts `room` under `strategy`. */
export function objectFor(strategy: Strategy, room: string): string {
  switch (strategy.kind) {
    case "single":
      return "single";
    case "per-room":
      return `room:${room}`;
    case "sharded":
      return `shard:${strategy.shards}:${fnv1a32(room) % strategy.shards}`;
  }
}

/** The kind of a room-hosting object, from its name. */
export function objectKind(name: string): "single" | "room" | "shard" {
  if (name === "single") return "single";
  return name.startsWith("shard:") ? "shard" : "room";
}

/** Whether joins under `strategy` go through the lobby. */
export function usesLobby(strategy: Strategy | string, cfg: Config): boolean {
  const kind = typeof strategy === "string" ? parseStrategy(strategy)?.kind : strategy.kind;
  if (kind === undefined || kind === "single") return false;
  return cfg.lobby === "always" || hasGlobalLimits(cfg);
}

/** The lobby object's name for a strategy. */
export function lobbyName(strategy: string): string {
  return `lobby:${strategy}`;
}

/** The registry object's name for a strategy. */
export function registryName(strategy: string): string {
  return `registry:${strategy}`;
}
