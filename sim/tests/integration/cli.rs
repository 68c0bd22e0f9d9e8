use crate::util::dosim;

#[test]
fn a_broken_scenario_exits_2_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, "name = \"x\"\n[arrivals]\nsesions_per_day = 10\n").unwrap();
    let out = dosim(&["simulate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("typo.toml:3:1"), "{err}");
    assert!(err.contains("arrivals.sesions_per_day"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_missing_file_is_reported_not_panicked() {
    let out = dosim(&["simulate", "no/such/file.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/file.toml"), "{err}");
}

#[test]
fn a_failed_threshold_exits_99_and_still_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = dosim(&[
        "simulate",
        "scenarios/seed-phase0.toml",
        "--threshold",
        "message.p50 < 0.001",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(99));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let failed: Vec<_> = report["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["pass"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["check"], "message.p50 < 0.001");
}

/// A small scenario without global limits: `connection_limit_share` has no value in it.
const NO_LIMITS: &str = r#"
name = "no-limits"
[window]
length = "2h"
[arrivals]
sessions_per_day = 2000
"#;

#[test]
fn a_threshold_without_data_is_not_a_failure_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, NO_LIMITS).unwrap();
    let json = dir.path().join("r.json");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "simulate",
            path.to_str().unwrap(),
            "--threshold",
            "connection_limit_share < 0.5",
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend(extra);
        let out = dosim(&args);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let t = report["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["check"] == "connection_limit_share < 0.5")
            .unwrap()
            .clone();
        (out, t)
    };
    let (out, t) = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(t["verdict"], "no_data", "{t}");
    assert_eq!(t["pass"], true, "{t}");
    assert!(t["value"].is_null(), "{t}");
    assert!(
        text.contains("no data  connection_limit_share < 0.5"),
        "{text}"
    );
    // --no-data fail makes it a failure (exit 99), as does the scenario's own key.
    let (out, t) = run(&["--no-data", "fail"]);
    assert_eq!(out.status.code(), Some(99));
    assert_eq!(
        (&t["verdict"], &t["pass"]),
        (&"no_data".into(), &false.into())
    );
    std::fs::write(
        &path,
        format!("{NO_LIMITS}[thresholds]\nno_data = \"fail\"\n"),
    )
    .unwrap();
    let (out, _) = run(&[]);
    assert_eq!(out.status.code(), Some(99));
    let (out, _) = run(&["--no-data", "pass"]);
    assert_eq!(out.status.code(), Some(0));
    // A real failure still fails, and the comparison table names it.
    std::fs::write(&path, NO_LIMITS).unwrap();
    let out = dosim(&[
        "compare",
        path.to_str().unwrap(),
        "--strategies",
        "single,per-room",
        "--threshold",
        "message.p50 < 0.001",
        "--threshold",
        "connection_limit_share < 0.5",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(99), "{text}");
    for s in ["single", "per-room"] {
        assert!(
            text.contains(&format!("FAIL     {s}: message.p50 < 0.001")),
            "{text}"
        );
        assert!(
            text.contains(&format!("no data  {s}: connection_limit_share < 0.5")),
            "{text}"
        );
    }
    let bad = dosim(&["simulate", path.to_str().unwrap(), "--no-data", "maybe"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn drive_without_a_target_says_to_give_one() {
    let out = dosim(&["drive", "scenarios/seed-phase0.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--target") && err.contains("--local"), "{err}");
}

#[test]
fn a_bad_threshold_or_strategy_exits_2() {
    let out = dosim(&[
        "simulate",
        "scenarios/seed-phase0.toml",
        "--threshold",
        "nonsense",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = dosim(&[
        "simulate",
        "scenarios/seed-phase0.toml",
        "--strategy",
        "two",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_report_has_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = dosim(&[
        "simulate",
        "scenarios/seed-phase0.toml",
        "--strategy",
        "per-room",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "mode",
        "scenario",
        "strategy",
        "seed",
        "pricing",
        "window_seconds",
    ] {
        assert!(!r[key].is_null(), "missing {key}");
    }
    assert_eq!(r["mode"], "simulate");
    assert_eq!(r["strategy"], "per-room");
    for key in [
        "arrived",
        "admitted",
        "queued",
        "admitted_from_queue",
        "abandoned",
        "rejected",
    ] {
        assert!(r["sessions"][key].is_u64(), "sessions.{key}");
    }
    for lat in ["connect", "admission_wait", "message", "object_queue"] {
        for stat in ["count", "mean", "p50", "p90", "p99", "p999", "max"] {
            assert!(
                r["latency_ms"][lat][stat].is_number(),
                "latency_ms.{lat}.{stat}"
            );
        }
    }
    for block in ["usage", "monthly_usage"] {
        for key in [
            "worker_requests",
            "worker_cpu_ms",
            "do_requests",
            "do_websocket_connects",
            "do_websocket_messages_in",
            "do_websocket_messages_out",
            "do_active_seconds",
            "sqlite_rows_read",
            "sqlite_rows_written",
            "sqlite_stored_gb_months",
            "objects_created",
            "peak_connections",
            "peak_active_objects",
            "peak_queue_length",
            "overload_errors",
        ] {
            assert!(r[block][key].is_number(), "{block}.{key}");
        }
    }
    assert!(r["monthly_usage"]["method"].is_string());
    assert!(r["bill"]["line_items"].as_array().unwrap().len() >= 5);
    assert!(!r["bill"]["total_usd"].is_null());
    assert!(r["thresholds"].as_array().unwrap().len() >= 3);
    assert_eq!(
        r["timeseries"]["connections"].as_array().unwrap().len(),
        30 * 24,
        "hourly series over 30 days"
    );
    // Per-room with global limits runs a lobby: its RPCs are DO requests.
    assert!(r["usage"]["do_requests"].as_f64().unwrap() > 0.0);
}

#[test]
fn cost_prices_a_usage_file_and_rejects_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let usage = dir.path().join("usage.toml");
    std::fs::write(
        &usage,
        "worker_requests = 1_500_000\ndo_websocket_connects = 1_500_000\n",
    )
    .unwrap();
    let json = dir.path().join("bill.json");
    let out = dosim(&[
        "cost",
        usage.to_str().unwrap(),
        "--pricing",
        "seed-2024-12",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bill: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(bill["pricing"], "seed-2024-12");
    // 1.5M requests at $0.50/M plus 1.5M DO requests at $0.50/M.
    let total: f64 = bill["total_usd"].as_str().map_or_else(
        || bill["total_usd"].as_f64().unwrap(),
        |s| s.parse().unwrap(),
    );
    assert!((total - 1.50).abs() < 1e-9, "{total}");

    std::fs::write(&usage, "worker_requests = 1\nwroker_cpu_ms = 2\n").unwrap();
    let out = dosim(&["cost", usage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":2:1") && err.contains("wroker_cpu_ms"),
        "{err}"
    );

    let out = dosim(&["cost", usage.to_str().unwrap(), "--pricing", "nope"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn pricing_lists_every_table_with_its_source() {
    let out = dosim(&["pricing"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in dosim::pricing::PriceTable::names() {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(text.contains("source: https://"), "{text}");
}

#[test]
fn sweep_writes_a_cost_curve_as_csv_svg_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, svg, json) = (
        dir.path().join("c.csv"),
        dir.path().join("c.svg"),
        dir.path().join("c.json"),
    );
    let out = dosim(&[
        "sweep",
        "scenarios/seed-phase0.toml",
        "--sessions-per-day",
        "250,1000",
        "--strategies",
        "single,per-room",
        "--hibernation",
        "false",
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(csv).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 2, "{csv}");
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("per-room"), "{svg}");
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let points = sweep["points"].as_array().unwrap();
    let cost = |load: f64, strategy: &str| {
        points
            .iter()
            .find(|p| p["sessions_per_day"] == load && p["strategy"] == strategy)
            .unwrap()["monthly_total_usd"]
            .as_f64()
            .unwrap()
    };
    // With accept() sockets one object per room is billed while anyone is in it: four times
    // the load (and rooms) cannot cost less.
    assert!(cost(1000.0, "per-room") >= cost(250.0, "per-room"));
    assert!(cost(1000.0, "per-room") > cost(1000.0, "single"));
    assert!(sweep["method"].as_str().unwrap().contains("rooms scaled"));

    let out = dosim(&[
        "sweep",
        "scenarios/seed-phase0.toml",
        "--sessions-per-day",
        "-5",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// Issue 6: inputs that passed validation and then exhausted memory or ran for minutes now
/// stop at once with exit 2, naming the key, whatever command builds the run.
#[test]
fn inputs_that_would_exhaust_the_machine_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let head = "name = \"x\"\n[arrivals]\nsessions_per_day = 500\n";
    let cases = [
        (
            format!("{head}[rooms]\ncount = 4294967295\n"),
            "rooms.count",
        ),
        (
            format!("{head}[window]\ntimeseries_interval = \"1ns\"\n"),
            "window.timeseries_interval",
        ),
        (
            "name = \"x\"\n[arrivals]\nrate_per_second = 1e300\n".to_string(),
            "arrivals.rate_per_second",
        ),
        (
            "name = \"x\"\n[arrivals]\nrate_per_second = 4294967296\n".to_string(),
            "arrivals.rate_per_second",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("big{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        for args in [
            vec!["simulate", path],
            vec!["compare", path],
            vec!["sweep", path, "--sessions-per-day", "500"],
            // Refused before any connection is tried (nothing listens on port 9).
            vec!["drive", path, "--target", "ws://127.0.0.1:9"],
        ] {
            let out = dosim(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(&format!("key `{key}`")), "{args:?}: {err}");
            assert!(err.contains("limit"), "{args:?}: {err}");
        }
    }
    let out = dosim(&[
        "sweep",
        "scenarios/seed-phase0.toml",
        "--sessions-per-day",
        "500,1e308",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("key `rooms.count`") && err.contains("--sessions-per-day 1.0e308"),
        "{err}"
    );
}

#[test]
fn file_errors_name_the_file_and_say_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("latin1.toml");
    std::fs::write(&bad, b"name = \"caf\xe9\"\n").unwrap();
    let out = dosim(&["simulate", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("latin1.toml:1:12") && err.contains("not valid UTF-8"),
        "{err}"
    );

    let empty = dir.path().join("empty-value.toml");
    std::fs::write(&empty, "name = \"x\"\nseed = ").unwrap();
    let out = dosim(&["simulate", empty.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("empty-value.toml:2:8: key `seed`: missing value after `=`"),
        "{err}"
    );

    for args in [vec!["simulate", "nope.toml"], vec!["cost", "nope.toml"]] {
        let out = dosim(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    }
}

/// Issue 8: a read batch too long to see closes and timeouts on time is refused before any
/// connection is tried (nothing listens on port 9).
#[test]
fn a_read_batch_past_its_limit_exits_2_naming_the_option() {
    for (batch, refused) in [("50ms", true), ("1h", true), ("0s", false)] {
        let out = dosim(&[
            "drive",
            "scenarios/seed-phase0.toml",
            "--target",
            "ws://127.0.0.1:9",
            "--read-batch",
            batch,
            "--duration",
            "1s",
            "--quiet",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        if refused {
            assert_eq!(out.status.code(), Some(2), "{batch}: {err}");
            assert!(
                err.contains("--read-batch") && err.contains("at most 10ms"),
                "{err}"
            );
        } else {
            assert!(!err.contains("--read-batch"), "{batch}: {err}");
        }
    }
}

/// A `--start-at` past what the clock can hold (or not a time) exits 2 naming the option; it
/// panicked converting the seconds. Refused before any connection (nothing listens on port 9).
#[test]
fn a_start_at_beyond_the_clock_exits_2_naming_the_option() {
    for at in ["1e20", "18446744073709551615", "inf", "NaN"] {
        let out = dosim(&[
            "drive",
            "scenarios/seed-phase0.toml",
            "--target",
            "ws://127.0.0.1:9",
            "--start-at",
            at,
            "--duration",
            "1s",
            "--quiet",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{at}: {err}");
        assert!(err.contains("--start-at"), "{at}: {err}");
        assert!(!err.contains("panicked"), "{at}: {err}");
    }
}

/// An output file that could not be written once the run is over (its folder missing, or a
/// folder itself) is refused before anything runs, exit 2 naming the option: it failed
/// after the whole run (a calibration ladder, a validation, a sweep) with exit 1.
#[test]
fn an_output_that_cannot_be_written_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/folder/out.x");
    let missing = missing.to_str().unwrap();
    let folder = dir.path().to_str().unwrap();
    let phase0 = "scenarios/seed-phase0.toml";
    for args in [
        vec!["simulate", phase0, "--json", folder],
        vec!["compare", phase0, "--csv", missing],
        vec![
            "sweep",
            phase0,
            "--sessions-per-day",
            "100",
            "--svg",
            missing,
        ],
        vec![
            "drive",
            phase0,
            "--target",
            "ws://127.0.0.1:9",
            "--json",
            missing,
        ],
        vec!["calibrate", "--local", "--quick", "--out", missing],
        vec![
            "validate",
            "scenarios/validate-small.toml",
            "--local",
            "--markdown",
            missing,
        ],
    ] {
        let out = dosim(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let flag = args[args.len() - 2];
        assert!(
            err.contains(&format!("{flag} {}", args[args.len() - 1])),
            "{err}"
        );
        assert!(!err.contains("calibrate: run"), "nothing ran: {err}");
    }
}

/// A strategy given twice in `--strategies` is refused naming it (it ran, and showed, twice).
#[test]
fn a_strategy_given_twice_exits_2_naming_it() {
    for args in [
        vec![
            "compare",
            "scenarios/seed-phase0.toml",
            "--strategies",
            "single,per-room,single",
        ],
        vec![
            "sweep",
            "scenarios/seed-phase0.toml",
            "--sessions-per-day",
            "100",
            "--strategies",
            "sharded:4,sharded:4",
        ],
        vec![
            "drive",
            "scenarios/seed-phase0.toml",
            "--target",
            "ws://127.0.0.1:9",
            "--strategies",
            "per-room,per-room",
        ],
    ] {
        let out = dosim(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--strategies") && err.contains("is given twice"),
            "{err}"
        );
    }
}
