//! The WebSocket driver's own cost: how many concurrent sockets one driver process holds,
//! its memory per connection, and its CPU per message — measured with `dosim::drive::drive`
//! itself (the library behind `dosim drive`), against
//!
//! - a minimal WebSocket room server written here (the "sink": joins everyone at once,
//!   relays each chat message to the other members of its room, answers `leave` with a 1000
//!   close), run as a **separate process** so that the driver's CPU, memory and file
//!   descriptors are its own — workerd would not take 10,000 sockets quickly on 2 cores;
//! - the real Worker on a local workerd, to compare the driver's CPU per message with
//!   workerd's;
//! - and beside the driver, a bare client (`bare_client.rs`) on the same 800-user workload
//!   against workerd: the least CPU any client spends on it here, the floor the driver's
//!   figures are read against.
//!
//! Run: `cargo bench --bench drive` (about 10 minutes). It prints a Markdown report and writes
//! it to `results/drive-benchmark.md`. Without `--bench` (as under `cargo test --benches`)
//! it does nothing.

use std::collections::HashMap;
use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dosim::drive::{self, DriveRun, Options};
use dosim::model::strategy::Strategy;
use dosim::pricing::PriceTable;
use dosim::scenario::Scenario;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

const SINK_ENV: &str = "DOSIM_BENCH_SINK";
const FLOOR_ENV: &str = "DOSIM_BENCH_FLOOR";
const CASE_ENV: &str = "DOSIM_BENCH_CASE";
const BARE_ENV: &str = "DOSIM_BENCH_BARE";
const FLOOR_RT_ENV: &str = "DOSIM_BENCH_FLOOR_RT";

#[path = "bare_client.rs"]
mod bare_client;

/// One measured run.
struct Case {
    /// `sink` or `workerd`.
    target: &'static str,
    /// Users in progress at the window's start.
    users: u32,
    /// Mean message interval, s.
    interval: f64,
    /// Window, s.
    window: u64,
    /// `--read-batch`, ms (0: each frame read as it arrives).
    read_batch_ms: u64,
    /// `--realtime`: the driver thread under SCHED_FIFO.
    realtime: bool,
}

const fn case(target: &'static str, users: u32, interval: f64, window: u64, batch: u64) -> Case {
    Case {
        target,
        users,
        interval,
        window,
        read_batch_ms: batch,
        realtime: false,
    }
}

const fn realtime(c: Case) -> Case {
    Case {
        realtime: true,
        ..c
    }
}

const CASES: [Case; 7] = [
    case("sink", 10_000, 20.0, 30, 1),
    case("sink", 2_000, 1.0, 30, 1),
    // Issue 8's side-by-side workload: 800 users in rooms of 8, a message per user per
    // second, 60 s, per-room; read in batches (the default), then each frame at once.
    case("workerd", 800, 1.0, 60, 1),
    case("workerd", 800, 1.0, 60, 0),
    case("workerd", 800, 1.0, 60, 1),
    // The same on a real-time thread (`--realtime`).
    realtime(case("workerd", 800, 1.0, 60, 1)),
    // Sockets held against workerd itself, not the sink.
    case("workerd", 10_000, 20.0, 30, 1),
];

fn run_case(i: usize) {
    dosim::drive::local::raise_nofile_limit();
    let c = &CASES[i];
    // The machine's own timer tail, beside the driver's send lag: a plain thread sleeping
    // to 790 moments a second (the 800-user workload's rate, 1 ns timer slack like the
    // driver), in its own process, while the case runs.
    let floor = (c.target == "workerd" && c.users == 800).then(|| {
        Command::new(std::env::current_exe().unwrap())
            .env(FLOOR_ENV, (c.window * 790).to_string())
            .env(FLOOR_RT_ENV, if c.realtime { "1" } else { "0" })
            .stdout(Stdio::piped())
            .spawn()
            .expect("the timer floor starts")
    });
    let run = if c.target == "sink" {
        let sink = Sink::start();
        let target = format!("ws://127.0.0.1:{}", sink.port);
        drive_once(c, Strategy::Sharded(16), Some(target))
    } else {
        drive_once(c, Strategy::PerRoom, None)
    };
    println!("ROW {}", row(c, &run).trim_end());
    if let Some(floor) = floor {
        let out = floor.wait_with_output().expect("the timer floor ends");
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    let d = run.report.drive.as_ref().unwrap();
    if let Some(cpu) = d.driver.cpu_us_per_message {
        println!("CPU_PER_MSG {cpu}");
    }
    if let Some(cpu) = d.driver.cpu_us_per_frame {
        println!("CPU_PER_FRAME {cpu}");
    }
    if let Some(p99) = run.report.latency_ms.send_lag.as_ref().and_then(|l| l.p99) {
        println!("SEND_LAG_P99 {p99}");
    }
}

fn main() {
    if std::env::var_os(SINK_ENV).is_some() {
        sink();
        return;
    }
    if let Some(n) = std::env::var(FLOOR_ENV).ok().and_then(|v| v.parse().ok()) {
        if std::env::var(FLOOR_RT_ENV).is_ok_and(|v| v == "1") {
            dosim::drive::priority::make_current_thread_realtime()
                .expect("the timer floor runs under SCHED_FIFO");
        }
        timer_floor(n);
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if let Ok(case) = std::env::var(CASE_ENV) {
        run_case(case.parse().expect("a case number"));
        return;
    }
    if let Ok(timing) = std::env::var(BARE_ENV) {
        let timing = match timing.as_str() {
            "on-time" => bare_client::Timing::OnTime,
            _ => bare_client::Timing::Every10Ms,
        };
        let window = Duration::from_secs(60);
        let settings = dosim::drive::local::LocalSettings::for_scenario(&scenario(800, 1.0))
            .expect("settings for the 800-user scenario");
        let run = bare_client::run(timing, window, &settings);
        println!("BARE {}", run.line(timing, window));
        println!("BARE_US_PER_FRAME {}", run.us_per_frame());
        return;
    }
    let nofile = dosim::drive::local::raise_nofile_limit();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut md = String::new();
    md.push_str("# `dosim drive`: the driver's own cost\n\n");
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    md.push_str(&format!(
        "Measured by `cargo bench --bench drive` (`benches/drive.rs`) on {cores} cores ({cpu}), open-file limit {}; load average {} at the start.\n\n",
        nofile.map_or("?".into(), |n| n.to_string()),
        load()
    ));
    md.push_str(
        "How: each row is one run of `dosim::drive::drive` (the library behind `dosim drive`) on a \
         scenario whose plan holds the given number of users in progress at `--from` (hour-long \
         sessions, 8-seat rooms filled in order, exponential message intervals, 200-byte bodies): \
         they connect during the ramp, then the measured window runs. \
         *Read batch* is `--read-batch`: how long received frames may wait to be read (their \
         arrival is the kernel's receive stamp either way; 0 ms reads each frame as it arrives). \
         *Driver thread* is `normal`, or `SCHED_FIFO` with `--realtime` (real-time priority \
         10, so that its wake-ups preempt the target's threads on a shared core). \
         *Sockets* is the peak the driver held open at once; *RSS/conn* is (driver RSS at the \
         window's start − RSS before the ramp) ÷ sockets open then; *CPU/msg* and *CPU/frame* \
         are the driver process's utime+stime (from `/proc/self/stat`, 10 ms resolution) over \
         the window and grace, ÷ messages sent, and ÷ messages sent + deliveries received; \
         *kernel* is the system-time share of it (on loopback a send's kernel path includes the \
         receiver's TCP processing). *Send lag* is actual − intended send time; *delivery* is \
         per recipient from the intended send time. \
         Targets: **sink** is a minimal Rust WebSocket room server in a separate process (it \
         relays each message to the other 7 members), **workerd** is the project's Worker on a \
         local workerd (`--local`, hibernation off), whose own CPU per message is shown beside \
         the driver's. Driver and target share the machine's cores.\n\n",
    );
    md.push_str("| target | users | msg/s planned | window | read batch | driver thread | sockets held | RSS/conn | driver CPU/msg | driver CPU/frame | kernel | send lag p50 / p99 | delivery p50 / p99 | faults | target CPU/msg |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");

    // Each case in a fresh process, so that memory figures are not blurred by a previous
    // run's freed memory.
    let mut cpu_per_msg: Vec<Option<f64>> = Vec::new();
    let mut cpu_per_frame: Vec<Option<f64>> = Vec::new();
    let mut lag_p99: Vec<Option<f64>> = Vec::new();
    let mut floors: Vec<String> = Vec::new();
    for (case, c) in CASES.iter().enumerate() {
        let text = child(CASE_ENV, &case.to_string());
        let row = text
            .lines()
            .find_map(|l| l.strip_prefix("ROW "))
            .unwrap_or_else(|| panic!("case {case} failed: {text}"));
        eprintln!("{row}");
        md.push_str(row);
        md.push('\n');
        if let Some(floor) = text.lines().find_map(|l| l.strip_prefix("FLOOR ")) {
            floors.push(format!(
                "case {} ({} ms batch, {}): {floor}",
                case + 1,
                c.read_batch_ms,
                if c.realtime {
                    "driver and floor under SCHED_FIFO"
                } else {
                    "normal threads"
                }
            ));
        }
        cpu_per_msg.push(value(&text, "CPU_PER_MSG "));
        cpu_per_frame.push(value(&text, "CPU_PER_FRAME "));
        lag_p99.push(value(&text, "SEND_LAG_P99 "));
    }
    // The floor: a bare client on the same workload (see bare_client.rs).
    let mut bare: Vec<(String, Option<f64>)> = Vec::new();
    for timing in ["on-time", "every-10ms"] {
        let text = child(BARE_ENV, timing);
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("BARE "))
            .unwrap_or_else(|| panic!("the bare client failed: {text}"))
            .to_string();
        eprintln!("{line}");
        bare.push((line, value(&text, "BARE_US_PER_FRAME ")));
    }
    md.push_str(&format!("\nLoad average at the end: {}.\n", load()));
    md.push_str(
        "\nThe floor under any driver here: a bare client (`benches/bare_client.rs`) on the \
         800-user workload against a fresh local workerd, 60 s, that does only what the workload \
         needs: one thread, one epoll set, plain reads, frames counted from their headers and \
         never parsed, no timestamps, no histograms, a zero masking key. It sends at the same \
         Poisson moments, either on time (sleeping to each send, reading at most 1 ms late, as \
         the driver does) or every 10 ms (sends up to 10 ms late):\n\n",
    );
    for (line, _) in &bare {
        md.push_str(&format!("- {line}\n"));
    }
    let driver_per_frame: Vec<f64> = [2, 4].iter().filter_map(|&i| cpu_per_frame[i]).collect();
    if let (false, Some(floor)) = (driver_per_frame.is_empty(), bare[0].1) {
        let mean = driver_per_frame.iter().sum::<f64>() / driver_per_frame.len() as f64;
        md.push_str(&format!(
            "\nIn this run the driver spent {mean:.2} µs per frame (mean of {} batched runs), {:.2}× the bare client's {floor:.2} µs sending on time.\n",
            driver_per_frame.len(),
            mean / floor
        ));
    }
    if !floors.is_empty() {
        md.push_str("\nThe machine's timer floor during the 800-user cases (a plain thread in its own process sleeping to 790 moments a second, 1 ns timer slack; lateness of its wake-ups, ms): no driver's send lag can be below it.\n\n");
        for f in &floors {
            md.push_str(&format!("- {f}\n"));
        }
    }
    // Send lag on a normal thread (cases 3 and 5) and a real-time one (case 6).
    let normal: Vec<String> = [2, 4]
        .iter()
        .filter_map(|&i| lag_p99[i].map(|v| format!("{v:.2}")))
        .collect();
    if let Some(rt) = lag_p99[5] {
        md.push_str(&format!(
            "\nSend lag p99 on the 800-user workload in this run: {} ms on a normal thread (cases 3 and 5), {rt:.3} ms on a real-time thread (case 6, `--realtime`).\n",
            normal.join(" and ")
        ));
    }
    // The issue-8 workload, batched (cases 2 and 4) against read at once (case 3).
    let batched: Vec<f64> = [2, 4].iter().filter_map(|&i| cpu_per_msg[i]).collect();
    if let (false, Some(at_once)) = (batched.is_empty(), cpu_per_msg[3]) {
        let mean = batched.iter().sum::<f64>() / batched.len() as f64;
        md.push_str(&format!(
            "\nIn this run, on the 800-user workload, reading in 1 ms batches cost the driver {mean:.1} µs of CPU per message (mean of {} runs) against {at_once:.1} µs reading each frame at once: {:.2}× as much.\n",
            batched.len(),
            mean / at_once
        ));
    }
    md.push_str(
        "\nReading: the driver holds 10,000 concurrent WebSockets in one process within the \
         default open-file limit, against the sink and against workerd; its CPU per message \
         includes receiving and timing every per-recipient delivery. Against workerd, compare \
         the driver's CPU per message with workerd's: the driver must stay well below it so \
         that it is never the bottleneck. The driver runs on one thread; to use more cores, \
         run shards (`--shard I/N`) and merge them.\n",
    );
    print!("{md}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/drive-benchmark.md");
    if std::fs::write(&out, &md).is_ok() {
        eprintln!("wrote {}", out.display());
    }
}

/// Run this bench again in a child process with `key=value` set; its standard output.
fn child(key: &str, value: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .arg("--bench")
        .env(key, value)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{key}={value} does not start: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number on a child's output line that starts with `prefix`.
fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn scenario(users: u32, interval_s: f64) -> Scenario {
    // `users` in progress at 2h: hour-long sessions at users/3600 arrivals per second.
    let text = format!(
        r#"name = "drive-bench-{users}"
seed = 5
[window]
length = "1d"
[arrivals]
rate_per_second = {rate}
[sessions]
length = {{ dist = "constant", value = "1h" }}
message_interval = {{ dist = "exponential", mean = "{ms}ms" }}
message_bytes = 200
[rooms]
count = {rooms}
choice = "fill"
[limits]
max_connections_per_room = 8
[platform]
hibernation = false
"#,
        rate = f64::from(users) / 3600.0,
        ms = (interval_s * 1000.0) as u64,
        rooms = users / 8 + users / 40 + 10,
    );
    Scenario::parse(&text, Path::new("bench.toml")).unwrap()
}

fn drive_once(c: &Case, strategy: Strategy, target: Option<String>) -> DriveRun {
    let s = scenario(c.users, c.interval);
    let pricing = PriceTable::builtin(PriceTable::DEFAULT).unwrap();
    let opts = Options {
        local: target.is_none(),
        target,
        strategy,
        from: Some(Duration::from_secs(2 * 3600)),
        duration: Duration::from_secs(c.window),
        progress: false,
        connect_timeout: Duration::from_secs(30),
        read_batch: Duration::from_millis(c.read_batch_ms),
        realtime: c.realtime,
        ..Options::default()
    };
    drive::drive(&s, &pricing, &[], &opts).expect("the run starts")
}

fn row(c: &Case, run: &DriveRun) -> String {
    let r = &run.report;
    let d = r.drive.as_ref().unwrap();
    let f = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v:.1} {unit}"));
    let f2 = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v:.2} {unit}"));
    let faults: u64 = d.faults.values().sum();
    let lag = r.latency_ms.send_lag.as_ref();
    format!(
        "| {} | {} | {:.0} | {} s | {} ms | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {} |\n",
        c.target,
        c.users,
        f64::from(c.users) / c.interval,
        c.window,
        c.read_batch_ms,
        if c.realtime { "SCHED_FIFO" } else { "normal" },
        d.driver.peak_open_sockets,
        f(d.driver.rss_bytes_per_connection.map(|b| b / 1024.0), "KiB"),
        f(d.driver.cpu_us_per_message, "µs"),
        f(d.driver.cpu_us_per_frame, "µs"),
        d.driver
            .cpu_kernel_share
            .map_or("n/a".into(), |k| format!("{:.0}%", k * 100.0)),
        f2(lag.and_then(|l| l.p50), "ms"),
        f2(lag.and_then(|l| l.p99), "ms"),
        f2(r.latency_ms.message.p50, "ms"),
        f2(r.latency_ms.message.p99, "ms"),
        faults,
        f(
            d.cpu
                .as_ref()
                .and_then(|c| c.cpu_ms_per_message)
                .map(|ms| ms * 1000.0),
            "µs"
        ),
    )
}

/// Sleep to `n` moments 1/790 s apart and print how late the wake-ups were.
fn timer_floor(n: usize) {
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    let step = Duration::from_secs(1) / 790;
    let start = std::time::Instant::now() + Duration::from_millis(10);
    let mut lags: Vec<u64> = Vec::with_capacity(n);
    for i in 0..n {
        let at = start + step * i as u32;
        let now = std::time::Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        lags.push(at.elapsed().as_nanos() as u64);
    }
    lags.sort_unstable();
    let q = |p: f64| lags[((lags.len() - 1) as f64 * p) as usize] as f64 / 1e6;
    println!(
        "FLOOR p50 {:.3}, p90 {:.3}, p99 {:.3}, p99.9 {:.3}, max {:.3} ({} wake-ups)",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        q(1.0),
        lags.len()
    );
}

// ---------------------------------------------------------------------------------------------
// The sink: a minimal room server in a child process.

struct Sink {
    child: std::process::Child,
    port: u16,
}

impl Sink {
    fn start() -> Sink {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(SINK_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sink starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("port ").unwrap().parse().unwrap();
        Sink { child, port }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Closing its stdin stops it; kill it if it lingers.
        drop(self.child.stdin.take());
        std::thread::sleep(Duration::from_millis(200));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Rooms = Arc<Mutex<HashMap<String, Vec<(u64, mpsc::UnboundedSender<Message>)>>>>;

fn sink() {
    dosim::drive::local::raise_nofile_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        println!("port {port}");
        std::io::stdout().flush().unwrap();
        // Stop when the parent closes our stdin.
        std::thread::spawn(|| {
            let mut s = String::new();
            let _ = std::io::stdin().read_line(&mut s);
            std::process::exit(0);
        });
        let rooms: Rooms = Arc::default();
        let mut next = 0u64;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            next += 1;
            tokio::spawn(serve(tcp, next, rooms.clone()));
        }
    });
}

async fn serve(mut tcp: tokio::net::TcpStream, id: u64, rooms: Rooms) {
    // The driver checks `GET /healthz` before it starts; answer it as the Worker does.
    let mut head = [0u8; 12];
    if matches!(tcp.peek(&mut head).await, Ok(n) if head[..n].starts_with(b"GET /healthz")) {
        use tokio::io::AsyncWriteExt as _;
        let _ = tcp
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await;
        return;
    }
    let mut uri = String::new();
    #[allow(clippy::result_large_err)] // the callback's type is tungstenite's
    let cb = |req: &Request, resp: Response| {
        uri = req.uri().to_string();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(
        tcp,
        cb,
        Some(dosim::drive::client::ws_config()),
    )
    .await
    else {
        return;
    };
    // /s/{strategy}/rooms/{room}?user={user}
    let (path, query) = uri.split_once('?').unwrap_or((&uri, ""));
    let room = path.rsplit('/').next().unwrap_or("").to_string();
    let user = query.strip_prefix("user=").unwrap_or("").to_string();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let members = {
        let mut r = rooms.lock().unwrap();
        let list = r.entry(room.clone()).or_default();
        list.push((id, tx.clone()));
        list.len()
    };
    let _ = tx.send(Message::Text(format!(
        r#"{{"type":"joined","room":"{room}","user":"{user}","members":{members}}}"#
    )));
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
    });
    let prefix = r#"{"type":"message","#;
    while let Some(Ok(m)) = stream.next().await {
        let Message::Text(t) = m else {
            if matches!(m, Message::Close(_)) {
                break;
            }
            continue;
        };
        if let Some(rest) = t.strip_prefix(prefix) {
            let out = format!(r#"{prefix}"from":"{user}",{rest}"#);
            let r = rooms.lock().unwrap();
            for (other, otx) in r.get(&room).into_iter().flatten() {
                if *other != id {
                    let _ = otx.send(Message::Text(out.clone()));
                }
            }
        } else if t.contains(r#""leave""#) {
            leave(&rooms, &room, id);
            let _ = tx.send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "left".into(),
            })));
            break;
        }
    }
    leave(&rooms, &room, id);
    drop(tx);
    let _ = writer.await;
}

fn leave(rooms: &Rooms, room: &str, id: u64) {
    let mut r = rooms.lock().unwrap();
    if let Some(list) = r.get_mut(room) {
        list.retain(|(i, _)| *i != id);
    }
}
