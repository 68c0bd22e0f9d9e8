//! `dosim drive` at the Worker's edges: a scenario the Worker would refuse, a target that
//! answers 5xx, reconciliation across objects the Worker pruned, and no workerd or npm left
//! running when dosim itself is killed. Loopback only; every process killed is one these
//! tests started.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dosim::drive::client::{self, ServerFrame};
use dosim::drive::local::{worker_limit, LocalSettings, LocalWorkerd};
use dosim::drive::stats::{self, HealthError};
use dosim::model::strategy::Strategy;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use super::drive::{
    assert_reconciled, dosim_drive, runtime, start, workers, write_scenario, CHURN,
};
use crate::util::repo;

const STEP: Duration = Duration::from_secs(5);

fn settings() -> LocalSettings {
    LocalSettings {
        max_connections_per_room: 8,
        max_active_rooms: None,
        max_total_connections: None,
        queue_limit: 0,
        hibernation: true,
        max_message_bytes: None,
        lobby_mode: None,
        stats_token: dosim::drive::local::random_token(),
    }
}

#[test]
fn a_scenario_the_worker_would_refuse_stops_before_anything_starts_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (name, from, to, expect) in [
        (
            "big-messages.toml",
            "message_bytes = 64",
            "message_bytes = 2000000",
            "MAX_MESSAGE_BYTES must be in 1..=1048576",
        ),
        (
            "big-rooms.toml",
            "max_connections_per_room = 8",
            "max_connections_per_room = 2000000000",
            "MAX_CONNECTIONS_PER_ROOM must be in 1..=1000000000",
        ),
    ] {
        assert!(CHURN.contains(from), "{from}");
        let path = write_scenario(dir.path(), name, &CHURN.replace(from, to));
        let json = dir.path().join(format!("{name}.json"));
        let f = dosim_drive(
            &[path.to_str().unwrap(), "--local", "--duration", "2s"],
            &json,
            Duration::from_secs(30),
        );
        assert_eq!(f.code, Some(2), "{name}: {}", f.stderr);
        assert!(f.stderr.contains(expect), "{name}: {}", f.stderr);
        assert!(f.stderr.contains(to), "{name}: {}", f.stderr);
        assert!(f.report.is_none(), "{name}: no run, no report");
    }
}

#[test]
fn the_worker_enforces_exactly_the_limits_dosim_checks() {
    let rt = runtime();
    // At every maximum the Worker serves.
    let mut s = settings();
    s.max_connections_per_room = worker_limit("MAX_CONNECTIONS_PER_ROOM").max as u32;
    s.max_active_rooms = Some(worker_limit("MAX_ACTIVE_ROOMS").max as u32);
    s.max_total_connections = Some(worker_limit("MAX_TOTAL_CONNECTIONS").max as u32);
    s.queue_limit = worker_limit("QUEUE_LIMIT").max as u32;
    s.max_message_bytes = Some(worker_limit("MAX_MESSAGE_BYTES").max as u32);
    let w = start(&s);
    assert_eq!(rt.block_on(stats::health(&w.target(), STEP)), Ok(()));
    drop(w);
    // One past any of them, and every request fails, naming it.
    type Set = fn(&mut LocalSettings, u32);
    let cases: [(&str, Set); 5] = [
        ("MAX_CONNECTIONS_PER_ROOM", |s, v| {
            s.max_connections_per_room = v
        }),
        ("MAX_ACTIVE_ROOMS", |s, v| s.max_active_rooms = Some(v)),
        ("MAX_TOTAL_CONNECTIONS", |s, v| {
            s.max_total_connections = Some(v)
        }),
        ("QUEUE_LIMIT", |s, v| s.queue_limit = v),
        ("MAX_MESSAGE_BYTES", |s, v| s.max_message_bytes = Some(v)),
    ];
    for (binding, set) in cases {
        let mut s = settings();
        set(&mut s, worker_limit(binding).max as u32 + 1);
        let w = LocalWorkerd::spawn(&workers(), &s).unwrap();
        match rt.block_on(stats::health(&w.target(), STEP)) {
            Err(HealthError::Failing { status: 500, body }) => assert!(
                body.starts_with(&format!("configuration error: {binding} must be in")),
                "{binding}: {body}"
            ),
            other => panic!("{binding}: {other:?}"),
        }
    }
}

#[test]
fn a_misconfigured_target_stops_the_run_with_the_workers_reason() {
    let mut s = settings();
    s.max_message_bytes = Some(worker_limit("MAX_MESSAGE_BYTES").max as u32 + 1);
    let w = LocalWorkerd::spawn(&workers(), &s).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(dir.path(), "churn.toml", CHURN);
    let json = dir.path().join("misconfigured.json");
    let target = w.target().to_string();
    let f = dosim_drive(
        &[
            scenario.to_str().unwrap(),
            "--target",
            &target,
            "--stats-token",
            w.token(),
            "--duration",
            "20s",
            "--from",
            "1h",
        ],
        &json,
        Duration::from_secs(30),
    );
    assert_eq!(f.code, Some(1), "{}", f.stderr);
    let reason = "configuration error: MAX_MESSAGE_BYTES must be in 1..1048576, got 1048577";
    assert!(f.stderr.contains("misconfigured"), "{}", f.stderr);
    assert!(f.stderr.contains(reason), "{}", f.stderr);
    assert!(f.elapsed < Duration::from_secs(15), "{:?}", f.elapsed);
    let r = f.report.expect("a report");
    assert_eq!(r["drive"]["status"], "target_down");
    assert!(
        r["drive"]["stopped"].as_str().unwrap().contains(reason),
        "{}",
        r["drive"]["stopped"]
    );
}

/// A stand-in target: `GET /healthz` answers 200 for the first `healthy` requests and 500
/// after; every other request (the upgrades) 500 with `body`. Returns its port and how many
/// upgrades it answered.
fn failing_target(healthy: u32, body: &'static str) -> (u16, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let upgrades = Arc::new(AtomicU32::new(0));
    let seen = upgrades.clone();
    std::thread::spawn(move || {
        let mut health = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // The rest of the request's head.
            let mut h = String::new();
            while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            let ok = line.starts_with("GET /healthz ") && {
                health += 1;
                health <= healthy
            };
            if !line.starts_with("GET /healthz ") {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            let (status, text) = if ok {
                ("200 OK", "ok\n")
            } else {
                ("500 Internal Server Error", body)
            };
            // One write: the WebSocket client keeps the body of a refused upgrade only as far
            // as it arrived with the head (as a real server sends a small answer).
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (port, upgrades)
}

#[test]
fn a_5xx_answer_is_shown_and_a_target_that_cannot_serve_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(dir.path(), "churn.toml", CHURN);
    // Upgrades fail but /healthz stays fine: a warning with the first answer's body, and the
    // run goes on (faults counted).
    let (port, upgrades) = failing_target(u32::MAX, "worker exploded: code 1101\n");
    let json = dir.path().join("flaky.json");
    let target = format!("ws://127.0.0.1:{port}");
    let args = [
        scenario.to_str().unwrap(),
        "--target",
        &target,
        "--duration",
        "3s",
        "--from",
        "1h",
    ];
    let f = dosim_drive(&args, &json, Duration::from_secs(30));
    let r = f.report.expect("a report");
    assert_eq!(r["drive"]["status"], "complete", "{}", f.stderr);
    let shown = "the target answered an upgrade with HTTP 500: worker exploded: code 1101";
    let warnings = r["drive"]["warnings"].to_string();
    assert!(warnings.contains(shown), "{warnings}");
    assert!(r["drive"]["faults"]["upgrade_5xx"].as_u64().unwrap() > 1);
    assert!(upgrades.load(Ordering::SeqCst) > 1);

    // /healthz fails too once the run is under way: the run stops, target misconfigured.
    let (port, upgrades) = failing_target(
        1,
        "configuration error: QUEUE_LIMIT must be in 0..1000000000, got -1\n",
    );
    let json = dir.path().join("broken.json");
    let target = format!("ws://127.0.0.1:{port}");
    let args = [
        scenario.to_str().unwrap(),
        "--target",
        &target,
        "--duration",
        "20s",
        "--from",
        "1h",
    ];
    let f = dosim_drive(&args, &json, Duration::from_secs(30));
    assert_eq!(f.code, Some(1), "{}", f.stderr);
    assert!(f.stderr.contains("misconfigured"), "{}", f.stderr);
    assert!(f.stderr.contains("QUEUE_LIMIT must be in"), "{}", f.stderr);
    assert!(f.elapsed < Duration::from_secs(15), "{:?}", f.elapsed);
    let r = f.report.expect("a report");
    assert_eq!(r["drive"]["status"], "target_down");
    assert!(upgrades.load(Ordering::SeqCst) >= 1);
}

/// `user` joins `room` and leaves at once (the object goes idle).
async fn join_and_leave(target: &client::Target, room: &str, user: &str) {
    let path = target.join_path("per-room", room, user);
    let (mut ws, _) = client::connect(target, &path, STEP).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Text(t))) => assert!(
            matches!(ServerFrame::parse(&t), Some(ServerFrame::Joined { .. })),
            "{t}"
        ),
        other => panic!("{room}: {other:?}"),
    }
    ws.send(client::leave_frame()).await.unwrap();
    while let Some(Ok(m)) = ws.next().await {
        if m.is_close() {
            break;
        }
    }
}

#[test]
fn a_drive_reconciles_exactly_across_objects_the_worker_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(dir.path(), "churn.toml", CHURN);
    let s = dosim::scenario::Scenario::from_file(&scenario).unwrap();
    let w = start(&LocalSettings::for_scenario(&s).unwrap());
    let target = w.target();
    let rt = runtime();
    // The driver's rooms ran before (their lineages then pushed out and pruned), and the
    // registry's idle lineages are full: during the run each room of the driver that goes
    // idle pushes an older one into the pruned sum.
    let before = rt.block_on(async {
        for r in 0..s.rooms.count {
            join_and_leave(&target, &format!("r{r}"), "pre").await;
        }
        let fill = 1100;
        let next = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (t, next) = (target.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= fill {
                        break;
                    }
                    join_and_leave(&t, &format!("pre{i}"), &format!("pre{i}")).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        stats::fetch(&target, Strategy::PerRoom, w.token(), STEP)
            .await
            .unwrap()
    });
    let pruned = before.pruned.as_ref().expect("a registry");
    assert!(pruned.objects >= 100, "{}", pruned.objects);
    assert!(!before.objects.iter().any(|o| o.name == "room:r0"));
    let json = dir.path().join("pruned.json");
    let t = target.to_string();
    let f = dosim_drive(
        &[
            scenario.to_str().unwrap(),
            "--target",
            &t,
            "--stats-token",
            w.token(),
            "--strategy",
            "per-room",
            "--duration",
            "3s",
            "--from",
            "1h",
            "--speedup",
            "2",
        ],
        &json,
        Duration::from_secs(60),
    );
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let r = f.report.unwrap();
    assert_reconciled(&r, "pruned");
    let rec = &r["drive"]["reconciliation"];
    assert!(rec["pruned"].as_u64().unwrap() > 0, "{rec}");
    assert_eq!(rec["restarts"], serde_json::json!([]), "{rec}");
    assert!(rec["objects_compared"].as_u64().unwrap() > 0, "{rec}");
}

// ---------------------------------------------------------------------------------------------
// SIGKILL

/// `(ppid, pgrp, comm)` of a live (not zombie) process.
fn proc_stat(pid: u32) -> Option<(u32, u32, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let f: Vec<&str> = text[close + 1..].split_whitespace().collect();
    if matches!(f.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    Some((f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?, comm))
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Live processes of process group `pgrp`.
fn group(pgrp: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&p| proc_stat(p).is_some_and(|(_, g, _)| g == pgrp))
        .collect()
}

/// A child of `parent` other than its watchdog `sh`, once there is one (within `limit`).
fn child_of(parent: &mut Child, limit: Duration) -> (u32, String) {
    let until = Instant::now() + limit;
    let exe = |p: u32| std::fs::read_link(format!("/proc/{p}/exe")).ok();
    let parent_exe = exe(parent.id());
    loop {
        // A child that has not yet exec'd is still a copy of dosim (its process group not yet
        // set either): wait for the program it runs.
        let found = all_pids().into_iter().find_map(|p| {
            let (ppid, _, comm) = proc_stat(p)?;
            (ppid == parent.id() && comm != "sh" && exe(p).is_some() && exe(p) != parent_exe)
                .then_some((p, comm))
        });
        if let Some(f) = found {
            return f;
        }
        if let Ok(Some(s)) = parent.try_wait() {
            panic!("dosim exited ({s}) before starting a child");
        }
        assert!(Instant::now() < until, "no child of dosim within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigkill(child: &mut Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    child.wait().unwrap();
}

/// Every process of group `pgrp` gone within 20 s (generous: this is not a speed test).
fn assert_group_ends(pgrp: u32, what: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while !group(pgrp).is_empty() {
        assert!(
            Instant::now() < until,
            "{what} (process group {pgrp}) still runs 20 s after dosim was killed: {:?}",
            group(pgrp)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dosim(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dosim"))
        .current_dir(repo())
        .arg("drive")
        .args(args)
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_sigkilled_dosim_leaves_no_workerd_behind() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(dir.path(), "churn.toml", CHURN);
    let mut d = dosim(&[
        scenario.to_str().unwrap(),
        "--local",
        "--duration",
        "60s",
        "--from",
        "1h",
    ]);
    let (pid, comm) = child_of(&mut d, Duration::from_secs(60));
    assert_eq!(comm, "workerd");
    // workerd is a process group of its own, which is what the watchdog kills.
    assert_eq!(proc_stat(pid).map(|(_, g, _)| g), Some(pid));
    // Serving (past its start).
    let t = client::Target::loopback(listening_port(pid));
    runtime().block_on(async {
        let until = Instant::now() + Duration::from_secs(20);
        while stats::health(&t, STEP).await.is_err() {
            assert!(Instant::now() < until, "workerd {pid} does not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    sigkill(&mut d);
    assert_group_ends(pid, "workerd");
}

/// The TCP port a process listens on (from /proc/net/tcp and its socket inodes).
fn listening_port(pid: u32) -> u16 {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let l = std::fs::read_link(e.path()).ok()?;
                        let l = l.to_str()?;
                        Some(
                            l.strip_prefix("socket:[")?
                                .trim_end_matches(']')
                                .to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        for line in tcp.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                let port = f[1].rsplit(':').next().unwrap();
                return u16::from_str_radix(port, 16).unwrap();
            }
        }
        assert!(Instant::now() < until, "workerd {pid} does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A copy of workers/ without its build (node_modules linked, not copied), so that `drive
/// --local --workers` runs `npm run build` first.
fn unbuilt_workers(dir: &Path) -> PathBuf {
    let src = workers();
    let dst = dir.join("workers");
    for sub in ["src", "scripts"] {
        std::fs::create_dir_all(dst.join(sub)).unwrap();
        for e in std::fs::read_dir(src.join(sub)).unwrap().flatten() {
            std::fs::copy(e.path(), dst.join(sub).join(e.file_name())).unwrap();
        }
    }
    for f in [
        "package.json",
        "package-lock.json",
        "tsconfig.json",
        "workerd.capnp",
    ] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    std::os::unix::fs::symlink(src.join("node_modules"), dst.join("node_modules")).unwrap();
    dst
}

#[test]
fn a_sigkilled_dosim_leaves_no_npm_behind() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(dir.path(), "churn.toml", CHURN);
    let w = unbuilt_workers(dir.path());
    let mut d = dosim(&[
        scenario.to_str().unwrap(),
        "--local",
        "--workers",
        w.to_str().unwrap(),
        "--duration",
        "60s",
    ]);
    // The build lock may be held by another test's build for a while.
    let (pid, comm) = child_of(&mut d, Duration::from_secs(120));
    assert_ne!(comm, "workerd", "the build ran first");
    let pgrp = proc_stat(pid).map(|(_, g, _)| g).unwrap();
    assert_eq!(pgrp, pid, "npm is a process group of its own");
    // Let npm start what it runs (tsc), then kill dosim.
    std::thread::sleep(Duration::from_millis(500));
    sigkill(&mut d);
    assert_group_ends(pgrp, "npm run build");
    // Killed, not left to finish: the build (type check first, then the bundle) never wrote
    // its output.
    assert!(!w.join("dist/worker.js").exists(), "the build ran on");
}
