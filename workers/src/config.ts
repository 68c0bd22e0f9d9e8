/**
 * The Worker's configuration, read from its environment (Worker vars or bindings).
 *
 * | binding                    | default   | meaning                                             |
 * |----------------------------|-----------|-----------------------------------------------------|
 * | `MAX_CONNECTIONS_PER_ROOM` | 8         | seats per room (>= 1)                               |
 * | `MAX_ACTIVE_ROOMS`         | unlimited | rooms with someone seated, over the strategy        |
 * | `MAX_TOTAL_CONNECTIONS`    | unlimited | seated users, over the strategy                     |
 * | `QUEUE_LIMIT`              | 0         | waiting places per room; 0 = no queue               |
 * | `HIBERNATION`              | true      | `true`: Hibernation API; `false`: `ws.accept()`     |
 * | `MAX_MESSAGE_BYTES`        | 4096      | largest client frame accepted, in bytes             |
 * | `LOBBY_MODE`               | auto      | `auto`: lobby only with a global limit; `always`    |
 * | `STATS_TOKEN`              | unset     | bearer token for stats and reset; unset = disabled  |
 *
 * Unset, null (workerd `fromEnvironment` of an unset variable) and the empty string all mean
 * "default"; `none` or `unlimited` also mean unlimited for the two global limits. Anything
 * unparsable or out of range is a configuration error: every request (`/healthz` too) then
 * fails with 500 naming the variable. The ranges and defaults of the numeric settings are in
 * `limits.json`, which dosim reads too (it refuses a scenario outside them).
 */
import type { Limits } from "./admission";
import LIMITS from "./limits.json";

/** The limit and behaviour settings, parsed. */
export interface Config {
  limits: Limits;
  hibernation: boolean;
  maxMessageBytes: number;
  lobby: "auto" | "always";
  statsToken: string | null;
}

/** A bad value in the environment. */
export class ConfigError extends Error {}

type Raw = string | number | boolean | null | undefined;

function isUnset(v: Raw): boolean {
  return v === undefined || v === null || (typeof v === "string" && v.trim() === "");
}

/** The numeric settings of limits.json. */
export type NumericSetting = keyof typeof LIMITS.settings;

/** The range and default of a numeric setting (limits.json). */
export interface Range {
  min: number;
  max: number;
  /** null: unlimited. */
  default: number | null;
  /** Whether `none`/`unlimited` are accepted. */
  unlimited: boolean;
}

/** The range and default of a numeric setting, from limits.json. */
export function limitOf(name: NumericSetting): Range {
  return LIMITS.settings[name];
}

/** An integer setting; unset gives its default (null only for settings that may be unlimited). */
function parse(name: NumericSetting, v: Raw): number | null {
  const { min, max, unlimited } = limitOf(name);
  if (isUnset(v)) return limitOf(name).default;
  const s = String(v).trim();
  if (unlimited && ["none", "unlimited"].includes(s.toLowerCase())) return null;
  if (!/^[0-9]+$/.test(s)) throw new ConfigError(`${name} must be an integer, got ${JSON.stringify(s)}`);
  const n = Number(s);
  if (n < min || n > max) throw new ConfigError(`${name} must be in ${min}..${max}, got ${n}`);
  return n;
}

function int(name: NumericSetting, v: Raw): number {
  const n = parse(name, v);
  if (n === null) throw new ConfigError(`${name} must be set`);
  return n;
}

function bool(name: string, v: Raw, dflt: boolean): boolean {
  if (isUnset(v)) return dflt;
  const s = String(v).trim().toLowerCase();
  if (s === "true" || s === "1" || s === "yes") return true;
  if (s === "false" || s === "0" || s === "no") return false;
  throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(s)}`);
}

/** Parse the configuration from an environment object; throws `ConfigError`. */
export function readConfig(env: Record<string, unknown>): Config {
  const get = (k: string) => env[k] as Raw;
  const lobbyRaw = isUnset(get("LOBBY_MODE"))
    ? "auto"
    : String(get("LOBBY_MODE")).trim().toLowerCase();
  if (lobbyRaw !== "auto" && lobbyRaw !== "always") {
    throw new ConfigError(`LOBBY_MODE must be auto or always, got ${JSON.stringify(lobbyRaw)}`);
  }
  const token = get("STATS_TOKEN");
  return {
    limits: {
      roomCapacity: int("MAX_CONNECTIONS_PER_ROOM", get("MAX_CONNECTIONS_PER_ROOM")),
      maxActiveRooms: parse("MAX_ACTIVE_ROOMS", get("MAX_ACTIVE_ROOMS")),
      maxTotalConnections: parse("MAX_TOTAL_CONNECTIONS", get("MAX_TOTAL_CONNECTIONS")),
      queueLimit: int("QUEUE_LIMIT", get("QUEUE_LIMIT")),
    },
    hibernation: bool("HIBERNATION", get("HIBERNATION"), true),
    maxMessageBytes: int("MAX_MESSAGE_BYTES", get("MAX_MESSAGE_BYTES")),
    lobby: lobbyRaw,
    statsToken: isUnset(token) ? null : String(token),
  };
}

/** Whether a global limit (active rooms or total connections) is configured. */
export function hasGlobalLimits(cfg: Config): boolean {
  return cfg.limits.maxActiveRooms !== null || cfg.limits.maxTotalConnections !== null;
}

/** The limits as reported by the stats endpoint (the names of the shared vectors). */
export function limitsReport(cfg: Config) {
  return {
    max_connections_per_room: cfg.limits.roomCapacity,
    max_active_rooms: cfg.limits.maxActiveRooms,
    max_total_connections: cfg.limits.maxTotalConnections,
    queue_limit: cfg.limits.queueLimit,
    max_message_bytes: cfg.maxMessageBytes,
  };
}
