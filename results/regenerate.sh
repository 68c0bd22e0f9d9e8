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

# Strategy comparisons: both WebSocket APIs, 8 replications each (95% intervals).
for scenario in seed-phase0 seed-scale; do
  for api in hibernation accept; do
    h=true; [[ $api == accept ]] && h=false
    "$dosim" compare "scenarios/$scenario.toml" --strategies single,per-room,sharded:4 \
      --hibernation "$h" --replications 8 --markdown "$out/$scenario-$api.md" --json "$out/$scenario-$api.json" \
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

# Curves from 50 to 100,000 concurrent users at the busiest hour (issue 8): 12 loads × 4
# strategies × both WebSocket APIs, a day at each point (from 04:00, the end of the profile's
# quietest stretch) projected onto the month and checked against a whole month at the middle
# load. Two forms: the design document's per-room cap of 8 with the global limits lifted, and
# the limits scaled in proportion to the load.
for form in lifted scaled; do
  if [[ $form == lifted ]]; then
    limits=(--scale rooms --set limits.max_active_rooms=unlimited --set limits.max_total_connections=unlimited)
  else
    limits=(--scale rooms,limits)
  fi
  "$dosim" sweep scenarios/seed-scale.toml --vary concurrent_users=50..100000:12:log \
    --vary platform.hibernation=true,false --strategies single,per-room,sharded:4,sharded:64 \
    "${limits[@]}" --window busiest-day --check-window --quiet \
    --markdown "$out/curves-$form.md" --csv "$out/curves-$form.csv" --json "$out/curves-$form.json" \
    > "$out/curves-$form.txt"
done

$simulated_only && exit 0

# The calibration measured here (the full ladder against local workerd, about 2 minutes):
# written to scenarios/ where scenarios and --calibration use it; its summary beside it here.
"$dosim" calibrate --local --out scenarios/calibration-local.toml 2> /dev/null \
  > "$out/calibration-local.txt"

# Validation, simulated (calibrated, as local workerd runs it) against driven, for every
# strategy at two loads of each seed scenario: the busiest hour as it is, and sped up
# (Phase 0 ×30; seed-scale ×10, close to what one local workerd thread serves). Each row
# has its verdict; a scenario with a differing row exits 99, which is a finding, not a
# failure of this script.
for v in seed-phase0:1 seed-phase0:30 seed-scale:1 seed-scale:10; do
  scenario=${v%:*}; speedup=${v#*:}
  "$dosim" validate "scenarios/$scenario.toml" --local --strategies single,per-room,sharded:4 \
    --speedup "$speedup" --calibration scenarios/calibration-local.toml \
    --json "$out/validate-$scenario-x$speedup.json" --markdown "$out/validate-$scenario-x$speedup.md" \
    > "$out/validate-$scenario-x$speedup.txt" || [[ $? -eq 99 ]]
done
# Close to what one workerd thread serves: single only, 2 drives.
"$dosim" validate scenarios/seed-scale.toml --local --strategies single --speedup 200 --repeats 2 \
  --calibration scenarios/calibration-local.toml --json "$out/validate-seed-scale-x200.json" \
  --markdown "$out/validate-seed-scale-x200.md" > "$out/validate-seed-scale-x200.txt" || [[ $? -eq 99 ]]

# Measured drives against a local workerd (one minute of the busiest hour each).
for strategy in single per-room sharded:4; do
  name=${strategy/:/-}
  "$dosim" drive scenarios/seed-scale.toml --local --strategy "$strategy" --duration 60s --quiet \
    --json "$out/drive-seed-scale-$name.json" > "$out/drive-seed-scale-$name.txt"
done

# Measured points on a calibrated cost curve, both WebSocket APIs: every point of a small
# sweep driven for 20 s on a fresh local workerd (about 3 minutes each on 2 cores), beside the
# simulation calibrated by the calibration measured above.
for api in hibernation accept; do
  h=true; [[ $api == accept ]] && h=false
  "$dosim" sweep scenarios/seed-scale.toml --sessions-per-day 2000,8000 \
    --strategies single,per-room,sharded:4 --hibernation "$h" --drive --local --quiet \
    --calibration scenarios/calibration-local.toml \
    --json "$out/seed-scale-sweep-drive-$api.json" --csv "$out/seed-scale-sweep-drive-$api.csv" \
    --svg "$out/seed-scale-sweep-drive-$api.svg" --markdown "$out/seed-scale-sweep-drive-$api.md" \
    > "$out/seed-scale-sweep-drive-$api.txt"
done
