#!/usr/bin/env bash
# Issue 8's socket benchmark: hold N concurrent WebSockets against ONE local workerd from this
# machine, the plan split over S shard processes (`dosim drive --shard I/S`) that start
# together (`--start-at`) and spread their sockets over source addresses
# (`--source-addr`), then merge the shards (`dosim merge`). Prints a Markdown section with
# the sockets held, faults, and the memory per socket of the drivers and of workerd.
#
#   bash results/sockets.sh [USERS (default 50000)] [SHARDS (default 4)]
#
# Needs python3 and curl besides the Rust toolchain and workers/node_modules (npm ci).
# Loopback only (127.0.0.0/8). Raises the open-file limit for itself (workerd holds one
# descriptor per socket; run as root, or with a hard limit above USERS).
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-50000}
shards=${2:-4}
# workerd holds a descriptor per socket: it needs more than `users` of them.
want=$((users + 2000))
if ! ulimit -n "$want" 2> /dev/null; then
  hard=$(ulimit -Hn)
  echo "the open-file limit cannot be raised to $want here (hard limit $hard, no CAP_SYS_RESOURCE):" \
    "one workerd process can hold at most about $((hard - 100)) sockets; run fewer users" >&2
  (( users + 100 > hard )) && exit 2
  ulimit -n "$hard"
fi
cargo build --release --quiet
dosim=$PWD/target/release/dosim
work=$(mktemp -d)
trap 'kill "$workerd_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# Sessions of exactly 1 h arriving at users/3600 a second around the clock: at any hour,
# `users` of them are in progress, and the drive's ramp connects them all. Rooms of 8, one
# object per room (no global limit, so no lobby), a message per member every 10 minutes.
cat > "$work/sockets.toml" <<TOML
name = "sockets-$users"
seed = 11
[window]
length = "1d"
[arrivals]
rate_per_second = $(python3 -c "print($users / 3600)" 2>/dev/null || echo "$users/3600" | bc -l)
profile = "flat"
[sessions]
length = { dist = "constant", value = "1h" }
message_interval = { dist = "exponential", mean = "10m" }
message_bytes = 64
[rooms]
count = $((users / 8 + users / 80))
choice = "fill"
[limits]
max_connections_per_room = 8
[platform]
strategy = "per-room"
hibernation = true
TOML

token=bench-$RANDOM
port=$((20000 + RANDOM % 20000))
DOSIM_STATS_TOKEN=$token workers/node_modules/.bin/workerd serve workers/workerd.capnp \
  --socket-addr "http=127.0.0.1:$port" > "$work/workerd.log" 2>&1 &
workerd_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" > /dev/null 2>&1 && break
  sleep 0.1
done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
idle_kib=$(rss "$workerd_pid")

start=$(( $(date +%s) + 5 ))
pids=()
for ((i = 0; i < shards; i++)); do
  # Each shard its own 16 source addresses (127.0.<i+1>.1-16): 16 × ~28,000 ports.
  "$dosim" drive "$work/sockets.toml" --target "ws://127.0.0.1:$port" --stats-token "$token" \
    --shard "$i/$shards" --start-at "$start" --source-addr "127.0.$((i + 1)).1-127.0.$((i + 1)).16" \
    --ramp "${RAMP:-120s}" --duration 30s --timeout 30s --quiet --json "$work/shard-$i.json" \
    > "$work/shard-$i.txt" 2> "$work/shard-$i.err" &
  pids+=($!)
done
# workerd's memory while the most sockets are held: sampled every second, kept at the sample
# with the most open descriptors (one per socket, plus a few dozen of its own).
peak_kib=0
sockets_at_peak=0
while kill -0 "${pids[0]}" 2> /dev/null; do
  kib=$(rss "$workerd_pid")
  held=$(ls "/proc/$workerd_pid/fd" 2> /dev/null | wc -l)
  if (( held > sockets_at_peak )); then peak_kib=$kib; sockets_at_peak=$held; fi
  sleep 1
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
"$dosim" merge "$work"/shard-*.json --json "$work/merged.json" > "$work/merged.txt" || status=$?

python3 - "$work/merged.json" "$users" "$shards" "$idle_kib" "$peak_kib" "$sockets_at_peak" "$status" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
users, shards, idle, peak, fds, status = (int(x) for x in sys.argv[2:8])
d = r["drive"]
c, drv = d["carried"], d["driver"]
print(f"## {users:,} users held by {shards} shard processes against one local workerd")
print()
print(f"- merged status: {d['status']}; exit status of the shards and the merge: {status}")
print(f"- carried sessions (connected by the ramp): planned {c['planned']:,}, upgraded {c['upgraded']:,}, failed {c['failed']:,}; arrivals in the window: {d['arrivals']['upgraded']:,} of {d['arrivals']['planned']:,}")
print(f"- open sockets at the window's start, all shards: {drv.get('sockets_at_window_start', 0):,} (peak {drv.get('peak_open_sockets', 0):,})")
print(f"- faults: {json.dumps(d.get('faults', {}))}")
print(f"- deliveries: {json.dumps(d.get('deliveries', {}))}")
per = drv.get("rss_bytes_at_window_start", 0) / max(drv.get("sockets_at_window_start", 0), 1)
print(f"- drivers: RSS {drv.get('rss_bytes_at_window_start', 0) / 2**20:,.0f} MiB over the {shards} processes at the window's start = {per:,.0f} bytes per socket (peak {drv.get('peak_rss_bytes', 0) / 2**20:,.0f} MiB); CPU {drv.get('cpu_ms', 0) / 1e3:,.1f} s")
print(f"- workerd: RSS {idle / 1024:,.0f} MiB idle, {peak / 1024:,.0f} MiB when it held the most descriptors ({fds:,}): {(peak - idle) * 1024 / max(fds, 1):,.0f} bytes per descriptor above idle")
print(f"- reconciled with the Worker's stats: {d.get('reconciliation', {}).get('ok')}")
PY
