//! A sharded drive and `dosim merge`: four `dosim drive --shard I/4` processes against one
//! local workerd, started together with `--start-at`, merged; and the same plan driven by
//! one process (`--shard 0/1`) on a fresh workerd. The merged counts equal the single
//! process's exactly, the merged histograms are the exact sum of the shards', and a missing,
//! duplicated or foreign shard is refused with exit code 2 and the file named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use dosim::drive::local::LocalSettings;
use dosim::drive::plan::{DrivePlan, PlanOptions};
use hdrhistogram::Histogram;
use serde_json::Value;

use crate::drive::{dosim_drive, start, write_scenario, Finished};
use crate::util::{dosim_in, repo};

/// A plan whose counts do not depend on timing. Sessions last an hour and the window starts
/// 10 minutes into the day, so nobody leaves during the window; a message every 161 s of
/// scenario time, over a window of 160 s (4 s at ×40), so a carried session sends at most
/// one message in it at a planned time, and a session arriving in the window sends none.
/// With "fill", the carried sessions fill rooms 0 to 4 (40 of them, 8 a room: the seed is
/// chosen so, and checked below), and the 11 sessions arriving in the window go to rooms 5
/// and 6, where nobody talks: no join races a message, so the recipients of every message
/// are known from the plan. Per room, so shard I of 4 holds rooms I and I + 4: every shard
/// has talking rooms, two have arrivals.
const SHARDED: &str = r#"
name = "merge-shards"
seed = SEED
[window]
length = "1d"
[arrivals]
rate_per_second = 0.05
[sessions]
length = { dist = "constant", value = "1h" }
message_interval = { dist = "constant", value = "161s" }
message_bytes = 64
[rooms]
count = 8
choice = "fill"
[limits]
max_connections_per_room = 8
[platform]
strategy = "per-room"
hibernation = true
"#;

const SEED: &str = "54";
const WINDOW: [&str; 6] = ["--from", "10m", "--duration", "4s", "--speedup", "40"];

fn scenario_text() -> String {
    SHARDED.replace("SEED", SEED)
}

/// The plan as the shards resolve it: every carried session's room, and how many arrive.
fn check_the_plan(s: &dosim::scenario::Scenario) {
    let w = dosim::workload::Workload::new(s);
    let mut plan = DrivePlan::build(
        s,
        &w,
        &PlanOptions {
            from_ns: Some(600 * 1_000_000_000),
            duration: Duration::from_secs(4),
            speedup: 40.0,
        },
    )
    .unwrap();
    dosim::drive::shard::resolve_fill(&mut plan, 8, 8);
    assert_eq!(
        plan.carried.len() % 8,
        0,
        "the carried sessions must fill whole rooms (choose another seed): {}",
        plan.carried.len()
    );
    assert!(plan.carried.len() >= 16, "{}", plan.carried.len());
    assert!(!plan.arrivals.is_empty());
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The histograms of an HdrHistogram interval log, added up by tag.
fn read_log(path: &Path) -> BTreeMap<String, Histogram<u64>> {
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for entry in IntervalLogIterator::new(&text) {
        let LogEntry::Interval(i) = entry.unwrap() else {
            continue;
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(i.encoded_histogram())
            .unwrap();
        let h: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(bytes))
            .unwrap();
        let tag = i.tag().unwrap().as_str().to_string();
        match out.get_mut(&tag) {
            Some(sum) => sum.add(&h).unwrap(),
            None => {
                out.insert(tag, h);
            }
        }
    }
    out
}

/// (value, count) at every recorded value.
fn values(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

fn merge(dir: &Path, files: &[&str], extra: &[&str]) -> std::process::Output {
    let mut args = vec!["merge"];
    args.extend(files);
    args.extend(extra);
    dosim_in(dir, &args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn four_shards_merged_equal_one_process_and_bad_sets_are_refused() {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(dir.path(), "sharded.toml", &scenario_text());
    let s = dosim::scenario::Scenario::from_file(&path).unwrap();
    check_the_plan(&s);
    let settings = LocalSettings::for_scenario(&s).unwrap();
    let mut shared = start(&settings);
    let mut alone = start(&settings);
    let scen = path.to_str().unwrap();
    let start_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 4.0;
    let start_at = format!("{start_at:.3}");
    let limit = Duration::from_secs(50);
    // The four shards against one workerd, and one process on another, all at once.
    let (shards, single): (Vec<Finished>, Finished) = std::thread::scope(|scope| {
        let (target, token) = (shared.target().to_string(), shared.token().to_string());
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (target, token, start_at) = (target.clone(), token.clone(), start_at.clone());
                let json = dir.path().join(format!("shard-{i}.json"));
                scope.spawn(move || {
                    let shard = format!("{i}/4");
                    let mut args = vec![
                        scen,
                        "--target",
                        &target,
                        "--stats-token",
                        &token,
                        "--shard",
                        &shard,
                        "--start-at",
                        &start_at,
                    ];
                    args.extend(WINDOW);
                    dosim_drive(&args, &json, limit)
                })
            })
            .collect();
        let (target, token) = (alone.target().to_string(), alone.token().to_string());
        let json = dir.path().join("single.json");
        let single = scope.spawn(move || {
            let mut args = vec![
                scen,
                "--target",
                &target,
                "--stats-token",
                &token,
                "--shard",
                "0/1",
            ];
            args.extend(WINDOW);
            dosim_drive(&args, &json, limit)
        });
        (
            handles.into_iter().map(|h| h.join().unwrap()).collect(),
            single.join().unwrap(),
        )
    });
    shared.stop();
    alone.stop();
    let drove = began.elapsed();
    for (i, f) in shards.iter().enumerate() {
        assert_eq!(f.code, Some(0), "shard {i}: {}\n{}", f.stderr, f.stdout);
    }
    assert_eq!(single.code, Some(0), "single: {}", single.stderr);
    let single = single.report.unwrap();
    crate::drive::assert_reconciled(&single, "single process");
    let shard_reports: Vec<Value> = shards.into_iter().map(|f| f.report.unwrap()).collect();
    let mut started = Vec::new();
    for (i, r) in shard_reports.iter().enumerate() {
        let rec = &r["drive"]["shard"];
        assert_eq!((n(&rec["index"]), n(&rec["count"])), (i as u64, 4), "{rec}");
        assert_eq!(rec["hlog"], format!("shard-{i}.hlog"));
        // A shard alone is not reconciled: the Worker's counters hold every shard's traffic.
        assert!(r["drive"].get("reconciliation").is_none());
        assert!(n(&r["drive"]["carried"]["planned"]) > 0, "shard {i}");
        assert!(n(&r["messages"]["sent"]) > 0, "shard {i}");
        started.push(r["drive"]["time"]["started_at_unix_ms"].as_f64().unwrap());
    }

    // The merge.
    let files = [
        "shard-2.json",
        "shard-0.json",
        "shard-3.json",
        "shard-1.json",
    ];
    let out = merge(
        dir.path(),
        &files,
        &[
            "--json",
            "merged.json",
            "--markdown",
            "merged.md",
            "--csv",
            "merged.csv",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let csv = std::fs::read_to_string(dir.path().join("merged.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains("per-room"), "{csv}");
    let md = std::fs::read_to_string(dir.path().join("merged.md")).unwrap();
    assert!(md.contains("per-room"), "{md}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("merged from 4 shards: 0/4 shard-0.json (complete)"),
        "{stdout}"
    );
    let merged: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("merged.json")).unwrap())
            .unwrap();
    let d = &merged["drive"];
    let from: Vec<&str> = d["merged_from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["shard"].as_str().unwrap())
        .collect();
    assert_eq!(from, ["0/4", "1/4", "2/4", "3/4"]);
    assert!(d.get("shard").is_none(), "{d}");
    assert_eq!(d["status"], "complete");
    assert!(merged["provenance"]["method"]
        .as_str()
        .unwrap()
        .contains("driven by 4 shard processes and merged"));
    // Reconciled once against the Worker's stats: every counter matches the shards' sum.
    crate::drive::assert_reconciled(&merged, "merged");
    let rec = &d["reconciliation"];
    assert!(
        rec["source"]
            .as_str()
            .unwrap()
            .contains("earliest read before"),
        "{rec}"
    );
    // Rooms 0 to 6 have sessions (room 7 none).
    assert_eq!(n(&rec["objects"]), 7, "{rec}");

    // The plan's counts, exactly: what one process counted, the four shards counted together.
    let same = |key: &[&str]| {
        let get = |r: &Value| key.iter().fold(r.clone(), |v, k| v[k].clone());
        let (a, b) = (get(&merged), get(&single));
        assert_eq!(a, b, "{}: merged {a}, single process {b}", key.join("."));
        a
    };
    for group in ["carried", "arrivals"] {
        let t = same(&["drive", group]);
        assert_eq!(t["planned"], t["admitted"], "{group}: {t}");
    }
    assert_eq!(n(&d["carried"]["planned"]) % 8, 0);
    for key in ["arrived", "admitted", "queued", "rejected", "abandoned"] {
        same(&["sessions", key]);
    }
    for key in [
        "sent",
        "accepted",
        "failed",
        "delivered",
        "missed",
        "duplicated",
    ] {
        same(&["messages", key]);
    }
    let deliveries = same(&["drive", "deliveries"]);
    // Every message reached the other 7 members of its full room.
    assert_eq!(
        n(&deliveries["expected"]),
        7 * n(&merged["messages"]["sent"]),
        "{deliveries}"
    );
    assert_eq!(deliveries["received"], deliveries["expected"]);
    same(&["drive", "projection"]);
    same(&["drive", "faults"]);
    for key in [
        "worker_requests",
        "do_websocket_connects",
        "do_websocket_messages_in",
        "do_websocket_messages_out",
        "do_requests",
    ] {
        same(&["usage", key]);
        same(&["monthly_usage", key]);
    }
    for key in [
        "connect",
        "admission_wait",
        "message",
        "message_from_send",
        "send_lag",
    ] {
        same(&["latency_ms", key, "count"]);
    }
    for key in [
        "arrival_lag",
        "upgrade",
        "carried_connect",
        "window_connect",
    ] {
        same(&["drive", "latency_ms", key, "count"]);
    }
    let checks = |r: &Value| -> Vec<(String, Value)> {
        r["drive"]["reconciliation"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_string(), c["driver"].clone()))
            .collect()
    };
    assert_eq!(checks(&merged), checks(&single));
    // The sum of the shards' own counts, too.
    let sum = |key: &[&str]| -> u64 {
        shard_reports
            .iter()
            .map(|r| n(&key.iter().fold(r.clone(), |v, k| v[k].clone())))
            .sum()
    };
    assert_eq!(sum(&["messages", "sent"]), n(&merged["messages"]["sent"]));
    assert_eq!(
        sum(&["drive", "driver", "peak_open_sockets"]),
        n(&d["driver"]["peak_open_sockets"])
    );
    // The shard processes' own memory, not the merge's.
    assert_eq!(
        sum(&["drive", "driver", "peak_rss_bytes"]),
        n(&d["driver"]["peak_rss_bytes"])
    );
    let earliest = started.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(
        d["time"]["started_at_unix_ms"].as_f64().unwrap(),
        earliest.round()
    );

    // The histograms: the merged log is the shards' logs added, value by value, and the
    // report's percentiles are those of that sum.
    let merged_log = read_log(&dir.path().join("merged.hlog"));
    let mut added: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for i in 0..4 {
        for (tag, h) in read_log(&dir.path().join(format!("shard-{i}.hlog"))) {
            match added.get_mut(&tag) {
                Some(sum) => sum.add(&h).unwrap(),
                None => {
                    added.insert(tag, h);
                }
            }
        }
    }
    assert_eq!(
        merged_log.keys().collect::<Vec<_>>(),
        added.keys().collect::<Vec<_>>()
    );
    for (tag, h) in &added {
        let m = &merged_log[tag];
        assert_eq!(values(m), values(h), "{tag}");
        assert_eq!(m.len(), h.len(), "{tag}");
    }
    let message = &merged_log["message"];
    assert_eq!(message.len(), n(&merged["messages"]["delivered"]));
    let lat = &merged["latency_ms"]["message"];
    assert_eq!(n(&lat["count"]), message.len());
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    for (q, key) in [(0.5, "p50"), (0.99, "p99")] {
        assert_eq!(
            lat[key].as_f64().unwrap(),
            ms(message.value_at_quantile(q)),
            "{key}: {lat}"
        );
    }
    assert_eq!(lat["max"].as_f64().unwrap(), ms(message.max()));
    // Each shard's log holds its own report's counts (the log is what the merge adds).
    for (i, r) in shard_reports.iter().enumerate() {
        let log = read_log(&dir.path().join(format!("shard-{i}.hlog")));
        assert_eq!(
            log["message"].len(),
            n(&r["latency_ms"]["message"]["count"]),
            "shard {i}"
        );
    }

    // One shard of one: the merge gives the process's own report back.
    let out = merge(
        dir.path(),
        &["single.json"],
        &["--json", "single-merged.json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let again: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("single-merged.json")).unwrap(),
    )
    .unwrap();
    for key in [
        "sessions",
        "messages",
        "usage",
        "monthly_usage",
        "latency_ms",
        "bill",
    ] {
        assert_eq!(again[key], single[key], "{key}");
    }
    assert_eq!(again["drive"]["deliveries"], single["drive"]["deliveries"]);
    assert_eq!(checks(&again), checks(&single));

    // Every key of the merged and the shards' drive blocks is documented.
    let doc = std::fs::read_to_string(repo().join("sim/REPORT.md")).unwrap();
    for r in [&merged, &shard_reports[0]] {
        for key in r["drive"].as_object().unwrap().keys() {
            assert!(
                doc.contains(&format!("`{key}`")),
                "{key} is not in sim/REPORT.md"
            );
        }
    }

    refusals(dir.path(), &files);
    eprintln!(
        "4 shards and one process driven in {:.1} s; whole test {:.1} s",
        drove.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
}

/// A missing, duplicated or foreign shard, and files that are not shards' reports, are
/// refused with exit code 2, the file named, nothing written.
fn refusals(dir: &Path, files: &[&str]) {
    let refused = |args: &[&str], want: &[&str]| {
        let out = merge(dir, args, &["--json", "refused.json"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for w in want {
            assert!(err.contains(w), "{args:?}: no {w:?} in {err}");
        }
        assert!(!err.contains("Usage:"), "{err}");
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    };
    // Missing.
    refused(
        &files[..3],
        &["shard 1 of 4 is missing", "shard-2.json (2/4)"],
    );
    refused(
        &["shard-0.json", "shard-3.json"],
        &["shards 1, 2 of 4 are missing"],
    );
    // Duplicated: the same shard under another name.
    std::fs::copy(dir.join("shard-1.json"), dir.join("again-1.json")).unwrap();
    let mut twice = files.to_vec();
    twice.push("again-1.json");
    refused(
        &twice,
        &["shard 1/4 is given twice", "again-1.json", "shard-1.json"],
    );
    // Foreign: shard 2 of the same scenario with another seed (its record consistent, its
    // digest recomputed).
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("shard-2.json")).unwrap()).unwrap();
    let rec = &mut doc["drive"]["shard"];
    rec["seed"] = 55.into();
    rec["scenario"]["seed"] = 55.into();
    let s: dosim::scenario::Scenario = serde_json::from_value(rec["scenario"].clone()).unwrap();
    rec["scenario_digest"] = dosim::drive::shard::canonical(&s).1.into();
    std::fs::write(dir.join("foreign-2.json"), doc.to_string()).unwrap();
    refused(
        &[
            "shard-0.json",
            "shard-1.json",
            "foreign-2.json",
            "shard-3.json",
        ],
        &["foreign-2.json: seed 55, where shard-0.json has 54"],
    );
    // An edited record whose scenario no longer matches its digest.
    doc["drive"]["shard"]["scenario"]["seed"] = 56.into();
    std::fs::write(dir.join("edited-2.json"), doc.to_string()).unwrap();
    refused(
        &[
            "shard-0.json",
            "shard-1.json",
            "edited-2.json",
            "shard-3.json",
        ],
        &["edited-2.json", "does not match"],
    );
    // Not a shard's report: a scenario, a merged report, a file that is not there, a shard
    // whose log is gone.
    refused(
        &["sharded.toml"],
        &["sharded.toml: not a shard's report", "not a JSON document"],
    );
    refused(
        &["merged.json"],
        &["merged.json", "a merged report already"],
    );
    refused(&["no-such.json"], &["no-such.json: cannot be read"]);
    let moved: PathBuf = dir.join("elsewhere");
    std::fs::create_dir(&moved).unwrap();
    std::fs::copy(dir.join("shard-3.json"), moved.join("shard-3.json")).unwrap();
    refused(
        &[
            "shard-0.json",
            "shard-1.json",
            "shard-2.json",
            "elsewhere/shard-3.json",
        ],
        &["elsewhere/shard-3.json: its histogram log", "shard-3.hlog"],
    );
    assert!(!dir.join("refused.json").exists());
    assert!(!dir.join("refused.hlog").exists());
}
