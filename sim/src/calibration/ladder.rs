//! Ladder: the standard runs `dosim calibrate` drives, and the fit of their measurements.
//!
//! Each point of the ladder is a short drive ([`crate::drive::drive`], a fresh local workerd
//! each with `--local`) of a generated scenario: about 32 sessions of one hour, seated during
//! the ramp in rooms of `room_size` ("fill": rooms full), sending messages at one rate during
//! the window, then all leaving. Every scenario sets a global connection limit (far above the
//! load), so the Worker (`LOBBY_MODE=auto`) puts joins through the lobby under `per-room` and
//! `sharded:N` and not under `single`, which never uses one.
//!
//! The ladder varies the room size (2, 4, 8: 1, 3, 7 recipients per message), the message
//! rate (one per 1 s and per 250 ms) and the strategy; `--quick` runs three cells per
//! strategy (2 members at both rates, 8 at the fast one), each with a 2 s window.
//!
//! # The CPU model (`--local`)
//!
//! Every run gives four rows, one per phase, each workerd's CPU (ms) in that phase:
//!
//! | row | = |
//! |---|---|
//! | probe | requests × `worker_cpu` |
//! | ramp | connects × (`worker_cpu` + `connect` + lobby × `rpc`) + objects created × `object_create` + seconds × `background` |
//! | window | connects × (`worker_cpu` + `connect`) + messages × `message` + deliveries × `per_recipient` + closes × `close` + lobby × (connects + closes) × `rpc` + seconds × `background` |
//! | departures | closes × (`close` + lobby × `rpc`) |
//!
//! fitted by weighted least squares ([`super::fit`]). Two parameters have no scenario key and
//! are recorded, not applied: `object_create` (a room object's and the lobby's first
//! request) and `background` (workerd's CPU per second of a phase beyond its events: the
//! event loop's timers; without it, windows at a low message rate put it into the
//! per-message cost).
//!
//! # The latency model (`--target`)
//!
//! Nothing is measured on the server side, so the rows are latencies: per run, the mean
//! connect latency = `connect_path` + lobby × `rpc` (a join through the lobby takes one RPC
//! before its answer), and the mean message latency from the write = `message_path` +
//! (room size ÷ 2) × `per_recipient` (the room object sends to its members in turn: the
//! i-th of k − 1 recipients waits i of them). `connect_path` and `message_path` hold the
//! network, the Worker and the object's own time together: connect, message, close and the
//! Worker's CPU cannot be separated from latency alone, and the file says so.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::fit::{self, Coefficient, Row};
use super::{Calibration, Header, Kind, Machine, Measured, PlatformFigures, ServiceFigures};
use crate::drive::{DriveError, RunStatus};
use crate::model::strategy::Strategy;
use crate::pricing::PriceTable;
use crate::report::Report;
use crate::scenario::{DistSpec, Dur, Scenario};

/// Sessions a ladder run seats (the Poisson plan gives about this many).
const SESSIONS: u32 = 32;
/// The ramp of every run.
const RAMP: Duration = Duration::from_secs(1);
/// The grace after every window.
const GRACE: Duration = Duration::from_millis(500);

/// What to calibrate against and how much.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Start a fresh local workerd per run (CPU-derived).
    pub local: bool,
    /// Or a running Worker (`ws://`, `wss://`): latency-derived.
    pub target: Option<String>,
    /// Extra roots for a `wss://` target.
    pub ca_cert: Option<PathBuf>,
    /// The Worker's folder for `local`.
    pub workers: Option<PathBuf>,
    /// The stats token of a target.
    pub stats_token: Option<String>,
    /// The strategies of the ladder.
    pub strategies: Vec<Strategy>,
    /// The tiny ladder.
    pub quick: bool,
}

/// One run of the ladder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The strategy.
    pub strategy: Strategy,
    /// Members per room.
    pub room_size: u32,
    /// Mean time between a session's messages (exponential).
    pub message_interval_ms: u64,
    /// The measured window.
    pub window: Duration,
}

/// The ladder for `strategies`.
///
/// The message rate varies at a fixed window length in both ladders, so that the CPU per
/// message is told apart from workerd's background CPU per second (at one rate the two are
/// proportional in every window and only their sum is determined).
pub fn points(strategies: &[Strategy], quick: bool) -> Vec<Point> {
    // (members per room, mean ms between a session's messages) for each strategy.
    let (cells, window): (Vec<(u32, u64)>, u64) = if quick {
        (vec![(2, 250), (8, 250), (2, 1000)], 2)
    } else {
        let mut all = Vec::new();
        for size in [2, 4, 8] {
            for interval in [1000, 250] {
                all.push((size, interval));
            }
        }
        (all, 5)
    };
    let mut out = Vec::new();
    for &strategy in strategies {
        for &(room_size, message_interval_ms) in &cells {
            out.push(Point {
                strategy,
                room_size,
                message_interval_ms,
                window: Duration::from_secs(window),
            });
        }
    }
    out
}

impl Point {
    /// Whether the Worker puts this run's joins through the lobby.
    pub fn lobby(&self) -> bool {
        self.strategy != Strategy::Single
    }

    /// The generated scenario of this point.
    pub fn scenario(&self, seed: u64) -> crate::Result<Scenario> {
        let rooms = 2 * SESSIONS.div_ceil(self.room_size);
        let text = format!(
            "name = \"calibrate-{}-k{}-{}ms\"\nseed = {seed}\n[window]\nlength = \"2h\"\n[arrivals]\nrate_per_second = {}\nprofile = \"flat\"\n[sessions]\nlength = {{ dist = \"constant\", value = \"1h\" }}\nmessage_interval = {{ dist = \"exponential\", mean = \"{}ms\" }}\n[rooms]\ncount = {rooms}\nchoice = \"fill\"\n[limits]\nmax_connections_per_room = {}\nmax_total_connections = 100000\n",
            self.strategy.url_segment(),
            self.room_size,
            self.message_interval_ms,
            f64::from(SESSIONS) / 3600.0,
            self.message_interval_ms,
            self.room_size,
        );
        Scenario::parse(&text, std::path::Path::new("calibration-ladder.toml"))
    }
}

/// What one run of the ladder measured: its parameters, its counts, workerd's CPU per phase
/// (absent against a `--target`) and its mean latencies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// 1-based.
    pub run: usize,
    /// The strategy.
    pub strategy: String,
    /// Joins through the lobby.
    pub lobby: bool,
    /// Members per room.
    pub room_size: u32,
    /// Mean time between a session's messages, ms.
    pub message_interval_ms: u64,
    /// The measured window, s.
    pub window_seconds: f64,
    /// The ramp, s.
    #[serde(default)]
    pub ramp_seconds: f64,
    /// The grace after the window (its CPU is the window row's), s.
    #[serde(default)]
    pub grace_seconds: f64,
    /// How it ended (`complete`, or why not).
    pub status: String,
    /// Sessions seated during the ramp.
    pub ramp_connects: u64,
    /// Objects created (room objects and the lobby).
    pub objects_created: u64,
    /// Upgrades in the window.
    pub window_connects: u64,
    /// Inbound messages in the window.
    pub window_messages_in: u64,
    /// Their deliveries.
    pub window_deliveries: u64,
    /// Departures in the window.
    pub window_closes: u64,
    /// Sockets closed in the final departures.
    pub departures_closes: u64,
    /// Probe requests the Worker answered alone.
    pub probe_requests: u64,
    /// workerd's CPU in the probe, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_cpu_ms: Option<f64>,
    /// In the ramp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_cpu_ms: Option<f64>,
    /// In the window and grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_cpu_ms: Option<f64>,
    /// In the departures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub departures_cpu_ms: Option<f64>,
    /// Mean connect latency (upgrade → first frame), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_mean_ms: Option<f64>,
    /// Connects it is the mean of.
    pub connect_count: u64,
    /// Mean message latency from the write, per recipient, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_mean_ms: Option<f64>,
    /// Deliveries it is the mean of.
    pub message_count: u64,
}

impl RunRecord {
    fn of(run: usize, p: &Point, r: &Report, status: &RunStatus) -> RunRecord {
        let cpu = r.drive.as_ref().and_then(|d| d.cpu.as_ref());
        let from_send = r.latency_ms.message_from_send.as_ref();
        RunRecord {
            run,
            strategy: p.strategy.to_string(),
            lobby: p.lobby(),
            room_size: p.room_size,
            message_interval_ms: p.message_interval_ms,
            window_seconds: p.window.as_secs_f64(),
            ramp_seconds: RAMP.as_secs_f64(),
            grace_seconds: GRACE.as_secs_f64(),
            status: match status {
                RunStatus::Complete => "complete".into(),
                RunStatus::TargetDown(w) | RunStatus::Interrupted(w) => w.clone(),
            },
            ramp_connects: cpu.map_or(0, |c| c.ramp_connects),
            objects_created: r.usage.objects_created,
            window_connects: cpu.map_or(0, |c| c.window_connects),
            window_messages_in: cpu.map_or(r.messages.accepted, |c| c.window_messages_in),
            window_deliveries: cpu.map_or(r.messages.delivered, |c| c.window_deliveries),
            window_closes: cpu.map_or(0, |c| c.window_closes),
            departures_closes: cpu.map_or(0, |c| c.departures_closes),
            probe_requests: cpu.map_or(0, |c| c.probe_requests),
            probe_cpu_ms: cpu.map(|c| c.probe_cpu_ms),
            ramp_cpu_ms: cpu.map(|c| c.ramp_cpu_ms),
            window_cpu_ms: cpu.map(|c| c.window_cpu_ms),
            departures_cpu_ms: cpu.and_then(|c| c.departures_cpu_ms),
            connect_mean_ms: r.latency_ms.connect.mean,
            connect_count: r.latency_ms.connect.count,
            message_mean_ms: from_send.and_then(|m| m.mean),
            message_count: from_send.map_or(0, |m| m.count),
        }
    }
}

/// Parameters of the CPU model, in column order (a later column is dropped first when two
/// cannot be told apart).
pub const CPU_PARAMETERS: [&str; 8] = [
    "worker_cpu",
    "connect",
    "message",
    "per_recipient",
    "close",
    "rpc",
    "object_create",
    "background",
];

/// Parameters of the latency model.
pub const LATENCY_PARAMETERS: [&str; 4] = ["connect_path", "rpc", "message_path", "per_recipient"];

/// The CPU model's rows of the runs that have CPU readings.
pub fn cpu_rows(runs: &[RunRecord]) -> Vec<Row> {
    let mut rows = Vec::new();
    for r in runs {
        let l = f64::from(u8::from(r.lobby));
        let f = |v: u64| v as f64;
        let row = |phase: &str, y: f64, x: [f64; 8]| {
            let events: f64 = x[..6].iter().sum::<f64>().max(1.0);
            Row {
                label: format!("run {} ({} k={}) {phase}", r.run, r.strategy, r.room_size),
                y,
                x: x.to_vec(),
                weight: 1.0 / events.sqrt(),
            }
        };
        if let Some(y) = r.probe_cpu_ms.filter(|_| r.probe_requests > 0) {
            rows.push(row(
                "probe",
                y,
                [f(r.probe_requests), 0., 0., 0., 0., 0., 0., 0.],
            ));
        }
        if let Some(y) = r.ramp_cpu_ms.filter(|_| r.ramp_connects > 0) {
            let n = f(r.ramp_connects);
            let x = [
                n,
                n,
                0.,
                0.,
                0.,
                l * n,
                f(r.objects_created),
                r.ramp_seconds,
            ];
            rows.push(row("ramp", y, x));
        }
        if let Some(y) = r.window_cpu_ms.filter(|_| r.window_messages_in > 0) {
            let (c, cl) = (f(r.window_connects), f(r.window_closes));
            let x = [
                c,
                c,
                f(r.window_messages_in),
                f(r.window_deliveries),
                cl,
                l * (c + cl),
                0.,
                r.window_seconds + r.grace_seconds,
            ];
            rows.push(row("window", y, x));
        }
        if let Some(y) = r.departures_cpu_ms.filter(|_| r.departures_closes > 0) {
            let n = f(r.departures_closes);
            rows.push(row("departures", y, [0., 0., 0., 0., n, l * n, 0., 0.]));
        }
    }
    rows
}

/// The latency model's rows.
pub fn latency_rows(runs: &[RunRecord]) -> Vec<Row> {
    let mut rows = Vec::new();
    for r in runs {
        let l = f64::from(u8::from(r.lobby));
        let label = |what: &str| format!("run {} ({} k={}) {what}", r.run, r.strategy, r.room_size);
        if let Some(y) = r.connect_mean_ms.filter(|_| r.connect_count > 0) {
            rows.push(Row {
                label: label("connect latency"),
                y,
                x: vec![1.0, l, 0.0, 0.0],
                weight: (r.connect_count as f64).sqrt(),
            });
        }
        if let Some(y) = r.message_mean_ms.filter(|_| r.message_count > 0) {
            rows.push(Row {
                label: label("message latency"),
                y,
                x: vec![0.0, 0.0, 1.0, f64::from(r.room_size) / 2.0],
                weight: (r.message_count as f64).sqrt(),
            });
        }
    }
    rows
}

/// Drive the ladder and fit it. `progress` hears of each run before it starts.
pub fn calibrate(
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize, &Point),
) -> Result<Calibration, DriveError> {
    let started = Instant::now();
    if !opts.local && opts.target.is_none() {
        return Err(DriveError::Usage(
            "say what to calibrate: --local (a fresh local workerd per run) or --target URL".into(),
        ));
    }
    if opts.strategies.is_empty() {
        return Err(DriveError::Usage("--strategies needs at least one".into()));
    }
    if let Some(n) = opts.strategies.iter().find_map(|s| match s {
        Strategy::Sharded(n) if *n > 1024 => Some(n),
        _ => None,
    }) {
        return Err(DriveError::Usage(format!(
            "--strategies sharded:{n}: the Worker serves sharded:1 to sharded:1024"
        )));
    }
    let machine = Machine::here();
    let pricing = PriceTable::builtin(PriceTable::DEFAULT).map_err(crate::Error::from)?;
    let ladder = points(&opts.strategies, opts.quick);
    let mut runs = Vec::new();
    for (i, p) in ladder.iter().enumerate() {
        progress(i + 1, ladder.len(), p);
        let scenario = p.scenario(i as u64 + 1)?;
        let run = crate::drive::drive(
            &scenario,
            &pricing,
            &[],
            &crate::drive::Options {
                target: opts.target.clone(),
                ca_cert: opts.ca_cert.clone(),
                local: opts.local,
                workers: opts.workers.clone(),
                strategy: p.strategy,
                from: Some(Duration::from_secs(3600)),
                duration: p.window,
                ramp: Some(RAMP),
                grace: GRACE,
                stats_token: opts.stats_token.clone(),
                progress: false,
                ..crate::drive::Options::default()
            },
        )?;
        let stop = !matches!(run.status, RunStatus::Complete);
        runs.push(RunRecord::of(i + 1, p, &run.report, &run.status));
        if stop {
            return Err(DriveError::Local(format!(
                "calibration run {} ({} k={}) stopped early: {}",
                i + 1,
                p.strategy,
                p.room_size,
                runs[i].status
            )));
        }
    }
    let mut cal = if opts.local {
        from_cpu(runs)
    } else {
        from_latency(runs)
    };
    let m = &mut cal.measured;
    m.machine = machine;
    m.date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    m.dosim_version = env!("CARGO_PKG_VERSION").into();
    m.ladder = if opts.quick { "quick" } else { "full" }.into();
    m.target = opts
        .target
        .clone()
        .unwrap_or_else(|| "local workerd (a fresh one per run, 127.0.0.1)".into());
    if opts.local {
        let workers = crate::drive::local::find_workers_dir(opts.workers.as_deref())?;
        m.workerd_version = workerd_version(&workers);
    } else {
        m.workerd_version = "unknown (a --target: the deployment's runtime)".into();
    }
    m.elapsed_seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    Ok(cal)
}

/// workerd's version from `workers/node_modules/workerd/package.json`.
pub fn workerd_version(workers: &std::path::Path) -> String {
    let path = workers.join("node_modules/workerd/package.json");
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("version").and_then(|v| v.as_str()).map(String::from))
        .unwrap_or_else(|| format!("unknown ({} unreadable)", path.display()))
}

/// A fitted cost as a constant service time, when it is positive; else why not.
fn positive(c: &Coefficient) -> Result<f64, String> {
    match (c.value, &c.not_separable) {
        (_, Some(why)) => Err(format!("{}: {why}", c.name)),
        (Some(v), None) if v > 0.0 => Ok(v),
        (v, None) => Err(format!(
            "{}: the fit is not positive ({:.5} ms, 95% CI {}): indistinguishable from 0 in this ladder",
            c.name,
            v.unwrap_or(0.0),
            match (c.ci95_low, c.ci95_high) {
                (Some(a), Some(b)) => format!("{a:.5}–{b:.5}"),
                _ => "none".into(),
            }
        )),
    }
}

/// To the nearest 10 ns (what the fit resolves, and shorter in the file).
fn ms_dur(ms: f64) -> Dur {
    Dur((Dur::from_secs_f64(ms / 1e3).0 + 5) / 10 * 10)
}

fn constant(ms: f64) -> DistSpec {
    DistSpec::constant(ms_dur(ms))
}

/// Fits applied although their 95% interval reaches 0 or below: the ladder cannot tell them
/// from 0 with confidence.
fn caveats(f: &fit::Fit) -> Vec<String> {
    f.coefficients
        .iter()
        .filter_map(|c| {
            let (v, lo, hi) = (c.value?, c.ci95_low?, c.ci95_high?);
            (v > 0.0 && lo <= 0.0).then(|| {
                format!(
                    "{}: {v:.4} ms but its 95% interval ({lo:.4} to {hi:.4} ms) reaches 0: weakly determined by this ladder",
                    c.name
                )
            })
        })
        .collect()
}

/// Six decimals (ms: nanoseconds) are more than any of these figures resolves.
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn measured_of(runs: Vec<RunRecord>, f: &fit::Fit, method: String) -> Measured {
    let r = |v: Option<f64>| v.map(round6);
    Measured {
        method,
        degrees_of_freedom: f.df,
        rms_residual: round6(f.rms_residual),
        fits: f
            .coefficients
            .iter()
            .map(|c| {
                let c = Coefficient {
                    value: r(c.value),
                    std_error: r(c.std_error),
                    ci95_low: r(c.ci95_low),
                    ci95_high: r(c.ci95_high),
                    ..c.clone()
                };
                (c.name.clone(), c)
            })
            .collect(),
        runs,
        residuals: f
            .residuals
            .iter()
            .map(|x| fit::Residual {
                observed: round6(x.observed),
                fitted: round6(x.fitted),
                residual: round6(x.residual),
                ..x.clone()
            })
            .collect(),
        ..Measured::default()
    }
}

/// The CPU-derived calibration of `runs`.
pub fn from_cpu(runs: Vec<RunRecord>) -> Calibration {
    let rows = cpu_rows(&runs);
    let f = fit::fit(&CPU_PARAMETERS, &rows);
    let mut not_separable = Vec::new();
    let mut take = |name: &str| match positive(f.get(name).expect("a parameter")) {
        Ok(v) => Some(v),
        Err(why) => {
            not_separable.push(why);
            None
        }
    };
    let worker = take("worker_cpu");
    let service = ServiceFigures {
        connect: take("connect").map(constant),
        message: take("message").map(constant),
        per_recipient: take("per_recipient").map(ms_dur),
        rpc: take("rpc").map(constant),
        close: take("close").map(constant),
    };
    not_separable.push("object_create (a new room object's or the lobby's first request) and background (workerd's CPU per second of a phase beyond its events): fitted and recorded in [measured.fits], not applied: the scenario has no key for them, so a calibrated connect excludes an object's creation".into());
    let method = format!(
        "weighted least squares over {} rows (one per phase of each run: probe, ramp, window with grace, departures; weight 1/√events) of workerd's CPU (ms, /proc/<pid>/task/*/schedstat) = probe requests × worker_cpu + connects × (worker_cpu + connect) + messages × message + deliveries × per_recipient + closes × close + lobby RPCs × rpc + objects created × object_create + seconds of the ramp and the window × background; 95% intervals β ± t(0.975, {}) × se. Service times are CPU standing for handling time: locally a handler runs to completion on workerd's one thread with in-memory storage",
        rows.len(),
        f.df
    );
    let mut measured = measured_of(runs, &f, method);
    measured.not_separable = not_separable;
    measured.caveats = caveats(&f);
    Calibration {
        calibration: Header {
            format: super::FORMAT,
            kind: Kind::Cpu,
            label:
                "measured on this machine with local workerd (dosim calibrate --local): CPU-derived"
                    .into(),
            not_cloudflare: super::NOT_CLOUDFLARE.into(),
        },
        platform: PlatformFigures {
            worker_cpu_ms_per_connect: worker.map(round6),
            service,
        },
        measured,
        path: PathBuf::new(),
    }
}

/// The latency-derived calibration of `runs`.
pub fn from_latency(runs: Vec<RunRecord>) -> Calibration {
    let rows = latency_rows(&runs);
    let f = fit::fit(&LATENCY_PARAMETERS, &rows);
    let mut not_separable = vec![
        "worker_cpu, connect, message, close: latency alone cannot separate them from the network and from each other (connect_path and message_path hold them together, recorded in [measured.fits], not applied)".to_string(),
    ];
    let mut take = |name: &str| match positive(f.get(name).expect("a parameter")) {
        Ok(v) => Some(v),
        Err(why) => {
            not_separable.push(why);
            None
        }
    };
    let service = ServiceFigures {
        rpc: take("rpc").map(constant),
        per_recipient: take("per_recipient").map(ms_dur),
        ..ServiceFigures::default()
    };
    let method = format!(
        "weighted least squares over {} rows (per run: the mean connect latency = connect_path + lobby × rpc; the mean message latency from the write = message_path + room size/2 × per_recipient; weight √samples); 95% intervals β ± t(0.975, {}) × se. Latency-derived: no CPU was measured",
        rows.len(),
        f.df
    );
    let mut measured = measured_of(runs, &f, method);
    measured.not_separable = not_separable;
    measured.caveats = caveats(&f);
    Calibration {
        calibration: Header {
            format: super::FORMAT,
            kind: Kind::Latency,
            label: "latency-derived (dosim calibrate --target): service times from latency differences across the ladder, no CPU measured".into(),
            not_cloudflare: "a --target's latencies include the network between this machine and the Worker; if the target is a local workerd, it is not Cloudflare's edge (one process, all objects on one thread)".into(),
        },
        platform: PlatformFigures {
            worker_cpu_ms_per_connect: None,
            service,
        },
        measured,
        path: PathBuf::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Synthetic runs whose CPU follows known costs exactly.
    fn synthetic() -> Vec<RunRecord> {
        let (w, c, m, r, cl, rpc, o) = (0.2, 0.4, 0.05, 0.037, 0.2, 0.15, 1.0);
        let mut runs = Vec::new();
        for (i, p) in points(&[Strategy::Single, Strategy::PerRoom], false)
            .iter()
            .enumerate()
        {
            let l = f64::from(u8::from(p.lobby()));
            let n = 30 + i as u64;
            let objects = if p.lobby() {
                n / u64::from(p.room_size) + 1
            } else {
                1
            };
            let msgs = 100 * (1 + i as u64 % 3);
            let deliveries = msgs * u64::from(p.room_size - 1);
            let nf = n as f64;
            runs.push(RunRecord {
                run: i + 1,
                strategy: p.strategy.to_string(),
                lobby: p.lobby(),
                room_size: p.room_size,
                ramp_connects: n,
                objects_created: objects,
                window_messages_in: msgs,
                window_deliveries: deliveries,
                departures_closes: n,
                // Windows of two lengths, so background is told apart from messages.
                window_seconds: if i % 2 == 0 { 5.0 } else { 3.0 },
                ramp_seconds: 1.0,
                probe_requests: 100,
                probe_cpu_ms: Some(100.0 * w),
                ramp_cpu_ms: Some(nf * (w + c + l * rpc) + objects as f64 * o),
                window_cpu_ms: Some(msgs as f64 * m + deliveries as f64 * r),
                departures_cpu_ms: Some(nf * (cl + l * rpc)),
                ..RunRecord::default()
            });
        }
        runs
    }

    #[test]
    fn synthetic_runs_recover_the_costs_into_the_service_block() {
        let cal = from_cpu(synthetic());
        let s = &cal.platform.service;
        let close = |d: &Option<DistSpec>, us: f64| {
            let ns = d.as_ref().unwrap().mean_ns();
            assert!((ns - us * 1e3).abs() < 2.0, "{ns} vs {us} us");
        };
        close(&s.connect, 400.0);
        close(&s.message, 50.0);
        close(&s.close, 200.0);
        close(&s.rpc, 150.0);
        assert_eq!(s.per_recipient, Some(Dur(37_000)));
        assert!((cal.platform.worker_cpu_ms_per_connect.unwrap() - 0.2).abs() < 1e-9);
        let o = &cal.measured.fits["object_create"];
        assert!((o.value.unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(cal.measured.residuals.len(), 48);
        // No background CPU in the synthetic runs: fitted as ~0.
        let b = cal.measured.fits["background"].value.unwrap();
        assert!(b.abs() < 1e-6, "{b}");
        // The file it writes parses back to the same figures.
        let again = Calibration::parse(&cal.to_toml(), std::path::Path::new("c.toml")).unwrap();
        assert_eq!(again.platform, cal.platform);
    }

    #[test]
    fn a_ladder_without_the_lobby_says_rpc_cannot_be_separated() {
        let runs: Vec<RunRecord> = synthetic().into_iter().filter(|r| !r.lobby).collect();
        let cal = from_cpu(runs);
        assert!(cal.platform.service.rpc.is_none());
        assert!(
            cal.measured
                .not_separable
                .iter()
                .any(|w| w.starts_with("rpc: none of")),
            "{:?}",
            cal.measured.not_separable
        );
        // object_create is 1 per run without the lobby: confounded with nothing else here,
        // but the others are still fitted.
        assert!(cal.platform.service.connect.is_some());
        // No runs at all: a file that says nothing was separable, no panic.
        let empty = from_cpu(Vec::new());
        assert!(empty.platform.service.connect.is_none());
        assert!(empty.measured.not_separable.len() >= 6);
    }

    #[test]
    fn latency_runs_give_per_recipient_and_rpc_only() {
        let runs: Vec<RunRecord> = points(&[Strategy::Single, Strategy::PerRoom], false)
            .iter()
            .enumerate()
            .map(|(i, p)| RunRecord {
                run: i + 1,
                strategy: p.strategy.to_string(),
                lobby: p.lobby(),
                room_size: p.room_size,
                connect_mean_ms: Some(1.5 + if p.lobby() { 0.3 } else { 0.0 }),
                connect_count: 30,
                message_mean_ms: Some(0.6 + 0.04 * f64::from(p.room_size) / 2.0),
                message_count: 300,
                ..RunRecord::default()
            })
            .collect();
        let cal = from_latency(runs);
        assert_eq!(cal.calibration.kind, Kind::Latency);
        let s = &cal.platform.service;
        assert!((s.rpc.as_ref().unwrap().mean_ns() - 300_000.0).abs() < 2.0);
        assert_eq!(s.per_recipient, Some(Dur(40_000)));
        assert!(s.connect.is_none() && cal.platform.worker_cpu_ms_per_connect.is_none());
    }

    #[test]
    fn the_ladder_scenarios_parse_and_use_the_lobby_off_single() {
        for p in points(&[Strategy::Single, Strategy::Sharded(4)], true) {
            let s = p.scenario(1).unwrap();
            assert_eq!(s.limits.max_connections_per_room, p.room_size);
            assert_eq!(p.lobby(), p.strategy != Strategy::Single);
        }
        assert_eq!(points(&[Strategy::Single], false).len(), 6);
    }
}
