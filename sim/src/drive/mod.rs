//! Drive: the scenario's own seeded plan over real WebSockets, at the project's Worker (a
//! local `workerd` or a deployment), measured as honestly as a load generator can.
//!
//! # What a run does
//!
//! 1. **Plan** ([`plan`]): the stretch `[from, from + duration × speedup)` of scenario time,
//!    from the same [`Workload`] the simulator executes. Sessions in progress at `from`
//!    (*carried*) connect during a ramp before the window, so rooms start at the plan's
//!    occupancy; sessions arriving in the stretch start on schedule (open workload); every
//!    message has an intended send time from its session's own random stream. Room choice
//!    is the simulator's ("fill" included: the lowest room with an unclaimed seat).
//! 2. **Run** ([`run`]): one task per session on one tokio runtime, so every member of a
//!    room shares one monotonic clock; phases ramp → window → grace → departures.
//! 3. **Reconcile** ([`reconcile`]): the Worker's stats before and after, against the
//!    driver's own counts.
//! 4. **Report**: the shape `dosim simulate` produces ([`Report`], `mode: "drive"`), priced
//!    and projected onto a month, with a `drive` block ([`DriveDetails`]).
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
//! - `latency_ms.send_lag`: actual write − intended time (the driver's own lateness; the
//!   tokio timer's resolution is 1 ms);
//! - `latency_ms.object_queue`: **empty**: time in an object's queue cannot be seen from
//!   outside the Worker.
//!
//! Expected recipients of a message are the other seated members of its room as the driver
//! knows them when it writes the message (a member is seated from its `joined` until it
//! starts to leave).
//!
//! # The `drive` block of the report
//!
//! | key | meaning |
//! |---|---|
//! | `target`, `status`, `stopped` | the endpoint; `complete`, `target_down` or `interrupted`, and why (`target_down` also when the target cannot serve: `GET /healthz` answers 5xx before or during the run, e.g. the Worker's configuration error, quoted) |
//! | `local` | with `--local`: workerd's pid, its `DOSIM_*` settings, whether `npm ci`/`npm run build` ran |
//! | `time` | `from_seconds`/`from` (scenario time at the window's start) and `from_reason`, `speedup`, `duration_seconds` (real, as run), `covered_scenario_seconds` (the scenario time the window covered, less than `planned_scenario_seconds` when the run stopped early: every monthly figure is projected from it), `cut_short`, `stopped_during` (`start`, `ramp`, `window`, `grace` or `departures`; absent when the run ended normally), real `ramp_seconds`, `grace_seconds` (it ends once nothing is in flight) and its limit `grace_limit_seconds` (`--grace`), `cut_seconds`, `started_at_unix_ms` |
//! | `carried`, `arrivals` | planned, started, failed, upgraded, admitted, queued, rejected sessions of each group |
//! | `latency_ms` | `arrival_lag` (connect start − planned arrival), `upgrade` (TCP, TLS for `wss://`, HTTP upgrade), `carried_connect` (the carried sessions' connects, during the ramp) and `window_connect` (the arriving sessions'): together `latency_ms.connect` |
//! | `deliveries` | `expected`, `received` (= the Worker's `messages_out`), `received_expected`, `missed` = `missed_connected` (recipient stayed: a loss) + `missed_departing` (recipient's leave raced the message), `unexpected` (recipient seated before its `joined` arrived), `duplicated`, `unknown` |
//! | `faults` | by category: `connect_refused`, `connect_timeout`, `connect_reset`, `connect_error`, `tls_error` (TLS handshake, e.g. an unknown CA), `upgrade_4xx`, `upgrade_5xx`, `handshake_error`, `answer_timeout` (no first frame), `dropped` (connection lost without a close frame), `server_close_<code>` (an unexpected close code, e.g. 1011, 1012), `leave_timeout`, `send_error`, `error_frame_<code>`, `unparsable_frame`, `unexpected_frame`, `protocol_error`, `aborted_before_answer` |
//! | `usage_sources` | for each usage line: measured by the driver, or modelled (and from what) |
//! | `projection` | inputs of the monthly factor (see below) |
//! | `cpu` | with `--local`: workerd CPU in the ramp (connects only) and the window; `cpu_ms_per_connect`, `cpu_ms_per_message` — the calibration figures for `platform.worker_cpu_ms_per_connect` and the service times |
//! | `driver` | the driver's own CPU per message, peak sockets, RSS per connection, open-file limit |
//! | `reconciliation` | `ok`, every `check` (driver vs Worker: sums over every object listed and the registry's pruned sum, after less before), `differences`, `object_differences` (per object, for `objects_compared` objects whose one lineage covers the run), `restarts` (counters lost: a lineage the Worker reports lost, an instance changed without a registry, or the registry itself restarted), `evictions` (objects evicted when idle and woken again, counters kept: `[name, times]`), `pruned` (objects the Worker folded into its retained sum during the run, counters kept: no difference), `objects` (listed after the run), `connections_after`; after a Ctrl-C that had to close sockets without waiting for the Worker (a second Ctrl-C, or an orderly stop longer than 5 s), the checks that differ are in `not_comparable` with `not_comparable_reason` instead of `differences` |
//! | `warnings` | e.g. few arrivals in the window, limits that differ from the scenario, the first 5xx answer to an upgrade with its body |
//!
//! # Monthly projection
//!
//! Each usage quantity measured in the window is multiplied by one factor: the expected
//! session-seconds of a 30-day month (mean arrival rate × 30 days × mean session length)
//! divided by the plan's session-seconds inside the covered scenario time. In steady state
//! usage grows with occupancy (messages, object time), so the window's usage per occupied
//! second is taken as the month's. The lines that follow sessions — connects, Worker
//! requests and CPU, the lobby's RPCs and storage rows — are projected per session instead:
//! the expected arrivals of a 30-day month × what each session the driver started (carried
//! and arriving) made, because a short window at the scenario's real rate holds few
//! arrivals, and at a busy hour arrivals outpace occupancy. Admission losses
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
//!
//! # Usage lines
//!
//! Connects, Worker requests, inbound and outbound messages are counted by the driver (and
//! checked against the Worker's stats); lobby RPCs follow from them (1 per join, departure
//! and promotion in lobby mode, as the Worker does); object time without hibernation is the
//! union of the driver's open sockets per object; with hibernation it is modelled from the
//! scenario's service times, as the simulator does; Worker CPU is the scenario's
//! `worker_cpu_ms_per_connect` per request (the measured workerd CPU is in `drive.cpu`).

pub mod client;
pub mod details;
pub mod local;
pub mod plan;
pub mod reconcile;
mod run;
mod state;
pub mod stats;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use details::DriveDetails;

use crate::metrics::{round3, LatencySummary};
use crate::model::strategy::Strategy;
use crate::pricing::PriceTable;
use crate::report::{
    LatencyBlock, MessageCounts, Parts, Provenance, Report, RunUsage, SessionCounts,
};
use crate::scenario::{Scenario, MONTH_SECONDS, NS_PER_SEC};
use crate::threshold::Threshold;
use crate::usage::Usage;
use crate::workload::Workload;
use client::{CaCertError, Target, TlsConfig};
use details::*;
use local::{LocalSettings, LocalWorkerd};
use plan::{clock_label, DrivePlan, PlanOptions};
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

struct LocalProbe {
    pid: Option<u32>,
}

impl Probe for LocalProbe {
    fn target_cpu(&self) -> Option<Duration> {
        self.pid.and_then(local::process_tree_cpu)
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
            // Refuse what the Worker would refuse before building anything.
            let settings = LocalSettings::for_scenario(scenario)?;
            let workers = local::find_workers_dir(opts.workers.as_deref())?;
            let built = local::ensure_built(&workers)?;
            let w = LocalWorkerd::spawn(&workers, &settings)?;
            let mut shown: BTreeMap<String, String> = settings.env().into_iter().collect();
            shown.insert("DOSIM_STATS_TOKEN".into(), "(random, hidden)".into());
            local_details = Some(LocalDetails {
                pid: w.pid(),
                settings: shown,
                built: [
                    built.installed.then(|| "npm ci".to_string()),
                    built.built.then(|| "npm run build".to_string()),
                ]
                .into_iter()
                .flatten()
                .collect(),
            });
            let t = (w.target(), Some(w.token().to_string()));
            workerd = Some(w);
            t
        }
    };
    let pid = workerd.as_ref().map(LocalWorkerd::pid);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dosim-drive")
        .build()?;
    let result = runtime.block_on(drive_async(Input {
        scenario,
        pricing,
        extra_thresholds,
        opts,
        plan,
        workload,
        target,
        token,
        probe: Arc::new(LocalProbe { pid }),
        local: local_details,
        nofile,
        warnings: std::mem::take(&mut warnings),
    }));
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Some(mut w) = workerd {
        w.stop();
    }
    result
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

async fn drive_async(mut inp: Input<'_>) -> Result<DriveRun, DriveError> {
    let scenario = inp.scenario;
    let strategy = inp.opts.strategy;
    let started_at_unix_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let carried_n = inp.plan.carried.len();
    let ramp = inp.opts.ramp.unwrap_or(if carried_n == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs(2).max(Duration::from_secs_f64(carried_n as f64 / 500.0))
    });
    if let Some(limit) = inp.nofile {
        let need = (carried_n + inp.plan.arrivals.len()) as u64 + 64;
        if need > limit {
            inp.warnings.push(format!(
                "up to {need} sockets may be open but the open-file limit is {limit}; raise it (ulimit -n)"
            ));
        }
    }
    if inp.plan.projection.window_arrivals < 20 {
        inp.warnings.push(format!(
            "only {} sessions of the plan arrive in the window: the session counts, the window's connects and the admission-wait latency rest on few samples (use --speedup or a longer --duration)",
            inp.plan.projection.window_arrivals
        ));
    }

    // Pre-flight: is anything listening?
    let rooms = scenario.rooms.count;
    let room_names: Vec<String> = (0..rooms).map(crate::workload::room_name).collect();
    let room_object: Vec<u32> = (0..rooms)
        .map(|r| strategy.object_of(r, &room_names[r as usize]))
        .collect();
    let objects = strategy
        .object_count(rooms)
        .max(room_object.iter().copied().max().map_or(1, |m| m + 1));
    let state = State::new(
        inp.plan.time,
        rooms,
        objects,
        scenario.limits.max_connections_per_room,
        scenario.platform.idle_tail().0,
    );
    let ctx = Arc::new(Ctx::new(
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
    ));
    // Pre-flight: is anything listening, and can it serve (a Worker whose configuration is
    // invalid answers every request 500, naming the setting)?
    match stats::health(&inp.target, inp.opts.connect_timeout).await {
        Ok(()) => {}
        Err(stats::HealthError::Unreachable(e)) => {
            ctx.state().fault(e.category());
            ctx.abort(Stop::TargetDown(format!(
                "target {} unreachable: {e}",
                inp.target
            )));
        }
        Err(e) => ctx.abort(Stop::TargetDown(format!(
            "target {} misconfigured: {e}",
            inp.target
        ))),
    }

    // Stats before.
    let mut stats_before = None;
    if ctx.stopped().is_none() {
        if let Some(tok) = &inp.token {
            match stats::fetch(&inp.target, strategy, tok, STATS_TIMEOUT).await {
                Ok(s) => {
                    check_limits(scenario, &s, &mut inp.warnings);
                    stats_before = Some(s);
                }
                Err(e) => inp
                    .warnings
                    .push(format!("stats before the run unavailable: {e}")),
            }
        }
    }

    let progress = (inp.opts.progress && std::io::stderr().is_terminal()).then(|| {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .expect("valid template"),
        );
        bar
    });
    let plan_copy = PlanSummary::of(&inp.plan);
    let ran = ctx.stopped().is_none();
    let (times, samples) = if ran {
        run::orchestrate(
            ctx.clone(),
            inp.plan,
            ramp,
            inp.opts.grace,
            inp.probe.clone(),
            progress.clone().map(|bar| run::Progress {
                bar,
                label: inp
                    .opts
                    .progress_label
                    .clone()
                    .unwrap_or_else(|| strategy.to_string()),
            }),
        )
        .await
    } else {
        Default::default()
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let stop = ctx.stopped();
    let stopped_during = match ctx.stopped_in() {
        _ if !ran => stop.as_ref().map(|_| "start"),
        Some(run::Phase::Ramp) => Some("ramp"),
        Some(run::Phase::Window { .. }) => Some("window"),
        Some(run::Phase::Drain) => Some("grace"),
        Some(run::Phase::Cut | run::Phase::Abort) => Some("departures"),
        None => None,
    };
    // Sockets closed without waiting after a Ctrl-C leave counts that cannot be compared.
    let forced = ctx.forced();
    let not_comparable = (matches!(stop, Some(Stop::Interrupted(_))) && forced > 0).then(|| {
        format!(
            "{} closed without waiting for the Worker (a second Ctrl-C, or the orderly stop took longer than {} s): the Worker may have promoted, delivered or counted what the driver never saw",
            crate::report::counted(forced, "socket was", "sockets were"),
            run::INTERRUPT_STOP.as_secs()
        )
    });
    if let Some(first) = ctx.first_server_error() {
        inp.warnings.push(format!(
            "the target answered an upgrade with {first} (the first such answer; drive.faults.upgrade_5xx counts them)"
        ));
    }

    // Stats after.
    let mut reconciliation = None;
    if inp.token.is_none() {
        inp.warnings.push(
            "no reconciliation with the Worker's stats: no token (--stats-token or $DOSIM_STATS_TOKEN)"
                .into(),
        );
    }
    if let Some(tok) = &inp.token {
        let timeout = if stop.is_some() {
            Duration::from_secs(2)
        } else {
            STATS_TIMEOUT
        };
        if !matches!(stop, Some(Stop::TargetDown(_))) {
            // Give the Worker a moment to record departures whose close we did not wait for.
            match stats::fetch(&inp.target, strategy, tok, timeout).await {
                Ok(after) => {
                    let s = ctx.state();
                    reconciliation = Some(reconcile::reconcile(
                        strategy,
                        stats_before.as_ref(),
                        &after,
                        &s.m.totals,
                        &s.m.per_object,
                        not_comparable.as_deref(),
                    ));
                    let t = &s.m.totals;
                    let changes = t.admitted + t.queued_joins + t.left + t.abandoned + t.promoted;
                    drop(s);
                    report_lobby_rows(&after, stats_before.as_ref(), changes, &mut inp.warnings);
                }
                Err(e) => inp
                    .warnings
                    .push(format!("stats after the run unavailable: {e}")),
            }
        } else {
            inp.warnings
                .push("no reconciliation: the target went away".into());
        }
    }

    let status = match &stop {
        None => RunStatus::Complete,
        Some(Stop::Interrupted(s)) => RunStatus::Interrupted(s.clone()),
        Some(Stop::TargetDown(s)) => RunStatus::TargetDown(s.clone()),
    };
    let report = build_report(Build {
        scenario,
        strategy,
        pricing: inp.pricing,
        extra_thresholds: inp.extra_thresholds,
        ctx: &ctx,
        plan: &plan_copy,
        times: &times,
        samples: &samples,
        status: &status,
        stopped_during,
        target: &inp.target,
        local: inp.local,
        reconciliation,
        lobby_mode: stats_before
            .as_ref()
            .map(|s| s.lobby_mode)
            .unwrap_or_else(|| uses_lobby(scenario, strategy)),
        nofile: inp.nofile,
        warnings: inp.warnings,
        started_at_unix_ms,
    })?;
    Ok(DriveRun {
        report,
        status,
        require_reconciled: inp.opts.require_reconciled,
    })
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
                "the lobby wrote {rows} storage rows during the run, where the driver saw {changes} changes of its state (joins admitted or queued, departures, promotions): the bill counts rows per change as the scenario says"
            ));
        }
    }
}

/// What the report needs of the plan after the sessions were handed to the run.
#[derive(Debug, Clone)]
struct PlanSummary {
    time: plan::TimeMap,
    from_reason: String,
    carried: u64,
    arrivals: u64,
    projection: plan::ProjectionBasis,
    /// Every session's planned `[arrival, end)`, to project from part of the window.
    spans: Vec<(u64, u64)>,
}

impl PlanSummary {
    fn of(p: &DrivePlan) -> PlanSummary {
        PlanSummary {
            time: p.time,
            from_reason: p.from_reason.clone(),
            carried: p.carried.len() as u64,
            arrivals: p.arrivals.len() as u64,
            projection: p.projection.clone(),
            spans: p
                .carried
                .iter()
                .chain(&p.arrivals)
                .map(plan::span_of)
                .collect(),
        }
    }

    /// The projection basis of the part of the window covered (`covered_ns` of plan time
    /// from `from`): the plan's own when it all ran.
    fn basis(&self, s: &Scenario, covered_ns: u64) -> plan::ProjectionBasis {
        if covered_ns >= self.time.span_ns {
            return self.projection.clone();
        }
        let from = self.time.from_ns;
        plan::ProjectionBasis::of(s, self.spans.iter().copied(), from, from + covered_ns)
    }
}

struct Build<'a> {
    scenario: &'a Scenario,
    strategy: Strategy,
    pricing: &'a PriceTable,
    extra_thresholds: &'a [Threshold],
    ctx: &'a Ctx,
    plan: &'a PlanSummary,
    times: &'a run::PhaseTimes,
    samples: &'a run::Samples,
    status: &'a RunStatus,
    stopped_during: Option<&'static str>,
    target: &'a Target,
    local: Option<LocalDetails>,
    reconciliation: Option<reconcile::Reconciliation>,
    lobby_mode: bool,
    nofile: Option<u64>,
    warnings: Vec<String>,
    started_at_unix_ms: f64,
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1000.0)
}

/// What of the window a run covered: all of it, or the part before an early stop.
struct Covered {
    /// Plan time covered from `from`.
    ns: u64,
    /// Real time the window ran.
    real: Duration,
    /// Less than planned.
    cut_short: bool,
}

impl Covered {
    fn of(b: &Build<'_>, covered_ns: u64) -> Covered {
        let time = b.plan.time;
        let cut_short = covered_ns < time.span_ns;
        Covered {
            ns: covered_ns.min(time.span_ns),
            real: if cut_short {
                b.times.window
            } else {
                time.duration
            },
            cut_short,
        }
    }

    /// The time block of the drive details.
    fn details(&self, b: &Build<'_>) -> TimeDetails {
        let time = b.plan.time;
        TimeDetails {
            from_seconds: round3(time.from_ns as f64 / 1e9),
            from: clock_label(time.from_ns),
            from_reason: b.plan.from_reason.clone(),
            speedup: time.speedup,
            duration_seconds: round3(self.real.as_secs_f64()),
            covered_scenario_seconds: round3(self.ns as f64 / 1e9),
            planned_scenario_seconds: round3(time.span_ns as f64 / 1e9),
            cut_short: self.cut_short,
            stopped_during: b.stopped_during.map(str::to_string),
            ramp_seconds: round3(b.times.ramp.as_secs_f64()),
            grace_seconds: round3(b.times.grace.as_secs_f64()),
            grace_limit_seconds: round3(b.times.grace_limit.as_secs_f64()),
            cut_seconds: round3(b.times.cut.as_secs_f64()),
            started_at_unix_ms: b.started_at_unix_ms.round(),
        }
    }
}

/// A stretch of scenario time for the reader: `1m`, or `4.9s` for a part of a second.
fn span_label(ns: u64) -> String {
    if ns == 0 {
        "0s".into()
    } else if ns % NS_PER_SEC == 0 {
        crate::scenario::Dur(ns).to_string()
    } else {
        format!("{:.1}s", ns as f64 / NS_PER_SEC as f64)
    }
}

fn build_report(b: Build<'_>) -> Result<Report, DriveError> {
    let s = b.scenario;
    let st = b.ctx.state();
    let m = &st.m;
    let c = &m.counts;
    let time = b.plan.time;
    let k = time.speedup;
    let covered = Covered::of(&b, m.covered_ns);
    let covered_time = span_label(covered.ns);
    let time_details = covered.details(&b);
    let p = &s.platform;
    let mean = |d: &crate::scenario::DistSpec| d.mean_ns() / NS_PER_SEC as f64;

    // -- usage of the window ------------------------------------------------------------------
    let messages_in = c
        .messages_sent
        .saturating_sub(m.totals.not_admitted.min(c.messages_sent));
    let lobby_rpcs = if b.lobby_mode {
        c.upgrades + c.departures + c.promotions
    } else {
        0
    };
    let modelled_busy = c.upgrades as f64 * mean(&p.service.connect)
        + messages_in as f64 * mean(&p.service.message)
        + c.deliveries as f64 * p.service.per_recipient.secs()
        + c.departures as f64 * mean(&p.service.close);
    let lobby_busy = lobby_rpcs as f64 * mean(&p.service.rpc);
    let (active, tail) = if p.hibernation {
        (modelled_busy + lobby_busy, 0.0)
    } else {
        (m.socket_seconds + lobby_busy, m.tail_seconds)
    };
    let per = &s.persistence;
    // The lobby's state changes in the window: first answers admitted or queued, departures,
    // promotions (`seatings` counts admitted first answers and promotions).
    let lobby_rows = if b.lobby_mode {
        (c.seatings + m.window.queued + c.departures) as f64 * p.lobby_rows_written_per_change
    } else {
        0.0
    };
    let message_rows = messages_in as f64 * per.rows_written_per_message;
    let rows_written = message_rows + lobby_rows;
    let kept = per.retention.map_or(MONTH_SECONDS as f64 / 2.0, |r| {
        r.secs().min(MONTH_SECONDS as f64)
    });
    let usage = RunUsage {
        billable: Usage {
            worker_requests: c.worker_requests as f64,
            worker_cpu_ms: c.worker_requests as f64 * p.worker_cpu_ms_per_connect,
            do_requests: lobby_rpcs as f64,
            do_websocket_connects: c.upgrades as f64,
            do_websocket_messages_in: messages_in as f64,
            do_websocket_messages_out: c.deliveries as f64,
            do_active_seconds: active,
            do_idle_tail_seconds: tail,
            sqlite_rows_read: c.seatings as f64 * per.rows_read_per_join,
            sqlite_rows_written: rows_written,
            sqlite_stored_gb_months: message_rows * f64::from(per.row_bytes) / 1e9 * kept
                / MONTH_SECONDS as f64,
        },
        objects_created: m.per_object.iter().filter(|o| o.upgrades > 0).count() as u64
            + u64::from(b.lobby_mode),
        peak_connections: m.peaks.connections,
        peak_active_objects: m.peaks.active_objects,
        peak_queue_length: m.peaks.queue_length,
        peak_active_rooms: m.peaks.active_rooms,
        overload_errors: m
            .window
            .rejected_by_reason
            .get("overloaded")
            .copied()
            .unwrap_or(0),
        object_requests: c.upgrades + messages_in + lobby_rpcs + c.departures,
        lobby_rows_written: lobby_rows,
    };
    let mut sources = BTreeMap::new();
    let mut src = |k: &str, v: &str| {
        sources.insert(k.to_string(), v.to_string());
    };
    src(
        "worker_requests",
        "measured: upgrade requests of the window's sessions that got an HTTP answer (the month: per session started, see monthly_usage.method)",
    );
    src("worker_cpu_ms", "modelled: worker_requests × platform.worker_cpu_ms_per_connect (measured workerd CPU is in drive.cpu)");
    src(
        "do_requests",
        if b.lobby_mode {
            "derived from measured counts: 1 lobby RPC per join, departure and promotion (as the Worker does; checked by the reconciliation); the month: per session started, see monthly_usage.method"
        } else {
            "0: no lobby in this strategy and configuration"
        },
    );
    src(
        "do_websocket_connects",
        "measured: upgrades answered 101 in the window (the month: per session started, see monthly_usage.method)",
    );
    src(
        "do_websocket_messages_in",
        "measured: chat messages written (less those refused not_admitted)",
    );
    src(
        "do_websocket_messages_out",
        "measured: message frames received by the driver's sockets",
    );
    src(
        "do_active_seconds",
        if p.hibernation {
            "modelled: the window's measured events × the scenario's mean service times (the Hibernation API bills handling time, which is not visible from outside)"
        } else {
            "measured: per object, the time any driver socket to it was open (accept() bills the whole time), plus the lobby's RPCs × the mean rpc service time"
        },
    );
    src(
        "do_idle_tail_seconds",
        if p.hibernation {
            "0 under hibernation"
        } else {
            "measured gaps between a room object's last socket and its next, capped at the scenario's idle tail"
        },
    );
    src(
        "sqlite_rows_read",
        "modelled: seatings × persistence.rows_read_per_join (the Worker stores no messages)",
    );
    src(
        "sqlite_rows_written",
        if b.lobby_mode {
            "modelled: messages × persistence.rows_written_per_message, plus the lobby's state changes counted by the driver (first answers admitted or queued, departures, promotions) × platform.lobby_rows_written_per_change"
        } else {
            "modelled: messages × persistence.rows_written_per_message"
        },
    );
    src(
        "sqlite_stored_gb_months",
        "modelled: written rows × row_bytes, kept for the retention or half a month",
    );

    // -- projection: from the part of the window covered ----------------------------------------
    let pr = &b.plan.basis(s, covered.ns);
    let (method, factor) = match pr.factor() {
        Some(f) => (
            format!(
                "window usage × {}: a 30-day month's expected session-seconds ({}) ÷ the plan's in the {covered_time} of scenario time covered ({})",
                round3(f),
                crate::report::human_count(pr.month_session_seconds.round()),
                crate::report::human_count(pr.window_session_seconds.round())
            ),
            f,
        ),
        None if covered.ns == 0 => (
            "none: the run stopped before the measured window began, so it covered none of it; the monthly usage and bill are zeros, not an estimate".to_string(),
            0.0,
        ),
        None => (
            "none: the scenario time covered holds no planned session".to_string(),
            0.0,
        ),
    };

    // Lines that follow sessions (a connect, a Worker request, a lobby join each) are projected
    // per session: a short window holds few arrivals (often none at the scenario's real rate),
    // while every session the driver started, carried ones included, measures how many
    // connects a session makes.
    let started = m.carried.started + m.window.started;
    let per_session = (started > 0 && factor > 0.0).then(|| {
        let t = &m.totals;
        let per = |n: u64| n as f64 / started as f64;
        let connects = per(t.upgrades);
        let requests = per(t.upgrades + c.worker_requests.saturating_sub(c.upgrades));
        // In lobby mode, per session: a join RPC per upgrade; a leave RPC and two changes of
        // the lobby's state (in, out) per join admitted or queued; an RPC and a change per
        // promotion.
        let placed = t.admitted + t.queued_joins;
        let (lobby_rpcs, lobby_changes) = if b.lobby_mode {
            (
                per(t.upgrades + placed + t.promoted),
                per(2 * placed + t.promoted),
            )
        } else {
            (0.0, 0.0)
        };
        let month = pr.month_arrivals;
        crate::report::PerSessionLines {
            worker_requests: requests * month,
            worker_cpu_ms: requests * month * p.worker_cpu_ms_per_connect,
            do_websocket_connects: connects * month,
            do_requests: lobby_rpcs * month,
            lobby_rows_written: lobby_changes * month * p.lobby_rows_written_per_change,
            method: format!(
                "connects, Worker requests{}: a 30-day month's expected arrivals ({}) × per session started ({} carried + {} arrivals: {:.4} connects, {:.4} requests{} each)",
                if b.lobby_mode { ", lobby RPCs and lobby rows" } else { "" },
                crate::report::human_count(month.round()),
                m.carried.started,
                m.window.started,
                connects,
                requests,
                if b.lobby_mode {
                    format!(", {lobby_rpcs:.4} lobby RPCs, {lobby_changes:.4} lobby changes")
                } else {
                    String::new()
                },
            ),
        }
    });

    // -- CPU ----------------------------------------------------------------------------------
    let sm = b.samples;
    let diff = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let cpu = b.local.as_ref().map(|_| {
        let ramp_cpu = ms(diff(sm.target_cpu[0], sm.target_cpu[1])).unwrap_or(0.0);
        let window_cpu = ms(diff(sm.target_cpu[1], sm.target_cpu[2])).unwrap_or(0.0);
        let ramp_connects = m.carried.upgraded;
        // No window (stopped during the ramp): no sample at its start, no figure.
        let sampled = sm.target_cpu[1].is_some();
        let per_connect = if !sampled {
            None
        } else if ramp_connects >= 20 {
            Some(ramp_cpu / ramp_connects as f64)
        } else if c.upgrades > 0 && messages_in == 0 {
            Some(window_cpu / c.upgrades as f64)
        } else {
            None
        };
        let per_message = match (per_connect, messages_in) {
            _ if !sampled => None,
            (_, 0) => None,
            (Some(pc), n) => Some(((window_cpu - pc * c.upgrades as f64) / n as f64).max(0.0)),
            (None, n) if c.upgrades == 0 => Some(window_cpu / n as f64),
            (None, _) => None,
        };
        CpuDetails {
            source: "utime + stime of the workerd process and its descendants (/proc/<pid>/stat), sampled at the ramp's start, the window's start and the grace's end".into(),
            ramp_cpu_ms: round3(ramp_cpu),
            ramp_connects,
            window_cpu_ms: round3(window_cpu),
            window_connects: c.upgrades,
            window_messages_in: messages_in,
            window_deliveries: c.deliveries,
            cpu_ms_per_connect: per_connect.map(|v| (v * 1e4).round() / 1e4),
            cpu_ms_per_message: per_message.map(|v| (v * 1e5).round() / 1e5),
            method: "per connect: the ramp's CPU ÷ its connects (the ramp has no messages); per message (fan-out included): the window's CPU less its connects at that rate, ÷ inbound messages; workerd runs the Worker and every Durable Object, so both figures are Worker + object CPU, on this machine, at 10 ms accounting resolution".into(),
        }
    });
    let driver_cpu = ms(diff(sm.driver_cpu[1], sm.driver_cpu[2])).unwrap_or(0.0);
    let frames = c.messages_sent + c.deliveries;
    let rss_per_conn = match (sm.driver_rss[0], sm.driver_rss[1]) {
        (Some(a), Some(b)) if sm.sockets_at_t0 > 0 => {
            Some((b as f64 - a as f64) / sm.sockets_at_t0 as f64)
        }
        _ => None,
    };

    let d = &m.deliveries;
    let hs = &m.hists;
    let mut warnings = b.warnings;
    if m.deliveries.missed_connected > 0 {
        warnings.push(format!(
            "{} deliveries never reached a recipient that stayed connected",
            m.deliveries.missed_connected
        ));
    }
    if b.times.carried_unanswered > 0 {
        warnings.push(format!(
            "{} carried sessions had no answer by the end of the ramp",
            b.times.carried_unanswered
        ));
    }
    if covered.cut_short {
        warnings.push(if factor > 0.0 {
            format!(
                "the run was cut short: it covered {covered_time} of the planned {} of scenario time, and the monthly figures are projected from that part",
                span_label(time.span_ns)
            )
        } else {
            "the run was cut short before any monthly projection was possible: the monthly usage and bill are zeros, not an estimate".to_string()
        });
    }
    if let Some(r) = &b.reconciliation {
        if r.not_comparable_reason.is_some() {
            warnings.push(format!(
                "{} after the interrupt (sockets closed without waiting for the Worker): not differences, see reconciliation.not_comparable_reason",
                crate::report::counted(
                    r.not_comparable.len() as u64,
                    "reconciliation check is not comparable",
                    "reconciliation checks are not comparable"
                )
            ));
        }
        if !r.restarts.is_empty() {
            warnings.push(format!(
                "{} object(s) restarted during the run with their counters lost (a new isolate, e.g. the Worker restarted): their counters cover only the time since",
                r.restarts.len()
            ));
        }
    }
    let details = DriveDetails {
        target: b.target.to_string(),
        status: match b.status {
            RunStatus::Complete => "complete",
            RunStatus::TargetDown(_) => "target_down",
            RunStatus::Interrupted(_) => "interrupted",
        }
        .into(),
        stopped: match b.status {
            RunStatus::Complete => None,
            RunStatus::TargetDown(s) | RunStatus::Interrupted(s) => Some(s.clone()),
        },
        local: b.local.clone(),
        time: time_details,
        carried: SessionDetails {
            planned: b.plan.carried,
            started: m.carried.started,
            failed: m.carried.failed,
            upgraded: m.carried.upgraded,
            admitted: m.carried.admitted,
            queued: m.carried.queued,
            rejected: m.carried.rejected,
        },
        arrivals: SessionDetails {
            planned: b.plan.arrivals,
            started: m.window.started,
            failed: m.window.failed,
            upgraded: m.window.upgraded,
            admitted: m.window.admitted,
            queued: m.window.queued,
            rejected: m.window.rejected,
        },
        latency_ms: DriveLatency {
            arrival_lag: hs.arrival_lag.summary(),
            upgrade: hs.upgrade.summary(),
            carried_connect: hs.carried_connect.summary(),
            window_connect: hs.window_connect.summary(),
        },
        deliveries: DeliveryDetails {
            expected: d.expected,
            received: c.deliveries,
            received_expected: d.received_expected,
            missed: d.missed_connected + d.missed_departing,
            missed_connected: d.missed_connected,
            missed_departing: d.missed_departing,
            unexpected: d.unexpected,
            duplicated: d.duplicated,
            unknown: d.unknown,
        },
        faults: m.faults.clone(),
        usage_sources: sources,
        projection: ProjectionDetails {
            method: method.clone(),
            window_session_seconds: round3(pr.window_session_seconds),
            month_session_seconds: round3(pr.month_session_seconds),
            window_arrivals: pr.window_arrivals,
            expected_window_arrivals: round3(pr.expected_window_arrivals),
            month_arrivals: round3(pr.month_arrivals),
            factor: pr.factor().map(round3),
        },
        cpu,
        driver: DriverDetails {
            cpu_ms: round3(driver_cpu),
            cpu_us_per_message: (c.messages_sent > 0)
                .then(|| round3(driver_cpu * 1000.0 / c.messages_sent as f64)),
            cpu_us_per_frame: (frames > 0).then(|| round3(driver_cpu * 1000.0 / frames as f64)),
            peak_open_sockets: m.peaks.open_sockets,
            sockets_at_window_start: sm.sockets_at_t0,
            rss_bytes_at_window_start: sm.driver_rss[1],
            rss_bytes_per_connection: rss_per_conn.map(|v| v.round()),
            peak_rss_bytes: local::self_peak_rss(),
            nofile_limit: b.nofile,
        },
        reconciliation: b.reconciliation,
        warnings,
    };

    let mut notes = vec![
        format!(
            "time: scenario time {} to {} ({covered_time} of scenario time) driven in {:.1} s of real time (speed-up ×{k}: arrival gaps, session lengths, message intervals and patience divided by {k}); the {} sessions in progress at the start connected during a {:.1} s ramp first, so rooms start at the plan's occupancy",
            clock_label(time.from_ns),
            clock_label(time.from_ns + covered.ns),
            covered.real.as_secs_f64(),
            b.plan.carried,
            b.times.ramp.as_secs_f64()
        ),
        format!("monthly projection: {method}; admission losses in the window are assumed for the whole month"),
        "latency: measured on the driver's monotonic clock (every room's members in one process); message latency per recipient from the intended send time (coordinated-omission corrected), message_from_send from the actual write, send_lag the difference".into(),
        "object_queue: cannot be measured from outside the Worker; left empty".into(),
        "usage: see drive.usage_sources for which lines are measured and which are modelled".into(),
        "connect latency counts every connect, the carried sessions' during the ramp included (the ramp may connect them faster than they arrived); drive.latency_ms splits it into carried_connect and window_connect; sessions and admission-wait latency count the sessions arriving in the window (carried sessions: drive.carried)".into(),
    ];
    if b.local.is_some() {
        notes.push("target: the Worker on a local workerd on this machine (loopback): no Internet, no Cloudflare edge; latencies are the runtime's own".into());
    }
    if !matches!(b.status, RunStatus::Complete) {
        notes.push(format!(
            "the run stopped early{}: figures cover what was measured until then, and the monthly projection the {covered_time} of scenario time covered",
            b.stopped_during
                .map_or(String::new(), |p| format!(" (during the {p})"))
        ));
    }
    let latency = LatencyBlock {
        connect: hs.connect.summary(),
        admission_wait: hs.admission_wait.summary(),
        message: hs.message.summary(),
        object_queue: LatencySummary::default(),
        message_from_send: Some(hs.message_from_send.summary()),
        send_lag: Some(hs.send_lag.summary()),
    };
    let w = &m.window;
    let sessions = SessionCounts {
        arrived: w.started,
        admitted: w.admitted,
        queued: w.queued,
        admitted_from_queue: w.admitted_from_queue,
        abandoned: w.abandoned,
        rejected: w.rejected,
        rejected_by_reason: w.rejected_by_reason.clone(),
        still_waiting: w.still_waiting,
        still_connecting: w.still_connecting,
    };
    let messages = MessageCounts {
        sent: c.messages_sent,
        accepted: c.messages_sent - c.messages_failed.min(c.messages_sent),
        failed: c.messages_failed,
        delivered: c.deliveries,
        missed: d.missed_connected + d.missed_departing,
        duplicated: d.duplicated,
    };
    let timeseries = m.timeseries.clone();
    drop(st);
    let mut report = Report::assemble(Parts {
        mode: "drive",
        scenario: s,
        strategy: b.strategy,
        pricing: b.pricing,
        window_seconds: round3(covered.ns as f64 / 1e9),
        provenance: Provenance {
            dosim_version: env!("CARGO_PKG_VERSION").to_string(),
            method: format!(
                "measured: {:.0} s over real WebSockets against {}{}, scenario time {} + {covered_time} (×{k}{}), seed {}",
                covered.real.as_secs_f64(),
                b.target,
                if b.local.is_some() { " (local workerd)" } else { "" },
                clock_label(time.from_ns),
                if covered.cut_short { ", cut short" } else { "" },
                s.seed
            ),
            notes,
        },
        sessions,
        latency_ms: latency,
        messages,
        usage,
        projection: (method, factor),
        per_session,
        timeseries,
        extra_thresholds: b.extra_thresholds,
    })?;
    report.drive = Some(details);
    // Again now that the report knows whether its monthly figures are a projection.
    report.check_thresholds(s, b.extra_thresholds);
    Ok(report)
}
