//! Drive: the scenario's own seeded plan over real WebSockets, at the project's Worker (a
//! local `workerd` or a deployment), measured as honestly as a load generator can.
//!
//! # What a run does, and where
//!
//! 1. **Plan** ([`plan`]): the stretch `[from, from + duration × speedup)` of scenario time,
//!    from the same [`Workload`] the simulator executes. Sessions in progress at `from`
//!    (*carried*) connect during a ramp before the window, so rooms start at the plan's
//!    occupancy; sessions arriving in the stretch start on schedule (open workload); every
//!    message has an intended send time from its session's own random stream. Room choice
//!    is the simulator's ("fill" included: the lowest room with an unclaimed seat).
//! 2. **Start** (this module, [`drive`]): a local workerd ([`local`]) or a `--target`
//!    ([`client`]); the Worker's stats before the run ([`stats`]); with `--local`, a probe
//!    of the Worker's own CPU per request (`cpu`).
//! 3. **Run** (`run`, recording into `state`): one task per session on one tokio runtime,
//!    so every member of a room shares one monotonic clock; phases ramp → window → grace →
//!    departures, workerd's CPU read at each boundary.
//! 4. **Reconcile** ([`reconcile`]): the Worker's stats before and after, against the
//!    driver's own counts.
//! 5. **Report** (`report`): per-event costs from workerd's CPU (`cpu`), the usage through
//!    the meter and its monthly projection (`usage`, with [`crate::meter`] and
//!    [`crate::projection`]), then the shape `dosim simulate` produces ([`Report`], `mode:
//!    "drive"`) with a `drive` block ([`DriveDetails`], [`crate::report::drive`]).
//!
//! # Measurements
//!
//! - `latency_ms.connect`: upgrade start → first server frame (`joined`, `queued` or
//!   `rejected`), of every connect the driver made, as k6's `ws_connecting` counts every
//!   connection: the carried sessions' during the ramp (which may connect them faster than
//!   they arrived: up to 500 per second) and the arriving sessions'; `drive.latency_ms`
//!   has the two apart (`carried_connect`, `window_connect`), so a short window with few
//!   arrivals still has connect figures;
//! - `latency_ms.admission_wait`: upgrade start → `joined` (includes queueing), sessions
//!   arriving in the window;
//! - `latency_ms.message`: per recipient, from the message's **intended** send time (the
//!   plan's) to its receipt — coordinated-omission corrected as wrk2 does;
//! - `latency_ms.message_from_send`: per recipient, from the actual write;
//! - `latency_ms.send_lag`: actual write − intended time (the driver's own lateness: a
//!   pacer thread wakes sessions on time to within tens of microseconds where tokio's
//!   timer would be up to 1 ms late, see `pacer`);
//! - `latency_ms.object_queue`: **empty**: time in an object's queue cannot be seen from
//!   outside the Worker.
//!
//! Expected recipients of a message are the other seated members of its room as the driver
//! knows them when it writes the message (a member is seated from its `joined` until it
//! starts to leave).
//!
//! The keys of the `drive` block are documented in `sim/REPORT.md`.
//!
//! # Several processes
//!
//! `--shard I/N` ([`shard`]) drives the room objects `o mod N = I` of the same plan, so that
//! N processes on N machines drive it together (`--start-at` starts them at one moment);
//! each writes its counts in its report and its histograms in an HdrHistogram log, and
//! [`merge`] adds them up and builds the one report of the whole plan with this module's
//! builder (projection, thresholds, reconciliation and bill once, over the sum).
//!
//! # Usage lines
//!
//! The meter ([`crate::meter`]) bills what the driver counted: connects, Worker requests,
//! inbound and outbound messages (checked against the Worker's stats); lobby RPCs and
//! changes follow from them (1 RPC per join, departure and promotion in lobby mode, as the
//! Worker does); object time under `accept()` is the union of the driver's open sockets per
//! object. Worker CPU and, under the Hibernation API, object busy time are counts × a cost
//! per event: with `--local` measured from workerd's CPU (`cpu`: per Worker request, connect,
//! message with its fan-out, close), against a `--target` the scenario's
//! (`platform.worker_cpu_ms_per_connect`, the means of `platform.service`) — nothing is
//! measured on the server side there. `drive.usage_sources` says, line by line, which input
//! was measured, which modelled, and from what. Storage rows are always the scenario's (the
//! Worker stores no messages).
//!
//! # Local workerd is one thread
//!
//! workerd (1.20260426.1) runs the Worker, every Durable Object, the lobby, the registry and
//! all socket I/O on **one thread** — one KJ event loop, one isolate per service
//! (`src/workerd/server/workerd.c++:1559`, `server.c++:4662`, `server.c++:4321-4325`; no
//! option for more). Two busy objects finish together at the sum of their times, and a
//! trivial request waits behind another object's handler. Locally the whole deployment is
//! one FIFO server: `per-room` and `sharded-N` cannot show the parallelism they have on
//! Cloudflare, where each object runs independently; they differ here only in per-event
//! cost (new objects, lobby RPCs). Compare a local drive with the Cloudflare model at low
//! total load only (well under one core); local latency includes queueing behind other
//! objects' events, and the per-event CPU is mostly workerd's C++ runtime (this machine, closed loop:
//! connect ≈ 0.45–0.9 ms, a new object + 0.7–1.5 ms, message ≈ 50 µs + 37 µs per
//! recipient, close ≈ 0.2 ms), not the JavaScript CPU Cloudflare bills. `sim/REPORT.md`
//! ("Local workerd") has the evidence.
//!
//! # Monthly projection
//!
//! Each usage quantity measured in the window is multiplied by one factor: the expected
//! session-seconds of a 30-day month (mean arrival rate × 30 days × mean session length)
//! divided by the plan's session-seconds inside the covered scenario time. In steady state
//! usage grows with occupancy (messages, object time), so the window's usage per occupied
//! second is taken as the month's. The lines that follow sessions — connects, Worker
//! requests and CPU, the lobby's RPCs and storage rows, and the object time of connects,
//! closes and lobby RPCs — are projected per session instead: the expected arrivals of a
//! 30-day month × what each session the driver started (carried and arriving) made,
//! because a short window at the scenario's real rate holds few arrivals, and at a busy
//! hour arrivals outpace occupancy ([`crate::projection`] has both rules). Admission losses
//! in the run are assumed for the whole month.
//!
//! A run stopped early (Ctrl-C, the target gone) projects from what it covered: the
//! covered scenario time is the part of the window run before the stop (all of it when the
//! stop came during the grace or the departures), the plan's session-seconds are those of
//! that part, and the report says the run was cut short (`drive.time.cut_short`, a warning,
//! `provenance.method`). Stopped before the window began (during the ramp), it covered
//! nothing: there is no projection (`drive.projection.factor` null), the monthly usage and
//! bill are zeros and are not shown as a bill, and a threshold on `monthly_cost_usd` has no
//! data.

pub mod client;
mod cpu;
pub mod local;
pub mod merge;
mod pacer;
pub mod plan;
pub mod priority;
pub mod reconcile;
mod report;
mod run;
pub mod shard;
pub mod stamp;
mod state;
pub mod stats;
mod usage;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use crate::report::drive::DriveDetails;

use crate::model::strategy::Strategy;
use crate::pricing::PriceTable;
use crate::report::drive::LocalDetails;
use crate::report::Report;
use crate::scenario::Scenario;
use crate::threshold::Threshold;
use crate::workload::Workload;
use client::{CaCertError, Target, TlsConfig};
use cpu::{CpuClock, WorkerProbe};
use local::{LocalSettings, LocalWorkerd};
use plan::{DrivePlan, PlanOptions};
use report::{build_report, Build, PlanSummary};
use run::{Ctx, Probe, Stop, Timeouts};
use state::State;
use stats::Stats;

/// Exit code of a run that stopped early because the target went away.
pub const EXIT_INCOMPLETE: u8 = 1;
/// Exit code of a run interrupted by Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit code when a threshold failed.
pub const EXIT_THRESHOLD: u8 = 99;

/// What can go wrong before or around a run (a run that started always yields a report).
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// A bad option value (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The local Worker could not be built or started.
    #[error("local Worker: {0}")]
    Local(String),
    /// Another failure (runtime, pricing).
    #[error(transparent)]
    Other(#[from] crate::Error),
    /// I/O (transparent: its message once, not again as its own source).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The `--ca-cert` file is missing or unusable (exit code 2).
    #[error(transparent)]
    CaCert(#[from] CaCertError),
}

impl DriveError {
    /// True when the error is the user's input.
    pub fn is_bad_input(&self) -> bool {
        match self {
            DriveError::Usage(_) | DriveError::CaCert(_) => true,
            DriveError::Other(e) => e.is_bad_input(),
            _ => false,
        }
    }
}

/// Options of a run (the command line's `dosim drive`).
#[derive(Debug, Clone)]
pub struct Options {
    /// `ws://HOST:PORT[/BASE]` or `wss://HOST[:PORT][/BASE]` (ignored with `local`).
    pub target: Option<String>,
    /// A PEM file of extra root certificates trusted for a `wss://` target.
    pub ca_cert: Option<PathBuf>,
    /// Build if needed and run the Worker on a local workerd for the run.
    pub local: bool,
    /// The `workers/` folder for `local` (default: found from the current directory).
    pub workers: Option<PathBuf>,
    /// The strategy (URL segment and sharding).
    pub strategy: Strategy,
    /// Scenario time at the window's start (default: see [`plan`]).
    pub from: Option<Duration>,
    /// Real length of the measured window.
    pub duration: Duration,
    /// Scenario seconds per real second.
    pub speedup: f64,
    /// Length of the ramp (default: 2 s, or longer so that at most 500 carried sessions
    /// connect per second; none without carried sessions).
    pub ramp: Option<Duration>,
    /// How long to wait for deliveries in flight after the window.
    pub grace: Duration,
    /// The stats bearer token (remote targets; `$DOSIM_STATS_TOKEN` if absent).
    pub stats_token: Option<String>,
    /// Connect and answer timeout.
    pub connect_timeout: Duration,
    /// Show the live progress line when stderr is a terminal.
    pub progress: bool,
    /// What the progress line calls the run (default: the strategy).
    pub progress_label: Option<String>,
    /// Exit non-zero when the reconciliation finds a difference.
    pub require_reconciled: bool,
    /// Drive only this shard of the plan ([`shard`]); `Some(0/1)` is the whole plan with
    /// "fill" resolved when the plan is built, as every shard resolves it.
    pub shard: Option<shard::Shard>,
    /// Start the run (the ramp) at this wall-clock time, so that shards start together.
    pub start_at: Option<SystemTime>,
    /// Local source addresses to spread the connections over (`--source-addr`).
    pub source_addrs: Option<client::SourceAddrs>,
    /// How long received frames may wait to be read, so that the driver wakes once per
    /// batch instead of once per frame; their arrival is the kernel's stamp, so the wait is
    /// not measured ([`DEFAULT_READ_BATCH`]; zero: read each frame as it arrives).
    pub read_batch: Duration,
    /// Run the driver on a thread of its own under `SCHED_FIFO` (see [`priority`]).
    pub realtime: bool,
}

/// The default [`Options::read_batch`]: 1 ms, within which every frame is read.
pub const DEFAULT_READ_BATCH: Duration = Duration::from_millis(1);
/// The longest [`Options::read_batch`]: past it, closes and timeouts would be seen late.
pub const MAX_READ_BATCH: Duration = Duration::from_millis(10);

/// How far in the past a `--start-at` may be when the run is set up.
pub const START_AT_PAST: Duration = Duration::from_secs(5);
/// How far in the future a `--start-at` may be.
pub const START_AT_FUTURE: Duration = Duration::from_secs(3600);

/// A `--start-at` value (Unix seconds) as a clock time: refused, naming the option, when it
/// is negative, not a number, or beyond what the clock can hold.
pub fn start_at_from_unix(t: f64) -> Result<SystemTime, String> {
    (t.is_finite() && t >= 0.0)
        .then(|| Duration::try_from_secs_f64(t).ok())
        .flatten()
        .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
        .ok_or_else(|| format!("--start-at {t}: expected a Unix time in seconds"))
}

/// Check a `--start-at` against the clock now: refused when more than [`START_AT_PAST`] ago
/// (a late shard would not start with the others) or more than [`START_AT_FUTURE`] ahead.
pub fn check_start_at(at: SystemTime, now: SystemTime) -> Result<(), String> {
    let unix = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    match at.duration_since(now) {
        Ok(ahead) if ahead > START_AT_FUTURE => Err(format!(
            "--start-at {:.3} is {:.0} s in the future (now {:.3}); at most {} s ahead is accepted: give a time shortly after every shard will have started",
            unix(at),
            ahead.as_secs_f64(),
            unix(now),
            START_AT_FUTURE.as_secs()
        )),
        Ok(_) => Ok(()),
        Err(e) if e.duration() > START_AT_PAST => Err(format!(
            "--start-at {:.3} was {:.1} s ago (now {:.3}); a shard that starts late would not run with the others (at most {} s late is accepted): give a time in the future",
            unix(at),
            e.duration().as_secs_f64(),
            unix(now),
            START_AT_PAST.as_secs()
        )),
        Err(_) => Ok(()),
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: None,
            ca_cert: None,
            local: false,
            workers: None,
            strategy: Strategy::Single,
            from: None,
            duration: Duration::from_secs(60),
            speedup: 1.0,
            ramp: None,
            grace: Duration::from_secs(2),
            stats_token: None,
            connect_timeout: Duration::from_secs(10),
            progress: true,
            progress_label: None,
            require_reconciled: false,
            shard: None,
            start_at: None,
            source_addrs: None,
            read_batch: DEFAULT_READ_BATCH,
            realtime: false,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    /// Every phase ran.
    Complete,
    /// The target went away (reason).
    TargetDown(String),
    /// Ctrl-C.
    Interrupted(String),
}

/// A finished run: its report and how it ended.
#[derive(Debug, Clone)]
pub struct DriveRun {
    /// The report (always complete in shape; partial in content when the run stopped early).
    pub report: Report,
    /// How it ended.
    pub status: RunStatus,
    /// Whether a reconciliation failure makes the run fail.
    pub require_reconciled: bool,
    /// A shard's latency histograms as an HdrHistogram interval log (`--shard`).
    pub hlog: Option<String>,
}

impl DriveRun {
    /// The process exit code: 130 interrupted, 1 target down (or reconciliation failed
    /// with `--require-reconciled`), 99 a threshold failed, else 0.
    pub fn exit_code(&self) -> u8 {
        match self.status {
            RunStatus::Interrupted(_) => EXIT_INTERRUPTED,
            RunStatus::TargetDown(_) => EXIT_INCOMPLETE,
            RunStatus::Complete => {
                let reconciled = self
                    .report
                    .drive
                    .as_ref()
                    .and_then(|d| d.reconciliation.as_ref())
                    .is_none_or(|r| r.ok);
                if self.require_reconciled && !reconciled {
                    EXIT_INCOMPLETE
                } else if self.report.thresholds_pass() {
                    0
                } else {
                    EXIT_THRESHOLD
                }
            }
        }
    }
}

/// The local workerd's CPU and liveness (nothing against a `--target`).
struct LocalProbe {
    pid: Option<u32>,
    /// Per-thread schedstat (ns) where the kernel has it, else clock ticks.
    clock: Option<CpuClock>,
}

impl LocalProbe {
    fn new(pid: Option<u32>) -> LocalProbe {
        let clock = pid.and_then(|p| {
            if local::schedstat_cpu(p).is_some() {
                Some(CpuClock::Schedstat)
            } else {
                local::process_tree_cpu(p).map(|_| CpuClock::ProcStat)
            }
        });
        LocalProbe { pid, clock }
    }
}

impl Probe for LocalProbe {
    fn target_cpu(&self) -> Option<Duration> {
        let pid = self.pid?;
        match self.clock? {
            CpuClock::Schedstat => local::schedstat_cpu(pid),
            CpuClock::ProcStat => local::process_tree_cpu(pid),
        }
    }
    fn cpu_clock(&self) -> Option<CpuClock> {
        self.clock
    }
    fn target_gone(&self) -> bool {
        self.pid.is_some_and(local::process_gone)
    }
}

/// Drive each strategy in turn with the same options (each `--local` run on a fresh
/// workerd). A run that stops early (the target went away, Ctrl-C) ends the sequence: the
/// runs so far are returned, the last one saying why it stopped.
pub fn drive_each(
    scenario: &Scenario,
    pricing: &PriceTable,
    extra_thresholds: &[Threshold],
    opts: &Options,
    strategies: &[Strategy],
) -> Result<Vec<DriveRun>, DriveError> {
    let mut runs = Vec::new();
    for (i, &strategy) in strategies.iter().enumerate() {
        let run = drive(
            scenario,
            pricing,
            extra_thresholds,
            &Options {
                strategy,
                progress_label: Some(format!("{strategy} ({}/{})", i + 1, strategies.len())),
                ..opts.clone()
            },
        )?;
        let stop = !matches!(run.status, RunStatus::Complete);
        runs.push(run);
        if stop {
            break;
        }
    }
    Ok(runs)
}

/// Drive `scenario` as `opts` say and return the report. Blocks; runs its own tokio
/// runtime. A local workerd is stopped before this returns, whatever happened.
pub fn drive(
    scenario: &Scenario,
    pricing: &PriceTable,
    extra_thresholds: &[Threshold],
    opts: &Options,
) -> Result<DriveRun, DriveError> {
    if let Strategy::Sharded(n) = opts.strategy {
        if n > 1024 {
            return Err(DriveError::Usage(format!(
                "--strategy sharded:{n}: the Worker serves sharded:1 to sharded:1024"
            )));
        }
    }
    if opts.connect_timeout.is_zero() {
        return Err(DriveError::Usage("--timeout must be longer than 0".into()));
    }
    if opts.read_batch > MAX_READ_BATCH {
        return Err(DriveError::Usage(format!(
            "--read-batch {}: at most {} (past it, closes and timeouts would be seen late); 0s reads each frame as it arrives",
            humantime::format_duration(opts.read_batch),
            humantime::format_duration(MAX_READ_BATCH)
        )));
    }
    if let Some(at) = opts.start_at {
        check_start_at(at, SystemTime::now()).map_err(DriveError::Usage)?;
    }
    if let Some(sources) = &opts.source_addrs {
        sources
            .check_usable(opts.local)
            .map_err(DriveError::Usage)?;
    }
    if opts.local && opts.shard.is_some_and(|s| s.count > 1) {
        return Err(DriveError::Usage(
            "--shard with N above 1 drives one Worker from several processes: give the Worker's --target (--local would start one workerd per shard)".into(),
        ));
    }
    let workload = Workload::new(scenario);
    let plan = DrivePlan::build(
        scenario,
        &workload,
        &PlanOptions {
            from_ns: opts.from.map(|d| d.as_nanos() as u64),
            duration: opts.duration,
            speedup: opts.speedup,
        },
    )
    .map_err(DriveError::Usage)?;
    let plan = match opts.shard {
        None => plan,
        Some(sh) => shard_plan(plan, scenario, opts.strategy, sh)?,
    };
    let remote = if opts.local {
        None
    } else {
        let t = opts.target.as_deref().ok_or_else(|| {
            DriveError::Usage("give --target ws://HOST:PORT (or wss://HOST) or --local".into())
        })?;
        Some(Target::parse(t).map_err(DriveError::Usage)?)
    };
    let mut warnings = Vec::new();
    // The TLS settings of the whole run, built once (a bad --ca-cert fails even unused).
    let tls_config = TlsConfig::new(opts.ca_cert.as_deref())?;
    if opts.ca_cert.is_some() && !remote.as_ref().is_some_and(|t| t.tls) {
        warnings.push("--ca-cert is unused: the target is not wss://".to_string());
    }
    let remote = remote.map(|t| t.with_tls_config(tls_config));
    if opts.realtime {
        // Refused before anything starts, not after workerd and the ramp.
        priority::check_realtime().map_err(DriveError::Usage)?;
    }
    let nofile = local::raise_nofile_limit();
    let mut local_details = None;
    let mut workerd = None;
    let (target, token) = match remote {
        Some(t) => (
            t,
            opts.stats_token
                .clone()
                .or_else(|| std::env::var("DOSIM_STATS_TOKEN").ok())
                .filter(|s| !s.is_empty()),
        ),
        None => {
            let (w, details) = start_local(scenario, opts)?;
            local_details = Some(details);
            let t = (w.target(), Some(w.token().to_string()));
            workerd = Some(w);
            t
        }
    };
    let target = Target {
        sources: opts.source_addrs.clone(),
        ..target
    };
    let pid = workerd.as_ref().map(LocalWorkerd::pid);
    let input = Input {
        scenario,
        pricing,
        extra_thresholds,
        opts,
        plan,
        workload,
        target,
        token,
        probe: Arc::new(LocalProbe::new(pid)),
        local: local_details,
        nofile,
        warnings: std::mem::take(&mut warnings),
    };
    // One thread: a session's wake-ups and its socket never cross threads, and the pacer
    // can batch every socket's reads (see `pacer`). More cores: run shards (`--shard`).
    let run = move || -> Result<DriveRun, DriveError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let result = runtime.block_on(drive_async(input));
        runtime.shutdown_timeout(Duration::from_secs(1));
        result
    };
    let result = if opts.realtime {
        // A thread of its own, so that the policy ends with the run and no child process
        // (started from this thread) inherits it.
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("dosim-driver".into())
                .spawn_scoped(scope, || {
                    priority::make_current_thread_realtime().map_err(DriveError::Usage)?;
                    run()
                })?
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    } else {
        run()
    };
    if let Some(mut w) = workerd {
        w.stop();
    }
    result
}

/// The part of `plan` shard `sh` drives, its "fill" rooms resolved first.
fn shard_plan(
    mut plan: DrivePlan,
    scenario: &Scenario,
    strategy: Strategy,
    sh: shard::Shard,
) -> Result<DrivePlan, DriveError> {
    sh.check(scenario, strategy).map_err(DriveError::Usage)?;
    shard::resolve_fill(
        &mut plan,
        scenario.rooms.count,
        scenario.limits.max_connections_per_room,
    );
    shard::split(&mut plan, scenario, strategy, sh);
    Ok(plan)
}

/// Build the Worker if needed and start it on a local workerd with the scenario's settings.
fn start_local(
    scenario: &Scenario,
    opts: &Options,
) -> Result<(LocalWorkerd, LocalDetails), DriveError> {
    // Refuse what the Worker would refuse before building anything.
    let settings = LocalSettings::for_scenario(scenario)?;
    let workers = local::find_workers_dir(opts.workers.as_deref())?;
    let built = local::ensure_built(&workers)?;
    let w = LocalWorkerd::spawn(&workers, &settings)?;
    let mut shown: BTreeMap<String, String> = settings.env().into_iter().collect();
    shown.insert("DOSIM_STATS_TOKEN".into(), "(random, hidden)".into());
    let details = LocalDetails {
        pid: w.pid(),
        settings: shown,
        built: [
            built.installed.then(|| "npm ci".to_string()),
            built.built.then(|| "npm run build".to_string()),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    Ok((w, details))
}

struct Input<'a> {
    scenario: &'a Scenario,
    pricing: &'a PriceTable,
    extra_thresholds: &'a [Threshold],
    opts: &'a Options,
    plan: DrivePlan,
    workload: Workload,
    target: Target,
    token: Option<String>,
    probe: Arc<dyn Probe>,
    local: Option<LocalDetails>,
    nofile: Option<u64>,
    warnings: Vec<String>,
}

const STATS_TIMEOUT: Duration = Duration::from_secs(10);

/// The run, in order: set up, check the target is there and read its stats, probe the
/// Worker's own CPU (with `--local`), run the phases, read the stats again and reconcile,
/// build the report.
async fn drive_async(mut inp: Input<'_>) -> Result<DriveRun, DriveError> {
    let scenario = inp.scenario;
    let strategy = inp.opts.strategy;
    let started_at_unix_ms = unix_ms_now();
    let ramp = ramp_length(&inp);
    plan_warnings(&mut inp);
    let ctx = Arc::new(context(&inp));
    if !ctx.pacer.fine() {
        inp.warnings.push(
            "no fine timer here (timerfd): sends wake on tokio's 1 ms timer, so the send lag beside each latency is larger".into(),
        );
    }
    let stats_before = preflight(&mut inp, &ctx).await;
    let lobby_mode = stats_before
        .as_ref()
        .map(|s| s.lobby_mode)
        .unwrap_or_else(|| uses_lobby(scenario, strategy));
    let worker_probe = if ctx.stopped().is_none() {
        cpu::probe_worker(&inp.target, &strategy.url_segment(), inp.probe.as_ref()).await
    } else {
        WorkerProbe::default()
    };
    let plan = PlanSummary::of(&inp.plan);
    if let Some(at) = inp.opts.start_at {
        wait_for_start(at, &ctx, &mut inp.warnings).await;
    }
    let ran = ctx.stopped().is_none();
    let (times, samples) = if ran {
        run_phases(&mut inp, &ctx, ramp).await
    } else {
        Default::default()
    };
    let stop = ctx.stopped();
    let stopped_during = match ctx.stopped_in() {
        _ if !ran => stop.as_ref().map(|_| "start"),
        Some(run::Phase::Ramp) => Some("ramp"),
        Some(run::Phase::Window { .. }) => Some("window"),
        Some(run::Phase::Drain) => Some("grace"),
        Some(run::Phase::Cut | run::Phase::Abort) => Some("departures"),
        None => None,
    }
    .map(str::to_string);
    let split = inp.opts.shard.filter(|sh| sh.count > 1);
    let after = read_stats_after(&mut inp, &ctx).await;
    let reconciliation = match &after {
        // The Worker's counters hold every shard's traffic: `dosim merge` reconciles, with
        // the shards' reads before and after.
        Some(_) if split.is_some() => None,
        Some(a) => Some(reconcile_with(
            strategy,
            stats_before.as_ref(),
            a,
            &ctx.state().m,
            &mut inp.warnings,
        )),
        None => None,
    };
    let status = match &stop {
        None => RunStatus::Complete,
        Some(Stop::Interrupted(s)) => RunStatus::Interrupted(s.clone()),
        Some(Stop::TargetDown(s)) => RunStatus::TargetDown(s.clone()),
    };
    let st = ctx.state();
    if ctx.pacer.saw_unstamped() {
        inp.warnings.push("the kernel did not stamp a socket's received segments (SO_TIMESTAMPNS): from then on every frame was read as it arrived (as with --read-batch 0s)".into());
    }
    let shard_out = inp.opts.shard.map(|sh| {
        let raw = shard::Raw {
            measured: st.m.clone(),
            samples: samples.clone(),
            times: times.clone(),
            worker_probe: worker_probe.clone(),
            clock: inp.probe.cpu_clock(),
            lobby_mode,
            status: status_name(&status).into(),
            stopped: match &status {
                RunStatus::Complete => None,
                RunStatus::TargetDown(s) | RunStatus::Interrupted(s) => Some(s.clone()),
            },
            stopped_during: stopped_during.clone(),
            stats_before: stats_before.clone(),
            stats_before_unix_ms: stats_before.as_ref().map(|_| started_at_unix_ms),
            stats_after_unix_ms: after.as_ref().map(|a| a.unix_ms),
            not_comparable: after.as_ref().and_then(|a| a.not_comparable.clone()),
            stats_after: after.map(|a| a.stats),
            warnings: inp.warnings.clone(),
            nofile: inp.nofile,
            read_batch: inp.opts.read_batch,
            realtime: inp.opts.realtime,
            started_at_unix_ms,
            target: inp.target.to_string(),
        };
        let (value, digest) = shard::canonical(scenario);
        let length = times.ramp + times.window + times.grace + times.cut;
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(started_at_unix_ms / 1000.0);
        let record = crate::report::drive::ShardRecord {
            format: shard::FORMAT,
            index: sh.index,
            count: sh.count,
            seed: scenario.seed,
            scenario_digest: digest,
            strategy: strategy.to_string(),
            from_ns: inp.plan.time.from_ns,
            duration_ns: inp.plan.time.duration.as_nanos() as u64,
            speedup: inp.plan.time.speedup,
            pricing: inp.pricing.name.to_string(),
            thresholds: inp
                .extra_thresholds
                .iter()
                .map(ToString::to_string)
                .collect(),
            start_at_unix: inp.opts.start_at.map(|t| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64())
            }),
            hlog: None,
            scenario: value,
            raw: serde_json::to_value(&raw).expect("a shard's counts serialize"),
        };
        let hlog = shard::write_hlog(&st.m.hists, started, length, &format!("drive shard {sh}"));
        (record, hlog)
    });
    let mut report = build_report(Build {
        scenario,
        strategy,
        pricing: inp.pricing,
        extra_thresholds: inp.extra_thresholds,
        m: &st.m,
        plan: &plan,
        times: &times,
        samples: &samples,
        clock: inp.probe.cpu_clock(),
        worker_probe: &worker_probe,
        status: &status,
        stopped_during,
        target: &inp.target,
        local: inp.local.take(),
        reconciliation,
        lobby_mode,
        nofile: inp.nofile,
        read_batch: inp.opts.read_batch,
        realtime: inp.opts.realtime,
        warnings: std::mem::take(&mut inp.warnings),
        started_at_unix_ms,
    })?;
    drop(st);
    let mut hlog = None;
    if let (Some((record, log)), Some(d)) = (shard_out, report.drive.as_mut()) {
        if split.is_some() {
            d.warnings.push("one shard of several: its counts are its rooms' alone, its bill is the month estimated from its rooms, and its reconciliation is left to dosim merge, which adds the shards up".into());
        }
        d.shard = Some(record);
        hlog = Some(log);
    }
    Ok(DriveRun {
        report,
        status,
        require_reconciled: inp.opts.require_reconciled,
        hlog,
    })
}

/// Sleep until `at` (wall clock), unless the run is stopped first; a start more than
/// [`START_AT_PAST`] late is said in a warning.
async fn wait_for_start(at: SystemTime, ctx: &Ctx, warnings: &mut Vec<String>) {
    match at.duration_since(SystemTime::now()) {
        Ok(wait) => {
            let deadline = tokio::time::Instant::now() + wait;
            while ctx.stopped().is_none() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep_until(deadline.min(
                    tokio::time::Instant::now() + Duration::from_millis(200),
                ))
                .await;
            }
        }
        Err(late) if late.duration() > START_AT_PAST => warnings.push(format!(
            "the run started {:.1} s after --start-at (setting up took that long): it did not start with the other shards",
            late.duration().as_secs_f64()
        )),
        Err(_) => {}
    }
}

/// The ramp: `--ramp`, or 2 s, or longer so that at most 500 carried sessions connect per
/// second; none without carried sessions.
fn ramp_length(inp: &Input<'_>) -> Duration {
    ramp_for(inp.plan.carried.len(), inp.opts.ramp)
}

/// The ramp of a run with `carried` sessions in progress at `from`: `ramp` (`--ramp`) if
/// given, else 2 s or longer so that at most 500 of them connect per second; none without
/// any.
pub fn ramp_for(carried: usize, ramp: Option<Duration>) -> Duration {
    ramp.unwrap_or(if carried == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs(2).max(Duration::from_secs_f64(carried as f64 / 500.0))
    })
}

fn plan_warnings(inp: &mut Input<'_>) {
    if let Some(limit) = inp.nofile {
        let need = (inp.plan.carried.len() + inp.plan.arrivals.len()) as u64 + 64;
        if need > limit {
            inp.warnings.push(format!(
                "up to {need} sockets may be open but the open-file limit is {limit}; raise it (ulimit -n)"
            ));
        }
    }
    inp.warnings
        .extend(few_arrivals(inp.plan.projection.window_arrivals));
}

/// How the warning about the lobby's storage rows begins (a reconciled merge says it again
/// of the sum).
const LOBBY_ROWS: &str = "the lobby wrote";

/// How a warning about few arrivals in the window begins (a shard's own is left out of a
/// merged report, which says it again of the whole plan).
const FEW_ARRIVALS: &str = "sessions of the plan arrive in the window:";

/// A warning when fewer than 20 sessions of the plan arrive in the window.
fn few_arrivals(window_arrivals: u64) -> Option<String> {
    (window_arrivals < 20).then(|| format!(
        "only {window_arrivals} {FEW_ARRIVALS} the session counts, the window's connects and the admission-wait latency rest on few samples (use --speedup or a longer --duration)"
    ))
}

/// The run's shared context: the rooms, which object hosts each, and the state every
/// session records in (with the window's meter).
fn context(inp: &Input<'_>) -> Ctx {
    let (scenario, strategy) = (inp.scenario, inp.opts.strategy);
    let rooms = scenario.rooms.count;
    let room_names: Vec<String> = (0..rooms).map(crate::workload::room_name).collect();
    let room_object: Vec<u32> = (0..rooms)
        .map(|r| strategy.object_of(r, &room_names[r as usize]))
        .collect();
    let objects = strategy
        .object_count(rooms)
        .max(room_object.iter().copied().max().map_or(1, |m| m + 1));
    let meter = usage::window_meter(
        scenario,
        objects,
        inp.plan.time.span_ns,
        uses_lobby(scenario, strategy),
    );
    let state = State::new(
        inp.plan.time,
        rooms,
        scenario.limits.max_connections_per_room,
        meter,
    );
    Ctx::new(
        inp.target.clone(),
        strategy.url_segment(),
        inp.workload.clone(),
        inp.plan.time,
        Timeouts {
            connect: inp.opts.connect_timeout,
            leave: inp.opts.connect_timeout,
        },
        "x".repeat(scenario.sessions.message_bytes as usize),
        room_object,
        state,
        inp.opts.read_batch,
    )
}

/// Is anything listening? Then the Worker's stats before the run (with a token).
async fn preflight(inp: &mut Input<'_>, ctx: &Ctx) -> Option<Stats> {
    // A Worker whose configuration is invalid answers every request 500, naming the setting.
    match stats::health(&inp.target, inp.opts.connect_timeout).await {
        Ok(()) => {}
        Err(stats::HealthError::Unreachable(e)) => {
            ctx.state().fault(e.category());
            ctx.abort(Stop::TargetDown(format!(
                "target {} unreachable: {e}",
                inp.target
            )));
            return None;
        }
        Err(e) => {
            ctx.abort(Stop::TargetDown(format!(
                "target {} misconfigured: {e}",
                inp.target
            )));
            return None;
        }
    }
    let tok = inp.token.as_ref()?;
    match stats::fetch(&inp.target, inp.opts.strategy, tok, STATS_TIMEOUT).await {
        Ok(s) => {
            check_limits(inp.scenario, &s, &mut inp.warnings);
            Some(s)
        }
        Err(e) => {
            inp.warnings
                .push(format!("stats before the run unavailable: {e}"));
            None
        }
    }
}

/// The phases (ramp, window, grace, departures), with the live progress line on a terminal.
async fn run_phases(
    inp: &mut Input<'_>,
    ctx: &Arc<Ctx>,
    ramp: Duration,
) -> (run::PhaseTimes, run::Samples) {
    let progress = (inp.opts.progress && std::io::stderr().is_terminal()).then(|| {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .expect("valid template"),
        );
        bar
    });
    let label = inp
        .opts
        .progress_label
        .clone()
        .unwrap_or_else(|| inp.opts.strategy.to_string());
    // The sessions go to the run; the plan's other fields stay for the report.
    let plan = DrivePlan {
        carried: std::mem::take(&mut inp.plan.carried),
        arrivals: std::mem::take(&mut inp.plan.arrivals),
        from_reason: String::new(),
        ..inp.plan.clone()
    };
    let out = run::orchestrate(
        ctx.clone(),
        plan,
        ramp,
        inp.opts.grace,
        inp.probe.clone(),
        progress.clone().map(|bar| run::Progress { bar, label }),
    )
    .await;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    out
}

/// The Worker's stats read after the run, and why differences cannot be judged, if so.
pub(crate) struct After {
    /// The stats document.
    pub stats: Stats,
    /// Unix ms when it was read (after the departures).
    pub unix_ms: f64,
    /// Sockets were closed without waiting for the Worker (after an interrupt): why.
    pub not_comparable: Option<String>,
}

/// The Worker's stats after the run (with a token, unless the target went away).
async fn read_stats_after(inp: &mut Input<'_>, ctx: &Ctx) -> Option<After> {
    if let Some(first) = ctx.first_server_error() {
        inp.warnings.push(format!(
            "the target answered an upgrade with {first} (the first such answer; drive.faults.upgrade_5xx counts them)"
        ));
    }
    let Some(tok) = inp.token.clone() else {
        inp.warnings.push(
            "no reconciliation with the Worker's stats: no token (--stats-token or $DOSIM_STATS_TOKEN)"
                .into(),
        );
        return None;
    };
    let stop = ctx.stopped();
    if matches!(stop, Some(Stop::TargetDown(_))) {
        inp.warnings
            .push("no reconciliation: the target went away".into());
        return None;
    }
    // Sockets closed without waiting after a Ctrl-C leave counts that cannot be compared.
    let forced = ctx.forced();
    let not_comparable = (matches!(stop, Some(Stop::Interrupted(_))) && forced > 0).then(|| {
        format!(
            "{} closed without waiting for the Worker (a second Ctrl-C, or the orderly stop took longer than {} s): the Worker may have promoted, delivered or counted what the driver never saw",
            crate::report::counted(forced, "socket was", "sockets were"),
            run::INTERRUPT_STOP.as_secs()
        )
    });
    let timeout = if stop.is_some() {
        Duration::from_secs(2)
    } else {
        STATS_TIMEOUT
    };
    match stats::fetch(&inp.target, inp.opts.strategy, &tok, timeout).await {
        Ok(stats) => Some(After {
            stats,
            unix_ms: unix_ms_now(),
            not_comparable,
        }),
        Err(e) => {
            inp.warnings
                .push(format!("stats after the run unavailable: {e}"));
            None
        }
    }
}

/// Reconcile what was measured (one run's, or the shards' added up) with the Worker's
/// stats before and after; a lobby that wrote other storage rows than modelled is said in
/// `warnings`.
pub(crate) fn reconcile_with(
    strategy: Strategy,
    before: Option<&Stats>,
    after: &After,
    m: &state::Measured,
    warnings: &mut Vec<String>,
) -> reconcile::Reconciliation {
    let r = reconcile::reconcile(
        strategy,
        before,
        &after.stats,
        &m.totals,
        &m.per_object,
        after.not_comparable.as_deref(),
    );
    let t = &m.totals;
    let changes = t.admitted + t.queued_joins + t.left + t.abandoned + t.promoted;
    report_lobby_rows(&after.stats, before, changes, warnings);
    r
}

/// Now, in Unix ms.
fn unix_ms_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn status_name(s: &RunStatus) -> &'static str {
    match s {
        RunStatus::Complete => "complete",
        RunStatus::TargetDown(_) => "target_down",
        RunStatus::Interrupted(_) => "interrupted",
    }
}

/// Whether the Worker (LOBBY_MODE=auto) puts joins through the lobby.
fn uses_lobby(s: &Scenario, strategy: Strategy) -> bool {
    strategy != Strategy::Single
        && (s.limits.max_active_rooms.is_some() || s.limits.max_total_connections.is_some())
}

fn check_limits(s: &Scenario, stats: &Stats, warnings: &mut Vec<String>) {
    let l = &stats.limits;
    let mut diffs = Vec::new();
    let mut cmp = |name: &str, want: Option<u64>, got: Option<u64>| {
        if want != got {
            diffs.push(format!(
                "{name}: scenario {}, Worker {}",
                want.map_or("unlimited".into(), |v| v.to_string()),
                got.map_or("unlimited".into(), |v| v.to_string())
            ));
        }
    };
    cmp(
        "max_connections_per_room",
        Some(u64::from(s.limits.max_connections_per_room)),
        l.max_connections_per_room,
    );
    cmp(
        "max_active_rooms",
        s.limits.max_active_rooms.map(u64::from),
        l.max_active_rooms,
    );
    cmp(
        "max_total_connections",
        s.limits.max_total_connections.map(u64::from),
        l.max_total_connections,
    );
    cmp(
        "queue_limit",
        Some(u64::from(s.limits.queue_limit)),
        l.queue_limit,
    );
    if stats.hibernation != s.platform.hibernation {
        diffs.push(format!(
            "hibernation: scenario {}, Worker {}",
            s.platform.hibernation, stats.hibernation
        ));
    }
    if !diffs.is_empty() {
        warnings.push(format!(
            "the Worker runs with other settings than the scenario ({}): admission outcomes will differ from the simulator's",
            diffs.join("; ")
        ));
    }
}

/// The lobby's storage rows are billed as modelled (one per change of its state, the
/// scenario's `lobby_rows_written_per_change`); say so when the Worker wrote another number.
fn report_lobby_rows(
    after: &Stats,
    before: Option<&Stats>,
    changes: u64,
    warnings: &mut Vec<String>,
) {
    if let Some(l) = &after.lobby {
        let b = before
            .and_then(|b| b.lobby.as_ref())
            .filter(|b| b.instance == l.instance)
            .map_or(0, |b| b.rows_written);
        let rows = l.rows_written.saturating_sub(b);
        if rows != changes {
            warnings.push(format!(
                "{LOBBY_ROWS} {rows} storage rows during the run, where the driver saw {changes} changes of its state (joins admitted or queued, departures, promotions): the bill counts rows per change as the scenario says"
            ));
        }
    }
}
