use std::path::Path;
use std::process::Output;

use crate::util::{dosim, dosim_in, repo};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A JSON object of numbers and strings (a report's usage block) as TOML text.
fn toml_of(block: &serde_json::Value) -> String {
    let mut table = toml::Table::new();
    for (key, v) in block.as_object().unwrap() {
        let value = match v {
            serde_json::Value::String(s) => toml::Value::String(s.clone()),
            serde_json::Value::Number(n) if n.is_i64() => toml::Value::Integer(n.as_i64().unwrap()),
            serde_json::Value::Number(n) => toml::Value::Float(n.as_f64().unwrap()),
            other => panic!("{key}: unexpected {other}"),
        };
        table.insert(key.clone(), value);
    }
    toml::to_string(&table).unwrap()
}

/// The `dosim cost` commands in the README's shell blocks, as argument lists (after `--`).
fn readme_cost_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut commands = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix("cargo run --release -- cost ") else {
            continue;
        };
        let mut command = rest.to_string();
        while command.ends_with('\\') {
            command.pop();
            command.push(' ');
            command.push_str(lines.next().unwrap().trim());
        }
        let mut args = vec!["cost".to_string()];
        args.extend(command.split_whitespace().map(String::from));
        commands.push(args);
    }
    commands
}

#[test]
fn the_readme_cost_command_runs_as_written() {
    let commands = readme_cost_commands();
    assert!(!commands.is_empty(), "the README shows no `cost` command");
    for args in commands {
        // Run where the README's relative paths resolve (scenarios/ of the repository), but
        // write its output files into a scratch directory, not into the repository.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(repo().join("scenarios"), dir.path().join("scenarios")).unwrap();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = dosim_in(dir.path(), &argv);
        assert!(out.status.success(), "{argv:?}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.lines().any(|l| l.starts_with("Total")), "{text}");
        // Every file the command writes is a bill, and it is the one printed.
        let json = argv
            .iter()
            .position(|a| *a == "--json")
            .map(|i| argv[i + 1]);
        if let Some(json) = json {
            let bill = read_json(&dir.path().join(json));
            let total = bill["total_usd"].as_str().unwrap();
            assert!(text.contains(&format!("${total}")), "{total}\n{text}");
        }
    }
}

/// Simulates `scenario` with `extra` arguments and returns the report.
fn simulate(dir: &Path, scenario: &str, extra: &[&str]) -> serde_json::Value {
    let json = dir.join(format!("report-{}.json", extra.join("_").replace(':', "-")));
    let mut args = vec!["simulate", scenario, "--json", json.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = dosim(&args);
    assert!(
        matches!(out.status.code(), Some(0 | 99)),
        "{args:?}: {}",
        stderr(&out)
    );
    read_json(&json)
}

/// Writes `block` as a usage file and prices it under `pricing`; returns the bill and stderr.
fn cost_of(
    dir: &Path,
    name: &str,
    block: &serde_json::Value,
    pricing: &str,
) -> (serde_json::Value, String) {
    let usage = dir.join(format!("{name}.toml"));
    std::fs::write(&usage, toml_of(block)).unwrap();
    let bill = dir.join(format!("{name}-bill.json"));
    let out = dosim(&[
        "cost",
        usage.to_str().unwrap(),
        "--pricing",
        pricing,
        "--json",
        bill.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    (read_json(&bill), stderr(&out))
}

#[test]
fn a_reports_usage_blocks_price_to_the_reports_own_bill() {
    let dir = tempfile::tempdir().unwrap();
    // The month the shipped example comes from: a whole 30-day window (factor 1).
    let report = simulate(
        dir.path(),
        "scenarios/seed-scale.toml",
        &["--strategy", "per-room", "--hibernation", "false"],
    );
    let pricing = report["pricing"].as_str().unwrap();
    assert_eq!(report["monthly_usage"]["factor"], 1.0);
    for block in ["monthly_usage", "usage"] {
        // Every key of the block is accepted as it stands; the report-only ones are named.
        let (bill, err) = cost_of(dir.path(), block, &report[block], pricing);
        assert_eq!(bill, report["bill"], "{block}");
        for key in dosim::usage::REPORT_ONLY_KEYS {
            if report[block].get(key).is_some() {
                assert!(err.contains(key), "{block}: {key} not named in: {err}");
            }
        }
    }
    // Every key a report's blocks carry is either billable or a documented report-only key.
    for block in ["monthly_usage", "usage"] {
        for key in report[block].as_object().unwrap().keys() {
            assert!(
                dosim::usage::Usage::KEYS.contains(&key.as_str())
                    || dosim::usage::REPORT_ONLY_KEYS.contains(&key.as_str()),
                "{block}.{key} is neither billable nor a known report figure"
            );
        }
    }

    // The shipped example is that month, as its comments say.
    let example = repo().join("scenarios/usage/example.toml");
    let shipped = dosim::usage::UsageFile::read(&example).unwrap();
    assert!(shipped.ignored.is_empty());
    let shipped = serde_json::to_value(&shipped.usage).unwrap();
    for key in dosim::usage::Usage::KEYS {
        let (a, b) = (
            shipped[key].as_f64().unwrap(),
            report["monthly_usage"][key].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-9 * b.abs(),
            "scenarios/usage/example.toml is out of date: {key} = {a}, the simulation gives {b}"
        );
    }

    // A month projected from a short window, with stored data: the `monthly_usage` block
    // still prices to the report's bill, under every table.
    let peak = simulate(
        dir.path(),
        "scenarios/single-saturates.toml",
        &["--strategy", "per-room"],
    );
    assert!(peak["monthly_usage"]["factor"].as_f64().unwrap() > 1.0);
    assert!(
        peak["monthly_usage"]["sqlite_stored_gb_months"]
            .as_f64()
            .unwrap()
            > 5.0
    );
    let (bill, _) = cost_of(
        dir.path(),
        "peak",
        &peak["monthly_usage"],
        peak["pricing"].as_str().unwrap(),
    );
    assert_eq!(bill, peak["bill"]);
    // Under the table of 2024-04 the same month's SQLite lines cost nothing.
    let (free, _) = cost_of(
        dir.path(),
        "peak-2024",
        &peak["monthly_usage"],
        "cloudflare-2024-04",
    );
    let (billed, _) = cost_of(
        dir.path(),
        "peak-2026",
        &peak["monthly_usage"],
        "cloudflare-2026-01",
    );
    let line = |bill: &serde_json::Value, name: &str| -> f64 {
        let items = bill["line_items"].as_array().unwrap();
        let item = items.iter().find(|l| l["name"] == name).unwrap();
        item["cost_usd"].as_str().unwrap().parse().unwrap()
    };
    for name in ["SQLite rows written", "SQLite storage"] {
        assert_eq!(line(&free, name), 0.0, "{name}");
        assert!(line(&billed, name) > 0.0, "{name}");
    }
}

#[test]
fn simulated_stored_gb_months_are_the_average_of_daily_peaks() {
    // Phase 0 storing every message for good: the first month from empty holds, on each day's
    // peak (its end), that many days of rows; Cloudflare averages those 30 peaks: 31/60 of the
    // month's rows, not the time average of 1/2.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("scenarios/seed-phase0.toml")).unwrap()
        + "\n[persistence]\nrows_written_per_message = 1.0\nrow_bytes = 1000\n";
    let scenario = dir.path().join("stored.toml");
    std::fs::write(&scenario, text).unwrap();
    let report = simulate(dir.path(), scenario.to_str().unwrap(), &[]);
    let m = &report["monthly_usage"];
    assert_eq!(m["factor"], 1.0);
    let stored_rows =
        m["sqlite_rows_written"].as_f64().unwrap() - m["lobby_rows_written"].as_f64().unwrap();
    assert!(stored_rows > 1e5, "{stored_rows}");
    let expected = stored_rows * 1000.0 / 1e9 * 31.0 / 60.0;
    let gb = m["sqlite_stored_gb_months"].as_f64().unwrap();
    assert!(
        (gb - expected).abs() <= 1e-9 * expected,
        "{gb} vs {expected}"
    );
    let method = m["method"].as_str().unwrap();
    assert!(method.contains("each day's peak"), "{method}");
}

#[test]
fn cost_refuses_quantities_it_cannot_price_with_exit_2_naming_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let usage = dir.path().join("usage.toml");
    for (line, says) in [
        (
            "worker_requests = 1e308",
            "above the largest quantity dosim prices (1e15)",
        ),
        (
            "worker_requests = 1_000_000_000_000_001",
            "above the largest",
        ),
        ("worker_requests = nan", "finite"),
        ("worker_requests = inf", "finite"),
        ("worker_requests = -1", "negative"),
        ("worker_requests = \"1M\"", "must be a number"),
    ] {
        std::fs::write(&usage, format!("do_requests = 5\n{line}\n")).unwrap();
        let out = dosim(&["cost", usage.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{line}: {err}");
        assert!(
            err.contains("usage.toml:2:1: key `worker_requests`") && err.contains(says),
            "{line}: {err}"
        );
        assert!(out.stdout.is_empty(), "{line}: no bill is printed");
    }
}
