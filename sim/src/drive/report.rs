//! Report: a finished run into the shape `dosim simulate` produces ([`Report`], `mode:
//! "drive"`), with its `drive` block ([`DriveDetails`]).
//!
//! [`build_report`] reads in order: what the window covered ([`Covered`]); the costs per
//! event from workerd's CPU ([`super::cpu::measure`]); the usage, its projection and every
//! line's source ([`super::usage::bill`]); then the `drive` block, the warnings and the
//! notes; and assembles the report.

use std::time::Duration;

use super::client::Target;
use super::cpu::{self, CpuClock, PhaseCounts, WorkerProbe};
use super::plan::{self, clock_label, DrivePlan};
use super::reconcile::Reconciliation;
use super::run;
use super::state::Measured;
use super::usage::{self, BillInputs, Billed};
use super::{DriveError, RunStatus};
use crate::metrics::{round3, LatencySummary};
use crate::model::strategy::Strategy;
use crate::pricing::PriceTable;
use crate::report::drive::*;
use crate::report::{LatencyBlock, MessageCounts, Parts, Provenance, Report, SessionCounts};
use crate::scenario::{Scenario, NS_PER_SEC};
use crate::threshold::Threshold;

/// What the report needs of the plan after the sessions were handed to the run.
#[derive(Debug, Clone)]
pub(crate) struct PlanSummary {
    time: plan::TimeMap,
    from_reason: String,
    carried: u64,
    arrivals: u64,
    projection: plan::ProjectionBasis,
    /// Every session's planned `[arrival, end)`, to project from part of the window.
    spans: Vec<(u64, u64)>,
}

impl PlanSummary {
    pub(crate) fn of(p: &DrivePlan) -> PlanSummary {
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

/// Everything a report is built from.
pub(crate) struct Build<'a> {
    pub scenario: &'a Scenario,
    pub strategy: Strategy,
    pub pricing: &'a PriceTable,
    pub extra_thresholds: &'a [Threshold],
    /// Everything measured (one run's, or the shards' added up).
    pub m: &'a Measured,
    pub plan: &'a PlanSummary,
    pub times: &'a run::PhaseTimes,
    pub samples: &'a run::Samples,
    /// How workerd's CPU was read (None against a `--target`).
    pub clock: Option<CpuClock>,
    pub worker_probe: &'a WorkerProbe,
    pub status: &'a RunStatus,
    pub stopped_during: Option<String>,
    pub target: &'a Target,
    pub local: Option<LocalDetails>,
    pub reconciliation: Option<Reconciliation>,
    pub lobby_mode: bool,
    pub nofile: Option<u64>,
    /// `--read-batch`.
    pub read_batch: Duration,
    /// `--realtime`.
    pub realtime: bool,
    pub warnings: Vec<String>,
    pub started_at_unix_ms: f64,
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
    /// `ns` for the reader.
    label: String,
}

impl Covered {
    fn of(b: &Build<'_>, covered_ns: u64) -> Covered {
        let time = b.plan.time;
        let cut_short = covered_ns < time.span_ns;
        let ns = covered_ns.min(time.span_ns);
        Covered {
            ns,
            real: if cut_short {
                b.times.window
            } else {
                time.duration
            },
            cut_short,
            label: span_label(ns),
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
            stopped_during: b.stopped_during.clone(),
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

/// The report of a finished run.
pub(crate) fn build_report(b: Build<'_>) -> Result<Report, DriveError> {
    let s = b.scenario;
    let m = b.m;
    let covered = Covered::of(&b, m.covered_ns);
    let measured = cpu::measure(
        s,
        b.clock,
        b.samples,
        b.worker_probe,
        &phase_counts(m),
        b.lobby_mode,
    );
    let basis = b.plan.basis(s, covered.ns);
    let billed = usage::bill(
        m,
        &BillInputs {
            scenario: s,
            lobby: b.lobby_mode,
            costs: &measured.costs,
            basis: &basis,
            covered_ns: covered.ns,
            covered_label: &covered.label,
        },
    );
    let factor = billed.projection.factor;
    let notes = notes(&b, &covered, &billed.projection.method);
    let parts_of_m = (sessions(m), latency(m), messages(m), m.timeseries.clone());
    let details = details(
        &b,
        m,
        &covered,
        &basis,
        &billed.projection.method,
        billed.sources.clone(),
        measured.details,
    );
    let Billed {
        usage, projection, ..
    } = billed;
    let (sessions, latency_ms, messages, timeseries) = parts_of_m;
    let time = b.plan.time;
    let mut report = Report::assemble(Parts {
        mode: "drive",
        scenario: s,
        strategy: b.strategy,
        pricing: b.pricing,
        window_seconds: round3(covered.ns as f64 / 1e9),
        provenance: Provenance {
            dosim_version: env!("CARGO_PKG_VERSION").to_string(),
            method: format!(
                "measured: {:.0} s over real WebSockets against {}{}, scenario time {} + {} (×{}{}), seed {}",
                covered.real.as_secs_f64(),
                b.target,
                if b.local.is_some() { " (local workerd)" } else { "" },
                clock_label(time.from_ns),
                covered.label,
                time.speedup,
                if covered.cut_short { ", cut short" } else { "" },
                s.seed
            ),
            notes,
        },
        sessions,
        latency_ms,
        messages,
        usage,
        projection,
        timeseries,
        extra_thresholds: b.extra_thresholds,
    })?;
    debug_assert_eq!(report.monthly_usage.factor, factor);
    report.drive = Some(details);
    // Again now that the report knows whether its monthly figures are a projection.
    report.check_thresholds(s, b.extra_thresholds);
    Ok(report)
}

/// The events of each phase, for the CPU figures.
fn phase_counts(m: &Measured) -> PhaseCounts {
    let c = &m.counts;
    PhaseCounts {
        ramp_connects: m.carried.upgraded,
        window_connects: c.upgrades,
        window_messages: c
            .messages_sent
            .saturating_sub(m.totals.not_admitted.min(c.messages_sent)),
        window_deliveries: c.deliveries,
        window_closes: c.departures,
    }
}

fn sessions(m: &Measured) -> SessionCounts {
    let w = &m.window;
    SessionCounts {
        arrived: w.started,
        admitted: w.admitted,
        queued: w.queued,
        admitted_from_queue: w.admitted_from_queue,
        abandoned: w.abandoned,
        rejected: w.rejected,
        rejected_by_reason: w.rejected_by_reason.clone(),
        still_waiting: w.still_waiting,
        still_connecting: w.still_connecting,
    }
}

fn latency(m: &Measured) -> LatencyBlock {
    let hs = &m.hists;
    LatencyBlock {
        connect: hs.connect.summary(),
        admission_wait: hs.admission_wait.summary(),
        message: hs.message.summary(),
        object_queue: LatencySummary::default(),
        message_from_send: Some(hs.message_from_send.summary()),
        send_lag: Some(hs.send_lag.summary()),
    }
}

fn messages(m: &Measured) -> MessageCounts {
    let (c, d) = (&m.counts, &m.deliveries);
    MessageCounts {
        sent: c.messages_sent,
        accepted: c.messages_sent - c.messages_failed.min(c.messages_sent),
        failed: c.messages_failed,
        delivered: c.deliveries,
        missed: d.missed_connected + d.missed_departing,
        duplicated: d.duplicated,
    }
}

/// The `drive` block.
fn details(
    b: &Build<'_>,
    m: &Measured,
    covered: &Covered,
    pr: &plan::ProjectionBasis,
    projection_method: &str,
    usage_sources: std::collections::BTreeMap<String, String>,
    cpu: Option<CpuDetails>,
) -> DriveDetails {
    let (c, d, hs) = (&m.counts, &m.deliveries, &m.hists);
    let tally = |planned: u64, t: &super::state::SessionTally| SessionDetails {
        planned,
        started: t.started,
        failed: t.failed,
        upgraded: t.upgraded,
        admitted: t.admitted,
        queued: t.queued,
        rejected: t.rejected,
    };
    DriveDetails {
        target: b.target.to_string(),
        shard: None,
        merged_from: Vec::new(),
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
        time: covered.details(b),
        carried: tally(b.plan.carried, &m.carried),
        arrivals: tally(b.plan.arrivals, &m.window),
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
        usage_sources,
        projection: ProjectionDetails {
            method: projection_method.to_string(),
            window_session_seconds: round3(pr.window_session_seconds),
            month_session_seconds: round3(pr.month_session_seconds),
            window_arrivals: pr.window_arrivals,
            expected_window_arrivals: round3(pr.expected_window_arrivals),
            month_arrivals: round3(pr.month_arrivals),
            factor: pr.factor().map(round3),
        },
        cpu,
        driver: driver_details(b, m),
        reconciliation: b.reconciliation.clone(),
        warnings: warnings(b, m, covered, pr.factor().is_some()),
    }
}

fn driver_details(b: &Build<'_>, m: &Measured) -> DriverDetails {
    let sm = b.samples;
    let c = &m.counts;
    let diff = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let cpu = ms(diff(sm.driver_cpu[1], sm.driver_cpu[2])).unwrap_or(0.0);
    let kernel = ms(diff(sm.driver_cpu_kernel[1], sm.driver_cpu_kernel[2]));
    let frames = c.messages_sent + c.deliveries;
    let rss_per_conn = match (sm.driver_rss[0], sm.driver_rss[1]) {
        (Some(a), Some(b)) if sm.sockets_at_t0 > 0 => {
            Some((b as f64 - a as f64) / sm.sockets_at_t0 as f64)
        }
        _ => None,
    };
    DriverDetails {
        cpu_ms: round3(cpu),
        cpu_us_per_message: (c.messages_sent > 0)
            .then(|| round3(cpu * 1000.0 / c.messages_sent as f64)),
        cpu_us_per_frame: (frames > 0).then(|| round3(cpu * 1000.0 / frames as f64)),
        cpu_kernel_share: kernel
            .filter(|_| cpu > 0.0)
            .map(|k| round3((k / cpu).min(1.0))),
        read_batch_ms: round3(b.read_batch.as_secs_f64() * 1000.0),
        realtime: b.realtime,
        peak_open_sockets: m.peaks.open_sockets,
        sockets_at_window_start: sm.sockets_at_t0,
        rss_bytes_at_window_start: sm.driver_rss[1],
        rss_bytes_per_connection: rss_per_conn.map(|v| v.round()),
        peak_rss_bytes: super::local::self_peak_rss(),
        nofile_limit: b.nofile,
    }
}

fn warnings(b: &Build<'_>, m: &Measured, covered: &Covered, projected: bool) -> Vec<String> {
    let mut warnings = b.warnings.clone();
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
        warnings.push(if projected {
            format!(
                "the run was cut short: it covered {} of the planned {} of scenario time, and the monthly figures are projected from that part",
                covered.label,
                span_label(b.plan.time.span_ns)
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
    warnings
}

fn notes(b: &Build<'_>, covered: &Covered, projection: &str) -> Vec<String> {
    let time = b.plan.time;
    let k = time.speedup;
    let mut notes = vec![
        format!(
            "time: scenario time {} to {} ({} of scenario time) driven in {:.1} s of real time (speed-up ×{k}: arrival gaps, session lengths, message intervals and patience divided by {k}); the {} sessions in progress at the start connected during a {:.1} s ramp first, so rooms start at the plan's occupancy",
            clock_label(time.from_ns),
            clock_label(time.from_ns + covered.ns),
            covered.label,
            covered.real.as_secs_f64(),
            b.plan.carried,
            b.times.ramp.as_secs_f64()
        ),
        format!("monthly projection: {projection}; admission losses in the window are assumed for the whole month"),
        format!("latency: measured on the driver's monotonic clock (every room's members in one process); message latency per recipient from the intended send time (coordinated-omission corrected), message_from_send from the actual write, send_lag the difference; a frame's arrival is the kernel's receive stamp of its last read (SO_TIMESTAMPNS), so reading in batches (here within {} ms) is not measured", round3(b.read_batch.as_secs_f64() * 1000.0)),
        "object_queue: cannot be measured from outside the Worker; left empty".into(),
        "usage: see drive.usage_sources for which lines are measured and which are modelled, and from what".into(),
        "connect latency counts every connect, the carried sessions' during the ramp included (the ramp may connect them faster than they arrived); drive.latency_ms splits it into carried_connect and window_connect; sessions and admission-wait latency count the sessions arriving in the window (carried sessions: drive.carried)".into(),
    ];
    if b.local.is_some() {
        notes.push("target: the Worker on a local workerd on this machine (loopback): no Internet, no Cloudflare edge; latencies are the runtime's own".into());
        notes.push("local workerd runs the Worker, every Durable Object, the lobby and the registry on one thread (one event loop, one isolate): all objects share one core, so per-room and sharded rooms cannot run in parallel here as they do on Cloudflare, latency includes queueing behind other objects' events, and the per-event CPU figures (drive.cpu) are this machine's runtime, not Cloudflare's".into());
    } else if b.clock.is_some() {
        // A merge of one `--local` shard: its process read workerd's CPU.
        notes.push("server side: workerd's CPU was read by the shard's process (drive.cpu; drive.usage_sources says line by line what was measured)".into());
    } else {
        notes.push(format!(
            "server side: {}: the Worker's CPU and the objects' busy time are the scenario's (drive.usage_sources says so line by line)",
            cpu::REMOTE
        ));
    }
    if let Some(n) = crate::calibration::note(&b.scenario.platform) {
        notes.push(format!(
            "{n}: figures not measured in this run bill the calibrated ones (drive.usage_sources)"
        ));
    }
    if !matches!(b.status, RunStatus::Complete) {
        notes.push(format!(
            "the run stopped early{}: figures cover what was measured until then, and the monthly projection the {} of scenario time covered",
            b.stopped_during
                .as_ref()
                .map_or(String::new(), |p| format!(" (during the {p})")),
            covered.label
        ));
    }
    notes
}
