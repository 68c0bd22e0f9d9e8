/** The bindings the Worker and its objects see (see config.ts for the limit variables). */
import type { Room } from "./room";
import type { Lobby } from "./lobby";
import type { Registry } from "./registry";

export interface Env {
  /** Room-hosting objects: `single`, `room:R`, `shard:N:K`. */
  ROOMS: DurableObjectNamespace<Room>;
  /** One lobby per strategy: `lobby:<strategy>`. */
  LOBBY: DurableObjectNamespace<Lobby>;
  /** One registry per strategy: `registry:<strategy>`. */
  REGISTRY: DurableObjectNamespace<Registry>;
  MAX_CONNECTIONS_PER_ROOM?: string | number | null;
  MAX_ACTIVE_ROOMS?: string | number | null;
  MAX_TOTAL_CONNECTIONS?: string | number | null;
  QUEUE_LIMIT?: string | number | null;
  HIBERNATION?: string | boolean | null;
  MAX_MESSAGE_BYTES?: string | number | null;
  LOBBY_MODE?: string | null;
  STATS_TOKEN?: string | null;
}

export function roomStub(env: Env, name: string) {
  return env.ROOMS.get(env.ROOMS.idFromName(name));
}

export function lobbyStub(env: Env, name: string) {
  return env.LOBBY.get(env.LOBBY.idFromName(name));
}

export function registryStub(env: Env, name: string) {
  return env.REGISTRY.get(env.REGISTRY.idFromName(name));
}
