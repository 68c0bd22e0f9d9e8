//! Cpu: what workerd's CPU says each event costs, for the bill.
//!
//! With `--local`, the driver reads workerd's CPU time at every phase boundary, summed over
//! its threads at nanosecond resolution (`/proc/<pid>/task/*/schedstat`; `/proc/<pid>/stat`
//! in 10 ms clock ticks where schedstat is missing, and the report says which). workerd runs
//! the Worker, every Durable Object, the lobby and the registry on one thread, and is idle
//! between phases, so each phase's CPU is the work of that phase's events:
//!
//! | phase | events | figure |
//! |---|---|---|
//! | probe (before the ramp) | 100 requests the Worker answers alone (the join route without an `Upgrade` header: 426, no object touched) | the Worker's CPU per request |
//! | ramp | connects only (the carried sessions; first connects create their objects) | CPU per connect |
//! | window and grace | messages, plus the window's connects and closes | CPU per message, fan-out included: the window's CPU less its connects and closes at the rates of the other phases, ÷ its messages |
//! | departures | every socket left closes (a `leave` frame, the close, the lobby's leave RPC) | CPU per close |
//!
//! A figure needs at least [`MIN_EVENTS`] events in its phase (and, with clock ticks, enough
//! CPU for their resolution); otherwise that cost stays the scenario's, and the report says
//! which and why ([`crate::report::drive::CpuDetails`]`::not_measured`).
//!
//! How the bill uses them (the choice is ours; [`crate::meter`] labels every line):
//! - **Worker CPU** (billed in CPU-ms per request) is the probe's CPU per request: the
//!   request's HTTP handling and the Worker's own routing and checks, without the object.
//! - **Object busy time** (billed as duration under the Hibernation API) of a connect is its
//!   CPU less the Worker's share; of a message, a close, its CPU. CPU stands for handling
//!   time: locally a handler runs to completion on the one thread, with in-memory storage
//!   and no I/O to wait for. A lobby RPC's CPU cannot be told apart from the connect or
//!   close it serves, so it is part of those figures (a lobby RPC adds 0); under `accept()`,
//!   which bills socket time, the lobby's RPCs keep the scenario's service time.
//! - If the Worker's share was not measured, a connect's whole CPU is object time and the
//!   Worker's CPU stays modelled: counted twice, on the safe side, and labelled so.
//!
//! Against a `--target` nothing is measured on the server side: every cost is the
//! scenario's, and every line says so.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::client::Target;
use super::run::{Probe, Samples};
use crate::meter::{Cost, EventCosts, Source};
use crate::metrics::round3;
use crate::report::drive::CpuDetails;
use crate::scenario::{Scenario, NS_PER_SEC};

/// Events a phase needs for a per-event figure.
pub(crate) const MIN_EVENTS: u64 = 20;
/// Requests of the Worker probe.
pub(crate) const PROBE_REQUESTS: u64 = 100;
/// Why a `--target` run bills the scenario's costs.
pub(crate) const REMOTE: &str = "nothing measured on the server side against --target";

/// How workerd's CPU time is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CpuClock {
    /// Per-thread schedstat, nanoseconds.
    Schedstat,
    /// `/proc/<pid>/stat` utime + stime, clock ticks.
    ProcStat,
}

impl CpuClock {
    fn label(self) -> &'static str {
        match self {
            CpuClock::Schedstat => "schedstat",
            CpuClock::ProcStat => "proc_stat",
        }
    }

    /// What a reading can resolve.
    fn resolution(self) -> Duration {
        match self {
            CpuClock::Schedstat => Duration::ZERO,
            CpuClock::ProcStat => {
                Duration::from_nanos(NS_PER_SEC / rustix::param::clock_ticks_per_second().max(1))
            }
        }
    }

    fn source(self) -> &'static str {
        match self {
            CpuClock::Schedstat => "workerd's CPU time summed over its threads, in ns (/proc/<pid>/task/*/schedstat), read before the probe, at the ramp's start, the window's start, the grace's end and after the departures",
            CpuClock::ProcStat => "utime + stime of workerd and its descendants (/proc/<pid>/stat, clock ticks: schedstat is not available here), read before the probe, at the ramp's start, the window's start, the grace's end and after the departures",
        }
    }
}

/// The Worker probe: requests the Worker answers alone, and the CPU they took.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct WorkerProbe {
    /// Requests answered 426.
    pub requests: u64,
    /// workerd's CPU over them.
    pub cpu: Option<Duration>,
}

/// Send [`PROBE_REQUESTS`] requests, one at a time, that the Worker answers itself: the
/// join route of `segment` without an `Upgrade` header (426, before any object is touched).
/// Each is a new connection, as an upgrade is. Only when the target's CPU is read.
pub(crate) async fn probe_worker(target: &Target, segment: &str, probe: &dyn Probe) -> WorkerProbe {
    let mut out = WorkerProbe::default();
    let Some(before) = probe.target_cpu() else {
        return out;
    };
    let path = target.join_path(segment, "dosim-probe", "probe");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for _ in 0..PROBE_REQUESTS {
        if tokio::time::Instant::now() > deadline {
            break;
        }
        match super::stats::http_get(target, &path, None, Duration::from_secs(2)).await {
            Ok(r) if r.status == 426 => out.requests += 1,
            _ => break, // not the project's Worker, or it is unwell: no figure
        }
    }
    tokio::time::sleep(super::run::IDLE_SETTLE).await;
    out.cpu = probe.target_cpu().map(|after| after.saturating_sub(before));
    out
}

/// What happened in each phase, as the driver counted it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PhaseCounts {
    /// Upgrades in the ramp (the carried sessions').
    pub ramp_connects: u64,
    /// Upgrades in the window.
    pub window_connects: u64,
    /// Inbound messages in the window.
    pub window_messages: u64,
    /// Their deliveries.
    pub window_deliveries: u64,
    /// Departures in the window.
    pub window_closes: u64,
}

/// The measured costs (or the scenario's where nothing was measured) and the `drive.cpu`
/// block (with `--local`).
pub(crate) struct Measurement {
    /// The costs the meter bills.
    pub costs: EventCosts,
    /// The `drive.cpu` block.
    pub details: Option<CpuDetails>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn delta(samples: &Samples, a: usize, b: usize) -> Option<Duration> {
    match (samples.target_cpu[a], samples.target_cpu[b]) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    }
}

/// CPU per event of one phase, in ms, or why there is none.
fn per_event(
    cpu: Option<Duration>,
    events: u64,
    what: &str,
    phase: &str,
    clock: CpuClock,
) -> Result<f64, String> {
    let Some(cpu) = cpu else {
        return Err(format!(
            "workerd's CPU was not read at both ends of the {phase}"
        ));
    };
    if events < MIN_EVENTS {
        return Err(format!(
            "only {events} {what} in the {phase} (a figure needs {MIN_EVENTS})"
        ));
    }
    let floor = clock.resolution() * 20;
    if cpu < floor {
        return Err(format!(
            "{:.0} ms of CPU in the {phase}, too little for clock ticks of {:.0} ms",
            ms(cpu),
            ms(clock.resolution())
        ));
    }
    Ok(ms(cpu) / events as f64)
}

/// The costs a drive bills: measured from workerd's CPU where it was read and its phases
/// held enough events, else the scenario's (saying why).
pub(crate) fn measure(
    s: &Scenario,
    clock: Option<CpuClock>,
    samples: &Samples,
    probe: &WorkerProbe,
    n: &PhaseCounts,
    lobby: bool,
) -> Measurement {
    let Some(clock) = clock else {
        // A calibration applied to the scenario makes these `Source::Calibrated`.
        return Measurement {
            costs: EventCosts::from_scenario(s, Some(REMOTE)),
            details: None,
        };
    };
    let f = Figures::read(s, clock, samples, probe, n, lobby);
    let (costs, not_measured) = f.costs(s, probe, n, lobby);
    Measurement {
        costs,
        details: Some(f.details(probe, n, not_measured)),
    }
}

/// Each phase's CPU and the per-event figure it gives (ms), or why it gives none.
struct Figures {
    clock: CpuClock,
    ramp: Option<Duration>,
    window: Option<Duration>,
    departures: Option<Duration>,
    /// Sockets closed in the departures.
    closes: u64,
    worker: Result<f64, String>,
    connect: Result<f64, String>,
    close: Result<f64, String>,
    /// With how it was derived.
    message: Result<(f64, String), String>,
    /// Recipients per message in the window.
    recipients: Option<f64>,
}

impl Figures {
    fn read(
        s: &Scenario,
        clock: CpuClock,
        samples: &Samples,
        probe: &WorkerProbe,
        n: &PhaseCounts,
        lobby: bool,
    ) -> Figures {
        let (ramp, window) = (delta(samples, 0, 1), delta(samples, 1, 2));
        let departures = delta(samples, 2, 3);
        let closes = samples.sockets_at_cut;
        let worker = per_event(probe.cpu, probe.requests, "probe requests", "probe", clock);
        let connect = per_event(ramp, n.ramp_connects, "connects", "ramp", clock);
        let close = per_event(departures, closes, "closes", "departures", clock);
        let message = per_message(s, window, n, &connect, &close, clock, lobby);
        Figures {
            clock,
            ramp,
            window,
            departures,
            closes,
            worker,
            connect,
            close,
            message,
            recipients: (n.window_messages > 0)
                .then(|| n.window_deliveries as f64 / n.window_messages as f64),
        }
    }

    /// The costs to bill, and what could not be measured.
    fn costs(
        &self,
        s: &Scenario,
        probe: &WorkerProbe,
        n: &PhaseCounts,
        lobby: bool,
    ) -> (EventCosts, Vec<String>) {
        let scenario = EventCosts::from_scenario(s, None);
        let mut not_measured = Vec::new();
        let mut fallback = |what: &str, why: &str, c: &Cost| {
            not_measured.push(format!("{what}: {why}"));
            modelled(c, why)
        };
        let measured = |v: f64, how: String| Cost::new(v, Source::Measured(how));
        let worker_cpu_ms = match &self.worker {
            Ok(w) => measured(*w, format!(
                "workerd's CPU over {} requests the Worker answered alone before the ramp (the join route without an Upgrade header: 426), {w:.4} ms each ({})",
                probe.requests,
                self.clock.label()
            )),
            Err(why) => fallback("the Worker's CPU per request", why, &scenario.worker_cpu_ms),
        };
        let connect = match (&self.connect, &self.worker) {
            (Ok(c), Ok(w)) => measured((c - w).max(0.0) / 1e3, format!(
                "workerd's CPU per connect in the ramp ({c:.4} ms over {} connects, first connects creating their objects), less the Worker's share ({w:.4} ms)",
                n.ramp_connects
            )),
            (Ok(c), Err(_)) => measured(c / 1e3, format!(
                "workerd's CPU per connect in the ramp ({c:.4} ms over {} connects), all of it: the Worker's share was not measured, so the Worker's CPU is billed as modelled besides (counted twice, on the safe side)",
                n.ramp_connects
            )),
            (Err(why), _) => fallback("CPU per connect", why, &scenario.connect),
        };
        let (message, per_recipient) = match &self.message {
            Ok((m, how)) => (
                measured(m / 1e3, how.clone()),
                measured(
                    0.0,
                    format!(
                    "included in the per-message figure, measured at {:.2} recipients per message",
                    self.recipients.unwrap_or(0.0)
                ),
                ),
            ),
            Err(why) => (
                fallback("CPU per message", why, &scenario.message),
                modelled(&scenario.per_recipient, why),
            ),
        };
        let close = match &self.close {
            Ok(c) => measured(c / 1e3, format!(
                "workerd's CPU in the final departures ÷ their {} closes ({c:.4} ms each: the leave frame and the close{})",
                self.closes,
                if lobby { ", with the lobby's leave RPC and any promotion" } else { "" }
            )),
            Err(why) => fallback("CPU per close", why, &scenario.close),
        };
        let rpc = if !lobby {
            scenario.rpc.clone()
        } else if s.platform.hibernation && self.connect.is_ok() && self.close.is_ok() {
            measured(0.0, "included in the measured connect and close figures (the lobby runs in the same workerd, in those phases)".into())
        } else {
            modelled(
                &scenario.rpc,
                "a lobby RPC's CPU cannot be told apart, in one drive, from the connect or close it serves",
            )
        };
        let costs = EventCosts {
            worker_cpu_ms,
            connect,
            message,
            per_recipient,
            close,
            rpc,
        };
        (costs, not_measured)
    }

    /// The `drive.cpu` block.
    fn details(
        &self,
        probe: &WorkerProbe,
        n: &PhaseCounts,
        not_measured: Vec<String>,
    ) -> CpuDetails {
        let cpu = |d: Option<Duration>| round3(d.map_or(0.0, ms));
        let fig = |r: &Result<f64, String>| r.as_ref().ok().map(|v| round_to(*v, 5));
        CpuDetails {
            source: self.clock.source().into(),
            clock: self.clock.label().into(),
            probe_requests: probe.requests,
            probe_cpu_ms: cpu(probe.cpu),
            ramp_cpu_ms: cpu(self.ramp),
            ramp_connects: n.ramp_connects,
            window_cpu_ms: cpu(self.window),
            window_connects: n.window_connects,
            window_messages_in: n.window_messages,
            window_deliveries: n.window_deliveries,
            window_closes: n.window_closes,
            departures_cpu_ms: self.departures.map(|d| round3(ms(d))),
            departures_closes: self.closes,
            cpu_ms_per_worker_request: fig(&self.worker),
            cpu_ms_per_connect: fig(&self.connect),
            cpu_ms_per_message: self.message.as_ref().ok().map(|(v, _)| round_to(*v, 5)),
            cpu_ms_per_close: fig(&self.close),
            mean_recipients: self.recipients.map(|k| round_to(k, 3)),
            method: "workerd runs the Worker, every object, the lobby and the registry on one thread, idle between phases: each phase's CPU is the work of its events. Per Worker request: the probe's CPU ÷ its requests; per connect: the ramp's CPU ÷ its upgrades (the ramp has no messages); per close: the final departures' CPU ÷ the sockets they closed; per message (fan-out included): the window's CPU less its connects and closes at those rates, ÷ its inbound messages. Billed: Worker CPU = requests × the probe's figure; under the Hibernation API, object time = events × their CPU (a connect's less the Worker's share), CPU standing for handling time; figures of this machine's local workerd, not of Cloudflare's edge".into(),
            not_measured,
        }
    }
}

/// The scenario's cost `c`, saying why it stands.
fn modelled(c: &Cost, why: &str) -> Cost {
    match &c.source {
        Source::Modelled { key, .. } => Cost::new(
            c.value,
            Source::Modelled {
                key: key.clone(),
                why: Some(why.to_string()),
            },
        ),
        _ => c.clone(),
    }
}

fn round_to(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// CPU per message in the window, in ms, with how; the window's connects and closes are
/// taken off at the measured rates, or at the scenario's when those are a small part (under
/// a tenth) of the window's CPU.
fn per_message(
    s: &Scenario,
    window_cpu: Option<Duration>,
    n: &PhaseCounts,
    connect: &Result<f64, String>,
    close: &Result<f64, String>,
    clock: CpuClock,
    lobby: bool,
) -> Result<(f64, String), String> {
    let total = per_event(window_cpu, n.window_messages, "messages", "window", clock)?
        * n.window_messages as f64;
    let p = &s.platform;
    let mean_ms = |d: &crate::scenario::DistSpec| d.mean_ns() / 1e6;
    let rpc_ms = if lobby { mean_ms(&p.service.rpc) } else { 0.0 };
    let mut modelled_ms = 0.0;
    let mut take = |count: u64, rate: &Result<f64, String>, model: f64| match rate {
        Ok(r) => count as f64 * r,
        Err(_) => {
            modelled_ms += count as f64 * model;
            count as f64 * model
        }
    };
    let connects = take(
        n.window_connects,
        connect,
        p.worker_cpu_ms_per_connect + mean_ms(&p.service.connect) + rpc_ms,
    );
    let closes = take(n.window_closes, close, mean_ms(&p.service.close) + rpc_ms);
    if modelled_ms > 0.1 * total {
        return Err(format!(
            "the window's connects and closes, at the scenario's costs (their own figures not measured), would be {:.0}% of its CPU",
            100.0 * modelled_ms / total
        ));
    }
    let per = (total - connects - closes).max(0.0) / n.window_messages as f64;
    Ok((
        per,
        format!(
            "workerd's CPU in the window ({total:.1} ms) less its {} connects and {} closes ({:.1} ms), ÷ {} inbound messages: {per:.4} ms each, with their fan-out to {:.2} recipients on average{}",
            n.window_connects,
            n.window_closes,
            connects + closes,
            n.window_messages,
            n.window_deliveries as f64 / n.window_messages as f64,
            if modelled_ms > 0.0 { " (some connects or closes taken off at the scenario's costs)" } else { "" }
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(extra: &str) -> Scenario {
        Scenario::parse(
            &format!("name = \"c\"\n[window]\nlength = \"1h\"\n[arrivals]\nsessions_per_day = 100\n{extra}"),
            std::path::Path::new("c.toml"),
        )
        .unwrap()
    }

    fn at(ms: &[u64]) -> Samples {
        let mut s = Samples::default();
        for (i, &m) in ms.iter().enumerate() {
            s.target_cpu[i] = Some(Duration::from_millis(m));
        }
        s
    }

    fn counts() -> PhaseCounts {
        PhaseCounts {
            ramp_connects: 100,
            window_connects: 10,
            window_messages: 1000,
            window_deliveries: 3000,
            window_closes: 10,
        }
    }

    #[test]
    fn each_phase_gives_its_event_s_cost() {
        let s = scenario("");
        // Ramp 100 ms / 100 connects; window 1000 ms; departures 40 ms / 100 closes.
        let mut samples = at(&[0, 100, 1100, 1140]);
        samples.sockets_at_cut = 100;
        let probe = WorkerProbe {
            requests: 100,
            cpu: Some(Duration::from_millis(20)),
        };
        let m = measure(
            &s,
            Some(CpuClock::Schedstat),
            &samples,
            &probe,
            &counts(),
            false,
        );
        let c = &m.costs;
        assert!((c.worker_cpu_ms.value - 0.2).abs() < 1e-9);
        assert!((c.connect.value - 0.0008).abs() < 1e-12, "1 ms less 0.2 ms");
        assert!((c.close.value - 0.0004).abs() < 1e-12);
        // (1000 − 10 × 1 − 10 × 0.4) ms ÷ 1000 messages.
        assert!(
            (c.message.value - 0.000986).abs() < 1e-12,
            "{}",
            c.message.value
        );
        assert_eq!(c.per_recipient.value, 0.0);
        for cost in [
            &c.worker_cpu_ms,
            &c.connect,
            &c.message,
            &c.per_recipient,
            &c.close,
        ] {
            assert!(matches!(cost.source, Source::Measured(_)), "{cost:?}");
        }
        let d = m.details.unwrap();
        assert_eq!(d.cpu_ms_per_connect, Some(1.0));
        assert_eq!(d.mean_recipients, Some(3.0));
        assert!(d.not_measured.is_empty());
    }

    #[test]
    fn too_few_events_leave_the_scenario_s_cost_and_say_why() {
        let s = scenario("");
        let mut samples = at(&[0, 100, 1100]); // no sample after the departures
        samples.sockets_at_cut = 100;
        let mut n = counts();
        n.ramp_connects = 5;
        // The probe's requests were not answered 426 (not the project's Worker).
        let probe = WorkerProbe {
            requests: 0,
            cpu: Some(Duration::from_millis(3)),
        };
        let m = measure(&s, Some(CpuClock::Schedstat), &samples, &probe, &n, true);
        let c = &m.costs;
        let why = |c: &Cost| match &c.source {
            Source::Modelled { why, .. } => why.clone().unwrap_or_default(),
            other => panic!("{other:?}"),
        };
        assert!(why(&c.worker_cpu_ms).contains("only 0 probe requests"));
        assert!(why(&c.connect).contains("only 5 connects in the ramp"));
        assert!(why(&c.close).contains("not read at both ends of the departures"));
        assert_eq!(c.connect.value, 0.0005, "the scenario's mean");
        // The window's 10 connects and 10 closes at modelled costs are a small part of its
        // CPU: the message figure is still measured.
        assert!(matches!(c.message.source, Source::Measured(_)));
        // In lobby mode the RPCs keep their modelled time unless connects and closes were
        // measured.
        assert!(why(&c.rpc).contains("cannot be told apart"));
        assert_eq!(m.details.unwrap().not_measured.len(), 3);
    }

    #[test]
    fn a_remote_target_is_modelled_with_the_reason() {
        let s = scenario("");
        let m = measure(
            &s,
            None,
            &Samples::default(),
            &WorkerProbe::default(),
            &counts(),
            false,
        );
        assert!(m.details.is_none());
        match &m.costs.worker_cpu_ms.source {
            Source::Modelled { key, why } => {
                assert_eq!(key, "platform.worker_cpu_ms_per_connect");
                assert_eq!(why.as_deref(), Some(REMOTE));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clock_ticks_need_enough_cpu() {
        let s = scenario("");
        let mut samples = at(&[0, 30, 1030, 1040]);
        samples.sockets_at_cut = 100;
        let m = measure(
            &s,
            Some(CpuClock::ProcStat),
            &samples,
            &WorkerProbe::default(),
            &counts(),
            false,
        );
        let d = m.details.unwrap();
        assert_eq!(d.clock, "proc_stat");
        assert!(
            d.not_measured
                .iter()
                .any(|n| n.contains("too little for clock ticks")),
            "{:?}",
            d.not_measured
        );
    }
}
