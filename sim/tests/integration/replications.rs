use std::path::Path;
use std::process::{Command, Output};

use dosim::interval::Interval;
use dosim::model::strategy::Strategy;
use dosim::pricing::PriceTable;
use dosim::replicate::{self, Plan, Precision, HEADLINE};
use dosim::scenario::Scenario;
use dosim::threshold::{Threshold, Verdict};

use crate::util::scenario;

/// A small scenario (6 simulated hours, about 1,000 sessions, rooms that fill up so some
/// sessions are rejected): fast enough to replicate many times.
const SMALL: &str = r#"
name = "small"
seed = 3
[window]
length = "6h"
[arrivals]
sessions_per_day = 4000
[limits]
max_connections_per_room = 8
"#;

fn table() -> PriceTable {
    PriceTable::builtin(PriceTable::DEFAULT).unwrap()
}

fn plan(replications: usize, jobs: usize) -> Plan {
    Plan {
        replications,
        precision: None,
        jobs,
    }
}

#[test]
fn one_replication_is_the_plain_run_byte_for_byte() {
    let s = scenario(SMALL);
    for strategy in [Strategy::Single, Strategy::PerRoom] {
        let plain = dosim::des::simulate_report(&s, strategy, &table(), &[]).unwrap();
        let one = replicate::simulate_report(&s, strategy, &table(), &[], &plan(1, 2)).unwrap();
        assert_eq!(one.to_json(), plain.to_json());
        assert!(!one.to_json().contains("\"replications\""));
    }
    // And on the command line, every output (text, JSON, CSV, Markdown) as without the option.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.toml");
    std::fs::write(&path, SMALL).unwrap();
    let run = |extra: &[&str], tag: &str| {
        let mut args = vec!["compare", path.to_str().unwrap()];
        let files: Vec<String> = ["json", "csv", "md"]
            .iter()
            .map(|e| dir.path().join(format!("{tag}.{e}")).display().to_string())
            .collect();
        args.extend([
            "--json",
            &files[0],
            "--csv",
            &files[1],
            "--markdown",
            &files[2],
        ]);
        args.extend(extra);
        let out = dosim(dir.path(), &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let mut all = out.stdout;
        for f in &files {
            all.extend(std::fs::read(f).unwrap());
        }
        all
    };
    assert_eq!(run(&[], "plain"), run(&["--replications", "1"], "one"));
}

#[test]
fn replications_are_the_same_bytes_on_any_number_of_threads() {
    let s = scenario(SMALL);
    let strategies = [Strategy::Single, Strategy::Sharded(2)];
    let json = |jobs| {
        let reports = replicate::compare(&s, &strategies, &table(), &[], &plan(4, jobs)).unwrap();
        serde_json::to_string(&reports).unwrap()
    };
    let one = json(1);
    assert_eq!(json(2), one);
    assert_eq!(json(3), one);
    assert_eq!(json(2), one, "a second run differs");
    // Replication i is the plain run under its own seed; the report around the block is
    // replication 0's.
    let reports = replicate::compare(&s, &strategies, &table(), &[], &plan(4, 2)).unwrap();
    for (r, &strategy) in reports.iter().zip(&strategies) {
        let b = r.replications.as_ref().unwrap();
        assert_eq!(b.count, 4);
        assert_eq!(b.seeds[0], s.seed);
        assert_eq!(r.seed, s.seed);
        for (i, &seed) in b.seeds.iter().enumerate() {
            let mut si = s.clone();
            si.seed = seed;
            let plain = dosim::des::simulate_report(&si, strategy, &table(), &[]).unwrap();
            for m in HEADLINE {
                assert_eq!(
                    b.figures[m].values[i],
                    plain.metric(m, &si.limits),
                    "{strategy} replication {i} {m}"
                );
            }
        }
        // The replications differ (independent seeds), so the intervals have a width.
        let p99 = &b.figures["message.p99"];
        assert!(p99.interval.half_width_95.unwrap() > 0.0, "{p99:?}");
        let values: Vec<f64> = p99.values.iter().map(|v| v.unwrap()).collect();
        assert_eq!(p99.interval, Interval::of(&values));
    }
}

/// One object serving a Poisson stream of 100 messages/s with exponential 5 ms service: an
/// M/M/1 queue at ρ = 0.5, whose mean wait in queue is ρ/(μ − λ) = 5 ms (see
/// `queueing.rs`, which checks the same system against theory by other means).
fn mm1(seed: u64) -> Scenario {
    scenario(&format!(
        r#"
name = "mm1"
seed = {seed}
[window]
length = "10m"
[arrivals]
rate_per_second = 10.0
[sessions]
length = {{ dist = "constant", value = "10d" }}
message_interval = {{ dist = "exponential", mean = "1s" }}
[rooms]
count = 100
choice = "fill"
[limits]
max_connections_per_room = 1
max_total_connections = 100
[platform]
strategy = "single"
worker_cpu_ms_per_connect = 0.0
[platform.service]
connect = {{ dist = "constant", value = "0ns" }}
close = {{ dist = "constant", value = "0ns" }}
message = {{ dist = "exponential", mean = "5ms" }}
per_recipient = "0ns"
[platform.overload]
[network]
client_edge = {{ dist = "constant", value = "0ns" }}
edge_object = {{ dist = "lognormal", median = "10ms", sigma = 0.5 }}
object_object = {{ dist = "constant", value = "0ns" }}
"#
    ))
}

#[test]
fn the_95_percent_interval_covers_the_mm1_mean_wait_about_95_percent_of_the_time() {
    // A threshold's metric is one of the replicated figures (and is checked on the mean).
    let check: Threshold = "object_queue.mean < 1000".parse().unwrap();
    let theory_ms = 0.5 / (200.0 - 100.0) * 1e3;
    let sets = 20;
    let mut covered = 0;
    let mut relative = Vec::new();
    for base in 1..=sets {
        let s = mm1(base);
        let r = replicate::simulate_report(
            &s,
            Strategy::Single,
            &table(),
            std::slice::from_ref(&check),
            &plan(5, 2),
        )
        .unwrap();
        let b = r.replications.unwrap();
        assert_eq!(r.usage.peak_connections, 100);
        let i = &b.figures["object_queue.mean"].interval;
        let (low, high) = (i.low.unwrap(), i.high.unwrap());
        eprintln!("set {base}: {low:.3} .. {high:.3} ms (theory {theory_ms} ms)");
        covered += usize::from(low <= theory_ms && theory_ms <= high);
        relative.push(i.relative_half_width.unwrap());
        assert_eq!(r.thresholds[0].value, i.mean);
    }
    // 95% coverage: 19 of 20 expected; 16 or more with probability 0.984 (binomial). Too
    // narrow an interval (a normal quantile, a missing √n) would cover far less often.
    assert!(
        covered >= 16,
        "{covered} of {sets} intervals covered {theory_ms} ms"
    );
    // And the intervals say something: a few percent wide, not the whole axis.
    let mean_relative = relative.iter().sum::<f64>() / relative.len() as f64;
    assert!(mean_relative < 0.05, "relative half-widths {relative:?}");
}

#[test]
fn precision_stops_at_the_first_count_that_meets_it_and_respects_the_cap() {
    let s = scenario(SMALL);
    let precise = |target: f64, max: usize, jobs: usize| {
        let plan = Plan {
            replications: 3,
            precision: Some(Precision {
                target,
                on: vec!["message.p99".into(), "rejection_rate".into()],
                max,
            }),
            jobs,
        };
        replicate::simulate_report(&s, Strategy::PerRoom, &table(), &[], &plan).unwrap()
    };
    // A target met after some replications, not at once: the count is the first n ≥ 3 at
    // which both figures' relative half-width is within it.
    let r = precise(0.2, 40, 2);
    let b = r.replications.as_ref().unwrap();
    let p = b.precision.as_ref().unwrap();
    assert!(p.met, "not met with {} replications", b.count);
    let within = |n: usize| {
        ["message.p99", "rejection_rate"].iter().all(|m| {
            let v: Vec<f64> = b.figures[*m].values[..n]
                .iter()
                .flatten()
                .copied()
                .collect();
            Interval::of(&v).relative_half_width.unwrap() <= 0.2
        })
    };
    assert!(b.count > 3, "met at once: choose a tighter target");
    assert!(within(b.count));
    assert!((3..b.count).all(|n| !within(n)), "met before {}", b.count);
    assert_eq!(b.seeds.len(), b.count);
    // The same count and bytes whatever the thread count (batches of 1, 2 or 5 replications).
    for jobs in [1, 5] {
        assert_eq!(
            precise(0.2, 40, jobs).to_json(),
            r.to_json(),
            "{jobs} threads"
        );
    }
    // A target out of reach stops at the cap and says it was not met.
    let r = precise(1e-6, 6, 2);
    let b = r.replications.unwrap();
    assert_eq!(b.count, 6);
    assert!(!b.precision.unwrap().met);
}

#[test]
fn thresholds_of_a_replicated_run_are_checked_on_the_means() {
    let s = scenario(SMALL);
    let replicated =
        replicate::simulate_report(&s, Strategy::Single, &table(), &[], &plan(4, 2)).unwrap();
    let b = replicated.replications.unwrap();
    let first = b.figures["message.p99"].values[0].unwrap();
    let mean = b.figures["message.p99"].interval.mean.unwrap();
    assert_ne!(first, mean);
    // A bound between replication 0's value and the mean: the verdicts differ.
    let bound = (first + mean) / 2.0;
    let check: Threshold = format!("message.p99 < {bound}").parse().unwrap();
    let checks = std::slice::from_ref(&check);
    let plain = dosim::des::simulate_report(&s, Strategy::Single, &table(), checks).unwrap();
    let r =
        replicate::simulate_report(&s, Strategy::Single, &table(), checks, &plan(4, 2)).unwrap();
    let (p, t) = (&plain.thresholds[0], &r.thresholds[0]);
    assert_eq!(p.value, Some(first));
    assert_eq!(t.value, Some(mean));
    assert_ne!(p.verdict, t.verdict);
    assert_eq!(t.verdict == Verdict::Pass, mean < bound);
    assert!(r
        .render_text()
        .contains("Thresholds (on the means over 4 replications):"));
}

fn dosim(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dosim"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_command_line_shows_the_intervals_in_json_csv_markdown_text_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.toml");
    std::fs::write(&path, SMALL).unwrap();
    let p = path.to_str().unwrap();

    // simulate --json: the documented block.
    let out = dosim(
        dir.path(),
        &["simulate", p, "--replications", "3", "--json", "r.json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Over 3 replications (seeds 3, "),
        "{stdout}"
    );
    assert!(stdout.contains("message.p99 (ms)"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    let b = &report["replications"];
    assert_eq!(b["count"], 3);
    assert_eq!(b["confidence"], 0.95);
    assert_eq!(b["seeds"][0], 3);
    assert_eq!(b["seeds"].as_array().unwrap().len(), 3);
    assert!(b["method"].as_str().unwrap().contains("Student-t"));
    for m in HEADLINE {
        let f = &b["figures"][m];
        for key in [
            "n",
            "mean",
            "stddev",
            "half_width_95",
            "relative_half_width",
            "low",
            "high",
        ] {
            assert!(f.get(key).is_some(), "{m}: no {key} in {f}");
        }
        assert_eq!(f["values"].as_array().unwrap().len(), 3, "{m}");
    }
    let f = &b["figures"]["message.p99"];
    let (low, mean, high) = (
        f["low"].as_f64().unwrap(),
        f["mean"].as_f64().unwrap(),
        f["high"].as_f64().unwrap(),
    );
    assert!(low < mean && mean < high, "{f}");

    // compare --csv and --markdown: the interval columns and `mean ± half-width` cells.
    let out = dosim(
        dir.path(),
        &[
            "compare",
            p,
            "--strategies",
            "single,per-room",
            "--replications",
            "3",
            "--csv",
            "c.csv",
            "--markdown",
            "c.md",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("over the replications (mean ± 95% half-width)"));
    let csv = std::fs::read_to_string(dir.path().join("c.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    for line in csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        assert_eq!(cells[col("replications")], "3");
        for stem in ["monthly_total_usd", "message_p99_ms", "rejection_rate"] {
            let v =
                |suffix: &str| -> f64 { cells[col(&format!("{stem}{suffix}"))].parse().unwrap() };
            assert!(
                v("_ci95_low") <= v("_mean") && v("_mean") <= v("_ci95_high"),
                "{stem}: {line}"
            );
        }
    }
    let md = std::fs::read_to_string(dir.path().join("c.md")).unwrap();
    assert!(md.contains("## Over the replications"), "{md}");
    let row = md
        .lines()
        .find(|l| l.starts_with("| `message.p99` (ms) |"))
        .unwrap_or_else(|| panic!("{md}"));
    assert_eq!(row.matches(" ± ").count(), 2, "{row}");

    // sweep: the CSV columns, the JSON block per point, bands and bars in the SVG.
    let out = dosim(
        dir.path(),
        &[
            "sweep",
            p,
            "--sessions-per-day",
            "2000,4000",
            "--strategies",
            "single,per-room",
            "--replications",
            "3",
            "--csv",
            "s.csv",
            "--json",
            "s.json",
            "--svg",
            "s.svg",
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(" ± "));
    let csv = std::fs::read_to_string(dir.path().join("s.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .ends_with(",abandon_rate_mean,abandon_rate_ci95_low,abandon_rate_ci95_high"));
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).unwrap()).unwrap();
    for point in sweep["points"].as_array().unwrap() {
        assert_eq!(point["replications"]["count"], 3);
        assert!(point["replications"]["figures"]["monthly_cost_usd"]["high"].is_number());
    }
    let svg = std::fs::read_to_string(dir.path().join("s.svg")).unwrap();
    assert_eq!(svg.matches("<polygon").count(), 2, "one band per strategy");
    assert!(svg.contains("95% CI over 3"), "{svg}");
}

#[test]
fn impossible_replication_options_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.toml");
    std::fs::write(&path, SMALL).unwrap();
    let p = path.to_str().unwrap();
    for (args, needle) in [
        (vec!["--replications", "0"], "--replications"),
        (vec!["--precision", "2"], "--precision"),
        (
            vec!["--precision", "0.1", "--replications", "2"],
            "at least 3",
        ),
        (
            vec!["--precision", "0.1", "--precision-on", "mesage.p99"],
            "mesage.p99",
        ),
        (vec!["--jobs", "0"], "--jobs"),
    ] {
        let mut all = vec!["simulate", p];
        all.extend(&args);
        let out = dosim(dir.path(), &all);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
