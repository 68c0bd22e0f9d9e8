/**
 * dosim's Worker: chat rooms on Durable Objects under three strategies, one deployment.
 *
 * Routes (README.md and PROTOCOL.md have the details):
 * - `GET /s/{strategy}/rooms/{room}?user={user}`: WebSocket join; strategy is `single`,
 *   `per-room` or `sharded-N` (N in 1..1024); room and user match `[A-Za-z0-9_-]{1,64}`.
 *   Anything invalid is answered 400 before any object is touched; no `Upgrade: websocket`
 *   header gives 426.
 * - `GET /s/{strategy}/stats[?detail=1]`: counters (Authorization: Bearer STATS_TOKEN) of
 *   the strategy's live and recently idle objects, and the sum of the others (registry.ts).
 * - `POST /s/{strategy}/reset`: close every socket and clear state and counters (same auth).
 * - `GET /healthz`: 200 `ok`.
 * An invalid configuration answers every request, `/healthz` too, 500 with the reason.
 */
import { readConfig, limitsReport, type Config } from "./config";
import { lobbyStub, registryStub, roomStub, type Env } from "./env";
import { Close } from "./protocol";
import { totals, type LobbyStats, type ObjectStats, type Pruned, type RoomDetail } from "./stats";
import {
  lobbyName,
  NAME_RE,
  objectFor,
  objectKind,
  parseStrategy,
  registryName,
  usesLobby,
  type Strategy,
} from "./strategy";

export { Room } from "./room";
export { Lobby } from "./lobby";
export { Registry } from "./registry";

const empty = (status: number, headers?: HeadersInit) => new Response(null, { status, headers });

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    let cfg: Config;
    try {
      cfg = readConfig(env as unknown as Record<string, unknown>);
    } catch (e) {
      return new Response(`configuration error: ${(e as Error).message}\n`, { status: 500 });
    }
    const url = new URL(request.url);
    const parts = url.pathname.split("/");
    if (url.pathname === "/healthz") return new Response("ok\n");
    // ["", "s", strategy, ...]
    if (parts.length < 4 || parts[1] !== "s") return empty(404);
    const strategy = parseStrategy(parts[2]);
    if (!strategy) return empty(400);

    if (parts.length === 5 && parts[3] === "rooms") {
      if (request.method !== "GET") return empty(405, { Allow: "GET" });
      return join(request, env, strategy, parts[4], url.searchParams.get("user") ?? "");
    }
    if (parts.length === 4 && parts[3] === "stats") {
      if (request.method !== "GET") return empty(405, { Allow: "GET" });
      if (!(await authorized(request, cfg))) return empty(401);
      const detail = ["1", "true"].includes(url.searchParams.get("detail") ?? "");
      return Response.json(await collectStats(env, cfg, strategy, detail));
    }
    if (parts.length === 4 && parts[3] === "reset") {
      if (request.method !== "POST") return empty(405, { Allow: "POST" });
      if (!(await authorized(request, cfg))) return empty(401);
      return Response.json(await resetAll(env, cfg, strategy));
    }
    return empty(404);
  },
} satisfies ExportedHandler<Env>;

async function join(
  request: Request,
  env: Env,
  strategy: Strategy,
  room: string,
  user: string,
): Promise<Response> {
  if (!NAME_RE.test(room) || !NAME_RE.test(user)) return empty(400);
  if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
    return empty(426, { Upgrade: "websocket" });
  }
  const object = objectFor(strategy, room);
  const target = new URL("https://room.internal/connect");
  target.searchParams.set("user", user);
  target.searchParams.set("room", room);
  target.searchParams.set("object", object);
  target.searchParams.set("strategy", strategy.name);
  try {
    return await roomStub(env, object).fetch(new Request(target, request));
  } catch (e) {
    const err = e as { message?: string; overloaded?: boolean };
    const overloaded = err?.overloaded === true || /overloaded/i.test(String(err?.message ?? e));
    // Answer on a socket of our own so the client sees the protocol's frames.
    const pair = new WebSocketPair();
    const server = pair[1];
    server.accept();
    if (overloaded) {
      server.send(JSON.stringify({ type: "rejected", reason: "overloaded" }));
      server.close(Close.OVERLOADED, "overloaded");
    } else {
      console.error("join failed", e);
      server.send(JSON.stringify({ type: "error", code: "internal" }));
      server.close(Close.INTERNAL, "internal error");
    }
    return new Response(null, { status: 101, webSocket: pair[0] });
  }
}

/** Constant-time check of `Authorization: Bearer <STATS_TOKEN>`; false if no token is set. */
async function authorized(request: Request, cfg: Config): Promise<boolean> {
  if (cfg.statsToken === null) return false;
  const got = request.headers.get("Authorization") ?? "";
  const enc = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", enc.encode(got)),
    crypto.subtle.digest("SHA-256", enc.encode(`Bearer ${cfg.statsToken}`)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}

/**
 * The stats of a strategy. `single`: its one object. Otherwise the registry's: its active
 * objects (asked), idle lineages and pruned sum (registry.ts), so the cost follows the
 * objects that hold sockets, not every object that ever ran.
 */
async function collectStats(env: Env, cfg: Config, strategy: Strategy, detail: boolean) {
  let objects: ObjectStats[];
  let pruned: Pruned | null = null;
  let unanswered: string[] = [];
  if (strategy.kind === "single") {
    const s = (await roomStub(env, "single").stats(detail)) as ObjectStats;
    // An object that never had a join does not know its own name yet.
    objects = [{ ...s, name: "single", kind: objectKind("single") }];
  } else {
    const c = await registryStub(env, registryName(strategy.name)).collect(detail);
    objects = c.objects as ObjectStats[];
    pruned = c.pruned as Pruned;
    unanswered = c.unanswered;
  }
  const lobbyMode = usesLobby(strategy, cfg);
  let lobby: LobbyStats | null = null;
  if (lobbyMode) {
    const ln = lobbyName(strategy.name);
    lobby = { ...((await lobbyStub(env, ln).stats(detail)) as LobbyStats), name: ln };
  }
  const out: Record<string, unknown> = {
    strategy: strategy.name,
    lobby_mode: lobbyMode,
    hibernation: cfg.hibernation,
    limits: limitsReport(cfg),
    objects,
    pruned,
    unanswered,
    lobby,
    total: totals(objects, pruned),
  };
  if (detail) {
    const rooms: Record<string, RoomDetail> = {};
    for (const o of objects) Object.assign(rooms, o.rooms ?? {});
    for (const o of objects) delete o.rooms;
    out.rooms = rooms;
  }
  return out;
}

async function resetAll(env: Env, cfg: Config, strategy: Strategy) {
  const { objects, closed } =
    strategy.kind === "single"
      ? { objects: 1, closed: await roomStub(env, "single").reset() }
      : await registryStub(env, registryName(strategy.name)).resetAll();
  if (usesLobby(strategy, cfg)) await lobbyStub(env, lobbyName(strategy.name)).reset();
  return { strategy: strategy.name, objects, closed };
}
