//! `dosim sweep --drive --local`: every point under every strategy driven on a fresh local
//! workerd (127.0.0.1), its measured figures beside the calibrated simulation's mean and
//! interval in every output; refusals (no `--local`, over the time budget, a point the local
//! Worker cannot take) exit 2 before anything is simulated.

use std::time::Instant;

use serde_json::Value;

use crate::util::{dosim, dosim_in, repo};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A calibration near what workerd spends on this machine (validate-small's own figures).
const CAL: &str = "[calibration]\nformat = 1\nkind = \"cpu\"\nlabel = \"a test calibration\"\n\n[platform]\nworker_cpu_ms_per_connect = 0.12\n\n[platform.service]\nconnect = { dist = \"constant\", value = \"600us\" }\nmessage = { dist = \"constant\", value = \"50us\" }\nper_recipient = \"37us\"\n";

/// The SVG's polygons with 10 corners: the measured points' stars.
fn stars(svg: &str) -> usize {
    svg.split("<polygon")
        .skip(1)
        .filter(|e| {
            let points = e
                .split("points=\"")
                .nth(1)
                .and_then(|p| p.split('"').next());
            points.is_some_and(|p| p.split_whitespace().count() == 10)
        })
        .count()
}

#[test]
fn a_small_driven_sweep_puts_measured_figures_beside_the_calibrated_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("cal.toml"), CAL).unwrap();
    let scenario = repo().join("scenarios/validate-small.toml");
    let workers = repo().join("workers");
    let started = Instant::now();
    // 2 loads × 2 strategies, 3 s windows at ×5: 4 drives of about 5 s each.
    let out = dosim_in(
        d,
        &[
            "sweep",
            scenario.to_str().unwrap(),
            "--sessions-per-day",
            "8640,17280",
            "--strategies",
            "single,per-room",
            "--calibration",
            "cal.toml",
            "--drive",
            "--local",
            "--workers",
            workers.to_str().unwrap(),
            "--drive-duration",
            "3s",
            "--speedup",
            "5",
            "--replications",
            "3",
            "--quiet",
            "--json",
            "s.json",
            "--csv",
            "s.csv",
            "--svg",
            "s.svg",
            "--markdown",
            "s.md",
        ],
    );
    let took = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();

    // JSON: a `drive` block saying how, and a `measured` block at every point.
    let json: Value = serde_json::from_str(&std::fs::read_to_string(d.join("s.json")).unwrap())
        .expect("the sweep's JSON");
    let drive = &json["drive"];
    assert_eq!(drive["drives"], 4, "{drive}");
    assert_eq!(drive["duration_seconds"], 3.0);
    assert_eq!(drive["speedup"], 5.0);
    assert!(drive["estimate_seconds"].as_f64().unwrap() > 0.0);
    let elapsed = drive["elapsed_seconds"].as_f64().unwrap();
    assert!(
        elapsed > 4.0 * 3.0 && elapsed < took,
        "{elapsed} of {took} s"
    );
    let method = drive["method"].as_str().unwrap();
    assert!(
        method.contains("3 s of real time from the busiest hour") && method.contains("one thread"),
        "{method}"
    );
    let simulated = drive["simulated"].as_str().unwrap();
    assert!(simulated.contains("calibrated from"), "{simulated}");
    assert!(simulated.contains("cal.toml"), "{simulated}");
    let points = json["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    for p in points {
        let m = &p["measured"];
        assert_eq!(m["status"], "complete", "{p}");
        assert!(m["monthly_total_usd"].as_f64().unwrap() > 0.0, "{p}");
        assert!(m["message_p99_ms"].as_f64().unwrap() > 0.0, "{p}");
        assert_eq!(m["duration_seconds"], 3.0);
        assert!(m["from"].as_str().unwrap().starts_with("day "), "{p}");
        // The simulated side of the same point: a mean with a 95% interval.
        let bill = &p["replications"]["figures"]["monthly_cost_usd"];
        assert!(bill["mean"].as_f64().unwrap() > 0.0, "{p}");
        assert!(bill["high"].is_number(), "{p}");
    }

    // Text: the header says how each side was obtained; a row per point with both.
    assert!(
        text.contains("Measured figures: each point's scaled scenario"),
        "{text}"
    );
    assert!(
        text.contains("Simulated figures: discrete-event simulation"),
        "{text}"
    );
    let table = text
        .split("Measured on a local workerd (3 s window at the busiest hour, ×5 speed-up")
        .nth(1)
        .unwrap_or_else(|| panic!("no measured table:\n{text}"));
    let rows: Vec<&str> = table.lines().filter(|l| l.ends_with("complete")).collect();
    assert_eq!(rows.len(), 4, "{table}");
    for r in &rows {
        // Measured bill, then the simulated mean [low, high]; the same for p99 and rejections.
        assert_eq!(r.matches('$').count(), 4, "{r}");
        assert_eq!(r.matches(" ms").count(), 4, "{r}");
        assert_eq!(r.matches('%').count(), 4, "{r}");
    }

    // CSV: the measured columns, filled at every point.
    let csv = std::fs::read_to_string(d.join("s.csv")).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let (bill, p99, rej, status) = (
        col("measured_monthly_total_usd"),
        col("measured_message_p99_ms"),
        col("measured_rejection_rate"),
        col("measured_status"),
    );
    assert!(head.contains(&"monthly_total_usd_ci95_low"), "{csv}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    for r in &rows {
        assert!(r[bill].parse::<f64>().unwrap() > 0.0, "{csv}");
        assert!(r[p99].parse::<f64>().unwrap() > 0.0, "{csv}");
        assert_eq!(r[status], "complete", "{csv}");
        if !r[rej].is_empty() {
            assert!(
                (0.0..=1.0).contains(&r[rej].parse::<f64>().unwrap()),
                "{csv}"
            );
        }
    }

    // Charts: the measured series as stars (one per point), with its legend entry, beside
    // the simulated lines and their bands.
    let svg = std::fs::read_to_string(d.join("s.svg")).unwrap();
    assert!(svg.contains("measured (local workerd)"), "{svg}");
    // A star per point, and the legend's.
    assert_eq!(stars(&svg), 4 + 1, "{svg}");
    for chart in ["cost", "p99", "refused"] {
        let svg = std::fs::read_to_string(d.join(format!("s-{chart}.svg"))).unwrap();
        assert!(svg.contains("measured (local workerd)"), "{chart}");
        assert!(svg.contains("Stars: measured on a local"), "{chart}");
        // At least one star and the legend's (the refused chart has a star only where
        // sessions arrived in the window).
        assert!(stars(&svg) >= 2, "{chart}: {svg}");
        assert!(svg.contains("opacity=\"0.15\""), "{chart}: no band");
    }
    // Markdown: how both sides were obtained, and the measured columns.
    let md = std::fs::read_to_string(d.join("s.md")).unwrap();
    for needle in [
        "Measured beside the simulation by `dosim sweep --drive --local`",
        "window of 3 s of real time at the busiest hour (×5 speed-up)",
        "calibrated from",
        "measured USD/month | measured message p99 | measured rejected",
    ] {
        assert!(md.contains(needle), "{needle} missing:\n{md}");
    }
    eprintln!("sweep --drive: 4 drives, {took:.1} s in all");
}

#[test]
fn drive_without_local_or_over_the_budget_or_unservable_exits_2_before_simulating() {
    let base = [
        "sweep",
        "scenarios/validate-small.toml",
        "--sessions-per-day",
        "8640,17280",
        "--quiet",
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let started = Instant::now();
        let out = dosim(&args);
        (out, started.elapsed().as_secs_f64())
    };
    let (out, _) = run(&["--drive"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sweep --drive needs --local"),
        "{}",
        stderr(&out)
    );
    // Drive options without --drive are refused, not ignored.
    let (out, _) = run(&["--drive-duration", "5s"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // 2 points × 3 strategies × (20 s + 2 s ramp + 3 s): 150 s, over a 60 s budget.
    let (out, secs) = run(&["--drive", "--local", "--drive-budget", "60s"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("6 drives (2 points × 3 strategies) need about 150 s")
            && err.contains("--drive-budget 60 s")
            && err.contains("a shorter --drive-duration"),
        "{err}"
    );
    // Refused before anything was simulated or driven: no table.
    assert!(out.stdout.is_empty() && secs < 10.0, "{secs} s");
    // A point whose messages the local Worker cannot take, named with the key.
    let (out, _) = run(&[
        "--drive",
        "--local",
        "--set",
        "sessions.message_bytes=2000000",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--drive at 8,640 sessions/day") && err.contains("message_bytes"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
