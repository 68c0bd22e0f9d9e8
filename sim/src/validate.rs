//! Validate: the same window of the same seeded plan, simulated and driven against a local
//! workerd, side by side, each figure with a verdict.
//!
//! # The two runs
//!
//! - **driven**: `repeats` runs of [`crate::drive::drive`] with `--local` (a fresh workerd
//!   each), of the stretch `[from, from + duration × speedup)` of the plan;
//! - **simulated**: `replications` runs of [`crate::des::simulate_stretch`] of the *same*
//!   stretch ([`crate::des::Stretch`]): the same carried sessions connecting over the same
//!   ramp, the same arrivals, message times and lengths on the drive's clock, nothing new
//!   after the window but what is in flight served. The scenario is simulated as a local
//!   workerd runs it: `platform.runtime = "local-workerd"` (the Worker, every object and the
//!   lobby on one FIFO server) and `network.model = "loopback"`. Its `platform.service`
//!   times and `worker_cpu_ms_per_connect` are used as given (a calibration sets them).
//!   Replications differ only in the platform's random stream (latency and service draws);
//!   the plan is the scenario seed's.
//!
//! # Verdicts (the tolerance rule)
//!
//! - **counts** fixed by the plan (sessions arriving in the window, sessions carried into
//!   it) must be equal; every other count must agree within 1% of the larger of the two
//!   means (so below 100 they must be equal);
//! - **latency percentiles** (connect, admission wait, message delivery; p50, p90, p99) must
//!   agree within *the drives' spread* (max − min over the repeats) + *the simulated 95%
//!   half-width* + *a floor*: the larger of 0.25 ms and the driver's own send lag at the
//!   same percentile, measured in the same drives (the driver's timer resolution and the
//!   machine's scheduling: a difference below it cannot be told from that noise). Message delivery is
//!   the driven `message_from_send` (from the actual write), because the simulator does not
//!   model the driver's send lag;
//! - **usage** lines that are counts (requests, connects, messages, lobby RPCs) follow the
//!   count rule; object time and Worker CPU (modelled from the scenario in the simulation,
//!   measured from workerd's CPU in the drive) must agree within 25%;
//! - **the bill**: the drives' monthly bill against the same projection of the simulated
//!   window (each usage line × the factor the drive applied to it), within 1% or $0.01.
//!
//! A row without data on either side has the verdict `no_data` and does not fail.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::des::{simulate_stretch, Outcome, Stretch};
use crate::drive::plan::{clock_label, DrivePlan, PlanOptions};
use crate::drive::{DriveError, DriveRun, RunStatus};
use crate::interval::Interval;
use crate::metrics::LatencySummary;
use crate::model::strategy::Strategy;
use crate::pricing::PriceTable;
use crate::report::Report;
use crate::scenario::{Network, Runtime, Scenario, NS_PER_SEC};
use crate::usage::Usage;
use crate::workload::Workload;

/// The smallest latency tolerance, ms (see the module documentation).
pub const LATENCY_FLOOR_MS: f64 = 0.25;
/// Relative tolerance of counts.
pub const COUNT_TOLERANCE: f64 = 0.01;
/// Relative tolerance of modelled-vs-measured time (object time, Worker CPU).
pub const TIME_TOLERANCE: f64 = 0.25;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The drive's options (`local` is forced on; `strategy` is set per run).
    pub drive: crate::drive::Options,
    /// Drives per strategy, each on a fresh workerd (at least 1).
    pub repeats: usize,
    /// Simulated replications (at least 1; from 2 on, a 95% interval).
    pub replications: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            drive: crate::drive::Options {
                local: true,
                progress: false,
                ..crate::drive::Options::default()
            },
            repeats: 3,
            replications: 8,
        }
    }
}

/// A verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the tolerance.
    Agree,
    /// Outside it.
    Differ,
    /// One side has no value.
    NoData,
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `counts`, `latency_ms`, `usage` or `bill_usd`.
    pub group: String,
    /// What it is, e.g. `admitted (arrivals)` or `message.p99`.
    pub name: String,
    /// Mean over the simulated replications.
    pub simulated: Option<f64>,
    /// Half-width of the simulated 95% interval (null below 2 replications).
    pub simulated_ci95: Option<f64>,
    /// Mean over the drives.
    pub driven: Option<f64>,
    /// Smallest drive's value.
    pub driven_min: Option<f64>,
    /// Largest drive's value.
    pub driven_max: Option<f64>,
    /// `driven − simulated`.
    pub difference: Option<f64>,
    /// `difference / simulated` (null when simulated is 0).
    pub relative_difference: Option<f64>,
    /// The largest |difference| that agrees.
    pub tolerance: Option<f64>,
    /// How the tolerance was obtained.
    pub rule: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// The stretch both ways ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowInfo {
    /// Plan time at the window's start, seconds.
    pub from_seconds: f64,
    /// The same as a clock label (`day 0 21:00:00`).
    pub from: String,
    /// How it was chosen.
    pub from_reason: String,
    /// Real length of the window, seconds.
    pub duration_seconds: f64,
    /// Plan seconds per real second.
    pub speedup: f64,
    /// The nominal ramp the simulation uses (the drives' actual ramps are in `drives`).
    pub ramp_seconds: f64,
    /// Sessions in progress at `from`.
    pub carried: u64,
    /// Sessions arriving in the window.
    pub arrivals: u64,
}

/// One drive, briefly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriveBrief {
    /// `complete`, or why it stopped.
    pub status: String,
    /// Its actual ramp, seconds.
    pub ramp_seconds: f64,
    /// Whether the driver's counts matched the Worker's stats (null: not reconciled).
    pub reconciled: Option<bool>,
    /// Its warnings.
    pub warnings: Vec<String>,
}

/// A validation of one scenario under one strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Scenario name.
    pub scenario: String,
    /// Strategy.
    pub strategy: String,
    /// Seed of the plan.
    pub seed: u64,
    /// Price table of the bills.
    pub pricing: String,
    /// WebSocket API: `hibernation` or `accept`.
    pub websocket_api: String,
    /// The stretch.
    pub window: WindowInfo,
    /// Simulated replications.
    pub replications: usize,
    /// Drives.
    pub repeats: usize,
    /// How each side was obtained.
    pub method: Vec<String>,
    /// The tolerance rule, in words.
    pub rule: Vec<String>,
    /// Every compared figure.
    pub rows: Vec<Row>,
    /// Each disagreement, in words, with the likely reason.
    pub disagreements: Vec<String>,
    /// True when no row differs.
    pub pass: bool,
    /// The drives.
    pub drives: Vec<DriveBrief>,
    /// Wall-clock time of the validation, seconds (simulation and drives).
    pub elapsed_seconds: f64,
}

/// The scenario as the simulator should see a local workerd: one server for everything,
/// loopback latencies; service times as given.
pub fn local_twin(scenario: &Scenario) -> Scenario {
    let mut s = scenario.clone();
    s.platform.runtime = Runtime::LocalWorkerd;
    s.network = Network::loopback();
    s
}

/// Validate `scenario` under each of `strategies` (one [`Validation`] each, in order).
pub fn validate_each(
    scenario: &Scenario,
    strategies: &[Strategy],
    pricing: &PriceTable,
    opts: &Options,
) -> Result<Vec<Validation>, DriveError> {
    strategies
        .iter()
        .map(|&s| validate(scenario, s, pricing, opts))
        .collect()
}

/// The most drives per strategy `--repeats` may ask for (each takes its window, its ramp and
/// a few seconds of real time, one after another).
pub const MAX_REPEATS: usize = 100;

/// Validate `scenario` under `strategy`: simulate the stretch, drive it `opts.repeats`
/// times against a local workerd, compare.
pub fn validate(
    scenario: &Scenario,
    strategy: Strategy,
    pricing: &PriceTable,
    opts: &Options,
) -> Result<Validation, DriveError> {
    if opts.repeats == 0 || opts.repeats > MAX_REPEATS {
        return Err(DriveError::Usage(format!(
            "--repeats must be from 1 to {MAX_REPEATS}, found {}",
            opts.repeats
        )));
    }
    if opts.replications == 0 || opts.replications > 1000 {
        return Err(DriveError::Usage(
            "--replications must be from 1 to 1000".into(),
        ));
    }
    let started = Instant::now();
    let d = &opts.drive;
    let workload = Workload::new(scenario);
    let plan = DrivePlan::build(
        scenario,
        &workload,
        &PlanOptions {
            from_ns: d.from.map(|f| f.as_nanos() as u64),
            duration: d.duration,
            speedup: d.speedup,
        },
    )
    .map_err(DriveError::Usage)?;
    let ramp = crate::drive::ramp_for(plan.carried.len(), d.ramp);
    let twin = local_twin(scenario);
    crate::des::check_footprint(&twin, &[strategy])?;
    let sims = simulate_all(&twin, strategy, &plan, ramp, opts.replications);
    let mut runs: Vec<DriveRun> = Vec::new();
    for k in 0..opts.repeats {
        let run = crate::drive::drive(
            scenario,
            pricing,
            &[],
            &crate::drive::Options {
                local: true,
                target: None,
                strategy,
                progress_label: Some(format!(
                    "validate {strategy}: drive {}/{}",
                    k + 1,
                    opts.repeats
                )),
                ..d.clone()
            },
        )?;
        if let RunStatus::TargetDown(why) | RunStatus::Interrupted(why) = &run.status {
            return Err(DriveError::Local(format!(
                "drive {} of {} stopped early ({why}): nothing to validate",
                k + 1,
                opts.repeats
            )));
        }
        runs.push(run);
    }
    let reports: Vec<&Report> = runs.iter().map(|r| &r.report).collect();
    let rows = compare(scenario, &plan, &sims, &reports, pricing);
    let disagreements = explain(&rows, strategy, !scenario.platform.calibrated.is_empty());
    let pass = rows.iter().all(|r| r.verdict != Verdict::Differ);
    Ok(Validation {
        scenario: scenario.name.clone(),
        strategy: strategy.to_string(),
        seed: scenario.seed,
        pricing: pricing.name.clone(),
        websocket_api: if scenario.platform.hibernation {
            "hibernation"
        } else {
            "accept"
        }
        .into(),
        window: WindowInfo {
            from_seconds: plan.time.from_ns as f64 / NS_PER_SEC as f64,
            from: clock_label(plan.time.from_ns),
            from_reason: plan.from_reason.clone(),
            duration_seconds: plan.time.duration.as_secs_f64(),
            speedup: plan.time.speedup,
            ramp_seconds: ramp.as_secs_f64(),
            carried: plan.carried.len() as u64,
            arrivals: plan.arrivals.len() as u64,
        },
        replications: opts.replications,
        repeats: opts.repeats,
        method: method_notes(scenario, opts),
        rule: rule_notes(),
        rows,
        disagreements,
        pass,
        drives: runs.iter().map(brief).collect(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

/// The simulated replications of the stretch, on the machine's cores (each is
/// deterministic, so the result does not depend on scheduling).
fn simulate_all(
    twin: &Scenario,
    strategy: Strategy,
    plan: &DrivePlan,
    ramp: Duration,
    replications: usize,
) -> Vec<Outcome> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(replications);
    let mut out: Vec<Option<Outcome>> = (0..replications).map(|_| None).collect();
    std::thread::scope(|scope| {
        for (t, chunk) in out.chunks_mut(replications.div_ceil(threads)).enumerate() {
            let base = t * replications.div_ceil(threads);
            scope.spawn(move || {
                for (i, slot) in chunk.iter_mut().enumerate() {
                    let stretch = Stretch {
                        plan,
                        ramp,
                        replica: (base + i) as u64,
                    };
                    *slot = Some(simulate_stretch(twin, strategy, stretch));
                }
            });
        }
    });
    out.into_iter()
        .map(|o| o.expect("every slot ran"))
        .collect()
}

fn brief(r: &DriveRun) -> DriveBrief {
    let d = r.report.drive.as_ref();
    DriveBrief {
        status: match &r.status {
            RunStatus::Complete => "complete".into(),
            RunStatus::TargetDown(s) | RunStatus::Interrupted(s) => s.clone(),
        },
        ramp_seconds: d.map_or(0.0, |d| d.time.ramp_seconds),
        reconciled: d.and_then(|d| d.reconciliation.as_ref()).map(|r| r.ok),
        warnings: d.map(|d| d.warnings.clone()).unwrap_or_default(),
    }
}

fn method_notes(s: &Scenario, o: &Options) -> Vec<String> {
    vec![
        format!(
            "driven: {} run(s) of `dosim drive --local`, each on a fresh workerd on 127.0.0.1 (measured)",
            o.repeats
        ),
        format!(
            "simulated: {} replication(s) of the same stretch of the seeded plan (seed {}), with platform.runtime = \"local-workerd\" (the Worker, every object and the lobby on one FIFO server, as workerd runs them on one event loop) and network.model = \"loopback\" (0.1 ms one way, no jitter); replications differ in the platform's random draws only",
            o.replications, s.seed
        ),
        format!(
            "service times (platform.service: connect {}, message {} + {} per recipient, close {}, rpc {}; Worker CPU {} ms per upgrade): {}",
            describe(&s.platform.service.connect),
            describe(&s.platform.service.message),
            s.platform.service.per_recipient,
            describe(&s.platform.service.close),
            describe(&s.platform.service.rpc),
            s.platform.worker_cpu_ms_per_connect,
            calibration_note(s)
        ),
        "counts and usage are the window's (the drive's definitions: sessions arriving in it, messages written in it and their deliveries); latencies include the ramp's connects, as the drive's latency_ms.connect does".into(),
    ]
}

/// Which of the service times a calibration set, and from which file; or that none did.
fn calibration_note(s: &Scenario) -> String {
    match crate::calibration::note(&s.platform) {
        Some(note) => format!("{note}; object creation and workerd's background CPU are fitted by a calibration but not applied (the scenario has no key for them)"),
        None => "as the scenario gives them, not calibrated".into(),
    }
}

fn describe(d: &crate::scenario::DistSpec) -> String {
    format!("{} mean", crate::scenario::Dur(d.mean_ns() as u64))
}

fn rule_notes() -> Vec<String> {
    vec![
        "counts fixed by the plan (arrivals, carried sessions): equal".into(),
        format!(
            "other counts and count-like usage lines: |driven − simulated| ≤ {}% of the larger",
            COUNT_TOLERANCE * 100.0
        ),
        format!(
            "latency percentiles: |driven − simulated| ≤ drives' spread (max − min) + simulated 95% half-width + floor; floor = max({LATENCY_FLOOR_MS} ms, the drives' driver send lag at the same percentile); message delivery uses the driven latency from the actual write"
        ),
        format!(
            "object time and Worker CPU (modelled vs measured): within {}% of the larger",
            TIME_TOLERANCE * 100.0
        ),
        "bill: the drives' monthly bill vs the simulated window under the drive's own projection (each line × the drive's factor for it), within 1% or $0.01".into(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Comparing

struct Side {
    values: Vec<f64>,
}

impl Side {
    fn of(values: impl IntoIterator<Item = Option<f64>>) -> Side {
        Side {
            values: values.into_iter().flatten().collect(),
        }
    }
    fn mean(&self) -> Option<f64> {
        (!self.values.is_empty())
            .then(|| self.values.iter().sum::<f64>() / self.values.len() as f64)
    }
    fn min(&self) -> Option<f64> {
        self.values.iter().copied().reduce(f64::min)
    }
    fn max(&self) -> Option<f64> {
        self.values.iter().copied().reduce(f64::max)
    }
}

enum Tol {
    Exact,
    Relative(f64),
    /// Latency: spread + CI + floor.
    Latency(f64),
    /// Dollars: relative, with an absolute floor.
    Money,
}

fn row(group: &str, name: &str, sim: Side, drv: Side, tol: Tol) -> Row {
    let ci = Interval::of(&sim.values).half_width_95;
    let (s, d) = (sim.mean(), drv.mean());
    let difference = s.zip(d).map(|(s, d)| d - s);
    let larger = s.zip(d).map(|(s, d)| s.abs().max(d.abs()));
    let (tolerance, rule) = match tol {
        Tol::Exact => (Some(0.0), "exact (fixed by the plan)".to_string()),
        Tol::Relative(r) => (
            larger.map(|l| l * r),
            format!("{}% of the larger", r * 100.0),
        ),
        Tol::Latency(floor) => {
            let spread = drv.max().zip(drv.min()).map_or(0.0, |(a, b)| a - b);
            let c = ci.unwrap_or(0.0);
            (
                Some(spread + c + floor),
                format!("spread {spread:.3} + CI {c:.3} + floor {floor:.3} ms"),
            )
        }
        Tol::Money => (
            larger.map(|l| (l * COUNT_TOLERANCE).max(0.01)),
            "1% of the larger, at least $0.01".to_string(),
        ),
    };
    let verdict = match (difference, tolerance) {
        (Some(diff), Some(t)) if diff.abs() <= t + 1e-9 => Verdict::Agree,
        (Some(_), Some(_)) => Verdict::Differ,
        _ => Verdict::NoData,
    };
    Row {
        group: group.into(),
        name: name.into(),
        simulated: s,
        simulated_ci95: ci,
        driven: d,
        driven_min: drv.min(),
        driven_max: drv.max(),
        difference,
        relative_difference: difference
            .zip(s)
            .and_then(|(x, s)| (s != 0.0).then(|| x / s)),
        tolerance,
        rule,
        verdict,
    }
}

/// Every row, simulated against driven.
fn compare(
    scenario: &Scenario,
    _plan: &DrivePlan,
    sims: &[Outcome],
    drives: &[&Report],
    pricing: &PriceTable,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let sim = |f: &dyn Fn(&Outcome) -> f64| Side::of(sims.iter().map(|o| Some(f(o))));
    let drv = |f: &dyn Fn(&Report) -> f64| Side::of(drives.iter().map(|r| Some(f(r))));
    let details = |r: &Report| r.drive.clone().unwrap_or_default();
    let c = Tol::Relative(COUNT_TOLERANCE);
    // -- counts
    rows.push(row(
        "counts",
        "sessions arriving in the window",
        sim(&|o| o.sessions.arrived as f64),
        drv(&|r| r.sessions.arrived as f64),
        Tol::Exact,
    ));
    rows.push(row(
        "counts",
        "sessions carried into the window",
        sim(&|o| o.carried.arrived as f64),
        drv(&|r| details(r).carried.started as f64),
        Tol::Exact,
    ));
    type Pick = fn(&crate::report::SessionCounts) -> u64;
    let arrivals: [(&str, Pick); 4] = [
        ("admitted (arrivals)", |s| s.admitted),
        ("queued (arrivals)", |s| s.queued),
        ("rejected (arrivals)", |s| s.rejected),
        ("abandoned (arrivals)", |s| s.abandoned),
    ];
    for (name, f) in arrivals {
        rows.push(row(
            "counts",
            name,
            sim(&|o| f(&o.sessions) as f64),
            drv(&|r| f(&r.sessions) as f64),
            Tol::Relative(COUNT_TOLERANCE),
        ));
    }
    rows.push(row(
        "counts",
        "admitted (carried)",
        sim(&|o| o.carried.admitted as f64),
        drv(&|r| details(r).carried.admitted as f64),
        Tol::Relative(COUNT_TOLERANCE),
    ));
    rows.push(row(
        "counts",
        "queued (carried)",
        sim(&|o| o.carried.queued as f64),
        drv(&|r| details(r).carried.queued as f64),
        Tol::Relative(COUNT_TOLERANCE),
    ));
    rows.push(row(
        "counts",
        "rejected (carried)",
        sim(&|o| o.carried.rejected as f64),
        drv(&|r| details(r).carried.rejected as f64),
        Tol::Relative(COUNT_TOLERANCE),
    ));
    rows.push(row(
        "counts",
        "connects (window)",
        sim(&|o| o.window_counts.connects as f64),
        drv(&|r| r.usage.billable.do_websocket_connects),
        Tol::Relative(COUNT_TOLERANCE),
    ));
    rows.push(row(
        "counts",
        "inbound messages",
        sim(&|o| o.messages_sent as f64),
        drv(&|r| r.messages.sent as f64),
        Tol::Relative(COUNT_TOLERANCE),
    ));
    rows.push(row(
        "counts",
        "outbound messages",
        sim(&|o| o.window_counts.messages_out as f64),
        drv(&|r| r.usage.billable.do_websocket_messages_out),
        Tol::Relative(COUNT_TOLERANCE),
    ));
    rows.push(row(
        "counts",
        "deliveries",
        sim(&|o| o.deliveries as f64),
        drv(&|r| r.messages.delivered as f64),
        Tol::Relative(COUNT_TOLERANCE),
    ));
    rows.push(row(
        "counts",
        "lobby RPCs",
        sim(&|o| o.window_counts.lobby_rpcs as f64),
        drv(&|r| r.usage.billable.do_requests),
        c,
    ));
    // -- latencies
    // The driver's own lateness at the same percentile: the machine's scheduling noise.
    let floor = |stat: &str| {
        Side::of(
            drives
                .iter()
                .map(|r| r.latency_ms.send_lag.as_ref().and_then(|s| s.stat(stat))),
        )
        .mean()
        .unwrap_or(0.0)
        .max(LATENCY_FLOOR_MS)
    };
    type Lat = fn(&Report) -> Option<LatencySummary>;
    type SimLat = fn(&Outcome) -> LatencySummary;
    let latencies: [(&str, SimLat, Lat); 3] = [
        (
            "connect",
            |o| o.connect.summary(),
            |r| Some(r.latency_ms.connect.clone()),
        ),
        (
            "admission_wait",
            |o| o.admission_wait.summary(),
            |r| Some(r.latency_ms.admission_wait.clone()),
        ),
        (
            "message",
            |o| o.message.summary(),
            |r| r.latency_ms.message_from_send.clone(),
        ),
    ];
    for (name, s, d) in latencies {
        let sims_l: Vec<LatencySummary> = sims.iter().map(s).collect();
        let drv_l: Vec<Option<LatencySummary>> = drives.iter().map(|r| d(r)).collect();
        for stat in ["p50", "p90", "p99"] {
            rows.push(row(
                "latency_ms",
                &format!("{name}.{stat}"),
                Side::of(sims_l.iter().map(|l| l.stat(stat))),
                Side::of(drv_l.iter().map(|l| l.as_ref().and_then(|l| l.stat(stat)))),
                Tol::Latency(floor(stat)),
            ));
        }
    }
    // -- usage
    type Line = fn(&Usage) -> f64;
    let lines: [(&str, Line, bool); 8] = [
        ("worker_requests", |u| u.worker_requests, false),
        ("worker_cpu_ms", |u| u.worker_cpu_ms, true),
        ("do_requests", |u| u.do_requests, false),
        ("do_websocket_connects", |u| u.do_websocket_connects, false),
        (
            "do_websocket_messages_in",
            |u| u.do_websocket_messages_in,
            false,
        ),
        (
            "do_websocket_messages_out",
            |u| u.do_websocket_messages_out,
            false,
        ),
        ("do_active_seconds", |u| u.do_active_seconds, true),
        ("sqlite_rows_written", |u| u.sqlite_rows_written, false),
    ];
    for (name, f, time) in lines {
        if name == "do_active_seconds" && !scenario.platform.hibernation {
            continue; // accept(): the simulated figure includes the ramp
        }
        rows.push(row(
            "usage",
            name,
            sim(&|o| f(&o.window_usage)),
            drv(&|r| f(&r.usage.billable)),
            Tol::Relative(if time {
                TIME_TOLERANCE
            } else {
                COUNT_TOLERANCE
            }),
        ));
    }
    // -- the bill
    let mut sim_bills = Vec::new();
    for r in drives {
        for o in sims {
            let m = project_like(&o.window_usage, &r.usage.billable, r);
            if let Ok(b) = crate::pricing::price(&m, pricing) {
                sim_bills.push(Some(decimal(&b.total_usd)));
            }
        }
    }
    rows.push(row(
        "bill_usd",
        "monthly bill",
        Side::of(sim_bills),
        Side::of(drives.iter().map(|r| Some(decimal(&r.bill.total_usd)))),
        Tol::Money,
    ));
    rows
}

fn decimal(d: &rust_decimal::Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

/// `sim` (a window's usage) projected onto the month as the drive `r` projected its own
/// window usage `w`: each line × the drive's factor for that line (its monthly ÷ window
/// figure), or the drive's overall factor where its window figure is 0.
fn project_like(sim: &Usage, w: &Usage, r: &Report) -> Usage {
    let m = &r.monthly_usage.usage.billable;
    let f = r.monthly_usage.factor;
    let p = |s: f64, w: f64, m: f64| s * if w > 0.0 { m / w } else { f };
    Usage {
        worker_requests: p(sim.worker_requests, w.worker_requests, m.worker_requests),
        worker_cpu_ms: p(sim.worker_cpu_ms, w.worker_cpu_ms, m.worker_cpu_ms),
        do_requests: p(sim.do_requests, w.do_requests, m.do_requests),
        do_websocket_connects: p(
            sim.do_websocket_connects,
            w.do_websocket_connects,
            m.do_websocket_connects,
        ),
        do_websocket_messages_in: p(
            sim.do_websocket_messages_in,
            w.do_websocket_messages_in,
            m.do_websocket_messages_in,
        ),
        do_websocket_messages_out: p(
            sim.do_websocket_messages_out,
            w.do_websocket_messages_out,
            m.do_websocket_messages_out,
        ),
        do_active_seconds: p(
            sim.do_active_seconds,
            w.do_active_seconds,
            m.do_active_seconds,
        ),
        do_idle_tail_seconds: m.do_idle_tail_seconds,
        sqlite_rows_read: p(sim.sqlite_rows_read, w.sqlite_rows_read, m.sqlite_rows_read),
        sqlite_rows_written: p(
            sim.sqlite_rows_written,
            w.sqlite_rows_written,
            m.sqlite_rows_written,
        ),
        sqlite_stored_gb_months: m.sqlite_stored_gb_months,
    }
}

/// Each differing row in words, with the likely reason.
fn explain(rows: &[Row], strategy: Strategy, calibrated: bool) -> Vec<String> {
    rows.iter()
        .filter(|r| r.verdict == Verdict::Differ)
        .map(|r| {
            let why = match (r.group.as_str(), r.name.as_str()) {
                ("latency_ms", n) if n.starts_with("message") && r.difference.unwrap_or(0.0) > 0.0 => {
                    "the drive is slower: workerd's CPU per message, the loopback stack and the driver's own receive path on a loaded machine are more than the scenario's service times say (calibrate them)".to_string()
                }
                ("latency_ms", _) if r.difference.unwrap_or(0.0) > 0.0 => {
                    "the drive is slower than the scenario's service times say: workerd's per-event CPU (a new object, the lobby) and the machine's load".to_string()
                }
                ("latency_ms", _) => {
                    "the simulation is slower: the scenario's service times exceed workerd's CPU per event, or the one shared server queues more than workerd does".to_string()
                }
                ("usage", "worker_cpu_ms") | ("usage", "do_active_seconds") if calibrated => {
                    "modelled from the calibrated service times in the simulation, measured from workerd's CPU in the drive: the calibration leaves out a new object's first request and workerd's background CPU, and its fits have the intervals it states".to_string()
                }
                ("usage", "worker_cpu_ms") | ("usage", "do_active_seconds") => {
                    "modelled from the scenario's service times and Worker CPU in the simulation, measured from workerd's CPU in the drive: calibrate them".to_string()
                }
                ("counts", _) | ("usage", _) => format!(
                    "timing-dependent outcomes: which of two near-simultaneous events (a departure and a join, a promotion and a patience timeout) comes first differs between the simulated and the real clock{}",
                    if strategy == Strategy::Single { "" } else { ", and lobby RPCs add their own ordering" }
                ),
                _ => "follows from the differing usage lines above".to_string(),
            };
            format!(
                "{} {}: simulated {}, driven {} (difference {}, tolerance {}): {why}",
                r.group,
                r.name,
                num(r.simulated),
                num(r.driven),
                num(r.difference),
                num(r.tolerance)
            )
        })
        .collect()
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x == x.trunc() && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) if x.abs() >= 100.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.3}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

impl Validation {
    /// The rows as aligned text, then the verdict and the disagreements.
    pub fn render_text(&self) -> String {
        let mut o = format!(
            "dosim validate: scenario {} · strategy {} · seed {} · {} · {}\n  window {} + {:.0} s (×{}), ramp {:.1} s, {} carried, {} arriving; {} drive(s) vs {} simulated replication(s)\n\n",
            self.scenario,
            self.strategy,
            self.seed,
            self.websocket_api,
            self.pricing,
            self.window.from,
            self.window.duration_seconds,
            self.window.speedup,
            self.window.ramp_seconds,
            self.window.carried,
            self.window.arrivals,
            self.repeats,
            self.replications
        );
        o.push_str(&format!(
            "{:<34} {:>12} {:>9} {:>12} {:>21} {:>11} {:>10}  verdict\n",
            "figure", "simulated", "±95%", "driven", "drives min–max", "difference", "tolerance"
        ));
        let mut group = "";
        for r in &self.rows {
            if r.group != group {
                group = &r.group;
                o.push_str(&format!("{group}\n"));
            }
            o.push_str(&format!(
                "  {:<32} {:>12} {:>9} {:>12} {:>21} {:>11} {:>10}  {}\n",
                r.name,
                num(r.simulated),
                num(r.simulated_ci95),
                num(r.driven),
                format!("{}–{}", num(r.driven_min), num(r.driven_max)),
                num(r.difference),
                num(r.tolerance),
                verdict(r.verdict)
            ));
        }
        o.push_str(&format!(
            "\n{}\n",
            if self.pass {
                "PASS: every figure agrees within its tolerance".to_string()
            } else {
                format!(
                    "FAIL: {} figure(s) differ beyond their tolerance",
                    self.disagreements.len()
                )
            }
        ));
        for d in &self.disagreements {
            o.push_str(&format!("  - {d}\n"));
        }
        o.push_str("\nRule:\n");
        for r in &self.rule {
            o.push_str(&format!("  - {r}\n"));
        }
        o.push_str("Method:\n");
        for m in &self.method {
            o.push_str(&format!("  - {m}\n"));
        }
        o.push_str(&format!("Took {:.1} s.\n", self.elapsed_seconds));
        o
    }

    /// The rows as a Markdown table with the verdict and the disagreements.
    pub fn render_markdown(&self) -> String {
        let mut o = format!(
            "### {} · {} ({}, window {} + {:.0} s ×{}, {} drives vs {} replications)\n\n",
            self.scenario,
            self.strategy,
            self.websocket_api,
            self.window.from,
            self.window.duration_seconds,
            self.window.speedup,
            self.repeats,
            self.replications
        );
        o.push_str("| group | figure | simulated | ±95% | driven | drives min–max | difference | tolerance | verdict |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n");
        for r in &self.rows {
            o.push_str(&format!(
                "| {} | {} | {} | {} | {} | {}–{} | {} | {} | {} |\n",
                r.group,
                r.name,
                num(r.simulated),
                num(r.simulated_ci95),
                num(r.driven),
                num(r.driven_min),
                num(r.driven_max),
                num(r.difference),
                num(r.tolerance),
                verdict(r.verdict)
            ));
        }
        o.push_str(&format!(
            "\n**{}**\n",
            if self.pass { "PASS" } else { "FAIL" }
        ));
        for d in &self.disagreements {
            o.push_str(&format!("- {d}\n"));
        }
        o.push('\n');
        o
    }
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Agree => "agree",
        Verdict::Differ => "DIFFER",
        Verdict::NoData => "no data",
    }
}
