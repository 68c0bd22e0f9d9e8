#!/usr/bin/env bash
# Regenerate every report in results/ that dosim writes, from the repository root:
#
#   bash results/regenerate.sh              # everything (the drives need Node.js and npm)
#   bash results/regenerate.sh --simulated  # only the simulated files (no workerd)
#
# The simulated files are byte-for-byte reproducible (same scenario, same seed). The drive
# files are measurements on this machine and differ from run to run; each says when and how
# it was measured. benchmarks.md, drive-benchmark.md and worker-memory.md are written from
# benchmark runs by hand and name their own commands.
set -euo pipefail
cd "$(dirname "$0")/.."

simulated_only=false
[[ "${1:-}" == "--simulated" ]] && simulated_only=true

cargo build --release --quiet
dosim=target/release/dosim
out=results

# Strategy comparisons: both WebSocket APIs.
for scenario in seed-phase0 seed-scale; do
  for api in hibernation accept; do
    h=true; [[ $api == accept ]] && h=false
    "$dosim" compare "scenarios/$scenario.toml" --strategies single,per-room,sharded:4 \
      --hibernation "$h" --markdown "$out/$scenario-$api.md" --json "$out/$scenario-$api.json" \
      --csv "$out/$scenario-$api.csv" > /dev/null
  done
done
# The single object saturates and fails its thresholds on purpose (exit 99).
"$dosim" compare scenarios/single-saturates.toml --strategies single,sharded:2,sharded:8,per-room \
  --markdown "$out/single-saturates.md" --json "$out/single-saturates.json" \
  --csv "$out/single-saturates.csv" > /dev/null || [[ $? -eq 99 ]]

# Cost curves.
for api in hibernation accept; do
  h=true; [[ $api == accept ]] && h=false
  "$dosim" sweep scenarios/seed-scale.toml --sessions-per-day 500,1000,2000,4000,8000,16000 \
    --strategies single,per-room,sharded:4,sharded:16 --hibernation "$h" --quiet \
    --csv "$out/seed-scale-sweep-$api.csv" --svg "$out/seed-scale-sweep-$api.svg" \
    --json "$out/seed-scale-sweep-$api.json" > "$out/seed-scale-sweep-$api.txt"
done

$simulated_only && exit 0

# Measured drives against a local workerd (one minute of the busiest hour each).
for strategy in single per-room sharded:4; do
  name=${strategy/:/-}
  "$dosim" drive scenarios/seed-scale.toml --local --strategy "$strategy" --duration 60s --quiet \
    --json "$out/drive-seed-scale-$name.json" > "$out/drive-seed-scale-$name.txt"
done

# Measured points on a calibrated cost curve: a quick calibration, then every point of a small
# sweep driven for 20 s on a fresh local workerd (about 4 minutes on 2 cores).
"$dosim" calibrate --local --quick --strategies single,per-room \
  --out "$out/seed-scale-sweep-drive-calibration.toml" > /dev/null
"$dosim" sweep scenarios/seed-scale.toml --sessions-per-day 2000,8000 \
  --strategies single,per-room,sharded:4 --hibernation false --drive --local --quiet \
  --calibration "$out/seed-scale-sweep-drive-calibration.toml" \
  --json "$out/seed-scale-sweep-drive-accept.json" --csv "$out/seed-scale-sweep-drive-accept.csv" \
  --svg "$out/seed-scale-sweep-drive-accept.svg" --markdown "$out/seed-scale-sweep-drive-accept.md" \
  > "$out/seed-scale-sweep-drive-accept.txt"
