//! Report: the result of a run, in one shape for `simulate` and `drive`, and its renderings
//! (text summary, comparison table, JSON, CSV and Markdown).
//!
//! The JSON keys are documented in `sim/REPORT.md`; they are fixed so that other tools, and
//! a simulated and a measured run of one scenario, can be put side by side.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::metrics::{LatencySummary, TimeSeries};
use crate::pricing::Bill;
use crate::threshold::{ThresholdResult, Verdict};
use crate::usage::Usage;

pub mod drive;

/// Session outcomes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionCounts {
    /// Sessions that started connecting in the window.
    pub arrived: u64,
    /// Sessions that got a seat (immediately or from a queue).
    pub admitted: u64,
    /// Sessions that were put in a queue.
    pub queued: u64,
    /// Queued sessions that got a seat.
    pub admitted_from_queue: u64,
    /// Queued sessions that gave up.
    pub abandoned: u64,
    /// Sessions turned away.
    pub rejected: u64,
    /// Rejections by reason (only reasons that occurred).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Sessions still waiting in a queue when the window ended.
    pub still_waiting: u64,
    /// Sessions still connecting (no answer yet) when the window ended.
    pub still_connecting: u64,
}

/// Latency distributions, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyBlock {
    /// From the start of connecting to the first admission answer (joined, queued or
    /// rejected).
    pub connect: LatencySummary,
    /// From the start of connecting to being seated, for admitted sessions (includes queueing).
    pub admission_wait: LatencySummary,
    /// Per-recipient delivery latency of chat messages, from the message's intended send time
    /// (coordinated-omission corrected).
    pub message: LatencySummary,
    /// Time requests waited in an object's queue before service.
    pub object_queue: LatencySummary,
    /// Per-recipient delivery latency from the actual send time (drive only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_from_send: Option<LatencySummary>,
    /// How late the driver sent messages relative to their intended time (drive only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag: Option<LatencySummary>,
}

impl LatencyBlock {
    /// A latency by name.
    pub fn get(&self, name: &str) -> Option<&LatencySummary> {
        match name {
            "connect" => Some(&self.connect),
            "admission_wait" => Some(&self.admission_wait),
            "message" => Some(&self.message),
            "object_queue" => Some(&self.object_queue),
            _ => None,
        }
    }
}

/// Chat message counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageCounts {
    /// Messages users sent.
    pub sent: u64,
    /// Messages that reached their object and were fanned out.
    pub accepted: u64,
    /// Messages refused by an overloaded object.
    pub failed: u64,
    /// Deliveries to recipients.
    pub delivered: u64,
    /// Deliveries expected but not received (drive only; 0 in the simulator).
    pub missed: u64,
    /// Deliveries received twice (drive only).
    pub duplicated: u64,
}

/// Usage plus the run's peaks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunUsage {
    /// The billable quantities.
    #[serde(flatten)]
    pub billable: Usage,
    /// Distinct objects that served at least one request (room objects and the lobby).
    pub objects_created: u64,
    /// Most users seated at once.
    pub peak_connections: u64,
    /// Most room objects holding at least one socket at once.
    pub peak_active_objects: u64,
    /// Most users waiting in queues at once.
    pub peak_queue_length: u64,
    /// Most rooms with someone seated at once.
    pub peak_active_rooms: u64,
    /// Requests refused with "Durable Object is overloaded".
    pub overload_errors: u64,
    /// All requests that reached an object (connects, messages, RPCs, closes).
    pub object_requests: u64,
    /// Of `sqlite_rows_written`, the rows the lobby wrote to keep its state (deleted again
    /// when users leave, so they add nothing to storage).
    pub lobby_rows_written: f64,
}

/// The monthly projection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MonthlyUsage {
    /// How the window was extended to a month.
    pub method: String,
    /// The multiplier applied to the window's usage.
    pub factor: f64,
    /// The projected usage: counts multiplied by `factor`; peaks and `objects_created` are
    /// copied from the window, not multiplied.
    #[serde(flatten)]
    pub usage: RunUsage,
}

/// The scenario's hand estimate beside the computed bill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceComparison {
    /// The hand estimate's total.
    pub total_usd: f64,
    /// Where it comes from.
    pub source: String,
    /// The projected usage priced under the estimate's own price table, if it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_under_reference_pricing: Option<Bill>,
}

/// Where the numbers come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// dosim's version.
    pub dosim_version: String,
    /// How the run was made ("discrete-event simulation ..." or "measured over WebSockets").
    pub method: String,
    /// Notes on what is modelled and what is not.
    pub notes: Vec<String>,
}

/// One run's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `simulate` or `drive`.
    pub mode: String,
    /// The scenario's name.
    pub scenario: String,
    /// The strategy, as `single`, `per-room` or `sharded:N`.
    pub strategy: String,
    /// The seed of the plan.
    pub seed: u64,
    /// The price table used for `bill`.
    pub pricing: String,
    /// The WebSocket API the room objects use (billed accordingly).
    pub websocket_api: WebSocketApi,
    /// Length of the simulated or measured window.
    pub window_seconds: f64,
    /// Where the numbers come from.
    pub provenance: Provenance,
    /// Session outcomes.
    pub sessions: SessionCounts,
    /// Latencies.
    pub latency_ms: LatencyBlock,
    /// Chat messages.
    pub messages: MessageCounts,
    /// Usage in the window.
    pub usage: RunUsage,
    /// Usage projected onto a 30-day month.
    pub monthly_usage: MonthlyUsage,
    /// The monthly bill of `monthly_usage` under `pricing`.
    pub bill: Bill,
    /// The scenario's hand estimate, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceComparison>,
    /// With `--replications` (more than one) or `--precision`: every headline figure over
    /// independent replications, with its 95% confidence interval; the rest of the report is
    /// replication 0's (see [`crate::replicate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replications: Option<crate::replicate::Replications>,
    /// Threshold results.
    pub thresholds: Vec<ThresholdResult>,
    /// State over time.
    pub timeseries: TimeSeries,
    /// Drive mode only: what the WebSocket driver measured beyond the shared shape (see
    /// [`drive`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive: Option<drive::DriveDetails>,
}

impl Report {
    /// The value of a threshold metric (see [`crate::threshold`]).
    pub fn metric(&self, name: &str, limits: &crate::scenario::LimitsSpec) -> Option<f64> {
        let share = |a: u64, b: u64| {
            if b == 0 {
                None
            } else {
                Some(a as f64 / b as f64)
            }
        };
        match name {
            "rejection_rate" => share(self.sessions.rejected, self.sessions.arrived),
            "abandon_rate" => share(self.sessions.abandoned, self.sessions.arrived),
            "error_rate" => share(self.usage.overload_errors, self.usage.object_requests),
            "connection_limit_share" => limits
                .max_total_connections
                .and_then(|m| share(self.usage.peak_connections, u64::from(m))),
            "room_limit_share" => limits
                .max_active_rooms
                .and_then(|m| share(self.usage.peak_active_rooms, u64::from(m))),
            "monthly_cost_usd" => self.projected().then(|| self.bill.total_f64()),
            other => {
                let (lat, stat) = other.split_once('.')?;
                self.latency_ms.get(lat)?.stat(stat)
            }
        }
    }

    /// Whether every threshold passed (a check without data counts as its policy says).
    pub fn thresholds_pass(&self) -> bool {
        self.thresholds.iter().all(|t| t.pass)
    }

    /// Whether the monthly figures are a projection: false for a drive that covered none of
    /// its window (stopped during the ramp), whose monthly usage and bill are zeros, not an
    /// estimate.
    pub fn projected(&self) -> bool {
        self.drive
            .as_ref()
            .is_none_or(|d| d.projection.factor.is_some())
    }

    /// Evaluate the scenario's thresholds and `extra` ones on this report, replacing any
    /// earlier results.
    pub fn check_thresholds(
        &mut self,
        scenario: &crate::scenario::Scenario,
        extra: &[crate::threshold::Threshold],
    ) {
        let values: Vec<(String, Option<f64>)> = scenario
            .threshold_checks()
            .iter()
            .chain(extra)
            .map(|t| (t.metric.clone(), self.metric(&t.metric, &scenario.limits)))
            .collect();
        self.check_thresholds_with(scenario, extra, |m| {
            values.iter().find(|(n, _)| n == m).and_then(|(_, v)| *v)
        });
    }

    /// Evaluate the scenario's thresholds and `extra` ones with metric values from
    /// `value_of` (a replicated run passes the means), replacing any earlier results.
    pub fn check_thresholds_with(
        &mut self,
        scenario: &crate::scenario::Scenario,
        extra: &[crate::threshold::Threshold],
        value_of: impl Fn(&str) -> Option<f64>,
    ) {
        let mut checks = scenario.threshold_checks();
        checks.extend(extra.iter().cloned());
        let no_data = scenario.thresholds.no_data;
        self.thresholds = checks
            .iter()
            .map(|t| t.evaluate(&value_of, no_data))
            .collect();
    }

    /// Pretty JSON (stable key order, trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("report serializes");
        s.push('\n');
        s
    }

    /// The human summary of one run.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "dosim {}: scenario {} · strategy {} · seed {} · window {}",
            self.mode,
            self.scenario,
            self.strategy,
            self.seed,
            human_seconds(self.window_seconds)
        );
        let _ = writeln!(o, "  {}", self.provenance.method);
        let _ = writeln!(o, "  WebSocket API: {}", self.websocket_api.describe());
        let s = &self.sessions;
        let _ = writeln!(
            o,
            "\nSessions: {} arrived{}, {} admitted ({} after queueing), {} queued, {} abandoned, {} rejected{}",
            s.arrived,
            self.drive.as_ref().map_or(String::new(), |d| format!(
                " in the window (besides {} carried over from before it, connected during the ramp: see Drive below)",
                d.carried.started
            )),
            s.admitted,
            s.admitted_from_queue,
            s.queued,
            s.abandoned,
            s.rejected,
            if s.rejected_by_reason.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    s.rejected_by_reason
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        let m = &self.messages;
        let _ = writeln!(
            o,
            "Messages: {} sent, {} failed, {} deliveries, {} missed",
            m.sent, m.failed, m.delivered, m.missed
        );
        let _ = writeln!(
            o,
            "\nLatency (ms)        count      mean       p50       p90       p99     p99.9       max"
        );
        let mut rows: Vec<(&str, &LatencySummary)> = vec![
            ("connect", &self.latency_ms.connect),
            ("admission wait", &self.latency_ms.admission_wait),
            ("message delivery", &self.latency_ms.message),
            ("object queue", &self.latency_ms.object_queue),
        ];
        if let Some(l) = &self.latency_ms.message_from_send {
            rows.push(("message (from send)", l));
        }
        if let Some(l) = &self.latency_ms.send_lag {
            rows.push(("driver send lag", l));
        }
        for (name, l) in rows {
            let _ = writeln!(
                o,
                "  {name:<17}{:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                l.count,
                opt(l.mean),
                opt(l.p50),
                opt(l.p90),
                opt(l.p99),
                opt(l.p999),
                opt(l.max)
            );
        }
        let u = &self.usage;
        let _ = writeln!(
            o,
            "\nPeaks: {}, {}, {}, {} queued; {} created; {} overload errors of {}",
            counted(u.peak_connections, "connection", "connections"),
            counted(u.peak_active_rooms, "active room", "active rooms"),
            counted(u.peak_active_objects, "active object", "active objects"),
            u.peak_queue_length,
            counted(u.objects_created, "object", "objects"),
            u.overload_errors,
            counted(u.object_requests, "object request", "object requests")
        );
        if self.projected() {
            let _ = writeln!(o, "\nMonthly usage (30-day month), how:");
            for part in self.monthly_usage.method.split("; ") {
                o.push_str(&wrap(part, 96, "  - ", "    "));
            }
            let mu = &self.monthly_usage.usage.billable;
            for (name, v) in usage_rows(mu) {
                let _ = writeln!(o, "  {name:<28}{:>18}", human_count(v));
            }
            o.push('\n');
            o.push_str(&indent(&self.bill.render_text(), "  "));
        } else {
            let _ = writeln!(
                o,
                "\nMonthly usage and bill: not projected: {}",
                self.monthly_usage.method
            );
        }
        if let Some(r) = self.reference.as_ref().filter(|_| self.projected()) {
            let _ = writeln!(
                o,
                "\nHand estimate: ${:.2}/month ({}) vs computed ${:.2}/month under {}",
                r.total_usd,
                r.source,
                self.bill.total_f64(),
                self.bill.pricing
            );
            if let Some(b) = &r.bill_under_reference_pricing {
                let _ = writeln!(
                    o,
                    "  the same projected usage under the estimate's own prices ({}): ${:.2}",
                    b.pricing,
                    b.total_f64()
                );
            }
        }
        if let Some(d) = &self.drive {
            o.push_str(&d.render_text());
        }
        if let Some(b) = &self.replications {
            o.push_str(&render_replications(b));
        }
        if !self.thresholds.is_empty() {
            match self.replications.as_ref().filter(|b| b.count > 1) {
                Some(b) => {
                    let _ = writeln!(
                        o,
                        "\nThresholds (on the means over {} replications):",
                        b.count
                    );
                }
                None => {
                    let _ = writeln!(o, "\nThresholds:");
                }
            }
            for t in &self.thresholds {
                let _ = writeln!(
                    o,
                    "  {:<8} {:<40} {}",
                    verdict_label(t),
                    t.check,
                    value_text(t)
                );
            }
        }
        o
    }
}

/// `pass`, `FAIL` or `no data`.
fn verdict_label(t: &ThresholdResult) -> &'static str {
    match t.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::NoData => "no data",
    }
}

/// The value of a check, or what its missing value counts as.
fn value_text(t: &ThresholdResult) -> String {
    match (t.value, t.pass) {
        (Some(v), _) => format!("value {v:.4}"),
        (None, true) => "no value in this run (not a failure; --no-data fail to fail)".into(),
        (None, false) => "no value in this run (a failure: no data counts as fail)".into(),
    }
}

/// The thresholds of one run in a table cell: `pass`, `N FAILED` (a check without data
/// that counts as failed included) or `pass (N no data)`; [`threshold_lines`] names them.
pub fn threshold_cell(r: &Report) -> String {
    let failed = r.thresholds.iter().filter(|t| !t.pass).count();
    let no_data = r
        .thresholds
        .iter()
        .filter(|t| t.pass && t.verdict == Verdict::NoData)
        .count();
    match (failed, no_data) {
        (0, 0) => "pass".into(),
        (0, n) => format!("pass ({n} no data)"),
        (n, _) => format!("{n} FAILED"),
    }
}

/// The checks of several runs that did not pass outright, one line each: verdict, run,
/// check and value (empty when every check passed).
pub fn threshold_lines(reports: &[Report]) -> Vec<String> {
    let mut out = Vec::new();
    for r in reports {
        for t in r.thresholds.iter().filter(|t| t.verdict != Verdict::Pass) {
            out.push(format!(
                "{:<8} {}: {} ({})",
                verdict_label(t),
                r.strategy,
                t.check,
                value_text(t)
            ));
        }
    }
    out
}

/// `1 object`, `2 objects`.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `text` wrapped at `width` characters, the first line after `first`, the others after
/// `rest`.
fn wrap(text: &str, width: usize, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The usage fields in report order, with their names.
pub fn usage_rows(u: &Usage) -> [(&'static str, f64); 11] {
    [
        ("worker_requests", u.worker_requests),
        ("worker_cpu_ms", u.worker_cpu_ms),
        ("do_requests", u.do_requests),
        ("do_websocket_connects", u.do_websocket_connects),
        ("do_websocket_messages_in", u.do_websocket_messages_in),
        ("do_websocket_messages_out", u.do_websocket_messages_out),
        ("do_active_seconds", u.do_active_seconds),
        ("do_idle_tail_seconds", u.do_idle_tail_seconds),
        ("sqlite_rows_read", u.sqlite_rows_read),
        ("sqlite_rows_written", u.sqlite_rows_written),
        ("sqlite_stored_gb_months", u.sqlite_stored_gb_months),
    ]
}

/// Whether a figure (a threshold metric name) is a share of something, shown in percent.
fn is_share(metric: &str) -> bool {
    !metric.contains('.') && metric != "monthly_cost_usd"
}

/// What a figure's values are multiplied by for display: 100 for shares (percent), else 1.
fn display_scale(metric: &str) -> f64 {
    if is_share(metric) {
        100.0
    } else {
        1.0
    }
}

/// A replicated figure's label: its metric name and unit, e.g. `message.p99 (ms)`.
pub fn figure_label(metric: &str) -> String {
    let unit = if metric == "monthly_cost_usd" {
        "USD"
    } else if is_share(metric) {
        "%"
    } else {
        "ms"
    };
    format!("{metric} ({unit})")
}

/// A figure's column stem in CSV, as the plain columns name it: `monthly_total_usd`,
/// `message_p99_ms`, `rejection_rate`.
pub fn figure_csv_stem(metric: &str) -> String {
    if metric == "monthly_cost_usd" {
        "monthly_total_usd".into()
    } else if metric.contains('.') {
        format!("{}_ms", metric.replace('.', "_"))
    } else {
        metric.to_string()
    }
}

/// A figure over replications in a table cell: `mean ± half-width` (shares in percent),
/// the mean and why it has no interval, or `-` without data.
pub fn figure_cell(metric: &str, i: &crate::interval::Interval) -> String {
    let scale = display_scale(metric);
    match (i.mean, i.half_width_95) {
        (None, _) => "-".into(),
        (Some(m), Some(h)) => format!("{:.2} ± {:.2}", m * scale, h * scale),
        (Some(m), None) => format!("{:.2} (n={})", m * scale, i.n),
    }
}

/// The text summary's section on replications: the count, the seeds, each figure's mean
/// and interval, and the precision reached.
fn render_replications(b: &crate::replicate::Replications) -> String {
    let mut o = String::new();
    let seeds: Vec<String> = b.seeds.iter().take(3).map(u64::to_string).collect();
    let _ = writeln!(
        o,
        "\nOver {} replications (seeds {}{}; the figures above are replication 0's):",
        b.count,
        seeds.join(", "),
        if b.seeds.len() > 3 {
            ", … in the JSON"
        } else {
            ""
        }
    );
    let _ = writeln!(
        o,
        "  {:<34}{:>22}  95% interval (Student t)",
        "figure", "mean ± half-width"
    );
    for (metric, f) in b.ordered() {
        let i = &f.interval;
        let range = match (i.low, i.high, i.missing()) {
            (Some(l), Some(h), _) => {
                let scale = display_scale(metric);
                format!("{:.2} to {:.2}", l * scale, h * scale)
            }
            (_, _, Some(why)) => why.to_string(),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "  {:<34}{:>22}  {range}",
            figure_label(metric),
            figure_cell(metric, i)
        );
    }
    if let Some(p) = &b.precision {
        let _ = writeln!(
            o,
            "  precision: relative half-width ≤ {} on {}: {} with {} replications (minimum {}, cap {})",
            p.target,
            p.on.join(", "),
            if p.met { "met" } else { "NOT met" },
            b.count,
            p.min,
            p.max
        );
    }
    o.push_str(&wrap(&b.method, 96, "  how: ", "    "));
    o
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn indent(s: &str, pad: &str) -> String {
    s.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// "86400" → "1d", "3600" → "1h" and so on.
pub fn human_seconds(s: f64) -> String {
    crate::scenario::Dur::from_secs_f64(s).to_string()
}

/// A count with thousands separators (two decimals for fractions).
pub fn human_count(v: f64) -> String {
    let neg = v < 0.0;
    let v = v.abs();
    let int = v.trunc() as u64;
    let frac = v - v.trunc();
    let digits = int.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if frac > 0.005 {
        out.push_str(&format!("{frac:.2}")[1..]);
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

/// Which WebSocket API a run's room objects use; it decides what their duration bills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebSocketApi {
    /// The WebSocket Hibernation API: an object is billed only while it handles events.
    #[default]
    Hibernation,
    /// Standard `accept()`: an object is billed while any socket is connected to it.
    Accept,
}

impl WebSocketApi {
    /// The API a scenario's `platform.hibernation` selects.
    pub fn from_hibernation(hibernation: bool) -> Self {
        if hibernation {
            Self::Hibernation
        } else {
            Self::Accept
        }
    }

    /// Its name in JSON and CSV: `hibernation` or `accept`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Hibernation => "hibernation",
            Self::Accept => "accept",
        }
    }

    /// For the header of a printed report: the API and what it means for the bill.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Hibernation => "Hibernation API (objects billed only while handling events)",
            Self::Accept => {
                "standard accept() sockets (objects billed while any socket is connected)"
            }
        }
    }
}

/// Several runs of one workload side by side, as a text table.
pub fn render_comparison(reports: &[Report]) -> String {
    comparison(reports).map_or_else(String::new, |c| c.to_text())
}

/// Several runs of one workload side by side, as a Markdown document: a title, how the
/// figures were obtained, then GitHub-flavoured tables with one column per run.
pub fn comparison_markdown(reports: &[Report]) -> String {
    comparison(reports).map_or_else(String::new, |c| c.to_markdown())
}

/// One row of a comparison: a label and one cell per run.
struct Row {
    /// A report key the label starts with (set in monospace in Markdown).
    key: Option<String>,
    /// The rest of the label.
    label: String,
    cells: Vec<String>,
}

impl Row {
    fn new(label: &str, cells: Vec<String>) -> Row {
        Row {
            key: None,
            label: label.to_string(),
            cells,
        }
    }

    fn keyed(key: &str, label: &str, cells: Vec<String>) -> Row {
        Row {
            key: Some(key.to_string()),
            label: label.to_string(),
            cells,
        }
    }

    fn text_label(&self) -> String {
        match &self.key {
            Some(k) if self.label.is_empty() => k.clone(),
            Some(k) => format!("{k} {}", self.label),
            None => self.label.clone(),
        }
    }

    fn markdown_label(&self) -> String {
        let label = md_escape(&self.label);
        match self.key.as_deref() {
            Some(k) if self.label.is_empty() => md_code(k),
            Some(k) => format!("{} {label}", md_code(k)),
            None => label,
        }
    }
}

/// A group of rows, optionally under a title (and a sentence after it).
struct Section {
    title: Option<String>,
    /// Whether the text table prints the title (else only Markdown shows it, as a heading).
    title_in_text: bool,
    note: Option<String>,
    rows: Vec<Row>,
    /// Lines under the rows (text: indented; Markdown: a list).
    footer: Vec<String>,
}

/// A fact stated above the table: the same for every run, or one value per run.
enum Fact {
    Same(String),
    Each(Vec<(String, String)>),
}

struct HeaderFact {
    name: &'static str,
    /// Short enough for the first line of the text header.
    inline: bool,
    value: Fact,
}

/// What a comparison holds, before it is rendered as text or Markdown.
struct Comparison {
    /// "compare", or "drive, strategies side by side".
    what: &'static str,
    scenario: String,
    facts: Vec<HeaderFact>,
    strategies: Vec<String>,
    sections: Vec<Section>,
}

/// The width of the label column of the text table.
const LABEL_WIDTH: usize = 34;

fn comparison(reports: &[Report]) -> Option<Comparison> {
    let first = reports.first()?;
    let each = |f: &dyn Fn(&Report) -> String| reports.iter().map(f).collect::<Vec<_>>();
    let fact = |name, inline, f: &dyn Fn(&Report) -> String| {
        let values = each(f);
        let value = if values.windows(2).all(|w| w[0] == w[1]) {
            Fact::Same(values[0].clone())
        } else {
            Fact::Each(
                reports
                    .iter()
                    .map(|r| r.strategy.clone())
                    .zip(values)
                    .collect(),
            )
        };
        HeaderFact {
            name,
            inline,
            value,
        }
    };
    let mut facts = vec![
        fact("seed", true, &|r| r.seed.to_string()),
        fact("window", true, &|r| human_seconds(r.window_seconds)),
        fact("prices", true, &|r| r.pricing.clone()),
        fact("WebSocket API", false, &|r| {
            r.websocket_api.describe().to_string()
        }),
        fact("figures", false, &|r| r.provenance.method.clone()),
        fact("monthly figures", false, &|r| {
            r.monthly_usage.method.clone()
        }),
    ];
    let replicated = reports.iter().any(|r| r.replications.is_some());
    if replicated {
        facts.push(fact("replications", false, &|r| match &r.replications {
            Some(_) => REPLICATIONS_FACT.to_string(),
            None => "one: no intervals".to_string(),
        }));
    }
    if let Some(p) = reports
        .iter()
        .find_map(|r| r.replications.as_ref()?.precision.as_ref())
    {
        facts.push(fact("precision", false, &|_| {
            format!(
                "replications added until the relative half-width of {} was at most {} (minimum {}, cap {})",
                p.on.join(", "),
                p.target,
                p.min,
                p.max
            )
        }));
    }

    let mut main = vec![
        Row::new(
            "sessions arrived",
            each(&|r| r.sessions.arrived.to_string()),
        ),
        Row::new("admitted", each(&|r| r.sessions.admitted.to_string())),
        Row::new("queued", each(&|r| r.sessions.queued.to_string())),
        Row::new("abandoned", each(&|r| r.sessions.abandoned.to_string())),
        Row::new("rejected", each(&|r| r.sessions.rejected.to_string())),
    ];
    for lat in ["connect", "admission_wait", "message", "object_queue"] {
        for stat in ["p50", "p99"] {
            main.push(Row::keyed(
                lat,
                &format!("{stat} (ms)"),
                each(&|r| opt(r.latency_ms.get(lat).and_then(|l| l.stat(stat)))),
            ));
        }
    }
    main.extend([
        Row::new(
            "overload errors",
            each(&|r| r.usage.overload_errors.to_string()),
        ),
        Row::new(
            "peak connections",
            each(&|r| r.usage.peak_connections.to_string()),
        ),
        Row::new(
            "peak active objects",
            each(&|r| r.usage.peak_active_objects.to_string()),
        ),
        Row::new(
            "objects created",
            each(&|r| r.usage.objects_created.to_string()),
        ),
    ]);
    let mut sections = vec![Section {
        title: None,
        title_in_text: false,
        note: None,
        rows: main,
        footer: Vec::new(),
    }];
    sections.extend(replications_section(reports));

    let usage = (0..usage_rows(&first.monthly_usage.usage.billable).len())
        .map(|i| {
            let key = usage_rows(&first.monthly_usage.usage.billable)[i].0;
            Row::keyed(
                key,
                "",
                each(&|r| human_count(usage_rows(&r.monthly_usage.usage.billable)[i].1)),
            )
        })
        .collect();
    sections.push(Section {
        title: Some("monthly usage".into()),
        title_in_text: true,
        note: None,
        rows: usage,
        footer: Vec::new(),
    });

    let mut bill: Vec<Row> = first
        .bill
        .line_items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            Row::new(
                &item.name,
                each(&|r| {
                    r.bill
                        .line_items
                        .get(i)
                        .map_or("-".into(), |l| format!("{:.2}", l.cost_usd))
                }),
            )
        })
        .collect();
    bill.push(Row::new(
        "total",
        each(&|r| format!("{:.2}", r.bill.total_usd)),
    ));
    sections.push(Section {
        title: Some(format!("monthly bill (USD, {})", first.pricing)),
        title_in_text: true,
        note: None,
        rows: bill,
        footer: Vec::new(),
    });

    if let Some(refc) = &first.reference {
        let mut rows = Vec::new();
        if let Some(b) = &refc.bill_under_reference_pricing {
            rows.push(Row::new(
                &format!(
                    "{} usage at the estimate's prices ({})",
                    if first.mode == "drive" {
                        "measured and projected"
                    } else {
                        "simulated"
                    },
                    b.pricing
                ),
                each(&|r| {
                    r.reference
                        .as_ref()
                        .and_then(|x| x.bill_under_reference_pricing.as_ref())
                        .map_or("-".into(), |b| format!("{:.2}", b.total_usd))
                }),
            ));
        }
        sections.push(Section {
            title: Some("hand estimate".into()),
            title_in_text: true,
            note: Some(format!("${:.2}/month ({})", refc.total_usd, refc.source)),
            rows,
            footer: Vec::new(),
        });
    }
    sections.extend(thresholds_section(reports));

    Some(Comparison {
        what: if first.mode == "drive" {
            "drive, strategies side by side"
        } else {
            "compare"
        },
        scenario: first.scenario.clone(),
        facts,
        strategies: each(&|r| r.strategy.clone()),
        sections,
    })
}

/// The comparison's header fact on replications.
const REPLICATIONS_FACT: &str = "independent seeds (replication 0 under the scenario's seed, \
    the others under SplitMix64 outputs from it); every figure outside the section \
    \"over the replications\" is replication 0's; intervals: 95% Student t over the \
    per-replication values (a percentile's over the replications' percentiles); thresholds \
    are checked on the means";

/// The section of a comparison that shows each figure over the replications as `mean ±
/// half-width` (absent when no run was replicated).
fn replications_section(reports: &[Report]) -> Option<Section> {
    let figures = reports.iter().find_map(|r| r.replications.as_ref())?;
    let mut rows = vec![Row::new(
        "replications",
        reports
            .iter()
            .map(|r| match &r.replications {
                None => "1".into(),
                Some(b) => match &b.precision {
                    None => b.count.to_string(),
                    Some(p) if p.met => format!("{} (target met)", b.count),
                    Some(_) => format!("{} (NOT met)", b.count),
                },
            })
            .collect(),
    )];
    for (metric, _) in figures.ordered() {
        let label = figure_label(metric);
        let unit = label.strip_prefix(metric).unwrap_or_default().trim();
        rows.push(Row::keyed(
            metric,
            unit,
            reports
                .iter()
                .map(|r| {
                    r.replications
                        .as_ref()
                        .and_then(|b| b.figures.get(metric))
                        .map_or("-".into(), |f| figure_cell(metric, &f.interval))
                })
                .collect(),
        ));
    }
    Some(Section {
        title: Some("over the replications (mean ± 95% half-width)".into()),
        title_in_text: true,
        note: None,
        rows,
        footer: Vec::new(),
    })
}

/// The thresholds row of a comparison (absent when no run has thresholds), with a line under
/// it for every check that failed or had no data.
fn thresholds_section(reports: &[Report]) -> Option<Section> {
    if reports.iter().all(|r| r.thresholds.is_empty()) {
        return None;
    }
    Some(Section {
        title: Some("thresholds".into()),
        title_in_text: false,
        note: None,
        rows: vec![Row::new(
            "thresholds",
            reports.iter().map(threshold_cell).collect(),
        )],
        footer: threshold_lines(reports),
    })
}

impl Comparison {
    fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = write!(o, "dosim {}: scenario {}", self.what, self.scenario);
        for f in self.facts.iter().filter(|f| f.inline) {
            if let Fact::Same(v) = &f.value {
                let _ = write!(o, " · {} {v}", f.name);
            }
        }
        o.push('\n');
        for f in &self.facts {
            match &f.value {
                Fact::Same(_) if f.inline => {}
                Fact::Same(v) => {
                    let _ = writeln!(o, "{}: {v}", f.name);
                }
                Fact::Each(values) => {
                    let _ = writeln!(o, "{}:", f.name);
                    for (strategy, v) in values {
                        let _ = writeln!(o, "  {strategy}: {v}");
                    }
                }
            }
        }
        // Wide enough for a count in the billions with separators.
        let width = self
            .strategies
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(8)
            .max(16)
            + 2;
        let row = |o: &mut String, label: &str, cells: &[String]| {
            let _ = write!(o, "{label:<LABEL_WIDTH$}");
            for c in cells {
                let _ = write!(o, "{c:>width$}");
            }
            o.push('\n');
        };
        o.push('\n');
        row(&mut o, "", &self.strategies);
        for (i, section) in self.sections.iter().enumerate() {
            if i > 0 {
                o.push('\n');
            }
            if let Some(title) = section.title.as_ref().filter(|_| section.title_in_text) {
                match &section.note {
                    Some(note) => {
                        let _ = writeln!(o, "{title}: {note}");
                    }
                    None => {
                        let _ = writeln!(o, "{title}");
                    }
                }
            }
            let indent = if section.title_in_text { "  " } else { "" };
            for r in &section.rows {
                let label = format!("{indent}{}", r.text_label());
                // A label too long for its column gets a line of its own.
                if label.chars().count() > LABEL_WIDTH {
                    let _ = writeln!(o, "{label}");
                    row(&mut o, "", &r.cells);
                } else {
                    row(&mut o, &label, &r.cells);
                }
            }
            for line in &section.footer {
                let _ = writeln!(o, "  {line}");
            }
        }
        o
    }

    fn to_markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# dosim {}: {}\n",
            md_escape(self.what),
            md_escape(&self.scenario)
        );
        let _ = writeln!(o, "- **Scenario:** {}", md_code(&self.scenario));
        for f in &self.facts {
            let name = capitalized(f.name);
            match &f.value {
                Fact::Same(v) => {
                    let _ = writeln!(o, "- **{name}:** {}", md_escape(v));
                }
                Fact::Each(values) => {
                    let _ = writeln!(o, "- **{name}:**");
                    for (strategy, v) in values {
                        let _ = writeln!(o, "  - {}: {}", md_code(strategy), md_escape(v));
                    }
                }
            }
        }
        // An empty label column, then one right-aligned column per run.
        let header = {
            let mut h = String::from("| |");
            for s in &self.strategies {
                let _ = write!(h, " {} |", md_escape(s));
            }
            h.push_str("\n|---|");
            h.push_str(&"---:|".repeat(self.strategies.len()));
            h
        };
        for section in &self.sections {
            o.push('\n');
            if let Some(title) = &section.title {
                let _ = writeln!(o, "## {}\n", md_escape(&capitalized(title)));
            }
            if let Some(note) = &section.note {
                let _ = writeln!(o, "{}\n", md_escape(note));
            }
            if section.rows.is_empty() {
                continue;
            }
            let _ = writeln!(o, "{header}");
            for r in &section.rows {
                let _ = write!(o, "| {} |", r.markdown_label());
                for c in &r.cells {
                    let _ = write!(o, " {} |", md_escape(c));
                }
                o.push('\n');
            }
            if !section.footer.is_empty() {
                o.push('\n');
                for line in &section.footer {
                    let _ = writeln!(o, "- {}", md_escape(line));
                }
            }
        }
        o
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().chain(chars).collect::<String>()
    })
}

/// Text for Markdown: characters that would start emphasis, code, links, HTML or end a
/// table cell are escaped.
fn md_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#'
        ) {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// A Markdown code span (a `|` in it is escaped, which GitHub requires in a table cell).
fn md_code(s: &str) -> String {
    if s.contains('`') {
        md_escape(s)
    } else {
        format!("`{}`", s.replace('|', "\\|"))
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Several runs as CSV: one row per strategy, the headline figures as columns.
pub fn comparison_csv(reports: &[Report]) -> String {
    let mut o = String::from(
        "scenario,strategy,mode,pricing,websocket_api,sessions_arrived,admitted,rejected,abandoned,connect_p50_ms,connect_p99_ms,message_p50_ms,message_p99_ms,overload_errors,peak_connections,monthly_total_usd",
    );
    let replicated = reports.iter().any(|r| r.replications.is_some());
    if replicated {
        o.push_str(&replication_csv_header(&crate::replicate::HEADLINE));
    }
    o.push('\n');
    for r in reports {
        let l = &r.latency_ms;
        let _ = write!(
            o,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.scenario),
            r.strategy,
            r.mode,
            csv_field(&r.pricing),
            r.websocket_api.key(),
            r.sessions.arrived,
            r.sessions.admitted,
            r.sessions.rejected,
            r.sessions.abandoned,
            l.connect.p50.map_or(String::new(), |v| v.to_string()),
            l.connect.p99.map_or(String::new(), |v| v.to_string()),
            l.message.p50.map_or(String::new(), |v| v.to_string()),
            l.message.p99.map_or(String::new(), |v| v.to_string()),
            r.usage.overload_errors,
            r.usage.peak_connections,
            r.bill.total_usd
        );
        if replicated {
            let b = r.replications.as_ref();
            o.push_str(&replication_csv_cells(
                b.map_or(1, |b| b.count),
                b.map(|b| &b.figures),
                &crate::replicate::HEADLINE,
            ));
        }
        o.push('\n');
    }
    o
}

/// The CSV columns of a replicated run, each starting with a comma: `replications`, then
/// `<stem>_mean`, `<stem>_ci95_low`, `<stem>_ci95_high` for each of `metrics` (stems as
/// [`figure_csv_stem`]; shares as fractions, not percent).
pub fn replication_csv_header(metrics: &[&str]) -> String {
    let mut o = String::from(",replications");
    for &m in metrics {
        let stem = figure_csv_stem(m);
        let _ = write!(o, ",{stem}_mean,{stem}_ci95_low,{stem}_ci95_high");
    }
    o
}

/// The cells of [`replication_csv_header`] for one run of `count` replications (empty cells
/// where a figure has no value or no interval, or the run was not replicated).
pub fn replication_csv_cells(
    count: usize,
    figures: Option<&BTreeMap<String, crate::replicate::Figure>>,
    metrics: &[&str],
) -> String {
    let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let mut o = format!(",{count}");
    for &m in metrics {
        let i = figures.and_then(|f| f.get(m)).map(|f| &f.interval);
        let _ = write!(
            o,
            ",{},{},{}",
            num(i.and_then(|i| i.mean)),
            num(i.and_then(|i| i.low)),
            num(i.and_then(|i| i.high))
        );
    }
    o
}

/// The pieces a report is assembled from, whatever produced them.
#[derive(Debug)]
pub struct Parts<'a> {
    /// `simulate` or `drive`.
    pub mode: &'a str,
    /// The scenario.
    pub scenario: &'a crate::scenario::Scenario,
    /// The strategy.
    pub strategy: crate::model::strategy::Strategy,
    /// The price table of the bill.
    pub pricing: &'a crate::pricing::PriceTable,
    /// Length of the window the usage covers.
    pub window_seconds: f64,
    /// How the numbers were obtained.
    pub provenance: Provenance,
    /// Session outcomes.
    pub sessions: SessionCounts,
    /// Latencies.
    pub latency_ms: LatencyBlock,
    /// Messages.
    pub messages: MessageCounts,
    /// Usage in the window.
    pub usage: RunUsage,
    /// How the month is projected.
    pub projection: crate::projection::Projection,
    /// Time series.
    pub timeseries: TimeSeries,
    /// Extra thresholds (from the command line).
    pub extra_thresholds: &'a [crate::threshold::Threshold],
}

impl Report {
    /// Price, project and check a run.
    pub fn assemble(p: Parts<'_>) -> crate::Result<Report> {
        let monthly = p.projection.month(&p.usage, &p.scenario.persistence);
        let bill = crate::pricing::price(&monthly.usage.billable, p.pricing)?;
        let reference = match &p.scenario.reference {
            None => None,
            Some(r) => Some(ReferenceComparison {
                total_usd: r.total_usd,
                source: r.source.clone(),
                bill_under_reference_pricing: match &r.pricing {
                    None => None,
                    Some(name) => Some(crate::pricing::price(
                        &monthly.usage.billable,
                        &crate::pricing::PriceTable::builtin(name)?,
                    )?),
                },
            }),
        };
        let mut report = Report {
            mode: p.mode.to_string(),
            scenario: p.scenario.name.clone(),
            strategy: p.strategy.to_string(),
            seed: p.scenario.seed,
            pricing: p.pricing.name.clone(),
            websocket_api: WebSocketApi::from_hibernation(p.scenario.platform.hibernation),
            window_seconds: p.window_seconds,
            provenance: p.provenance,
            sessions: p.sessions,
            latency_ms: p.latency_ms,
            messages: p.messages,
            usage: p.usage,
            monthly_usage: monthly,
            bill,
            reference,
            replications: None,
            thresholds: Vec::new(),
            timeseries: p.timeseries,
            drive: None,
        };
        report.check_thresholds(p.scenario, p.extra_thresholds);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::drive::DriveDetails;
    use super::*;

    fn check(check: &str, value: Option<f64>, pass: bool, verdict: Verdict) -> ThresholdResult {
        ThresholdResult {
            check: check.into(),
            value,
            pass,
            verdict,
        }
    }

    fn drive_report(strategy: &str, target: &str, factor: Option<f64>) -> Report {
        let mut d = DriveDetails::default();
        d.carried.started = 58;
        d.projection.factor = factor;
        d.target = target.into();
        Report {
            mode: "drive".into(),
            strategy: strategy.into(),
            provenance: Provenance {
                method: format!("measured: 20 s over real WebSockets against {target}"),
                ..Provenance::default()
            },
            usage: RunUsage {
                objects_created: 1,
                peak_connections: 58,
                ..RunUsage::default()
            },
            bill: crate::pricing::price(
                &Usage::default(),
                &crate::pricing::PriceTable::builtin(crate::pricing::PriceTable::DEFAULT).unwrap(),
            )
            .unwrap(),
            thresholds: vec![
                check("message.p99 < 500", Some(2.0), true, Verdict::Pass),
                check("connect.p99 < 1", Some(2.0), false, Verdict::Fail),
                check("admission_wait.p99 < 1000", None, true, Verdict::NoData),
            ],
            drive: Some(d),
            ..Report::default()
        }
    }

    #[test]
    fn the_summary_says_each_verdict_the_carried_sessions_and_one_bill_header() {
        let text = drive_report("single", "ws://a", Some(2.0)).render_text();
        assert!(
            text.contains("no data  admission_wait.p99 < 1000"),
            "{text}"
        );
        assert!(text.contains("FAIL     connect.p99 < 1"), "{text}");
        assert!(
            text.contains("0 arrived in the window (besides 58 carried"),
            "{text}"
        );
        assert!(text.contains("1 object created"), "{text}");
        assert!(
            text.contains("58 connections, 0 active rooms, 0 active objects"),
            "{text}"
        );
        assert_eq!(text.matches("Bill under price table").count(), 1, "{text}");
        assert!(!text.contains("Monthly bill under"), "{text}");
        // A drive that covered none of its window shows no bill as if it were real.
        let text = drive_report("single", "ws://a", None).render_text();
        assert!(text.contains("not projected"), "{text}");
        assert!(!text.contains("Bill under price table"), "{text}");
    }

    #[test]
    fn a_drive_without_projection_has_no_cost_to_check() {
        let mut r = drive_report("single", "ws://a", None);
        let limits = crate::scenario::LimitsSpec::default();
        assert_eq!(r.metric("monthly_cost_usd", &limits), None);
        r.drive.as_mut().unwrap().projection.factor = Some(1.0);
        assert_eq!(r.metric("monthly_cost_usd", &limits), Some(5.0));
    }

    #[test]
    fn the_comparison_names_failed_and_no_data_checks_and_every_target() {
        let mut b = drive_report("per-room", "ws://b", Some(2.0));
        b.thresholds.truncate(1);
        let reports = [drive_report("single", "ws://a", Some(2.0)), b];
        let table = render_comparison(&reports);
        let row = table
            .lines()
            .find(|l| l.starts_with("thresholds"))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(row.contains("1 FAILED") && row.ends_with("pass"), "{row}");
        assert!(
            table.contains("FAIL     single: connect.p99 < 1 (value 2.0000)"),
            "{table}"
        );
        assert!(
            table.contains("no data  single: admission_wait.p99 < 1000"),
            "{table}"
        );
        assert!(!table.contains("per-room: message.p99"), "{table}");
        // Each run's own target.
        assert!(table.contains("single: measured: 20 s over real WebSockets against ws://a"));
        assert!(table.contains("per-room: measured: 20 s over real WebSockets against ws://b"));
        assert_eq!(threshold_cell(&reports[1]), "pass");
        let mut only_no_data = reports[1].clone();
        only_no_data.thresholds[0].verdict = Verdict::NoData;
        assert_eq!(threshold_cell(&only_no_data), "pass (1 no data)");
    }

    #[test]
    fn counts_are_pluralised_and_long_text_wrapped() {
        assert_eq!(counted(1, "object", "objects"), "1 object");
        assert_eq!(counted(0, "object", "objects"), "0 objects");
        let w = wrap(&"word ".repeat(40), 30, "  - ", "    ");
        assert!(
            w.lines().count() > 1 && w.lines().all(|l| l.chars().count() <= 30),
            "{w}"
        );
        assert!(w.starts_with("  - word") && w.lines().nth(1).unwrap().starts_with("    word"));
    }

    fn run(strategy: &str, api: WebSocketApi) -> Report {
        Report {
            mode: "simulate".into(),
            scenario: "s".into(),
            strategy: strategy.into(),
            seed: 7,
            pricing: "p".into(),
            websocket_api: api,
            window_seconds: 3600.0,
            provenance: Provenance {
                method: "simulated".into(),
                ..Provenance::default()
            },
            ..Report::default()
        }
    }

    /// The `|` that separate cells (not the escaped ones inside a cell).
    fn cell_separators(line: &str) -> usize {
        let b = line.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
            .count()
    }

    #[test]
    fn markdown_comparison_is_tables_with_one_column_per_run() {
        let reports = [
            run("single", WebSocketApi::Accept),
            run("odd|name", WebSocketApi::Accept),
        ];
        let md = comparison_markdown(&reports);
        assert!(!md.contains("```"), "{md}");
        assert!(md.starts_with("# dosim compare: s\n"), "{md}");
        assert!(
            md.contains("\n| | single | odd\\|name |\n|---|---:|---:|\n"),
            "{md}"
        );
        for fact in [
            "**Seed:** 7",
            "**Prices:** p",
            "**WebSocket API:** standard accept()",
        ] {
            assert!(md.contains(fact), "{fact} missing from\n{md}");
        }
        assert!(md.contains("**Figures:** simulated"), "{md}");
        // Every row of every table has a label and one cell per run.
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert!(rows.len() > 20, "{md}");
        for l in rows {
            assert_eq!(cell_separators(l), 4, "{l}");
        }
    }

    #[test]
    fn a_fact_that_differs_between_runs_is_given_for_each() {
        let mut b = run("b", WebSocketApi::Hibernation);
        b.provenance.method = "measured against ws://127.0.0.1:2".into();
        let reports = [run("a", WebSocketApi::Accept), b];
        let text = render_comparison(&reports);
        assert!(
            text.contains("figures:\n  a: simulated\n  b: measured against ws://127.0.0.1:2\n"),
            "{text}"
        );
        assert!(
            text.contains("WebSocket API:\n  a: standard accept()"),
            "{text}"
        );
        assert!(text.contains("  b: Hibernation API"), "{text}");
        let md = comparison_markdown(&reports);
        assert!(md.contains("- **Figures:**\n  - `a`: simulated\n"), "{md}");
    }

    #[test]
    fn every_header_names_the_websocket_api() {
        let accept = run("single", WebSocketApi::Accept);
        let hib = run("single", WebSocketApi::Hibernation);
        assert!(accept
            .render_text()
            .contains("WebSocket API: standard accept() sockets"));
        assert!(hib.render_text().contains("WebSocket API: Hibernation API"));
        assert!(render_comparison(std::slice::from_ref(&accept))
            .contains("\nWebSocket API: standard accept()"));
        let csv = comparison_csv(&[accept, hib]);
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let col = header.iter().position(|&h| h == "websocket_api").unwrap();
        let values: Vec<&str> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(col).unwrap())
            .collect();
        assert_eq!(values, ["accept", "hibernation"]);
    }

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
