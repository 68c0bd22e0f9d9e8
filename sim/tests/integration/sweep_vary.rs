//! `dosim sweep --vary`: grids over any key, bad keys and values by name, the same bytes on
//! any thread count, the window projection checked, the charts and the Markdown report.

use crate::util::dosim;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A small sweep of seed-phase0 (a day), `extra` appended, its JSON read back.
fn sweep_json(extra: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("s.json");
    let mut args = vec![
        "sweep",
        "scenarios/seed-phase0.toml",
        "--strategies",
        "single,per-room",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = dosim(&args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    let text = std::fs::read_to_string(&json).unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

#[test]
fn several_vary_options_make_a_grid_with_every_point_and_its_values() {
    let (sweep, _) = sweep_json(&[
        "--vary",
        "rooms.count=5,10,20",
        "--vary",
        "platform.hibernation=true,false",
        "--sessions-per-day",
        "500",
    ]);
    let points = sweep["points"].as_array().unwrap();
    // 1 load × 3 room counts × 2 APIs × 2 strategies.
    assert_eq!(points.len(), 12);
    assert_eq!(points[0]["values"]["rooms.count"], 5.0);
    assert_eq!(points[0]["values"]["platform.hibernation"], 1.0);
    assert_eq!(points[2]["values"]["platform.hibernation"], 0.0);
    assert_eq!(points[11]["values"]["rooms.count"], 20.0);
    let axes = sweep["design"]["axes"].as_array().unwrap();
    assert_eq!(axes.len(), 3);
    assert_eq!(axes[0]["key"], "arrivals.sessions_per_day");
    // accept() sockets bill per-room's objects while anyone is connected: more than the
    // Hibernation API at the same point.
    let bill = |i: usize| points[i]["monthly_total_usd"].as_f64().unwrap();
    assert!(bill(3) > bill(1), "{} vs {}", bill(3), bill(1));
}

#[test]
fn a_bad_key_or_a_value_the_scenario_refuses_exits_2_naming_the_key() {
    for (vary, key) in [
        ("rooms.cuont=1,2", "rooms.cuont"),
        ("rooms.count=0,10", "rooms.count"),
        (
            "persistence.rows_written_per_message=-1",
            "persistence.rows_written_per_message",
        ),
        ("sessions.length.mean=5,10", "sessions.length.mean"),
        (
            "limits.max_connections_per_room=0",
            "limits.max_connections_per_room",
        ),
    ] {
        let out = dosim(&[
            "sweep",
            "scenarios/seed-phase0.toml",
            "--vary",
            vary,
            "--quiet",
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{vary}: {err}");
        assert!(err.contains(&format!("`{key}`")), "{vary}: {err}");
        assert!(err.contains("at --vary"), "{vary}: {err}");
    }
    for (args, needle) in [
        (vec!["--vary", "rooms.count=1..5"], "count"),
        (vec!["--vary", "rooms.count"], "KEY=SPEC"),
        (
            vec!["--vary", "rooms.count=1,2", "--vary", "rooms.count=3"],
            "twice",
        ),
        (
            vec!["--vary", "concurrent_users=10", "--sessions-per-day", "5"],
            "both set the load",
        ),
        (vec!["--sessions-per-day", "5", "--scale", "doors"], "doors"),
    ] {
        let mut all = vec!["sweep", "scenarios/seed-phase0.toml", "--quiet"];
        all.extend(args.iter());
        let out = dosim(&all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn the_output_is_the_same_bytes_on_one_thread_and_on_two() {
    let args = [
        "--vary",
        "concurrent_users=20..80:3:log",
        "--vary",
        "platform.service.message.value=100us,2ms",
        "--scale",
        "rooms,limits",
        "--replications",
        "2",
    ];
    let (_, one) = sweep_json(&[&args[..], &["--jobs", "1"]].concat());
    let (_, two) = sweep_json(&[&args[..], &["--jobs", "2"]].concat());
    assert_eq!(one, two);
    let sweep: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(sweep["points"].as_array().unwrap().len(), 3 * 2 * 2);
    assert!(sweep["points"][0]["replications"]["count"] == 2);
}

#[test]
fn a_short_window_is_stated_and_checked_against_the_whole_window() {
    // seed-scale simulates 30 days; each point here simulates its busiest day.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("w.json");
    let out = dosim(&[
        "sweep",
        "scenarios/seed-scale.toml",
        "--vary",
        "concurrent_users=50,100,200",
        "--strategies",
        "single,per-room",
        "--hibernation",
        "false",
        "--window",
        "busiest-day",
        "--check-window",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let d = &sweep["design"];
    assert!(d["window"]
        .as_str()
        .unwrap()
        .contains("projected onto a 30-day month ×30"));
    let check = &d["window_check"];
    assert_eq!(check["window_seconds"], 86_400.0);
    assert_eq!(check["full_window_seconds"], 30.0 * 86_400.0);
    assert_eq!(check["point"]["concurrent_users"], 100.0);
    for e in check["strategies"].as_array().unwrap() {
        let (p, f) = (
            e["projected_usd"].as_f64().unwrap(),
            e["full_usd"].as_f64().unwrap(),
        );
        assert!(f > 0.0);
        assert!((e["relative_error"].as_f64().unwrap() - (p - f) / f).abs() < 1e-12);
        // Arrivals and messages follow sessions: a day of the repeating profile holds the
        // month's share within 10%. (Time-based lines are reported, not bounded here: a day
        // that starts at midnight cuts the sessions still open then.)
        let lines = e["usage_errors"].as_object().unwrap();
        for k in [
            "worker_requests",
            "do_websocket_connects",
            "do_websocket_messages_in",
        ] {
            assert!(lines[k].as_f64().unwrap().abs() < 0.10, "{k}: {e}");
        }
        assert!(lines.contains_key("do_active_seconds"), "{e}");
    }
    assert!(sweep["method"].as_str().unwrap().contains("1d window"));
}

#[test]
fn the_markdown_report_embeds_four_charts_written_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("curve.md");
    let out = dosim(&[
        "sweep",
        "scenarios/seed-phase0.toml",
        "--vary",
        "concurrent_users=10..1000:3:log",
        "--vary",
        "platform.hibernation=true,false",
        "--strategies",
        "single,per-room",
        "--replications",
        "2",
        "--quiet",
        "--markdown",
        md.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&md).unwrap();
    for chart in ["cost", "cost-per-user", "p99", "refused"] {
        assert!(text.contains(&format!("](curve-{chart}.svg)")), "{text}");
        let svg = std::fs::read_to_string(dir.path().join(format!("curve-{chart}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("per-room · accept()"),
            "{chart}"
        );
        // Replications: a band per line.
        assert!(svg.contains("<polygon"), "{chart}: no band");
    }
    for needle in [
        "single object",
        "Cheapest strategy",
        "Effect of hibernation",
        "  - per-room: at ",
        "Hand estimate",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}
