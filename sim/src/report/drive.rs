//! The `drive` block of a report (drive mode only): what the WebSocket driver measured
//! beyond the shared report shape, and its text. The driver ([`crate::drive`]) fills it;
//! every key is documented in `sim/REPORT.md`. The reconciliation's types live here too, so
//! that a report can be read (and rendered) without the driver.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::metrics::LatencySummary;

/// What a shard of a sharded drive (`--shard I/N`) records for `dosim merge`: which plan it
/// belongs to, and everything it counted (its histograms are in its HdrHistogram log).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// The record's format (1).
    pub format: u32,
    /// This shard, from 0.
    pub index: u32,
    /// How many shards drive the plan.
    pub count: u32,
    /// The scenario's seed.
    pub seed: u64,
    /// SHA-256 (hex) of the canonical scenario: its JSON form after the command line's
    /// overrides (seed, hibernation, no-data rule).
    pub scenario_digest: String,
    /// The strategy driven (`per-room`, `sharded:8`).
    pub strategy: String,
    /// Scenario time at the window's start, in ns.
    pub from_ns: u64,
    /// The window's real length, in ns.
    pub duration_ns: u64,
    /// Plan seconds per real second.
    pub speedup: f64,
    /// The price table's name.
    pub pricing: String,
    /// The extra thresholds (`--threshold`), as given.
    pub thresholds: Vec<String>,
    /// `--start-at`, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at_unix: Option<f64>,
    /// The shard's HdrHistogram interval log (`.hlog`), relative to the report's folder.
    pub hlog: Option<String>,
    /// The canonical scenario (the digest's input).
    pub scenario: serde_json::Value,
    /// The shard's counts, meter, samples and the Worker's stats before the run, for the
    /// merge (an internal shape, read back by the same version of dosim).
    pub raw: serde_json::Value,
}

/// One shard a merged report was built from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MergedShard {
    /// `I/N`.
    pub shard: String,
    /// Its report file, as given to `dosim merge`.
    pub report: String,
    /// Its `drive.status`.
    pub status: String,
    /// When its run began (Unix ms).
    pub started_at_unix_ms: f64,
}

/// Everything a measured run reports beyond the shared report shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriveDetails {
    /// The WebSocket endpoint driven.
    pub target: String,
    /// A shard's record for `dosim merge` (`--shard I/N`); for a merged report, the shards
    /// it was merged from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
    /// A merged report's shards: for each, its report file and its `started_at_unix_ms`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<MergedShard>,
    /// `complete`, `target_down` or `interrupted`.
    pub status: String,
    /// Why the run stopped early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The local workerd, with `--local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalDetails>,
    /// How scenario time was mapped onto the run.
    pub time: TimeDetails,
    /// Sessions in progress at `from`, connected during the ramp.
    pub carried: SessionDetails,
    /// Sessions of the plan arriving in the window.
    pub arrivals: SessionDetails,
    /// Latencies not in the shared block.
    pub latency_ms: DriveLatency,
    /// Per-recipient delivery accounting of the window's messages.
    pub deliveries: DeliveryDetails,
    /// Faults by category (see the module documentation).
    pub faults: BTreeMap<String, u64>,
    /// For each usage line: measured, or modelled and how.
    pub usage_sources: BTreeMap<String, String>,
    /// The monthly projection's inputs.
    pub projection: ProjectionDetails,
    /// The target's CPU time (with `--local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuDetails>,
    /// The driver's own cost.
    pub driver: DriverDetails,
    /// The driver's counts against the Worker's stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciliation: Option<Reconciliation>,
    /// Things the reader should know.
    pub warnings: Vec<String>,
}

/// The local workerd.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalDetails {
    /// Its pid.
    pub pid: u32,
    /// The `DOSIM_*` settings it ran with (the token hidden).
    pub settings: BTreeMap<String, String>,
    /// What had to be done first (`npm ci`, `npm run build`), if anything.
    pub built: Vec<String>,
}

/// The time mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeDetails {
    /// Scenario time at the start of the window, seconds from the start of the scenario.
    pub from_seconds: f64,
    /// The same as `day D HH:MM:SS`.
    pub from: String,
    /// How it was chosen.
    pub from_reason: String,
    /// Scenario seconds per real second.
    pub speedup: f64,
    /// Real length of the measured window as run (`--duration`, or less when the run
    /// stopped early).
    pub duration_seconds: f64,
    /// Scenario time the window covered: `duration × speedup`, or the part run before an
    /// early stop (0 when it stopped before the window began). Every monthly figure is
    /// projected from it.
    pub covered_scenario_seconds: f64,
    /// Scenario time the window was to cover (`--duration × --speedup`).
    pub planned_scenario_seconds: f64,
    /// The run stopped before the window's end: it covered less than planned.
    pub cut_short: bool,
    /// The phase the run was stopped in: `ramp`, `window`, `grace` or `departures` (null
    /// when it ran to the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_during: Option<String>,
    /// Real length of the ramp (connecting the carried sessions).
    pub ramp_seconds: f64,
    /// Real length of the grace (deliveries in flight): it ends as soon as nothing is in
    /// flight, at most `grace_limit_seconds` after the window.
    pub grace_seconds: f64,
    /// The grace's limit (`--grace`).
    pub grace_limit_seconds: f64,
    /// Real length of the final departures.
    pub cut_seconds: f64,
    /// Wall clock at the start of the run (Unix ms).
    pub started_at_unix_ms: f64,
}

/// Counts of one group of sessions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionDetails {
    /// In the plan.
    pub planned: u64,
    /// Started connecting.
    pub started: u64,
    /// Never answered (a connection fault, or no first frame).
    pub failed: u64,
    /// Upgraded (101).
    pub upgraded: u64,
    /// Seated (first answer or promotion).
    pub admitted: u64,
    /// Queued first.
    pub queued: u64,
    /// Rejected.
    pub rejected: u64,
}

/// Latencies only the driver has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriveLatency {
    /// How late a window session started connecting, against its planned arrival.
    pub arrival_lag: LatencySummary,
    /// TCP connect plus HTTP upgrade (start → 101).
    pub upgrade: LatencySummary,
    /// Connect latency of the carried sessions during the ramp (part of
    /// `latency_ms.connect`).
    pub carried_connect: LatencySummary,
    /// Connect latency of the sessions arriving in the window (the rest of
    /// `latency_ms.connect`).
    pub window_connect: LatencySummary,
}

/// Deliveries of the window's messages, per recipient.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryDetails {
    /// Expected: for each message, the other seated members of its room as the driver knew
    /// them when it was sent.
    pub expected: u64,
    /// Message frames received (all; equals the Worker's `messages_out`).
    pub received: u64,
    /// Received by an expected recipient.
    pub received_expected: u64,
    /// Expected, not received: `missed_connected + missed_departing`.
    pub missed: u64,
    /// ... by a recipient that stayed connected (a real loss).
    pub missed_connected: u64,
    /// ... by a recipient that started to leave after the message was sent (its leave and
    /// the message raced at the server).
    pub missed_departing: u64,
    /// Received by a member the driver did not expect (seated by the server before its
    /// `joined` reached the driver).
    pub unexpected: u64,
    /// Received twice by one recipient.
    pub duplicated: u64,
    /// Received for a message the driver has no record of.
    pub unknown: u64,
}

/// The monthly projection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectionDetails {
    /// In words.
    pub method: String,
    /// Planned session-seconds in the covered scenario time.
    pub window_session_seconds: f64,
    /// Expected session-seconds in a 30-day month.
    pub month_session_seconds: f64,
    /// Planned arrivals in the covered scenario time.
    pub window_arrivals: u64,
    /// Expected arrivals in the covered scenario time.
    pub expected_window_arrivals: f64,
    /// Expected arrivals in a 30-day month.
    pub month_arrivals: f64,
    /// `month_session_seconds / window_session_seconds` (null when the window has none).
    pub factor: Option<f64>,
}

/// CPU time of the target process (workerd: the Worker and every Durable Object of it, on
/// one thread), per phase of the run, and the per-event figures derived from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuDetails {
    /// Where it comes from.
    pub source: String,
    /// `schedstat` (ns per thread, `/proc/<pid>/task/*/schedstat`) or `proc_stat`
    /// (`/proc/<pid>/stat`, clock ticks: 10 ms).
    pub clock: String,
    /// Requests answered by the Worker alone before the ramp (the join route without an
    /// `Upgrade` header: 426), to measure the Worker's own share of a request.
    pub probe_requests: u64,
    /// CPU during those requests.
    pub probe_cpu_ms: f64,
    /// CPU during the ramp (connects only).
    pub ramp_cpu_ms: f64,
    /// Upgrades during the ramp.
    pub ramp_connects: u64,
    /// CPU during the window and grace.
    pub window_cpu_ms: f64,
    /// Upgrades in the window.
    pub window_connects: u64,
    /// Inbound messages in the window.
    pub window_messages_in: u64,
    /// Deliveries in the window.
    pub window_deliveries: u64,
    /// Departures (closes) in the window.
    pub window_closes: u64,
    /// CPU during the final departures (every socket left closes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub departures_cpu_ms: Option<f64>,
    /// Sockets that closed in the final departures.
    pub departures_closes: u64,
    /// CPU per request the Worker answers alone (from the probe).
    pub cpu_ms_per_worker_request: Option<f64>,
    /// CPU per connect (from the ramp when it had enough connects), the Worker's share
    /// included.
    pub cpu_ms_per_connect: Option<f64>,
    /// CPU per inbound message including its fan-out: the window's CPU less its connects
    /// and closes at the measured rates, ÷ messages.
    pub cpu_ms_per_message: Option<f64>,
    /// CPU per close (from the final departures), the lobby's leave RPC included.
    pub cpu_ms_per_close: Option<f64>,
    /// Recipients per inbound message in the window (the fan-out `cpu_ms_per_message`
    /// includes).
    pub mean_recipients: Option<f64>,
    /// How the figures were derived, and how they are billed.
    pub method: String,
    /// Figures that could not be measured in this run (too few events in their phase, no
    /// sample), each billed as the scenario models it instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_measured: Vec<String>,
}

/// The driver's own cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriverDetails {
    /// CPU time of the driver process over the window and grace.
    pub cpu_ms: f64,
    /// ... per message sent.
    pub cpu_us_per_message: Option<f64>,
    /// ... per message sent or received.
    pub cpu_us_per_frame: Option<f64>,
    /// The kernel's share of that CPU (system time ÷ all, from clock ticks): system calls,
    /// and on loopback the TCP path of what the driver sends, the receiver's side included.
    #[serde(default)]
    pub cpu_kernel_share: Option<f64>,
    /// How long received frames could wait to be read (`--read-batch`; 0: read at once),
    /// their arrival being the kernel's receive stamp.
    #[serde(default)]
    pub read_batch_ms: f64,
    /// The driver ran on a thread under `SCHED_FIFO` (`--realtime`); in a merged report, every
    /// shard did.
    #[serde(default)]
    pub realtime: bool,
    /// Most sockets open at once.
    pub peak_open_sockets: u64,
    /// Sockets open at the start of the window.
    pub sockets_at_window_start: u64,
    /// Resident memory at the start of the window.
    pub rss_bytes_at_window_start: Option<u64>,
    /// (RSS at the window's start − RSS before the ramp) / sockets then open.
    pub rss_bytes_per_connection: Option<f64>,
    /// Peak resident memory.
    pub peak_rss_bytes: Option<u64>,
    /// The soft limit of open files (raised to the hard limit at start).
    pub nofile_limit: Option<u64>,
}

// -- the reconciliation (filled by `crate::drive::reconcile`) ------------------------------

/// One compared counter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The Worker's counter (as in its stats: `connects`, `rejections.room_full`,
    /// `lobby.rpc_join`, ...).
    pub name: String,
    /// What the driver counted (or expects).
    pub driver: u64,
    /// What the Worker counted during the run (difference of the two reads).
    pub worker: u64,
    /// Equal.
    pub ok: bool,
}

/// An object that restarted during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restart {
    /// Object name.
    pub object: String,
    /// How it was detected.
    pub how: String,
    /// Its `started_at` (Unix ms, the Worker's clock).
    pub started_at_unix_ms: f64,
}

/// A per-object counter that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectDifference {
    /// Object name.
    pub object: String,
    /// Counter.
    pub field: String,
    /// Driver's count.
    pub driver: u64,
    /// Worker's count.
    pub worker: u64,
}

/// The result of the reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Every check equal and no restart.
    pub ok: bool,
    /// How the Worker's numbers were obtained.
    pub source: String,
    /// Every compared counter.
    pub checks: Vec<Check>,
    /// The checks that differ, as `name: driver D, worker W (W − D)`.
    pub differences: Vec<String>,
    /// Checks (and per-object counters) that differ but cannot be judged: sockets were
    /// closed without waiting for the Worker after an interrupt (see the module
    /// documentation). Same format as `differences`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_comparable: Vec<String>,
    /// Why `not_comparable` is not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_comparable_reason: Option<String>,
    /// Per-object differences (at most 20).
    pub object_differences: Vec<ObjectDifference>,
    /// Objects that restarted during the run, their counters lost.
    pub restarts: Vec<Restart>,
    /// Objects evicted and started again during the run, their counters kept: (object,
    /// times).
    pub evictions: Vec<(String, u64)>,
    /// Room-hosting objects in the Worker's stats after the run (active and idle).
    pub objects: u64,
    /// Objects whose lineages the Worker pruned during the run (their counters kept in its
    /// sum, so in the checks).
    pub pruned: u64,
    /// Objects whose own counters were compared with the driver's (one lineage covering the
    /// whole run).
    pub objects_compared: u64,
    /// Sockets the Worker still held after the run (0 when everyone left).
    pub connections_after: u64,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

impl DriveDetails {
    /// The drive section of the text summary.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        self.render_time(&mut o);
        self.render_sessions(&mut o);
        self.render_costs(&mut o);
        self.render_reconciliation(&mut o);
        for w in &self.warnings {
            let _ = writeln!(o, "  warning: {w}");
        }
        o
    }

    /// The target, the status and the time mapping.
    fn render_time(&self, o: &mut String) {
        let t = &self.time;
        let _ = writeln!(o, "\nDrive: {} · status {}", self.target, self.status);
        if !self.merged_from.is_empty() {
            let list: Vec<String> = self
                .merged_from
                .iter()
                .map(|m| format!("{} {} ({})", m.shard, m.report, m.status))
                .collect();
            let _ = writeln!(
                o,
                "  merged from {}: {}",
                crate::report::counted(self.merged_from.len() as u64, "shard", "shards"),
                list.join(", ")
            );
        }
        if let Some(s) = &self.stopped {
            let _ = writeln!(
                o,
                "  stopped early{}: {s}",
                t.stopped_during
                    .as_deref()
                    .map_or(String::new(), |p| format!(" during the {p}"))
            );
        }
        if t.cut_short {
            let _ = writeln!(
                o,
                "  CUT SHORT: the window covered {:.1}s of the planned {:.0}s of scenario time; {}",
                t.covered_scenario_seconds,
                t.planned_scenario_seconds,
                if self.projection.factor.is_some() {
                    "the monthly figures are projected from the part covered"
                } else {
                    "nothing to project a month from"
                }
            );
        }
        let grace = if t.grace_seconds + 0.05 < t.grace_limit_seconds {
            format!(
                "grace {:.1}s (of up to {:.1}s: nothing left in flight)",
                t.grace_seconds, t.grace_limit_seconds
            )
        } else {
            format!("grace {:.1}s", t.grace_seconds)
        };
        let _ = writeln!(
            o,
            "  scenario time {} + {:.0}s (×{} speed-up) in {:.1}s real; ramp {:.1}s, {grace}, departures {:.1}s",
            t.from, t.covered_scenario_seconds, t.speedup, t.duration_seconds, t.ramp_seconds,
            t.cut_seconds
        );
        let _ = writeln!(o, "  from: {}", t.from_reason);
    }

    /// Sessions, deliveries, connect latency and faults.
    fn render_sessions(&self, o: &mut String) {
        let c = &self.carried;
        let _ = writeln!(
            o,
            "  carried sessions: {} planned, {} seated (promoted ones included), {} queued first, {} rejected, {} failed",
            c.planned, c.admitted, c.queued, c.rejected, c.failed
        );
        let a = &self.arrivals;
        let _ = writeln!(
            o,
            "  window arrivals: {} planned, {} started, {} failed",
            a.planned, a.started, a.failed
        );
        let d = &self.deliveries;
        let _ = writeln!(
            o,
            "  deliveries: {} expected, {} received ({} expected ones), {} missed ({} while connected, {} while leaving), {} unexpected, {} duplicated",
            d.expected, d.received, d.received_expected, d.missed, d.missed_connected,
            d.missed_departing, d.unexpected, d.duplicated
        );
        let l = &self.latency_ms;
        let connects = |l: &LatencySummary| match (l.p50, l.p99) {
            (Some(a), Some(b)) => format!("p50/p99 {a:.2}/{b:.2} ms over {}", l.count),
            _ => "none".into(),
        };
        let _ = writeln!(
            o,
            "  connect latency: carried sessions (ramp) {}; window arrivals {}",
            connects(&l.carried_connect),
            connects(&l.window_connect)
        );
        let _ = writeln!(
            o,
            "  arrival lag p99 {} ms, upgrade p50/p99 {}/{} ms",
            opt(l.arrival_lag.p99, 2),
            opt(l.upgrade.p50, 2),
            opt(l.upgrade.p99, 2)
        );
        if self.faults.is_empty() {
            let _ = writeln!(o, "  faults: none");
        } else {
            let list: Vec<String> = self
                .faults
                .iter()
                .map(|(k, v)| format!("{v} {}", k.replace('_', " ")))
                .collect();
            let _ = writeln!(o, "  faults: {}", list.join(", "));
        }
    }

    /// The target's CPU, where the usage came from, the driver's own cost.
    fn render_costs(&self, o: &mut String) {
        if let Some(cpu) = &self.cpu {
            let _ = writeln!(
                o,
                "  target CPU ({}): {} ms per Worker request, {} ms per connect, {} ms per message ({} recipients), {} ms per close; ramp {:.1} ms / {} connects, window {:.1} ms",
                cpu.clock,
                opt(cpu.cpu_ms_per_worker_request, 3),
                opt(cpu.cpu_ms_per_connect, 3),
                opt(cpu.cpu_ms_per_message, 4),
                opt(cpu.mean_recipients, 2),
                opt(cpu.cpu_ms_per_close, 3),
                cpu.ramp_cpu_ms,
                cpu.ramp_connects,
                cpu.window_cpu_ms
            );
            for n in &cpu.not_measured {
                let _ = writeln!(o, "    not measured: {n}");
            }
        }
        let kinds = |kind: &str| -> Vec<&str> {
            self.usage_sources
                .iter()
                .filter(|(_, v)| v.starts_with(&format!("{kind}:")))
                .map(|(k, _)| k.as_str())
                .collect()
        };
        let (measured, modelled) = (kinds("measured"), kinds("modelled"));
        if !self.usage_sources.is_empty() {
            let _ = writeln!(
                o,
                "  usage measured: {}; modelled: {} (how: drive.usage_sources)",
                if measured.is_empty() {
                    "none".to_string()
                } else {
                    measured.join(", ")
                },
                if modelled.is_empty() {
                    "none".to_string()
                } else {
                    modelled.join(", ")
                },
            );
        }
        let dr = &self.driver;
        let _ = writeln!(
            o,
            "  driver: {:.0} ms CPU ({} µs per message, {} µs per frame sent or received, {}% in the kernel), reads batched within {} ms when busy{}, {} sockets at peak, {} KiB RSS per connection",
            dr.cpu_ms,
            opt(dr.cpu_us_per_message, 1),
            opt(dr.cpu_us_per_frame, 2),
            opt(dr.cpu_kernel_share.map(|s| s * 100.0), 0),
            dr.read_batch_ms,
            if dr.realtime {
                ", on a real-time thread (SCHED_FIFO)"
            } else {
                ""
            },
            dr.peak_open_sockets,
            opt(dr.rss_bytes_per_connection.map(|b| b / 1024.0), 1)
        );
    }

    /// The reconciliation with the Worker's stats.
    fn render_reconciliation(&self, o: &mut String) {
        match &self.reconciliation {
            None => {
                let _ = writeln!(o, "  reconciliation: not done (see the warnings)");
            }
            Some(r) if r.ok && r.not_comparable.is_empty() => {
                let _ = writeln!(
                    o,
                    "  reconciliation: every counter matches the Worker's stats ({} checks, {})",
                    r.checks.len(),
                    crate::report::counted(r.objects, "object", "objects")
                );
            }
            Some(r) if r.ok => {
                let _ = writeln!(
                    o,
                    "  reconciliation: no difference among the counters that can be compared; not comparable after the interrupt, because {}:",
                    r.not_comparable_reason.as_deref().unwrap_or("")
                );
                for d in &r.not_comparable {
                    let _ = writeln!(o, "    {d}");
                }
            }
            Some(r) => {
                let _ = writeln!(o, "  reconciliation: DIFFERENCES");
                for d in &r.differences {
                    let _ = writeln!(o, "    {d}");
                }
                for d in r.object_differences.iter().take(5) {
                    let _ = writeln!(
                        o,
                        "    object {} {}: driver {}, worker {}",
                        d.object, d.field, d.driver, d.worker
                    );
                }
                for x in &r.restarts {
                    let _ = writeln!(o, "    restart: {} ({})", x.object, x.how);
                }
                for d in &r.not_comparable {
                    let _ = writeln!(o, "    not comparable after the interrupt: {d}");
                }
            }
        }
        if let Some(r) = &self.reconciliation {
            if !r.evictions.is_empty() {
                let times: u64 = r.evictions.iter().map(|(_, n)| n).sum();
                let _ = writeln!(
                    o,
                    "  evictions: {} went idle, were evicted and started again ({} in all), their counters kept",
                    crate::report::counted(r.evictions.len() as u64, "object", "objects"),
                    crate::report::counted(times, "time", "times")
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_the_grace_limit_and_a_cut_short_window() {
        let mut d = DriveDetails::default();
        d.time.grace_limit_seconds = 2.0;
        d.time.planned_scenario_seconds = 60.0;
        d.time.covered_scenario_seconds = 60.0;
        let text = d.render_text();
        assert!(text.contains("grace 0.0s (of up to 2.0s"), "{text}");
        assert!(!text.contains("CUT SHORT"), "{text}");
        d.time.grace_seconds = 2.0;
        d.time.cut_short = true;
        d.time.covered_scenario_seconds = 4.9;
        d.time.stopped_during = Some("window".into());
        d.stopped = Some("interrupted (Ctrl-C)".into());
        d.projection.factor = Some(3.0);
        let text = d.render_text();
        assert!(text.contains("grace 2.0s,"), "{text}");
        assert!(text.contains("stopped early during the window"), "{text}");
        assert!(
            text.contains("CUT SHORT: the window covered 4.9s of the planned 60s"),
            "{text}"
        );
        assert!(text.contains("projected from the part covered"), "{text}");
    }
}
