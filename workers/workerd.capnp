# workerd config: serves dosim's Worker (dist/worker.js, built by `npm run build`) locally,
# with no account and no network. Durable Object storage is in memory (lost at exit).
#
#   node_modules/.bin/workerd serve workerd.capnp --socket-addr http=127.0.0.1:PORT
#
# (from workers/; from the repository root use workers/workerd.capnp: paths below are
# relative to this file). The limits come from the process environment, DOSIM_* variables,
# read once at start; see README.md. Unset variables take the Worker's defaults.

using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "dosim", worker = .dosimWorker) ],
  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "dosim") ],
);

const dosimWorker :Workerd.Worker = (
  modules = [ (name = "worker.js", esModule = embed "dist/worker.js") ],
  compatibilityDate = "2026-03-01",
  # Room objects hibernate and are evicted as on Cloudflare (under HIBERNATION=true they
  # rebuild from their sockets' attachments). The lobby and the registry keep their state in
  # Durable Object storage, which is durable on Cloudflare but, with in-memory storage here,
  # is lost when workerd evicts the object: so these two are pinned in memory locally.
  durableObjectNamespaces = [
    (className = "Room", uniqueKey = "dosim-room", enableSql = true),
    (className = "Lobby", uniqueKey = "dosim-lobby", enableSql = true, preventEviction = true),
    (className = "Registry", uniqueKey = "dosim-registry", enableSql = true, preventEviction = true),
  ],
  durableObjectStorage = (inMemory = void),
  bindings = [
    (name = "ROOMS", durableObjectNamespace = "Room"),
    (name = "LOBBY", durableObjectNamespace = "Lobby"),
    (name = "REGISTRY", durableObjectNamespace = "Registry"),
    (name = "MAX_CONNECTIONS_PER_ROOM", fromEnvironment = "DOSIM_MAX_CONNECTIONS_PER_ROOM"),
    (name = "MAX_ACTIVE_ROOMS", fromEnvironment = "DOSIM_MAX_ACTIVE_ROOMS"),
    (name = "MAX_TOTAL_CONNECTIONS", fromEnvironment = "DOSIM_MAX_TOTAL_CONNECTIONS"),
    (name = "QUEUE_LIMIT", fromEnvironment = "DOSIM_QUEUE_LIMIT"),
    (name = "HIBERNATION", fromEnvironment = "DOSIM_HIBERNATION"),
    (name = "MAX_MESSAGE_BYTES", fromEnvironment = "DOSIM_MAX_MESSAGE_BYTES"),
    (name = "LOBBY_MODE", fromEnvironment = "DOSIM_LOBBY_MODE"),
    (name = "STATS_TOKEN", fromEnvironment = "DOSIM_STATS_TOKEN"),
  ],
);
