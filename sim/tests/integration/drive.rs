//! The WebSocket driver against the real Worker on a real workerd on 127.0.0.1, started by
//! the same launcher as `dosim drive --local` (these tests fail, never skip, when it cannot
//! start). All traffic stays on the loopback, bounded in count and time.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dosim::drive::client::{self, ServerFrame, StreamEnd, Target, Ws};
use dosim::drive::local::{find_workers_dir, LocalSettings, LocalWorkerd};
use dosim::drive::stats::{self, StatsError};
use dosim::model::strategy::Strategy;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::util::repo;

const STEP: Duration = Duration::from_secs(5);

pub(crate) fn workers() -> PathBuf {
    find_workers_dir(Some(&repo().join("workers"))).expect("the workers/ folder")
}

fn settings(limits: &Value, hibernation: bool, lobby: Option<&str>) -> LocalSettings {
    let opt = |k: &str| limits[k].as_u64().map(|v| v as u32);
    LocalSettings {
        max_connections_per_room: opt("max_connections_per_room").unwrap_or(8),
        max_active_rooms: opt("max_active_rooms"),
        max_total_connections: opt("max_total_connections"),
        queue_limit: opt("queue_limit").unwrap_or(0),
        hibernation,
        max_message_bytes: None,
        lobby_mode: lobby.map(str::to_string),
        stats_token: dosim::drive::local::random_token(),
    }
}

/// Start a workerd (building the Worker first if needed); panics if it cannot.
pub(crate) fn start(s: &LocalSettings) -> LocalWorkerd {
    LocalWorkerd::start(&workers(), s).unwrap_or_else(|e| panic!("workerd must start: {e}"))
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A socket with the frames it received but nobody took yet.
struct Client {
    ws: Ws,
    inbox: VecDeque<String>,
    ended: Option<StreamEnd>,
}

impl Client {
    async fn open(target: &Target, strategy: Strategy, room: &str, user: &str) -> Client {
        let path = target.join_path(&strategy.url_segment(), room, user);
        let (ws, _) = client::connect(target, &path, STEP)
            .await
            .unwrap_or_else(|e| panic!("connect {path}: {e}"));
        Client {
            ws,
            inbox: VecDeque::new(),
            ended: None,
        }
    }

    /// Read one more frame within `wait`; false on timeout or end.
    async fn pull(&mut self, wait: Duration) -> bool {
        if self.ended.is_some() {
            return false;
        }
        match tokio::time::timeout(wait, self.ws.next()).await {
            Err(_) => false,
            Ok(Some(Ok(Message::Text(t)))) => {
                self.inbox.push_back(t);
                true
            }
            Ok(Some(Ok(Message::Close(f)))) => {
                self.ended = Some(StreamEnd::from_close(f));
                false
            }
            Ok(Some(Ok(_))) => true,
            Ok(Some(Err(e))) => {
                self.ended = Some(StreamEnd::from_error(e));
                false
            }
            Ok(None) => {
                self.ended = Some(StreamEnd::Dropped("end".into()));
                false
            }
        }
    }

    /// The first frame matching `pred`, taken from the inbox.
    async fn take(&mut self, what: &str, pred: impl Fn(&ServerFrame<'_>) -> bool) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(i) = self
                .inbox
                .iter()
                .position(|t| ServerFrame::parse(t).is_some_and(|f| pred(&f)))
            {
                return self.inbox.remove(i).unwrap();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && self.ended.is_none(),
                "no {what} frame; inbox {:?}, ended {:?}",
                self.inbox,
                self.ended
            );
            self.pull(left).await;
        }
    }

    async fn first(&mut self) -> String {
        self.take("first", |_| true).await
    }

    /// The close code and reason, waiting up to `STEP`.
    async fn closed(&mut self) -> (u16, String) {
        let deadline = Instant::now() + STEP;
        while self.ended.is_none() && Instant::now() < deadline {
            self.pull(deadline - Instant::now()).await;
        }
        match self.ended.clone() {
            Some(StreamEnd::Closed(code, reason)) => (code, reason),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    async fn send(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    async fn drain(&mut self) {
        while self.pull(Duration::from_millis(5)).await {}
    }

    async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

fn frame(t: &str) -> Value {
    serde_json::from_str(t).unwrap()
}

fn present(rooms: &Value, user: &str) -> bool {
    rooms.as_object().is_some_and(|m| {
        m.values().any(|d| {
            ["seated", "queued"].iter().any(|k| {
                d[*k]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|u| u == user))
            })
        })
    })
}

/// Seated and queued users of this run's rooms (the tag stripped).
type RoomView = BTreeMap<String, Vec<String>>;

fn ours(rooms: &Value, tag: &str) -> (RoomView, RoomView) {
    let (mut seated, mut queued) = (BTreeMap::new(), BTreeMap::new());
    let strip = |s: &str| s.strip_prefix(&format!("{tag}-")).map(str::to_string);
    for (room, d) in rooms.as_object().into_iter().flatten() {
        let Some(r) = strip(room) else { continue };
        for (key, out) in [("seated", &mut seated), ("queued", &mut queued)] {
            let users: Vec<String> = d[key]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|u| strip(u.as_str().unwrap()))
                .collect();
            if !users.is_empty() {
                out.insert(r.clone(), users);
            }
        }
    }
    (seated, queued)
}

fn view(v: &Value) -> RoomView {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, a)| {
            (
                k.clone(),
                a.as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

/// One vector over sockets, on one strategy of one workerd (PROTOCOL.md's mapping: join =
/// open and read the first frame; leave = `leave` and the 1000 close; timeout = the queued
/// client closes, then the stats are polled until the user is gone).
async fn replay(w: &Target, token: &str, strategy: Strategy, v: &Value, expect_lobby: bool) {
    let tag = format!("t{}", &dosim::drive::local::random_token()[..6]);
    let n = |x: &str| format!("{tag}-{x}");
    let name = v["name"].as_str().unwrap();
    let mut clients: BTreeMap<String, Client> = BTreeMap::new();
    for (i, s) in v["steps"].as_array().unwrap().iter().enumerate() {
        let ctx = format!("{name} on {strategy}, step {i}: {s}");
        let e = &s["expect"];
        let user = s["user"].as_str().unwrap();
        let outcome = e["outcome"].as_str().unwrap();
        if s["op"] == "join" {
            let room = s["room"].as_str().unwrap();
            let mut c = Client::open(w, strategy, &n(room), &n(user)).await;
            let f = frame(&c.first().await);
            match outcome {
                "admitted" => {
                    assert_eq!(f["type"], "joined", "{ctx}: {f}");
                    assert_eq!(f["room"], n(room), "{ctx}");
                    assert_eq!(f["user"], n(user), "{ctx}");
                    clients.insert(user.to_string(), c);
                }
                "queued" => {
                    assert_eq!(f["type"], "queued", "{ctx}: {f}");
                    assert_eq!(f["position"], e["position"], "{ctx}");
                    clients.insert(user.to_string(), c);
                }
                _ => {
                    assert_eq!(f["type"], "rejected", "{ctx}: {f}");
                    assert_eq!(f["reason"], e["reason"], "{ctx}");
                    let (code, reason) = c.closed().await;
                    assert_eq!(code, 4001, "{ctx}");
                    assert_eq!(reason, e["reason"].as_str().unwrap(), "{ctx}");
                }
            }
            continue;
        }
        if outcome == "unknown" {
            if s["op"] == "leave" {
                assert!(!clients.contains_key(user), "{ctx}: expected no socket");
            }
            continue;
        }
        let mut c = clients
            .remove(user)
            .unwrap_or_else(|| panic!("{ctx}: no socket"));
        if s["op"] == "leave" {
            c.send(r#"{"type":"leave"}"#).await;
            assert_eq!(c.closed().await.0, 1000, "{ctx}");
        } else {
            c.close().await;
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                let st = stats::fetch_json(w, strategy, token, STEP).await.unwrap();
                let gone =
                    !present(&st["rooms"], &n(user)) && !present(&st["lobby"]["rooms"], &n(user));
                if gone {
                    break;
                }
                assert!(Instant::now() < deadline, "{ctx}: user still present");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        let mut members: BTreeMap<String, u64> = BTreeMap::new();
        for p in e["promoted"].as_array().into_iter().flatten() {
            let pu = p["user"].as_str().unwrap();
            let pr = p["room"].as_str().unwrap();
            let pc = clients
                .get_mut(pu)
                .unwrap_or_else(|| panic!("{ctx}: promoted {pu} has no socket"));
            let j = frame(
                &pc.take("joined", |f| matches!(f, ServerFrame::Joined { .. }))
                    .await,
            );
            assert_eq!(j["room"], n(pr), "{ctx}");
            assert_eq!(j["user"], n(pu), "{ctx}");
            let m = j["members"].as_u64().unwrap();
            if let Some(prev) = members.insert(pr.to_string(), m) {
                assert!(m > prev, "{ctx}: promotion order in {pr}");
            }
        }
    }
    // Nobody got a seat the vector did not give.
    tokio::time::sleep(Duration::from_millis(30)).await;
    for (user, c) in clients.iter_mut() {
        c.drain().await;
        assert!(
            !c.inbox
                .iter()
                .any(|t| matches!(ServerFrame::parse(t), Some(ServerFrame::Joined { .. }))),
            "{name} on {strategy}: unexpected promotion of {user}"
        );
    }
    if let Some(f) = v.get("final") {
        let st = stats::fetch_json(w, strategy, token, STEP).await.unwrap();
        let mut views = vec![("objects", st["rooms"].clone())];
        if !st["lobby"].is_null() {
            views.push(("lobby", st["lobby"]["rooms"].clone()));
        }
        for (which, rooms) in views {
            let (seated, queued) = ours(&rooms, &tag);
            assert_eq!(
                seated,
                view(&f["seated"]),
                "{name} on {strategy}: seated ({which})"
            );
            assert_eq!(
                queued,
                view(&f["queued"]),
                "{name} on {strategy}: queued ({which})"
            );
        }
        assert_eq!(st["total"]["active_rooms"], f["active_rooms"], "{name}");
        assert_eq!(st["total"]["seated"], f["total_connections"], "{name}");
        assert_eq!(st["lobby_mode"], expect_lobby, "{name} on {strategy}");
    }
    for (_, c) in clients {
        c.close().await;
    }
}

#[test]
fn the_shared_admission_vectors_hold_over_real_sockets_for_every_strategy() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("scenarios/vectors/admission.json")).unwrap(),
    )
    .unwrap();
    let vectors = doc["vectors"].as_array().unwrap().clone();
    assert!(vectors.len() >= 10);
    // Vectors needing one view of every user even without a global limit run on per-room
    // and sharded only with LOBBY_MODE=always (local admission sees one object's users).
    let needs_global_view = ["duplicate-user"];
    let strategies = [Strategy::Single, Strategy::PerRoom, Strategy::Sharded(2)];
    let rt = runtime();
    // Four vectors at a time, each with its own workerd(s).
    for group in vectors.chunks(4) {
        std::thread::scope(|scope| {
            for (i, v) in group.iter().enumerate() {
                let rt = &rt;
                scope.spawn(move || {
                    let name = v["name"].as_str().unwrap();
                    let global = !v["limits"]["max_active_rooms"].is_null()
                        || !v["limits"]["max_total_connections"].is_null();
                    let hibernation = i % 2 == 0;
                    let auto = start(&settings(&v["limits"], hibernation, Some("auto")));
                    for s in strategies {
                        if s != Strategy::Single && needs_global_view.contains(&name) {
                            continue;
                        }
                        rt.block_on(replay(
                            &auto.target(),
                            auto.token(),
                            s,
                            v,
                            s != Strategy::Single && global,
                        ));
                    }
                    if !global {
                        let always = start(&settings(&v["limits"], hibernation, Some("always")));
                        for s in [Strategy::PerRoom, Strategy::Sharded(2)] {
                            rt.block_on(replay(&always.target(), always.token(), s, v, true));
                        }
                    }
                });
            }
        });
    }
}

#[test]
fn the_stats_endpoint_rejects_a_missing_or_wrong_token() {
    let w = start(&settings(&Value::Null, false, None));
    let rt = runtime();
    rt.block_on(async {
        let t = w.target();
        for token in [None, Some("wrong-token"), Some("")] {
            let r = stats::fetch_with(&t, Strategy::PerRoom, token, false, STEP).await;
            assert_eq!(r.unwrap_err(), StatsError::Unauthorized, "{token:?}");
        }
        // The 401 reveals nothing.
        let resp = stats::http_get(&t, "/s/single/stats", None, STEP)
            .await
            .unwrap();
        assert_eq!((resp.status, resp.body.len()), (401, 0));
        let ok = stats::fetch(&t, Strategy::Single, w.token(), STEP)
            .await
            .unwrap();
        assert_eq!(ok.strategy, "single");
    });
}

#[test]
fn a_ninth_user_is_rejected_room_full_and_the_room_keeps_serving() {
    let w = start(&settings(&Value::Null, true, None));
    let rt = runtime();
    rt.block_on(async {
        let t = w.target();
        let mut seated = Vec::new();
        for i in 1..=8 {
            let mut c = Client::open(&t, Strategy::PerRoom, "nine", &format!("u{i}")).await;
            assert_eq!(frame(&c.first().await)["members"], i);
            seated.push(c);
        }
        let mut ninth = Client::open(&t, Strategy::PerRoom, "nine", "u9").await;
        assert_eq!(
            frame(&ninth.first().await),
            serde_json::json!({"type": "rejected", "reason": "room_full"})
        );
        assert_eq!(ninth.closed().await, (4001, "room_full".to_string()));
        // The others still talk.
        let Message::Text(m) = client::message_frame(1, 42, "hi") else {
            unreachable!()
        };
        seated[0].send(&m).await;
        for c in &mut seated[1..] {
            let f = frame(
                &c.take("message", |f| matches!(f, ServerFrame::Message { .. }))
                    .await,
            );
            assert_eq!(
                (f["from"].as_str(), f["seq"].as_u64()),
                (Some("u1"), Some(1))
            );
        }
        for c in seated {
            c.close().await;
        }
    });
}

// -------------------------------------------------------------------------------------------
// `dosim drive` end to end

/// Every room full for the whole window (fill, 3 rooms of 8, hour-long sessions, no queue;
/// the carried users beyond 24 are rejected), so every message has exactly 7 recipients.
pub(crate) const FIXED_ROOMS: &str = r#"
name = "drive-fixed-rooms"
seed = 11
[window]
length = "1d"
[arrivals]
rate_per_second = 0.00833
[sessions]
length = { dist = "constant", value = "1h" }
message_interval = { dist = "exponential", mean = "250ms" }
message_bytes = 100
[rooms]
count = 3
choice = "fill"
[limits]
max_connections_per_room = 8
[platform]
hibernation = false
"#;

/// Churn: arrivals, departures, queues, promotions, abandons, the lobby (a global limit).
pub(crate) const CHURN: &str = r#"
name = "drive-churn"
seed = 7
[window]
length = "1d"
[arrivals]
rate_per_second = 3.0
[sessions]
length = { dist = "exponential", mean = "8s" }
patience = { dist = "constant", value = "2s" }
message_interval = { dist = "exponential", mean = "500ms" }
message_bytes = 64
[rooms]
count = 4
choice = "uniform"
[limits]
max_connections_per_room = 8
max_total_connections = 1000
queue_limit = 2
[platform]
hibernation = true
"#;

pub(crate) fn write_scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

pub(crate) struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub report: Option<Value>,
    pub elapsed: Duration,
}

pub(crate) fn dosim_drive(args: &[&str], json: &Path, limit: Duration) -> Finished {
    dosim_drive_interrupted(args, json, limit, &[])
}

/// `dosim drive`, sent SIGINT (Ctrl-C, to dosim alone, not to its workerd) at each of
/// `interrupts` after its start.
fn dosim_drive_interrupted(
    args: &[&str],
    json: &Path,
    limit: Duration,
    interrupts: &[Duration],
) -> Finished {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dosim"))
        .current_dir(repo())
        .arg("drive")
        .args(args)
        .args(["--quiet", "--json", json.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut from: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = from.read_to_string(&mut s);
            s
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let mut interrupts = interrupts.iter().peekable();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if interrupts
            .peek()
            .is_some_and(|&&at| started.elapsed() >= at)
        {
            interrupts.next();
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
                rustix::process::Signal::INT,
            )
            .unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dosim drive did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    Finished {
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        report: std::fs::read_to_string(json)
            .ok()
            .map(|t| serde_json::from_str(&t).unwrap()),
        elapsed,
    }
}

/// A run stopped early projects its month from the part of the window it covered: the
/// plan's session-seconds in that part (as the planner computes them for a window of that
/// length), and every monthly figure scaled by month ÷ that.
fn assert_projected_from_what_it_covered(r: &Value, scenario: &str, from_hours: u64) {
    let t = &r["drive"]["time"];
    let covered = t["covered_scenario_seconds"].as_f64().unwrap();
    let planned = t["planned_scenario_seconds"].as_f64().unwrap();
    assert_eq!(t["cut_short"], true, "{t}");
    assert!(covered > 0.0 && covered < planned, "{t}");
    // Speed-up 1: scenario seconds covered = real seconds the window ran.
    assert!(
        (t["duration_seconds"].as_f64().unwrap() - covered).abs() < 0.01,
        "{t}"
    );
    assert_eq!(r["window_seconds"].as_f64().unwrap(), covered);
    let s = dosim::scenario::Scenario::parse(scenario, Path::new("t.toml")).unwrap();
    let w = dosim::workload::Workload::new(&s);
    let part = dosim::drive::plan::DrivePlan::build(
        &s,
        &w,
        &dosim::drive::plan::PlanOptions {
            from_ns: Some(from_hours * 3600 * 1_000_000_000),
            duration: Duration::from_secs_f64(covered),
            speedup: 1.0,
        },
    )
    .unwrap()
    .projection;
    let p = &r["drive"]["projection"];
    let ws = p["window_session_seconds"].as_f64().unwrap();
    assert!(
        (ws - part.window_session_seconds).abs() <= 0.01 * part.window_session_seconds + 0.1,
        "{p} vs {part:?}"
    );
    let factor = part.month_session_seconds / part.window_session_seconds;
    let measured = r["usage"]["do_websocket_messages_in"].as_f64().unwrap();
    let monthly = r["monthly_usage"]["do_websocket_messages_in"]
        .as_f64()
        .unwrap();
    assert!(measured > 0.0, "{}", r["usage"]);
    assert!(
        (monthly / (measured * factor) - 1.0).abs() < 0.02,
        "monthly {monthly} vs {measured} × {factor}"
    );
    let warned = r["drive"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("cut short"));
    assert!(warned, "{}", r["drive"]["warnings"]);
    assert!(r["provenance"]["method"]
        .as_str()
        .unwrap()
        .contains("cut short"));
}

pub(crate) fn assert_reconciled(r: &Value, what: &str) {
    let rec = &r["drive"]["reconciliation"];
    assert_eq!(
        rec["ok"],
        true,
        "{what}: {}",
        serde_json::to_string_pretty(rec).unwrap()
    );
    let check = |name: &str| {
        rec["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{what}: no check {name}"))
            .clone()
    };
    // Messages the driver sent = messages the objects received; frames the driver's sockets
    // received = deliveries the objects made.
    let m = check("messages_in");
    assert_eq!(m["driver"], m["worker"], "{what}");
    assert!(m["worker"].as_u64().unwrap() > 0, "{what}: no messages");
    let d = check("messages_out");
    assert_eq!(d["driver"], d["worker"], "{what}");
    let dd = &r["drive"]["deliveries"];
    let n = |v: &Value| v.as_u64().unwrap();
    assert_eq!(
        n(&dd["received"]),
        n(&dd["expected"]) - n(&dd["missed"])
            + n(&dd["unexpected"])
            + n(&dd["duplicated"])
            + n(&dd["unknown"]),
        "{what}: {dd}"
    );
    assert_eq!(r["drive"]["status"], "complete", "{what}");
    assert_eq!(r["drive"]["faults"], serde_json::json!({}), "{what}");
}

#[test]
fn dosim_drive_local_reconciles_exactly_with_the_worker_for_every_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let fixed = write_scenario(dir.path(), "fixed.toml", FIXED_ROOMS);
    let churn = write_scenario(dir.path(), "churn.toml", CHURN);
    let strategies = ["single", "per-room", "sharded:2"];
    let runs: Vec<(String, Finished)> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for s in strategies {
            for (kind, path, extra) in [
                (
                    "fixed",
                    &fixed,
                    // No session of the plan arrives in these 3 s: no admission wait to check.
                    vec![
                        "--duration",
                        "3s",
                        "--from",
                        "2h",
                        "--threshold",
                        "admission_wait.p99 < 1000",
                    ],
                ),
                (
                    "churn",
                    &churn,
                    vec!["--duration", "3s", "--from", "1h", "--speedup", "2"],
                ),
            ] {
                let json = dir.path().join(format!("{kind}-{s}.json"));
                let mut args = vec![path.to_str().unwrap(), "--local", "--strategy", s];
                args.extend(extra);
                handles.push(scope.spawn(move || {
                    (
                        format!("{kind} {s}"),
                        dosim_drive(&args, &json, Duration::from_secs(60)),
                    )
                }));
            }
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (what, f) in runs {
        assert_eq!(f.code, Some(0), "{what}: {}", f.stderr);
        let r = f.report.unwrap_or_else(|| panic!("{what}: no report"));
        assert_eq!(r["mode"], "drive");
        assert_reconciled(&r, &what);
        if what.starts_with("fixed") {
            // Every message reached the 7 other members of its full room.
            let sent = r["messages"]["sent"].as_u64().unwrap();
            let missed = r["messages"]["missed"].as_u64().unwrap();
            assert_eq!(missed, 0, "{what}");
            assert_eq!(
                r["messages"]["delivered"].as_u64().unwrap(),
                sent * 7 - missed,
                "{what}"
            );
            assert_eq!(r["drive"]["deliveries"]["unexpected"], 0, "{what}");
            assert_eq!(r["usage"]["peak_connections"], 24, "{what}");
            assert!(
                r["drive"]["carried"]["rejected"].as_u64().unwrap() > 0,
                "{what}"
            );
            // Connects are projected per session: every session started was upgraded (the
            // rejected ones too), so the month has one connect per expected arrival.
            let month_arrivals = r["drive"]["projection"]["month_arrivals"].as_f64().unwrap();
            let connects = r["monthly_usage"]["do_websocket_connects"]
                .as_f64()
                .unwrap();
            assert!(month_arrivals > 0.0, "{what}");
            assert!(
                (connects - month_arrivals).abs() < 1e-6,
                "{what}: {connects}"
            );
            // Only carried sessions: a threshold on the window's admission wait has no
            // data, which does not fail the run (exit 0 above); the connects are measured.
            assert_eq!(r["drive"]["arrivals"]["planned"], 0, "{what}");
            let t = r["thresholds"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["check"] == "admission_wait.p99 < 1000")
                .unwrap();
            assert_eq!(
                (&t["verdict"], &t["pass"]),
                (&"no_data".into(), &true.into())
            );
            let l = &r["drive"]["latency_ms"];
            let n = |v: &Value| v["count"].as_u64().unwrap();
            assert_eq!(n(&l["window_connect"]), 0, "{what}");
            assert!(n(&l["carried_connect"]) >= 24, "{what}");
            assert_eq!(n(&r["latency_ms"]["connect"]), n(&l["carried_connect"]));
            assert!(
                r["latency_ms"]["connect"]["p99"].as_f64().is_some(),
                "{what}"
            );
        } else {
            // The churn really churned.
            let s = &r["sessions"];
            assert!(s["arrived"].as_u64().unwrap() >= 10, "{what}: {s}");
            assert!(s["queued"].as_u64().unwrap() > 0, "{what}: {s}");
            // With a lobby (a global limit outside single), its state changes are billed as
            // storage rows written, and they are the only rows here.
            let m = &r["monthly_usage"];
            let lobby_rows = m["lobby_rows_written"].as_f64().unwrap();
            if what.ends_with("single") {
                assert_eq!(lobby_rows, 0.0, "{what}");
            } else {
                assert!(lobby_rows > 0.0, "{what}");
                assert_eq!(
                    m["sqlite_rows_written"].as_f64().unwrap(),
                    lobby_rows,
                    "{what}"
                );
            }
        }
        // The same shape as `dosim simulate`.
        for key in [
            "sessions",
            "latency_ms",
            "messages",
            "usage",
            "monthly_usage",
            "bill",
            "thresholds",
            "timeseries",
            "provenance",
        ] {
            assert!(r.get(key).is_some(), "{what}: no {key}");
        }
        assert!(r["latency_ms"]["message"]["count"].as_u64().unwrap() > 0);
        assert!(r["latency_ms"]["object_queue"]["p50"].is_null());
        // Every key of the drive block is documented in sim/REPORT.md.
        let doc = std::fs::read_to_string(repo().join("sim/REPORT.md")).unwrap();
        for key in r["drive"].as_object().unwrap().keys() {
            assert!(
                doc.contains(&format!("`{key}`")),
                "{key} is not in sim/REPORT.md"
            );
        }
        assert!(
            r["drive"]["cpu"]["window_cpu_ms"].as_f64().is_some(),
            "{what}"
        );
    }
}

/// Full rooms under the Hibernation API, everyone leaving at the end: every phase of a short
/// run has enough events for a measured figure (30 connects in the ramp, hundreds of
/// messages in the window, 24 closes in the departures).
fn measured_rooms() -> String {
    FIXED_ROOMS.replace("hibernation = false", "hibernation = true")
}

fn source<'a>(r: &'a Value, line: &str) -> &'a str {
    r["drive"]["usage_sources"][line]
        .as_str()
        .unwrap_or_else(|| panic!("no source for {line}: {}", r["drive"]["usage_sources"]))
}

#[test]
fn a_local_drive_bills_measured_cpu_and_a_target_drive_says_nothing_was_measured() {
    let dir = tempfile::tempdir().unwrap();
    let text = measured_rooms();
    let scenario = write_scenario(dir.path(), "measured.toml", &text);
    let s = dosim::scenario::Scenario::from_file(&scenario).unwrap();
    let mut w = start(&LocalSettings::for_scenario(&s).unwrap());
    let (target, token) = (w.target().to_string(), w.token().to_string());
    let path = scenario.to_str().unwrap();
    let window = ["--duration", "3s", "--from", "2h"];
    let (local, remote) = std::thread::scope(|scope| {
        let local = scope.spawn(|| {
            let mut args = vec![path, "--local"];
            args.extend(window);
            dosim_drive(
                &args,
                &dir.path().join("local.json"),
                Duration::from_secs(60),
            )
        });
        let remote = scope.spawn(|| {
            // Also the driver on a real-time thread (the CI machine allows it: see below).
            let mut args = vec![
                path,
                "--target",
                &target,
                "--stats-token",
                &token,
                "--realtime",
            ];
            args.extend(window);
            dosim_drive(
                &args,
                &dir.path().join("target.json"),
                Duration::from_secs(60),
            )
        });
        (local.join().unwrap(), remote.join().unwrap())
    });
    w.stop();
    for (what, f) in [("local", &local), ("target", &remote)] {
        assert_eq!(f.code, Some(0), "{what}: {}", f.stderr);
    }

    // --local: workerd's CPU, read per thread in ns, gives every per-event cost, and the
    // bill is made of them.
    let r = local.report.as_ref().unwrap();
    assert_reconciled(r, "local");
    let cpu = &r["drive"]["cpu"];
    assert_eq!(cpu["clock"], "schedstat", "{cpu}");
    assert_eq!(cpu["not_measured"], Value::Null, "{cpu}");
    let figure = |k: &str| {
        let v = cpu[k].as_f64().unwrap_or_else(|| panic!("no {k}: {cpu}"));
        assert!(v > 0.0, "{k}: {cpu}");
        v
    };
    let per_request = figure("cpu_ms_per_worker_request");
    let per_connect = figure("cpu_ms_per_connect");
    let per_close = figure("cpu_ms_per_close");
    let per_message = figure("cpu_ms_per_message");
    assert!(cpu["ramp_connects"].as_u64().unwrap() >= 20, "{cpu}");
    assert!(cpu["departures_closes"].as_u64().unwrap() >= 20, "{cpu}");
    for line in ["worker_cpu_ms", "do_active_seconds"] {
        let src = source(r, line);
        assert!(src.starts_with("measured: "), "{line}: {src}");
        assert!(src.contains("workerd's CPU"), "{line}: {src}");
    }
    assert!(source(r, "sqlite_rows_read").starts_with("modelled: "));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-3 * b.abs().max(1e-9);
    let m = &r["monthly_usage"];
    let n = |v: &Value, k: &str| v[k].as_f64().unwrap();
    assert!(
        close(n(m, "worker_cpu_ms"), n(m, "worker_requests") * per_request),
        "{m}"
    );
    // The window's object time is its events × their CPU (a connect's less the Worker's).
    let u = &r["usage"];
    let count = |k: &str| cpu[k].as_f64().unwrap();
    let busy_ms = count("window_connects") * (per_connect - per_request)
        + count("window_messages_in") * per_message
        + count("window_closes") * per_close;
    assert_eq!(
        count("window_messages_in"),
        n(u, "do_websocket_messages_in")
    );
    assert!(close(n(u, "do_active_seconds"), busy_ms / 1e3), "{u} {cpu}");
    assert!(
        local.stdout.contains("target CPU (schedstat)"),
        "{}",
        local.stdout
    );
    let notes = r["provenance"]["notes"].to_string();
    assert!(notes.contains("one thread"), "{notes}");

    assert_eq!(r["drive"]["driver"]["realtime"], false);

    // --target: nothing measured on the server side, and every such line says so.
    let r = remote.report.as_ref().unwrap();
    // --realtime: said in the report and on the driver's line.
    assert_eq!(r["drive"]["driver"]["realtime"], true, "{}", r["drive"]);
    assert!(
        remote.stdout.contains("on a real-time thread (SCHED_FIFO)"),
        "{}",
        remote.stdout
    );
    assert_reconciled(r, "target");
    assert!(r["drive"].get("cpu").is_none(), "{}", r["drive"]);
    for line in ["worker_cpu_ms", "do_active_seconds"] {
        let src = source(r, line);
        assert!(src.starts_with("modelled: "), "{line}: {src}");
        assert!(
            src.contains("nothing measured on the server side against --target"),
            "{line}: {src}"
        );
    }
    assert!(source(r, "do_websocket_messages_in").starts_with("measured: "));
    let m = &r["monthly_usage"];
    assert!(close(
        n(m, "worker_cpu_ms"),
        n(m, "worker_requests") * s.platform.worker_cpu_ms_per_connect
    ));
    let notes = r["provenance"]["notes"].to_string();
    assert!(
        notes.contains("nothing measured on the server side"),
        "{notes}"
    );
}

#[test]
fn a_target_that_dies_mid_run_gives_a_partial_report_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(dir.path(), "churn.toml", CHURN);
    let s = dosim::scenario::Scenario::from_file(&scenario).unwrap();
    let mut w = start(&LocalSettings::for_scenario(&s).unwrap());
    let target = w.target().to_string();
    let token = w.token().to_string();
    let pid = w.pid();
    let json = dir.path().join("partial.json");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(4));
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).unwrap(),
            rustix::process::Signal::KILL,
        )
        .unwrap();
        Instant::now()
    });
    let f = dosim_drive(
        &[
            scenario.to_str().unwrap(),
            "--target",
            &target,
            "--stats-token",
            &token,
            "--duration",
            "30s",
            "--from",
            "1h",
        ],
        &json,
        Duration::from_secs(40),
    );
    let killed_at = killer.join().unwrap();
    w.stop();
    assert_eq!(f.code, Some(1), "{}", f.stderr);
    assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
    assert!(f.stderr.contains("stopped early"), "{}", f.stderr);
    // Promptly: well before the 30 s window would have ended.
    assert!(f.elapsed < Duration::from_secs(15), "{:?}", f.elapsed);
    let _ = killed_at;
    let r = f.report.expect("a partial report");
    assert_eq!(r["drive"]["status"], "target_down");
    assert!(
        r["messages"]["sent"].as_u64().unwrap() > 0,
        "{}",
        r["messages"]
    );
    assert!(r["latency_ms"]["message"]["count"].as_u64().unwrap() > 0);
    let faults = r["drive"]["faults"].as_object().unwrap();
    assert!(
        faults.values().any(|v| v.as_u64().unwrap() > 0),
        "{faults:?}"
    );
    // Cut short in the window: projected from what it covered, at most the time it ran.
    assert_eq!(r["drive"]["time"]["stopped_during"], "window");
    let covered = r["drive"]["time"]["covered_scenario_seconds"]
        .as_f64()
        .unwrap();
    assert!(covered < f.elapsed.as_secs_f64(), "{covered}");
    assert_projected_from_what_it_covered(&r, CHURN, 1);
}

#[test]
fn a_refused_target_is_reported_as_connection_refused() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_scenario(dir.path(), "churn.toml", CHURN);
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let json = dir.path().join("refused.json");
    let target = format!("ws://127.0.0.1:{port}");
    let f = dosim_drive(
        &[
            scenario.to_str().unwrap(),
            "--target",
            &target,
            "--duration",
            "2s",
            "--from",
            "1h",
        ],
        &json,
        Duration::from_secs(20),
    );
    assert_eq!(f.code, Some(1), "{}", f.stderr);
    assert!(f.stderr.contains("connection refused"), "{}", f.stderr);
    assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
    let r = f.report.expect("a report");
    assert_eq!(r["drive"]["status"], "target_down");
    assert!(r["drive"]["faults"]["connect_refused"].as_u64().unwrap() >= 1);
}

#[test]
fn several_strategies_are_driven_in_turn_and_compared_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let fixed = write_scenario(dir.path(), "fixed.toml", FIXED_ROOMS);
    let json = dir.path().join("several.json");
    let csv = dir.path().join("several.csv");
    let f = dosim_drive(
        &[
            fixed.to_str().unwrap(),
            "--local",
            "--strategies",
            "single,sharded:2",
            "--duration",
            "2s",
            "--from",
            "2h",
            "--csv",
            csv.to_str().unwrap(),
        ],
        &json,
        Duration::from_secs(60),
    );
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let doc = f.report.expect("a report");
    let reports = doc["reports"].as_array().expect("one report per strategy");
    let names: Vec<&str> = reports
        .iter()
        .map(|r| r["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["single", "sharded:2"]);
    for r in reports {
        assert_eq!(r["mode"], "drive");
        assert_reconciled(r, r["strategy"].as_str().unwrap());
    }
    // The same seeded plan for each: the same messages, whatever the strategy.
    assert_eq!(
        reports[0]["messages"]["sent"],
        reports[1]["messages"]["sent"]
    );
    // Each run's own workerd is named in the side-by-side table.
    for r in reports {
        let target = r["drive"]["target"].as_str().unwrap();
        assert!(f.stdout.contains(target), "{target}: {}", f.stdout);
    }
    let table = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.lines().nth(2).unwrap().contains(",sharded:2,drive,"));
}

/// Rooms full with queues behind them: at any moment some users wait, and a seated user
/// leaving promotes one (4 rooms of 8 seats, 80 users in the plan, queues of 8).
const QUEUES: &str = r#"
name = "drive-queues"
seed = 5
[window]
length = "1d"
[arrivals]
rate_per_second = 4.0
[sessions]
length = { dist = "exponential", mean = "20s" }
patience = { dist = "constant", value = "30s" }
message_interval = { dist = "exponential", mean = "1s" }
message_bytes = 64
[rooms]
count = 4
choice = "uniform"
[limits]
max_connections_per_room = 8
queue_limit = 8
[platform]
hibernation = true
"#;

#[test]
fn ctrl_c_writes_a_partial_report_stops_workerd_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let fixed = write_scenario(dir.path(), "fixed.toml", FIXED_ROOMS);
    let queues = write_scenario(dir.path(), "queues.toml", QUEUES);
    let secs = Duration::from_secs;
    // Past workerd's start and the 2 s ramp, into the window: one Ctrl-C, or two at once;
    // and one during a 30 s ramp.
    let runs = [
        ("fixed", &fixed, "60s", None, vec![secs(6)]),
        ("queues", &queues, "30s", None, vec![secs(6)]),
        (
            "queues, twice",
            &queues,
            "30s",
            None,
            vec![secs(6), secs(6)],
        ),
        ("ramp", &queues, "30s", Some("30s"), vec![secs(6)]),
    ];
    let done: Vec<(&str, Finished)> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .map(|(what, path, duration, ramp, at)| {
                let json = dir
                    .path()
                    .join(format!("{}.json", what.replace([' ', ','], "")));
                scope.spawn(move || {
                    let mut args = vec![path.to_str().unwrap(), "--local"];
                    args.extend(["--duration", duration, "--from", "2h"]);
                    args.extend(["--threshold", "monthly_cost_usd < 1000"]);
                    if let Some(r) = ramp {
                        args.extend(["--ramp", r]);
                    }
                    (*what, dosim_drive_interrupted(&args, &json, secs(40), at))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (what, f) in done {
        assert_eq!(f.code, Some(130), "{what}: {}", f.stderr);
        assert!(f.stderr.contains("interrupted"), "{what}: {}", f.stderr);
        assert!(!f.stderr.contains("panicked"), "{what}: {}", f.stderr);
        let r = f.report.unwrap_or_else(|| panic!("{what}: no report"));
        assert_eq!(r["drive"]["status"], "interrupted", "{what}");
        // The workerd it started is gone.
        let pid = r["drive"]["local"]["pid"].as_u64().expect("workerd's pid");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "{what}: workerd {pid} still runs"
        );
        // No false mismatch: the run stops in order (every user leaves and waits for the
        // server's close), so the counts match; when sockets had to be closed at once (a
        // second Ctrl-C), what differs is labelled not comparable, never a difference.
        let rec = &r["drive"]["reconciliation"];
        assert_eq!(rec["ok"], true, "{what}: {rec}");
        assert_eq!(rec["differences"], serde_json::json!([]), "{what}: {rec}");
        let labelled = rec["not_comparable"].as_array().map_or(0, Vec::len);
        if what == "queues, twice" {
            assert_eq!(
                labelled > 0,
                rec["not_comparable_reason"].is_string(),
                "{rec}"
            );
        } else {
            assert_eq!(labelled, 0, "{what}: {rec}");
        }
        let t = &r["drive"]["time"];
        assert_eq!(t["cut_short"], true, "{what}: {t}");
        assert!(f.stdout.contains("CUT SHORT"), "{what}: {}", f.stdout);
        if what == "ramp" {
            // Nothing of the window covered: no projection, no bill presented as real, and
            // a budget threshold has no data.
            assert_eq!(t["stopped_during"], "ramp", "{t}");
            assert_eq!(t["covered_scenario_seconds"], 0.0, "{t}");
            assert!(r["drive"]["projection"]["factor"].is_null());
            assert!(f.stdout.contains("not projected"), "{}", f.stdout);
            assert!(!f.stdout.contains("Bill under"), "{}", f.stdout);
            let budget = r["thresholds"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["check"] == "monthly_cost_usd < 1000")
                .unwrap();
            assert_eq!(budget["verdict"], "no_data", "{budget}");
            assert!(r["drive"]["carried"]["started"].as_u64().unwrap() > 0);
            continue;
        }
        assert_eq!(t["stopped_during"], "window", "{what}: {t}");
        // What was measured before the interrupt is there, and projected from the part of
        // the window it covered.
        assert!(r["messages"]["sent"].as_u64().unwrap() > 0, "{what}");
        assert!(r["latency_ms"]["message"]["count"].as_u64().unwrap() > 0);
        let text = if what == "fixed" { FIXED_ROOMS } else { QUEUES };
        assert_projected_from_what_it_covered(&r, text, 2);
        if what == "queues" {
            // The scenario did promote queued users, and the driver saw each promotion.
            let promoted = rec["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "promoted")
                .unwrap();
            assert!(promoted["worker"].as_u64().unwrap() > 0, "{promoted}");
        }
    }
}
