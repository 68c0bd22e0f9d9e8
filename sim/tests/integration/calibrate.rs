//! `dosim calibrate` against a real workerd on 127.0.0.1 (the quick ladder, --local and
//! --target), and calibration files applied to scenarios: `platform.calibration`,
//! `--calibration`, and broken files.

use std::path::Path;
use std::process::Command;

use dosim::calibration::{Calibration, Kind};
use dosim::drive::local::LocalSettings;
use dosim::meter::{EventCosts, Source};
use serde_json::Value;

use super::drive::start;
use crate::util::{dosim_in, repo};

fn calibrate(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dosim"))
        .current_dir(repo())
        .arg("calibrate")
        .args(args)
        .arg("--out")
        .arg(dir.join("cal.toml"))
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn calibrate_local_quick_writes_a_file_with_positive_fits_residuals_and_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = calibrate(
        dir.path(),
        &["--local", "--quick", "--strategies", "single,per-room"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let took = started.elapsed();
    let cal = Calibration::from_file(&dir.path().join("cal.toml")).unwrap();
    assert_eq!(cal.calibration.kind, Kind::Cpu);
    assert!(cal
        .calibration
        .not_cloudflare
        .contains("not Cloudflare's edge"));
    let m = &cal.measured;
    assert_eq!(m.runs.len(), 6, "3 runs per strategy");
    assert!(m.runs.iter().any(|r| r.lobby) && m.runs.iter().any(|r| !r.lobby));
    assert!(m
        .runs
        .iter()
        .all(|r| r.ramp_cpu_ms.is_some_and(|c| c > 0.0)));
    assert_eq!(m.residuals.len(), 24, "4 phases × 6 runs");
    assert_eq!(
        m.degrees_of_freedom,
        24 - 8,
        "8 fitted figures: the 6 applied, object_create and background"
    );
    assert!(m.workerd_version.starts_with("1."), "{}", m.workerd_version);
    assert!(m.machine.cores > 0 && !m.machine.kernel.is_empty());
    // Every figure has a value inside its interval.
    for (name, f) in &m.fits {
        let v = f.value.unwrap_or_else(|| panic!("{name}: {f:?}"));
        let (lo, hi) = (f.ci95_low.unwrap(), f.ci95_high.unwrap());
        assert!(lo < v && v < hi, "{name}: {f:?}");
    }
    // The large effects of the ladder are positive and applied: 100 probe requests, 32
    // connects and closes per run, 64 to 256 messages per window at two rates.
    for name in ["worker_cpu", "connect", "message", "close"] {
        let v = m.fits[name].value.unwrap();
        assert!(v > 0.0, "{name}: {:?}", m.fits[name]);
    }
    let p = &cal.platform;
    assert!(p.worker_cpu_ms_per_connect.unwrap() > 0.0);
    assert!(p.service.connect.as_ref().unwrap().mean_ns() > 0.0);
    assert!(p.service.message.as_ref().unwrap().mean_ns() > 0.0);
    assert!(p.service.close.as_ref().unwrap().mean_ns() > 0.0);
    // The small ones (about 0.01 ms per recipient, 0.03 ms per lobby RPC here) may fall
    // either side of 0 on a busy machine: applied when positive, else named as not separable
    // and left out of the scenario, never applied as a negative time.
    let said = |name: &str| m.not_separable.iter().any(|w| w.starts_with(name));
    match p.service.per_recipient {
        Some(d) => assert!(d.0 > 0 && m.fits["per_recipient"].value.unwrap() > 0.0),
        None => assert!(said("per_recipient"), "{:?}", m.not_separable),
    }
    match &p.service.rpc {
        Some(d) => assert!(d.mean_ns() > 0.0 && m.fits["rpc"].value.unwrap() > 0.0),
        None => assert!(said("rpc"), "{:?}", m.not_separable),
    }
    // The fitted model explains the measurements: its residuals are small beside them.
    let observed: f64 = m.residuals.iter().map(|r| r.observed.abs()).sum();
    let off: f64 = m.residuals.iter().map(|r| r.residual.abs()).sum();
    assert!(off < 0.5 * observed, "residuals {off} ms of {observed} ms");
    let summary = text(&out.stdout);
    assert!(summary.contains("95% interval"), "{summary}");
    // Bounded: the quick ladder is meant for CI (< 40 s on an idle machine; generous here
    // because other tests share the cores).
    assert!(took.as_secs() < 120, "{took:?}");
}

#[test]
fn calibrate_target_is_latency_derived_and_applies_only_what_latency_separates() {
    let w = start(&LocalSettings {
        max_connections_per_room: 8,
        max_active_rooms: None,
        max_total_connections: Some(100_000),
        queue_limit: 0,
        hibernation: true,
        max_message_bytes: None,
        lobby_mode: None,
        stats_token: dosim::drive::local::random_token(),
    });
    let dir = tempfile::tempdir().unwrap();
    let target = w.target().to_string();
    assert!(target.starts_with("ws://127.0.0.1:"), "{target}");
    let out = calibrate(
        dir.path(),
        &[
            "--target",
            &target,
            "--quick",
            "--strategies",
            "single,per-room",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cal = Calibration::from_file(&dir.path().join("cal.toml")).unwrap();
    assert_eq!(cal.calibration.kind, Kind::Latency);
    assert!(cal.calibration.label.contains("latency-derived"));
    let m = &cal.measured;
    assert_eq!(m.runs.len(), 6);
    assert!(
        m.runs.iter().all(|r| r.ramp_cpu_ms.is_none()),
        "no CPU measured"
    );
    assert!(m
        .runs
        .iter()
        .all(|r| r.connect_mean_ms.is_some() && r.message_mean_ms.is_some()));
    assert_eq!(m.residuals.len(), 12, "a connect and a message row per run");
    for name in ["connect_path", "message_path", "rpc", "per_recipient"] {
        assert!(m.fits[name].value.is_some(), "{name}");
        assert!(m.fits[name].ci95_low.is_some(), "{name}");
    }
    // Latency cannot give the Worker's CPU, connect, message or close: not applied, said so.
    assert!(cal.platform.worker_cpu_ms_per_connect.is_none());
    assert!(cal.platform.service.connect.is_none() && cal.platform.service.close.is_none());
    assert!(m.not_separable[0].contains("latency alone cannot separate"));
}

const CAL: &str = "[calibration]\nformat = 1\nkind = \"cpu\"\nlabel = \"a test calibration\"\n\n[platform]\nworker_cpu_ms_per_connect = 0.25\n\n[platform.service]\nconnect = { dist = \"constant\", value = \"2ms\" }\nmessage = { dist = \"constant\", value = \"40ms\" }\nper_recipient = \"3ms\"\n";

fn json(dir: &Path, args: &[&str], name: &str) -> Value {
    let path = dir.join(name);
    let mut all = args.to_vec();
    all.extend(["--json", path.to_str().unwrap()]);
    let out = dosim_in(dir, &all);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_calibration_changes_the_simulated_service_times_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("cal.toml"), CAL).unwrap();
    let base = std::fs::read_to_string(repo().join("scenarios/seed-phase0.toml")).unwrap();
    std::fs::write(d.join("plain.toml"), &base).unwrap();
    // platform.calibration, relative to the scenario's folder.
    std::fs::create_dir(d.join("sub")).unwrap();
    let referencing = base.replacen("[platform]", "[platform]\ncalibration = \"../cal.toml\"", 1);
    assert_ne!(referencing, base, "seed-phase0 has a [platform] table");
    std::fs::write(d.join("sub/ref.toml"), referencing).unwrap();

    let plain = json(d, &["simulate", "plain.toml"], "plain.json");
    let flag = json(
        d,
        &["simulate", "plain.toml", "--calibration", "cal.toml"],
        "flag.json",
    );
    let key = json(d, &["simulate", "sub/ref.toml"], "key.json");
    let p99 = |r: &Value| r["latency_ms"]["message"]["p99"].as_f64().unwrap();
    // A 40 ms message and 3 ms per recipient is far slower than the scenario's.
    assert!(
        p99(&flag) > p99(&plain) + 10.0,
        "{} vs {}",
        p99(&flag),
        p99(&plain)
    );
    assert_eq!(
        p99(&flag),
        p99(&key),
        "the key and the flag apply the same figures"
    );
    for r in [&flag, &key] {
        let method = r["provenance"]["method"].as_str().unwrap();
        assert!(method.contains("calibrated"), "{method}");
        let note = r["provenance"]["notes"][0].as_str().unwrap();
        assert!(
            note.contains("platform.service.message") && note.contains("cal.toml"),
            "{note}"
        );
        assert!(
            !note.contains("platform.service.close"),
            "not in the file: {note}"
        );
    }
    assert!(!plain["provenance"]["method"]
        .as_str()
        .unwrap()
        .contains("calibrated"));
    // The text header says so too, and compare and sweep take the flag.
    let out = dosim_in(d, &["simulate", "plain.toml", "--calibration", "cal.toml"]);
    assert!(text(&out.stdout).contains("(calibrated: see the notes)"));
    for args in [
        &["compare", "plain.toml", "--calibration", "cal.toml"][..],
        &[
            "sweep",
            "plain.toml",
            "--sessions-per-day",
            "500",
            "--calibration",
            "cal.toml",
            "--quiet",
        ],
    ] {
        let out = dosim_in(d, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    // The usage sources a drive would print: calibrated, naming the file.
    let s = dosim::scenario::Scenario::from_file(&d.join("sub/ref.toml")).unwrap();
    let costs = EventCosts::from_scenario(&s, Some("nothing measured"));
    match &costs.message.source {
        Source::Calibrated { file, what } => {
            assert!(file.ends_with("cal.toml"), "{file:?}");
            assert!(what.contains("platform.service.message"), "{what}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(costs.close.source, Source::Modelled { .. }));
    assert_eq!(costs.worker_cpu_ms.value, 0.25);
}

#[test]
fn a_broken_calibration_file_names_file_line_and_key_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(repo().join("scenarios/seed-phase0.toml"), d.join("s.toml")).unwrap();
    let cases = [
        (
            "per_recipient = \"3ms\"",
            "per_recipient = \"quick\"",
            12,
            "platform.service.per_recipient",
        ),
        (
            "worker_cpu_ms_per_connect = 0.25",
            "worker_cpu_ms_per_connect = -2.0",
            7,
            "platform.worker_cpu_ms_per_connect",
        ),
        (
            "per_recipient = \"3ms\"",
            "per_recipent = \"3ms\"",
            12,
            "platform.service.per_recipent",
        ),
        ("format = 1", "format = 7", 2, "calibration.format"),
    ];
    for (from, to, line, key) in cases {
        assert!(CAL.contains(from), "{from}");
        std::fs::write(d.join("bad.toml"), CAL.replace(from, to)).unwrap();
        let out = dosim_in(d, &["simulate", "s.toml", "--calibration", "bad.toml"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{to}: {err}");
        assert!(err.contains(&format!("bad.toml:{line}:")), "{to}: {err}");
        assert!(err.contains(&format!("key `{key}`")), "{to}: {err}");
    }
    // A scenario naming a calibration that is not there: the scenario's line and key.
    let text_s = std::fs::read_to_string(d.join("s.toml")).unwrap();
    std::fs::write(
        d.join("ref.toml"),
        text_s.replacen(
            "[platform]",
            "[platform]\ncalibration = \"missing.toml\"",
            1,
        ),
    )
    .unwrap();
    let out = dosim_in(d, &["simulate", "ref.toml"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ref.toml:") && err.contains("key `platform.calibration`"),
        "{err}"
    );
    assert!(err.contains("missing.toml"), "{err}");
}
