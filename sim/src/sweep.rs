//! Sweep: one scenario simulated at several loads under several strategies — the cost curve.
//!
//! Each point scales the scenario's arrival rate (its daily profile is kept) and its number of
//! rooms in proportion (so users per room stay as in the scenario; the limits do not scale:
//! they are the design under test), and runs the ordinary simulation, so every point is a
//! full report; the sweep keeps the headline figures.
//!
//! With replications ([`crate::replicate`]), every point is run under independent seeds: its
//! plain fields stay replication 0's, its `replications` block has the mean and 95% interval
//! of each figure, the text shows `mean ± half-width`, and the chart draws the means with a
//! band and error bars for the intervals.

use std::collections::BTreeMap;

use std::fmt::Write as _;

use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters_backend::{BackendCoord, DrawingErrorKind};
use serde::{Deserialize, Serialize};

use crate::model::strategy::Strategy;
use crate::pricing::PriceTable;
use crate::replicate::{Figure, Plan};
use crate::report::{csv_field, figure_cell, Report, WebSocketApi};
use crate::scenario::Scenario;
use crate::threshold::Threshold;

/// One strategy at one load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Mean sessions per day at this point.
    pub sessions_per_day: f64,
    /// The strategy.
    pub strategy: String,
    /// Projected monthly bill, USD.
    pub monthly_total_usd: f64,
    /// Peak seated users.
    pub peak_connections: u64,
    /// Per-recipient message delivery p99, ms.
    pub message_p99_ms: Option<f64>,
    /// Connect p99, ms.
    pub connect_p99_ms: Option<f64>,
    /// Rejected sessions over arrived sessions.
    pub rejection_rate: f64,
    /// Queued sessions that gave up, over arrived sessions.
    pub abandon_rate: f64,
    /// Overload errors.
    pub overload_errors: u64,
    /// With replications: the point's figures over them (see [`crate::replicate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replications: Option<PointReplications>,
    /// With `--vary` (a [`Sweep::design`]): the point's value of each varied key (durations
    /// in seconds, booleans 1 or 0) and `concurrent_users`, the expected concurrent users at
    /// the busiest hour (Little's law, [`crate::vary::concurrent_users`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, f64>,
    /// With `--drive --local`: what driving this point's scenario on a local workerd
    /// measured ([`crate::empirical`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<crate::empirical::Measured>,
}

/// The figures a sweep point keeps over replications, as threshold metric names: the bill,
/// message and connect p99, the rejection and abandonment rates (the point's own fields).
pub const SWEEP_FIGURES: [&str; 5] = [
    "monthly_cost_usd",
    "message.p99",
    "connect.p99",
    "rejection_rate",
    "abandon_rate",
];

/// One point over its replications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointReplications {
    /// Replications run at this point.
    pub count: usize,
    /// With `--precision`: whether the target was met (false: stopped at the cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision_met: Option<bool>,
    /// [`SWEEP_FIGURES`] by name: mean, interval and per-replication values.
    pub figures: BTreeMap<String, Figure>,
}

/// A whole sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// The scenario's name.
    pub scenario: String,
    /// The price table.
    pub pricing: String,
    /// The WebSocket API the room objects use (billed accordingly).
    pub websocket_api: WebSocketApi,
    /// How the figures were obtained.
    pub method: String,
    /// With replications: how the seeds and intervals were obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replications: Option<String>,
    /// With `--vary`, `--scale`, `--window` or `--markdown`: how the points were made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub design: Option<SweepDesign>,
    /// With `--drive --local`: how the points were driven, and how the simulated figures
    /// beside the measured ones were obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive: Option<crate::empirical::DriveDesign>,
    /// Every point, loads in the order given, strategies in the order given.
    pub points: Vec<SweepPoint>,
}

/// How a sweep's points were made (see [`crate::vary`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepDesign {
    /// The varied keys in order (the first is the charts' x axis), with their values.
    pub axes: Vec<AxisValues>,
    /// Keys set to one value at every point (`--set`), as `key = value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<String>,
    /// How rooms and limits follow the load, in words.
    pub scale: String,
    /// The window each point simulated, and how it was projected onto the month.
    pub window: String,
    /// With `--check-window`: the projection's error against a whole month at one point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_check: Option<WindowCheck>,
}

/// A varied key and its values as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AxisValues {
    /// The dotted key (or `concurrent_users`).
    pub key: String,
    /// Its values, as written in reports.
    pub values: Vec<String>,
}

/// A short window's projected bill against the scenario's whole window at one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowCheck {
    /// The point (its varied keys' values).
    pub point: BTreeMap<String, f64>,
    /// The short window, seconds.
    pub window_seconds: f64,
    /// The scenario's own window, seconds.
    pub full_window_seconds: f64,
    /// Per strategy: both bills and the error.
    pub strategies: Vec<WindowError>,
}

/// One strategy's bill from the short window and from the whole one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowError {
    /// The strategy.
    pub strategy: String,
    /// The short window's bill, projected onto the month, USD.
    pub projected_usd: f64,
    /// The whole window's bill, USD.
    pub full_usd: f64,
    /// (projected − full) ÷ full, of the bill (which rounds some lines up to whole millions,
    /// so that a small usage error can move it by a step).
    pub relative_error: f64,
    /// The same error of each monthly usage line that is not zero over the whole window
    /// (the keys of a report's `monthly_usage.usage.billable`).
    pub usage_errors: BTreeMap<String, f64>,
}

/// What a sweep varies and how (see [`crate::vary`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Design {
    /// The varied keys; the grid is every combination.
    pub axes: Vec<crate::vary::Axis>,
    /// Keys set to one value at every point (`--set`).
    pub fixed: Vec<crate::vary::Fixed>,
    /// How rooms and limits follow the load.
    pub scale: crate::vary::Scale,
    /// The window each point simulates.
    pub window: crate::vary::WindowChoice,
    /// Check the window's projection against the scenario's whole window at the middle point.
    pub check_window: bool,
    /// Record the design and each point's values in the output even for a plain
    /// `--sessions-per-day` sweep (the Markdown report needs them).
    pub record: bool,
}

impl Design {
    /// A plain sweep over sessions per day, as before `--vary`: no design in the output.
    fn is_plain(&self) -> bool {
        !self.record
            && self.fixed.is_empty()
            && self.scale == crate::vary::Scale::default()
            && self.window == crate::vary::WindowChoice::Scenario
            && self.axes.len() == 1
            && self.axes[0].option == "--sessions-per-day"
    }
}

/// How far a sweep has got, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Points simulated so far.
    pub done: usize,
    /// Points in the whole sweep.
    pub total: usize,
    /// The load being simulated now, in sessions per day (none once the sweep is done).
    pub load: Option<f64>,
}

/// Simulate `scenario` at every point of `design`'s grid under each strategy, each point
/// replicated as `plan` says. The points run on `plan.jobs` threads (each task one point
/// under one strategy); the result does not depend on the number. `on_progress` is told as
/// tasks finish, from any thread.
pub fn run(
    scenario: &Scenario,
    design: &Design,
    strategies: &[Strategy],
    pricing: &PriceTable,
    extra_thresholds: &[Threshold],
    plan: &Plan,
    on_progress: &(dyn Fn(Progress) + Sync),
) -> crate::Result<Sweep> {
    use crate::vary;
    vary::check_axes(&design.axes)?;
    let grid = vary::grid(&design.axes);
    let scenarios = point_scenarios(scenario, design, strategies)?;
    // The window check: the middle point with the scenario's own window.
    let check = match (design.check_window, design.window.length()) {
        (true, Some(len)) if len != scenario.window.length && !grid.is_empty() => {
            let mid = grid.len() / 2;
            let s = vary::apply_with(
                scenario,
                &design.fixed,
                &design.axes,
                &grid[mid],
                design.scale,
                vary::WindowChoice::Scenario,
            )?;
            crate::des::check_footprint(&s, strategies)?;
            Some((mid, s))
        }
        _ => None,
    };
    let mut tasks: Vec<(&Scenario, Strategy)> = scenarios
        .iter()
        .flat_map(|s| strategies.iter().map(move |&k| (s, k)))
        .collect();
    if let Some((_, s)) = &check {
        tasks.extend(strategies.iter().map(|&k| (s, k)));
    }
    let total = tasks.len();
    // The whole sweep at once: refused when it could not finish, and no more points at once
    // than fit in memory (the result does not depend on the number of threads).
    let fs: Vec<_> = tasks
        .iter()
        .map(|&(s, k)| crate::footprint::Footprint::of(s, k))
        .collect();
    let runs = plan.precision.as_ref().map_or(plan.replications, |p| p.max);
    crate::footprint::check_total_work(
        &fs,
        runs,
        &format!("the sweep's {total} runs (points × strategies) of {runs} replication(s) each"),
        "use fewer points, strategies or replications",
    )
    .map_err(crate::Error::Usage)?;
    let jobs = crate::footprint::threads_within_memory(&fs, plan.jobs);
    let done = std::sync::atomic::AtomicUsize::new(0);
    // Each task runs its replications on its own thread: the tasks keep the threads busy.
    let inner = Plan {
        jobs: 1,
        ..plan.clone()
    };
    on_progress(Progress {
        done: 0,
        total,
        load: scenarios.first().map(load_of),
    });
    let reports = crate::replicate::parallel_map(jobs, total, |t| {
        let (s, k) = tasks[t];
        let r = crate::replicate::simulate_report(s, k, pricing, extra_thresholds, &inner);
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        on_progress(Progress {
            done: n,
            total,
            load: Some(load_of(s)),
        });
        r
    })
    .into_iter()
    .collect::<crate::Result<Vec<Report>>>()?;
    on_progress(Progress {
        done: total,
        total,
        load: None,
    });
    let plain = design.is_plain();
    let mut points = Vec::new();
    let mut method = String::new();
    let mut replications = None;
    for (t, r) in reports
        .iter()
        .enumerate()
        .take(scenarios.len() * strategies.len())
    {
        let p = t / strategies.len().max(1);
        let s = &scenarios[p];
        if replications.is_none() {
            replications = r.replications.as_ref().map(|b| b.method.clone());
        }
        if method.is_empty() {
            let base_load = crate::report::human_count(scenario.arrivals.mean_rate() * 86_400.0);
            method = if plain {
                format!(
                    "{}; rooms scaled with the load ({} rooms at {} sessions/day), limits as in the scenario; monthly figures: {}",
                    r.provenance.method, scenario.rooms.count, base_load, r.monthly_usage.method
                )
            } else {
                let set: String = design
                    .fixed
                    .iter()
                    .map(|f| format!("; set at every point: {f}"))
                    .collect();
                format!(
                    "{}; {} ({} rooms, limits {} total connections / {} active rooms at {} sessions/day){set}; monthly figures: {}",
                    r.provenance.method,
                    design.scale.describe(),
                    scenario.rooms.count,
                    limit(scenario.limits.max_total_connections),
                    limit(scenario.limits.max_active_rooms),
                    base_load,
                    r.monthly_usage.method
                )
            };
        }
        let mut point = point(load_of(s), r);
        if !plain {
            point.values = point_values(&design.axes, &grid[p], s);
        }
        points.push(point);
    }
    let design_out = (!plain).then(|| SweepDesign {
        axes: design
            .axes
            .iter()
            .map(|a| AxisValues {
                key: a.key.clone(),
                values: a.values.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        set: design.fixed.iter().map(ToString::to_string).collect(),
        scale: design.scale.describe().to_string(),
        window: match design.window.length() {
            None => format!(
                "the scenario's window ({}), projected onto a 30-day month by the ratio of their lengths",
                scenario.window.length
            ),
            Some(len) => format!(
                "{len} at every point (the scenario's {} replaced; its daily profile repeats, so any day is its busiest){}, projected onto a 30-day month ×{}",
                scenario.window.length,
                match crate::vary::quiet_start(&scenario.arrivals.profile.weights()) {
                    h if design.window.starts_quiet() && h != 0 => format!(
                        ", starting at {h:02}:00, the end of the daily profile's quietest {} hours (the simulation starts with empty rooms)",
                        crate::vary::QUIET_HOURS
                    ),
                    _ => String::new(),
                },
                crate::scenario::MONTH_SECONDS as f64 / len.secs()
            ),
        },
        window_check: check.as_ref().map(|(mid, full)| {
            let n = strategies.len();
            let short = &reports[mid * n..mid * n + n];
            let long = &reports[scenarios.len() * n..];
            WindowCheck {
                point: point_values(&design.axes, &grid[*mid], full),
                window_seconds: scenarios[*mid].window.length.secs(),
                full_window_seconds: full.window.length.secs(),
                strategies: short
                    .iter()
                    .zip(long)
                    .map(|(a, b)| {
                        let (x, y) = (a.bill.total_f64(), b.bill.total_f64());
                        WindowError {
                            strategy: a.strategy.clone(),
                            projected_usd: x,
                            full_usd: y,
                            relative_error: if y == 0.0 { 0.0 } else { (x - y) / y },
                            usage_errors: usage_errors(
                                &a.monthly_usage.usage.billable,
                                &b.monthly_usage.usage.billable,
                            ),
                        }
                    })
                    .collect(),
            }
        }),
    });
    Ok(Sweep {
        scenario: scenario.name.clone(),
        pricing: pricing.name.clone(),
        websocket_api: WebSocketApi::from_hibernation(scenario.platform.hibernation),
        method,
        replications,
        design: design_out,
        drive: None,
        points,
    })
}

/// The scenario of every point of `design`'s grid, in the grid's order, as [`run`] simulates
/// them (scaled, varied and set; each checked for its footprint under `strategies`). Every
/// point is made and checked before any runs, so a bad value fails at once.
pub fn point_scenarios(
    scenario: &Scenario,
    design: &Design,
    strategies: &[Strategy],
) -> crate::Result<Vec<Scenario>> {
    use crate::vary;
    vary::check_axes(&design.axes)?;
    vary::grid(&design.axes)
        .iter()
        .map(|values| {
            let s = vary::apply_with(
                scenario,
                &design.fixed,
                &design.axes,
                values,
                design.scale,
                design.window,
            )?;
            crate::des::check_footprint(&s, strategies)?;
            Ok(s)
        })
        .collect()
}

/// (projected − full) ÷ full of each usage line that is not zero in `full`.
fn usage_errors(
    projected: &crate::usage::Usage,
    full: &crate::usage::Usage,
) -> BTreeMap<String, f64> {
    let as_map = |u: &crate::usage::Usage| match serde_json::to_value(u) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (p, f) = (as_map(projected), as_map(full));
    f.iter()
        .filter_map(|(k, v)| {
            let full = v.as_f64().filter(|&v| v != 0.0)?;
            let proj = p.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
            Some((k.clone(), (proj - full) / full))
        })
        .collect()
}

fn limit(n: Option<u32>) -> String {
    n.map_or("unlimited".into(), |n| {
        crate::report::human_count(f64::from(n))
    })
}

/// A point's load in sessions per day.
fn load_of(s: &Scenario) -> f64 {
    s.arrivals
        .sessions_per_day
        .unwrap_or(s.arrivals.mean_rate() * 86_400.0)
}

fn point_values(
    axes: &[crate::vary::Axis],
    values: &[crate::vary::Value],
    s: &Scenario,
) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = axes
        .iter()
        .zip(values)
        .map(|(a, v)| (a.key.clone(), v.as_f64()))
        .collect();
    out.insert(
        crate::vary::CONCURRENT_USERS.into(),
        crate::vary::concurrent_users(s),
    );
    out
}

/// `scenario` at `load` mean sessions per day (its daily profile kept) with its rooms scaled
/// in proportion, validated as a scenario file is: an error names the key and the load.
pub fn scale(scenario: &Scenario, load: f64) -> crate::Result<Scenario> {
    if !(load.is_finite() && load > 0.0) {
        return Err(crate::Error::Usage(format!(
            "--sessions-per-day: {load} is not a positive number"
        )));
    }
    let at = |key: &str, message: String| {
        scenario.error_at(
            key,
            format!(
                "at --sessions-per-day {}: {message}",
                crate::footprint::count(load)
            ),
        )
    };
    let base = scenario.arrivals.mean_rate() * 86_400.0;
    // More users need more rooms: keep users per room as in the scenario.
    let rooms = (f64::from(scenario.rooms.count) * (load / base))
        .round()
        .max(1.0);
    if crate::footprint::exceeds(rooms, f64::from(u32::MAX)) {
        return Err(at(
            "rooms.count",
            format!(
                "the {} rooms scale to {} rooms, more than the largest count, {}",
                scenario.rooms.count,
                crate::footprint::count(rooms),
                u32::MAX
            ),
        ));
    }
    let mut s = scenario.clone();
    s.arrivals.sessions_per_day = Some(load);
    s.arrivals.rate_per_second = None;
    s.rooms.count = rooms as u32;
    s.check().map_err(|e| match e {
        crate::Error::Input(e) => at(
            &e.key,
            format!("(rooms.count scaled to {}) {}", s.rooms.count, e.message),
        ),
        other => other,
    })?;
    Ok(s)
}

fn point(load: f64, r: &Report) -> SweepPoint {
    SweepPoint {
        sessions_per_day: load,
        strategy: r.strategy.clone(),
        monthly_total_usd: r.bill.total_f64(),
        peak_connections: r.usage.peak_connections,
        message_p99_ms: r.latency_ms.message.p99,
        connect_p99_ms: r.latency_ms.connect.p99,
        rejection_rate: share(r.sessions.rejected, r.sessions.arrived),
        abandon_rate: share(r.sessions.abandoned, r.sessions.arrived),
        overload_errors: r.usage.overload_errors,
        values: BTreeMap::new(),
        measured: None,
        replications: r.replications.as_ref().map(|b| PointReplications {
            count: b.count,
            precision_met: b.precision.as_ref().map(|p| p.met),
            figures: SWEEP_FIGURES
                .iter()
                .filter_map(|&m| b.figures.get(m).map(|f| (m.to_string(), f.clone())))
                .collect(),
        }),
    }
}

fn share(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Sweep {
    fn strategies(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.points {
            if !out.contains(&p.strategy.as_str()) {
                out.push(&p.strategy);
            }
        }
        out
    }

    fn loads(&self) -> Vec<f64> {
        let mut out: Vec<f64> = Vec::new();
        for p in &self.points {
            if !out.contains(&p.sessions_per_day) {
                out.push(p.sessions_per_day);
            }
        }
        out
    }

    fn at(&self, load: f64, strategy: &str) -> Option<&SweepPoint> {
        self.points
            .iter()
            .find(|p| p.sessions_per_day == load && p.strategy == strategy)
    }

    /// The cost curve as a text table: one row per load and strategy.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "dosim sweep: scenario {} · prices {}\nWebSocket API: {}\n{}\n",
            self.scenario,
            self.pricing,
            self.websocket_api.describe(),
            self.method
        );
        if let Some(d) = &self.drive {
            let _ = writeln!(
                o,
                "Measured figures: {}.\nSimulated figures: {}.\n",
                d.method, d.simulated
            );
        }
        if let Some(how) = &self.replications {
            self.render_replicated(&mut o, how);
            self.render_measured(&mut o);
            return o;
        }
        if self.design.is_some() {
            let _ = write!(o, "{:>12}  ", self.x_head());
        }
        let w = if self.design.is_some() { 26 } else { 14 };
        let _ = writeln!(
            o,
            "{:>14}  {:<w$}{:>12}{:>14}{:>14}{:>10}{:>11}{:>11}{:>10}",
            "sessions/day",
            if self.design.is_some() {
                "line"
            } else {
                "strategy"
            },
            "USD/month",
            "message p99",
            "connect p99",
            "peak",
            "rejected",
            "abandoned",
            "overload"
        );
        let design = self.design.is_some();
        for p in &self.points {
            let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
            let (load, line) = if design {
                (
                    crate::report::human_count(p.sessions_per_day.round()),
                    self.line_of(p),
                )
            } else {
                (
                    crate::report::human_count(p.sessions_per_day),
                    p.strategy.clone(),
                )
            };
            if design {
                let _ = write!(o, "{:>12}  ", self.x_cell(p));
            }
            let w = if design { 26 } else { 14 };
            let _ = writeln!(
                o,
                "{:>14}  {:<w$}{:>12.2}{:>14}{:>14}{:>10}{:>10.1}%{:>10.1}%{:>10}",
                load,
                line,
                p.monthly_total_usd,
                ms(p.message_p99_ms),
                ms(p.connect_p99_ms),
                p.peak_connections,
                p.rejection_rate * 100.0,
                p.abandon_rate * 100.0,
                p.overload_errors
            );
        }
        self.render_measured(&mut o);
        o
    }

    /// With `--drive`: a table of every point's measured figures beside the simulated ones
    /// (the mean and its 95% interval over the replications).
    fn render_measured(&self, o: &mut String) {
        let Some(d) = &self.drive else { return };
        let design = self.design.is_some();
        // The first axis gets a column of its own unless it is the load.
        let x_column = design && self.x_key() != Some("arrivals.sessions_per_day");
        let w = if design { 26 } else { 14 };
        let _ = writeln!(
            o,
            "\nMeasured on a local workerd ({:.0} s window at the busiest hour{}, projected onto the month) beside the simulation (mean [95% interval] over the replications); {} drives in {}:",
            d.duration_seconds,
            if d.speedup == 1.0 {
                String::new()
            } else {
                format!(", ×{} speed-up", d.speedup)
            },
            d.drives,
            crate::footprint::duration(d.elapsed_seconds)
        );
        if x_column {
            let _ = write!(o, "{:>12}  ", self.x_head());
        }
        let _ = writeln!(
            o,
            "{:>14}  {:<w$}{:>13}  {:>26}  {:>13}  {:>30}  {:>10}  {:>22}  {:>7}  status",
            "sessions/day",
            if x_column || self.design.as_ref().is_some_and(|d| d.axes.len() > 1) {
                "line"
            } else {
                "strategy"
            },
            "USD/mo meas.",
            "simulated [95% CI]",
            "msg p99 meas.",
            "simulated [95% CI]",
            "rej. meas.",
            "simulated [95% CI]",
            "arrived",
        );
        let usd = |v: f64| format!("${v:.2}");
        let ms = |v: f64| format!("{v:.1} ms");
        let pct = |v: f64| format!("{:.1}%", v * 100.0);
        for p in &self.points {
            let Some(m) = &p.measured else { continue };
            let sim = |metric: &str, f: &dyn Fn(f64) -> String| match Self::value(p, metric) {
                None => "-".to_string(),
                Some((v, None)) => f(v),
                Some((v, Some((lo, hi)))) => format!("{} [{}, {}]", f(v), f(lo), f(hi)),
            };
            let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".into(), f);
            if x_column {
                let _ = write!(o, "{:>12}  ", self.x_cell(p));
            }
            let (load, line) = if design {
                (
                    crate::report::human_count(p.sessions_per_day.round()),
                    self.line_of(p),
                )
            } else {
                (
                    crate::report::human_count(p.sessions_per_day),
                    p.strategy.clone(),
                )
            };
            let _ = writeln!(
                o,
                "{:>14}  {:<w$}{:>13}  {:>26}  {:>13}  {:>30}  {:>10}  {:>22}  {:>7}  {}",
                load,
                line,
                opt(m.monthly_total_usd, &usd),
                sim("monthly_cost_usd", &usd),
                opt(m.message_p99_ms, &ms),
                sim("message.p99", &ms),
                opt(m.rejection_rate, &pct),
                sim("rejection_rate", &pct),
                m.sessions_arrived,
                m.status
            );
        }
    }

    /// The table of a replicated sweep: each figure as `mean ± half-width` over the point's
    /// replications.
    fn render_replicated(&self, o: &mut String, how: &str) {
        let _ = writeln!(
            o,
            "{how}\nEach cell: mean ± 95% half-width over the point's n replications (shares in %); peaks and overload errors of replication 0 are in the JSON and CSV.\n"
        );
        let _ = writeln!(
            o,
            "{:>14}  {:<14}{:>6}{:>18}{:>20}{:>20}{:>16}{:>16}",
            "sessions/day",
            "strategy",
            "n",
            "USD/month",
            "message p99 (ms)",
            "connect p99 (ms)",
            "rejected (%)",
            "abandoned (%)"
        );
        let mut short = false;
        for p in &self.points {
            let Some(r) = &p.replications else { continue };
            let cell = |m: &str| {
                r.figures
                    .get(m)
                    .map_or("-".into(), |f| figure_cell(m, &f.interval))
            };
            let n = match r.precision_met {
                Some(false) => {
                    short = true;
                    format!("{}*", r.count)
                }
                _ => r.count.to_string(),
            };
            let _ = writeln!(
                o,
                "{:>14}  {:<14}{:>6}{:>18}{:>20}{:>20}{:>16}{:>16}",
                crate::report::human_count(p.sessions_per_day),
                p.strategy,
                n,
                cell("monthly_cost_usd"),
                cell("message.p99"),
                cell("connect.p99"),
                cell("rejection_rate"),
                cell("abandon_rate")
            );
        }
        if short {
            let _ = writeln!(
                o,
                "\n* the precision target was not met within --max-replications"
            );
        }
    }

    /// One CSV row per point.
    pub fn to_csv(&self) -> String {
        let mut o = String::from(
            "scenario,pricing,websocket_api,sessions_per_day,strategy,monthly_total_usd,peak_connections,message_p99_ms,connect_p99_ms,rejection_rate,abandon_rate,overload_errors",
        );
        let replicated = self.replications.is_some();
        if replicated {
            o.push_str(&crate::report::replication_csv_header(&SWEEP_FIGURES));
        }
        let driven = self.drive.is_some();
        if driven {
            o.push_str(MEASURED_CSV_HEADER);
        }
        o.push('\n');
        for p in &self.points {
            let _ = write!(
                o,
                "{},{},{},{},{},{:.2},{},{},{},{:.6},{:.6},{}",
                csv_field(&self.scenario),
                csv_field(&self.pricing),
                self.websocket_api.key(),
                p.sessions_per_day,
                p.strategy,
                p.monthly_total_usd,
                p.peak_connections,
                p.message_p99_ms.map_or(String::new(), |v| v.to_string()),
                p.connect_p99_ms.map_or(String::new(), |v| v.to_string()),
                p.rejection_rate,
                p.abandon_rate,
                p.overload_errors
            );
            if replicated {
                let r = p.replications.as_ref();
                o.push_str(&crate::report::replication_csv_cells(
                    r.map_or(1, |r| r.count),
                    r.map(|r| &r.figures),
                    &SWEEP_FIGURES,
                ));
            }
            if driven {
                let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
                match &p.measured {
                    Some(m) => {
                        let _ = write!(
                            o,
                            ",{},{},{},{},{},{},{},{},{}",
                            m.monthly_total_usd
                                .map_or(String::new(), |v| format!("{v:.2}")),
                            num(m.message_p99_ms),
                            num(m.connect_p99_ms),
                            m.rejection_rate
                                .map_or(String::new(), |v| format!("{v:.6}")),
                            m.abandon_rate.map_or(String::new(), |v| format!("{v:.6}")),
                            m.sessions_arrived,
                            m.duration_seconds,
                            m.speedup,
                            csv_field(&m.status)
                        );
                    }
                    None => o.push_str(",,,,,,,,,not driven"),
                }
            }
            o.push('\n');
        }
        o
    }

    /// The bill drawn at a point: the mean over its replications, else its value.
    fn bill_at(p: &SweepPoint) -> f64 {
        Self::bill_interval(p)
            .and_then(|i| i.mean)
            .unwrap_or(p.monthly_total_usd)
    }

    fn bill_interval(p: &SweepPoint) -> Option<&crate::interval::Interval> {
        p.replications
            .as_ref()?
            .figures
            .get("monthly_cost_usd")
            .map(|f| &f.interval)
    }

    /// "8", or "3–20" when the points ran different numbers of replications.
    fn replication_counts(&self) -> Option<String> {
        let counts: Vec<usize> = self
            .points
            .iter()
            .filter_map(|p| p.replications.as_ref().map(|r| r.count))
            .collect();
        let (lo, hi) = (counts.iter().min()?, counts.iter().max()?);
        Some(if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}–{hi}")
        })
    }

    /// Groups of strategies whose bill is the same (to the cent) at every load: their
    /// lines lie on each other, so the chart says so.
    fn coinciding(&self) -> Vec<Vec<&str>> {
        let strategies = self.strategies();
        let cents = |s: &str| -> Vec<Option<i64>> {
            self.loads()
                .iter()
                .map(|&l| {
                    self.at(l, s)
                        .map(|p| (Self::bill_at(p) * 100.0).round() as i64)
                })
                .collect()
        };
        let mut groups: Vec<Vec<&str>> = Vec::new();
        for s in strategies {
            match groups.iter_mut().find(|g| cents(g[0]) == cents(s)) {
                Some(g) => g.push(s),
                None => groups.push(vec![s]),
            }
        }
        groups.retain(|g| g.len() > 1);
        groups
    }

    /// The cost curve as an SVG chart: monthly bill against sessions per day, one line per
    /// strategy, each with its own colour, marker and dash pattern; the legend beside the
    /// plot, with a note naming the strategies whose lines coincide.
    pub fn to_svg(&self) -> crate::Result<String> {
        let plot_err = |e: &dyn std::fmt::Display| crate::Error::Usage(format!("plot: {e}"));
        let mut svg = String::new();
        {
            let root =
                SVGBackend::with_string(&mut svg, (SVG_WIDTH, SVG_HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| plot_err(&e))?;
            let root = root
                .titled(
                    &format!(
                        "Monthly bill: {} · {} · prices {}",
                        self.scenario,
                        match self.websocket_api {
                            WebSocketApi::Hibernation => "Hibernation API",
                            WebSocketApi::Accept => "accept() sockets",
                        },
                        self.pricing
                    ),
                    ("sans-serif", 24),
                )
                .map_err(|e| plot_err(&e))?;
            let (plot, side) = root.split_horizontally(SVG_WIDTH - LEGEND_WIDTH);
            let loads = self.loads();
            let max_x = loads.iter().copied().fold(1.0, f64::max);
            let max_y = self
                .points
                .iter()
                .map(|p| {
                    let high = Self::bill_interval(p).and_then(|i| i.high);
                    let measured = p.measured.as_ref().and_then(|m| m.monthly_total_usd);
                    high.unwrap_or(0.0)
                        .max(Self::bill_at(p))
                        .max(measured.unwrap_or(0.0))
                })
                .fold(1.0, f64::max)
                * 1.1;
            let mut chart = ChartBuilder::on(&plot)
                .margin(16)
                .x_label_area_size(56)
                .y_label_area_size(84)
                .build_cartesian_2d(0.0..max_x * 1.05, 0.0..max_y)
                .map_err(|e| plot_err(&e))?;
            // Whole dollars unless the axis is short enough to need cents.
            let decimals = if max_y < 20.0 { 2 } else { 0 };
            chart
                .configure_mesh()
                .light_line_style(TRANSPARENT)
                .bold_line_style(BLACK.mix(0.15))
                .x_desc("sessions per day (simulated)")
                .y_desc("USD per month")
                .label_style(("sans-serif", 15))
                .axis_desc_style(("sans-serif", 16))
                .x_label_formatter(&|x| crate::report::human_count(x.round()))
                .y_label_formatter(&|y| format!("${y:.decimals$}"))
                .draw()
                .map_err(|e| plot_err(&e))?;
            let strategies = self.strategies();
            // The confidence bands first, under every line: each strategy's 95% interval of
            // the bill from load to load, lightly filled in its colour.
            let intervals = |s: &str| -> Vec<(f64, f64, f64, f64)> {
                loads
                    .iter()
                    .filter_map(|&l| {
                        let p = self.at(l, s)?;
                        let i = Self::bill_interval(p)?;
                        Some((l, i.low?, Self::bill_at(p), i.high?))
                    })
                    .collect()
            };
            for (i, s) in strategies.iter().enumerate() {
                let band = intervals(s);
                if band.len() < 2 {
                    continue;
                }
                let outline: Vec<(f64, f64)> = band
                    .iter()
                    .map(|&(l, low, _, _)| (l, low))
                    .chain(band.iter().rev().map(|&(l, _, _, high)| (l, high)))
                    .collect();
                let fill = SeriesStyle::of(i).colour.mix(BAND_OPACITY).filled();
                chart
                    .draw_series(std::iter::once(Polygon::new(outline, fill)))
                    .map_err(|e| plot_err(&e))?;
            }
            for (i, s) in strategies.iter().enumerate() {
                let style = SeriesStyle::of(i);
                chart
                    .draw_series(intervals(s).into_iter().map(|(l, low, _, high)| ErrorBar {
                        ends: [(l, low), (l, high)],
                        colour: style.colour,
                    }))
                    .map_err(|e| plot_err(&e))?;
                let line: Vec<(f64, f64)> = loads
                    .iter()
                    .filter_map(|&l| self.at(l, s).map(|p| (l, Self::bill_at(p))))
                    .collect();
                let stroke = style.colour.stroke_width(style.width);
                match style.dash {
                    None => chart.draw_series(LineSeries::new(line.clone(), stroke)),
                    Some((dash, gap)) => {
                        chart.draw_series(DashedLineSeries::new(line.clone(), dash, gap, stroke))
                    }
                }
                .map_err(|e| plot_err(&e))?;
                chart
                    .draw_series(line.into_iter().map(|at| Mark { at, style }))
                    .map_err(|e| plot_err(&e))?;
            }
            // The measured bills (`--drive`) on top, each in its strategy's colour.
            for (i, s) in strategies.iter().enumerate() {
                let colour = SeriesStyle::of(i).colour;
                let dx = star_offset(i, strategies.len());
                chart
                    .draw_series(loads.iter().filter_map(|&l| {
                        let m = self.at(l, s)?.measured.as_ref()?.monthly_total_usd?;
                        Some(MeasuredMark {
                            at: (l, m),
                            colour,
                            dx,
                        })
                    }))
                    .map_err(|e| plot_err(&e))?;
            }

            // The legend, beside the plot so that it covers nothing.
            let groups = self.coinciding();
            let mut note_lines: Vec<String> = if groups.is_empty() {
                Vec::new()
            } else {
                std::iter::once("Lines on each other (the same".to_string())
                    .chain(std::iter::once("bill at every point):".to_string()))
                    .chain(groups.iter().flat_map(|g| wrap(&g.join(" = "), 30)))
                    .collect()
            };
            if let Some(counts) = self.replication_counts() {
                note_lines.extend(wrap(
                    &format!("Lines: the mean; bands and bars: 95% CI over {counts} replications"),
                    30,
                ));
            }
            if let Some(d) = &self.drive {
                note_lines.extend(wrap(&measured_note(d), 30));
            }
            let names: Vec<(usize, String)> = strategies
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.to_string()))
                .collect();
            let measured = self.points.iter().any(|p| {
                p.measured
                    .as_ref()
                    .is_some_and(|m| m.monthly_total_usd.is_some())
            });
            crate::chart::draw_legend(&side, &names, measured, &note_lines, 28, 15)?;
            root.present().map_err(|e| plot_err(&e))?;
        }
        Ok(svg)
    }
}

/// The charts' note on measured points: where they come from.
fn measured_note(d: &crate::empirical::DriveDesign) -> String {
    format!(
        "Stars: measured on a local workerd, {:.0} s at the busiest hour{}, projected onto the month; in their line's colour",
        d.duration_seconds,
        if d.speedup == 1.0 {
            String::new()
        } else {
            format!(" (×{})", d.speedup)
        }
    )
}

/// The CSV columns `sweep --drive` adds, after the replication columns.
pub const MEASURED_CSV_HEADER: &str = ",measured_monthly_total_usd,measured_message_p99_ms,measured_connect_p99_ms,measured_rejection_rate,measured_abandon_rate,measured_sessions_arrived,measured_window_seconds,measured_speedup,measured_status";

/// A message p99 beyond which an object counts as saturated (besides overload errors), ms.
pub const SATURATION_P99_MS: f64 = 500.0;

/// One line of the charts: a strategy at fixed values of the axes after the first.
struct Group<'a> {
    strategy: &'a str,
    /// The other axes' values, as legend words.
    rest: Vec<String>,
    /// The other axes' raw values (to match points).
    key: Vec<u64>,
    points: Vec<&'a SweepPoint>,
}

impl Sweep {
    fn x_key(&self) -> Option<&str> {
        self.design
            .as_ref()
            .and_then(|d| d.axes.first())
            .map(|a| a.key.as_str())
    }

    fn x_of(&self, p: &SweepPoint) -> f64 {
        self.x_key()
            .and_then(|k| p.values.get(k).copied())
            .unwrap_or(p.sessions_per_day)
    }

    /// The first axis' column head in the text table (its last key part).
    fn x_head(&self) -> String {
        match self.x_key() {
            Some(crate::vary::CONCURRENT_USERS) => "users".into(),
            Some(k) => k.rsplit('.').next().unwrap_or(k).chars().take(12).collect(),
            None => "load".into(),
        }
    }

    fn x_cell(&self, p: &SweepPoint) -> String {
        let v = self.x_of(p);
        crate::report::human_count(if v >= 100.0 { v.round() } else { v })
    }

    fn x_short(&self) -> String {
        match self.x_key() {
            None | Some("arrivals.sessions_per_day") => "sessions/day".into(),
            Some(crate::vary::CONCURRENT_USERS) => "concurrent users".into(),
            Some(k) => k.to_string(),
        }
    }

    fn x_desc(&self) -> String {
        match self.x_key() {
            None | Some("arrivals.sessions_per_day") if self.drive.is_some() => {
                "sessions per day (simulated and driven)".into()
            }
            None | Some("arrivals.sessions_per_day") => "sessions per day (simulated)".into(),
            Some(crate::vary::CONCURRENT_USERS) => {
                "concurrent users at the busiest hour (Little's law)".into()
            }
            Some(k) => k.to_string(),
        }
    }

    /// The points grouped into lines: by strategy and the values of every axis but the first.
    fn groups(&self) -> Vec<Group<'_>> {
        let rest_axes: Vec<&str> = self
            .design
            .as_ref()
            .map(|d| d.axes.iter().skip(1).map(|a| a.key.as_str()).collect())
            .unwrap_or_default();
        let mut out: Vec<Group<'_>> = Vec::new();
        for p in &self.points {
            let key: Vec<u64> = rest_axes
                .iter()
                .map(|k| p.values.get(*k).copied().unwrap_or(0.0).to_bits())
                .collect();
            match out
                .iter_mut()
                .find(|g| g.strategy == p.strategy && g.key == key)
            {
                Some(g) => g.points.push(p),
                None => out.push(Group {
                    strategy: &p.strategy,
                    rest: rest_axes
                        .iter()
                        .map(|k| {
                            let v = p.values.get(*k).copied().unwrap_or(0.0);
                            match *k {
                                "platform.hibernation" if v == 1.0 => "Hibernation".into(),
                                "platform.hibernation" => "accept()".into(),
                                _ => format!(
                                    "{}={}",
                                    k.rsplit('.').next().unwrap_or(k),
                                    crate::report::human_count(v)
                                ),
                            }
                        })
                        .collect(),
                    key,
                    points: vec![p],
                }),
            }
        }
        out
    }

    fn figure<'a>(p: &'a SweepPoint, metric: &str) -> Option<&'a crate::interval::Interval> {
        p.replications
            .as_ref()?
            .figures
            .get(metric)
            .map(|f| &f.interval)
    }

    /// A figure's value (the mean over replications, else the point's) and its interval.
    fn value(p: &SweepPoint, metric: &str) -> Option<(f64, Option<(f64, f64)>)> {
        let plain = match metric {
            "monthly_cost_usd" => Some(p.monthly_total_usd),
            "message.p99" => p.message_p99_ms,
            "rejection_rate" => Some(p.rejection_rate),
            "abandon_rate" => Some(p.abandon_rate),
            _ => None,
        };
        match Self::figure(p, metric) {
            Some(i) => {
                let mean = i.mean.or(plain)?;
                Some((mean, i.low.zip(i.high)))
            }
            None => plain.map(|v| (v, None)),
        }
    }

    /// A figure of a point's measured run, as [`Sweep::value`] names them.
    fn measured_value(m: &crate::empirical::Measured, metric: &str) -> Option<f64> {
        match metric {
            "monthly_cost_usd" => m.monthly_total_usd,
            "message.p99" => m.message_p99_ms,
            "rejection_rate" => m.rejection_rate,
            "abandon_rate" => m.abandon_rate,
            _ => None,
        }
    }

    /// Whether `p` is saturated: overload errors, a message p99 beyond
    /// [`SATURATION_P99_MS`], or more than 1 percentage point more sessions rejected than the
    /// strategy that rejects fewest at the same point (`least_rejected`) — so that a limit of
    /// the scenario, which rejects under every strategy, is not taken for saturation, but an
    /// object's socket limit is.
    fn saturated(p: &SweepPoint, least_rejected: f64) -> bool {
        p.overload_errors > 0
            || p.message_p99_ms.is_some_and(|v| v > SATURATION_P99_MS)
            || p.rejection_rate > least_rejected + 0.01
    }

    /// The line a point belongs to, as the legend names it.
    fn line_of(&self, p: &SweepPoint) -> String {
        self.groups()
            .into_iter()
            .find(|g| g.points.iter().any(|q| std::ptr::eq(*q, p)))
            .map(|g| {
                std::iter::once(g.strategy.to_string())
                    .chain(g.rest)
                    .collect::<Vec<_>>()
                    .join(" · ")
            })
            .unwrap_or_else(|| p.strategy.clone())
    }

    fn chart(
        &self,
        title: &str,
        y_desc: &str,
        unit: crate::chart::Unit,
        lines: &[(&str, &str)],
        per_user: bool,
        note: Vec<String>,
    ) -> crate::chart::Chart {
        let mut series = Vec::new();
        let mut measured = Vec::new();
        for g in self.groups() {
            for (metric, suffix) in lines {
                let points: Vec<crate::chart::ChartPoint> = g
                    .points
                    .iter()
                    .filter_map(|p| {
                        let (v, ci) = Self::value(p, metric)?;
                        let users = p.values.get(crate::vary::CONCURRENT_USERS).copied();
                        let d = if per_user {
                            users.filter(|&u| u > 0.0)?
                        } else {
                            1.0
                        };
                        Some((self.x_of(p), v / d, ci.map(|(a, b)| (a / d, b / d))))
                    })
                    .collect();
                let driven: Vec<crate::chart::ChartPoint> = g
                    .points
                    .iter()
                    .filter_map(|p| {
                        let v = Self::measured_value(p.measured.as_ref()?, metric)?;
                        let users = p.values.get(crate::vary::CONCURRENT_USERS).copied();
                        let d = if per_user {
                            users.filter(|&u| u > 0.0)?
                        } else {
                            1.0
                        };
                        Some((self.x_of(p), v / d, None))
                    })
                    .collect();
                // A line without points still names the colour of its measured stars.
                if points.is_empty() && driven.is_empty() {
                    continue;
                }
                let mut name = std::iter::once(g.strategy.to_string())
                    .chain(g.rest.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(" · ");
                if !suffix.is_empty() {
                    name = format!("{name} {suffix}");
                }
                if !driven.is_empty() {
                    measured.push(crate::chart::Series {
                        name: format!("{name} {}", crate::chart::MEASURED_LABEL),
                        points: driven,
                        kind: crate::chart::SeriesKind::Measured { of: series.len() },
                    });
                }
                series.push(crate::chart::Series {
                    name,
                    points,
                    kind: crate::chart::SeriesKind::Line,
                });
            }
        }
        // Measured points after every line, so that the lines keep their looks.
        series.extend(measured);
        let mut note = note;
        if self.replications.is_some() {
            note.push("Lines: the mean; bands and bars: 95% CI over the replications".into());
        }
        if let Some(d) = &self.drive {
            note.push(measured_note(d));
        }
        crate::chart::Chart {
            title: format!("{title}: {} · prices {}", self.scenario, self.pricing),
            x_desc: self.x_desc(),
            y_desc: y_desc.into(),
            unit,
            series,
            note,
        }
    }

    /// The report's four charts as SVG, by file-name suffix: `cost` (monthly bill per
    /// strategy), `cost-per-user` (the bill over the expected concurrent users), `p99`
    /// (message p99) and `refused` (rejection and abandonment rates).
    pub fn charts(&self) -> crate::Result<Vec<(&'static str, String)>> {
        use crate::chart::Unit;
        let api = match self.websocket_api {
            WebSocketApi::Hibernation => "Hibernation API unless a line says accept()",
            WebSocketApi::Accept => "accept() sockets unless a line says Hibernation",
        };
        let refused = self.points.iter().any(|p| p.abandon_rate > 0.0);
        let (cost_y, p99_y) = if self.drive.is_some() {
            (
                "USD per month (lines simulated, stars measured; projected)",
                "per-recipient message p99 (lines simulated, stars measured)",
            )
        } else {
            (
                "USD per month (simulated, projected)",
                "per-recipient message p99 (simulated)",
            )
        };
        let refused_lines: &[(&str, &str)] = if refused {
            &[("rejection_rate", "rejected"), ("abandon_rate", "gave up")]
        } else {
            &[("rejection_rate", "rejected")]
        };
        let charts = [
            (
                "cost",
                self.chart(
                    "Monthly bill",
                    cost_y,
                    Unit::Usd,
                    &[("monthly_cost_usd", "")],
                    false,
                    vec![api.into()],
                ),
            ),
            (
                "cost-per-user",
                self.chart(
                    "Bill per concurrent user",
                    "USD per month per concurrent user",
                    Unit::Usd,
                    &[("monthly_cost_usd", "")],
                    true,
                    vec!["Users: expected at the busiest hour (Little's law)".into()],
                ),
            ),
            (
                "p99",
                self.chart(
                    "Message p99",
                    p99_y,
                    Unit::Ms,
                    &[("message.p99", "")],
                    false,
                    vec![format!(
                        "Saturated beyond {SATURATION_P99_MS} ms or at any overload error"
                    )],
                ),
            ),
            (
                "refused",
                self.chart(
                    "Refused sessions",
                    "share of arrived sessions",
                    Unit::Percent,
                    refused_lines,
                    false,
                    vec!["Rejected: by a limit or a full queue; gave up: left the queue".into()],
                ),
            ),
        ];
        charts
            .into_iter()
            .map(|(name, c)| Ok((name, c.to_svg()?)))
            .collect()
    }

    /// A Markdown report: what was varied and how, the findings in numbers (where the single
    /// object saturates, where the cheapest strategy changes, the effect of hibernation, the
    /// hand estimate beside the simulated bill), the charts `STEM-*.svg` and the table.
    pub fn to_markdown(&self, stem: &str, scenario: &Scenario) -> String {
        let mut o = String::new();
        let x = self.x_short();
        let fx = |v: f64| crate::report::human_count(if v >= 100.0 { v.round() } else { v });
        let usd = |v: f64| format!("${v:.2}");
        let _ = writeln!(o, "# Sweep: {} · prices {}\n", self.scenario, self.pricing);
        let _ = writeln!(
            o,
            "Simulated by `dosim sweep` (discrete-event simulation, no network). {}\n",
            self.method
        );
        if let Some(how) = &self.replications {
            let _ = writeln!(o, "{how}\n");
        }
        if let Some(d) = &self.drive {
            let _ = writeln!(
                o,
                "Measured beside the simulation by `dosim sweep --drive --local`: every point under every strategy driven for a window of {:.0} s of real time at the busiest hour{} on a fresh local workerd ({} drives in {}, estimated {}, budget {}). Measured figures: {}. Simulated figures: {}. The charts draw the measured points as stars in the colour of their strategy's line.\n",
                d.duration_seconds,
                if d.speedup == 1.0 {
                    String::new()
                } else {
                    format!(" (×{} speed-up)", d.speedup)
                },
                d.drives,
                crate::footprint::duration(d.elapsed_seconds),
                crate::footprint::duration(d.estimate_seconds),
                crate::footprint::duration(d.budget_seconds),
                d.method, d.simulated
            );
        }
        if let Some(d) = &self.design {
            for a in &d.axes {
                let _ = writeln!(o, "- Varied `{}`: {}", a.key, a.values.join(", "));
            }
            for f in &d.set {
                let _ = writeln!(o, "- Set at every point: `{f}`");
            }
            let _ = writeln!(o, "- Scale: {}.", d.scale);
            let _ = writeln!(o, "- Window: {}.", d.window);
            if let Some(c) = &d.window_check {
                let at = c
                    .point
                    .iter()
                    .map(|(k, v)| match k.as_str() {
                        "platform.hibernation" => format!("{k} = {}", *v == 1.0),
                        _ => format!("{k} = {}", fx(*v)),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let _ = writeln!(o, "- Window check at {at}: the {} window projected onto the month against a simulated {} window:", crate::footprint::duration(c.window_seconds), crate::footprint::duration(c.full_window_seconds));
                for e in &c.strategies {
                    let lines = e
                        .usage_errors
                        .iter()
                        .map(|(k, v)| format!("{k} {:+.2}%", v * 100.0))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let _ = writeln!(
                        o,
                        "  - {}: bill {} projected, {} simulated, error {:+.2}%; usage lines: {lines}",
                        e.strategy,
                        usd(e.projected_usd),
                        usd(e.full_usd),
                        e.relative_error * 100.0
                    );
                }
            }
        }
        let _ = writeln!(o, "\n## Findings\n");
        // Groups without the strategy: one line of findings each.
        let groups = self.groups();
        let mut contexts: Vec<(Vec<u64>, Vec<String>)> = Vec::new();
        for g in &groups {
            if !contexts.iter().any(|c| c.0 == g.key) {
                contexts.push((g.key.clone(), g.rest.clone()));
            }
        }
        for (key, rest) in &contexts {
            let ctx = if rest.is_empty() {
                String::new()
            } else {
                format!(" ({})", rest.join(", "))
            };
            let mine: Vec<&Group<'_>> = groups.iter().filter(|g| &g.key == key).collect();
            let least: Vec<f64> = (0..mine.first().map_or(0, |g| g.points.len()))
                .map(|i| {
                    mine.iter()
                        .filter_map(|g| g.points.get(i).map(|p| p.rejection_rate))
                        .fold(f64::INFINITY, f64::min)
                })
                .collect();
            if let Some(single) = mine.iter().find(|g| g.strategy == "single") {
                let first = single
                    .points
                    .iter()
                    .enumerate()
                    .position(|(i, p)| Self::saturated(p, least[i]));
                let p99 = |p: &SweepPoint| {
                    p.message_p99_ms
                        .map_or("-".into(), |v| format!("{v:.1} ms"))
                };
                let line = match first {
                    Some(i) => {
                        let p = single.points[i];
                        let before =
                            i.checked_sub(1)
                                .map(|j| single.points[j])
                                .map_or(String::new(), |q| {
                                    format!(
                                        "; at {} it still served (p99 {}, {} overload errors)",
                                        fx(self.x_of(q)),
                                        p99(q),
                                        q.overload_errors
                                    )
                                });
                        format!("the single object saturates at {} {x}: message p99 {}, {} overload errors, {:.1}% of sessions rejected{before}", fx(self.x_of(p)), p99(p), p.overload_errors, p.rejection_rate * 100.0)
                    }
                    None => {
                        let last = single.points.last();
                        format!("the single object does not saturate within the sweep (at {} {x}: p99 {}, {} overload errors)", last.map_or("-".into(), |p| fx(self.x_of(p))), last.map_or("-".into(), |p| p99(p)), last.map_or(0, |p| p.overload_errors))
                    }
                };
                let _ = writeln!(o, "- Saturation{ctx}: {line} (saturated: any overload error, a message p99 above {SATURATION_P99_MS} ms, or over 1 percentage point more sessions rejected than the strategy rejecting fewest at that load, e.g. at the object's socket limit).");
            }
            // The cheapest strategy that does not saturate, point by point.
            let xs: Vec<f64> = mine
                .first()
                .map(|g| g.points.iter().map(|p| self.x_of(p)).collect())
                .unwrap_or_default();
            let mut cheapest: Vec<(f64, String, f64)> = Vec::new();
            for (i, &xv) in xs.iter().enumerate() {
                let best = mine
                    .iter()
                    .filter_map(|g| g.points.get(i).map(|p| (g.strategy, *p)))
                    .filter(|(_, p)| !Self::saturated(p, least[i]))
                    .map(|(s, p)| (s, Self::bill_at(p)))
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                cheapest.push(best.map_or((xv, "none serves".into(), f64::NAN), |(s, b)| {
                    (xv, s.to_string(), b)
                }));
            }
            let mut changes = Vec::new();
            for w in cheapest.windows(2) {
                if w[0].1 != w[1].1 {
                    changes.push(format!(
                        "between {} and {} {x} from {} ({}) to {} ({})",
                        fx(w[0].0),
                        fx(w[1].0),
                        w[0].1,
                        usd(w[0].2),
                        w[1].1,
                        usd(w[1].2)
                    ));
                }
            }
            let first = cheapest.first().map_or(String::new(), |c| {
                format!("{} at {} ({})", c.1, fx(c.0), usd(c.2))
            });
            let _ = writeln!(
                o,
                "- Cheapest strategy that does not saturate{ctx}: {first}; {}.",
                if changes.is_empty() {
                    "it does not change within the sweep".to_string()
                } else {
                    format!("it changes {}", changes.join("; "))
                }
            );
        }
        // Hibernation: accept() against the Hibernation API, same strategy and point.
        let hib = self
            .design
            .as_ref()
            .is_some_and(|d| d.axes.iter().any(|a| a.key == "platform.hibernation"));
        if hib {
            let _ = writeln!(o, "- Effect of hibernation (accept() bill ÷ Hibernation API bill, same strategy and load):");
            let mut strategies: Vec<&str> = Vec::new();
            for p in &self.points {
                if !strategies.contains(&p.strategy.as_str()) {
                    strategies.push(&p.strategy);
                }
            }
            for s in strategies {
                let pick = |h: f64| -> Vec<&SweepPoint> {
                    self.points
                        .iter()
                        .filter(|p| {
                            p.strategy == s && p.values.get("platform.hibernation") == Some(&h)
                        })
                        .collect()
                };
                let (on, off) = (pick(1.0), pick(0.0));
                let cells: Vec<String> = on
                    .iter()
                    .zip(&off)
                    .filter(|(a, b)| self.x_of(a) == self.x_of(b))
                    .map(|(a, b)| (self.x_of(a), Self::bill_at(a), Self::bill_at(b)))
                    .collect::<Vec<_>>()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i == 0 || *i == on.len() / 2 || *i + 1 == on.len())
                    .map(|(_, (xv, a, b))| {
                        format!(
                            "at {} {}: {} vs {} (×{:.2})",
                            fx(*xv),
                            x,
                            usd(*b),
                            usd(*a),
                            if *a > 0.0 { b / a } else { f64::NAN }
                        )
                    })
                    .collect();
                let _ = writeln!(o, "  - {s}: {}", cells.join("; "));
            }
        } else {
            let _ = writeln!(o, "- Effect of hibernation: not varied here (add `--vary platform.hibernation=true,false`).");
        }
        if let Some(r) = &scenario.reference {
            let base = scenario.arrivals.mean_rate() * 86_400.0;
            let nearest = self
                .points
                .iter()
                .map(|p| p.sessions_per_day)
                .min_by(|a, b| (a / base).ln().abs().total_cmp(&(b / base).ln().abs()));
            if let Some(n) = nearest {
                let bills: Vec<String> = self
                    .points
                    .iter()
                    .filter(|p| p.sessions_per_day == n)
                    .map(|p| {
                        let rest = self
                            .groups()
                            .into_iter()
                            .find(|g| g.points.iter().any(|q| std::ptr::eq(*q, p)))
                            .map(|g| g.rest.join(", "))
                            .unwrap_or_default();
                        format!(
                            "{}{} {}",
                            p.strategy,
                            if rest.is_empty() {
                                String::new()
                            } else {
                                format!(" ({rest})")
                            },
                            usd(Self::bill_at(p))
                        )
                    })
                    .collect();
                let _ = writeln!(o, "- Hand estimate: {} ({}) at the scenario's {} sessions/day; simulated at the nearest point, {} sessions/day, under {}: {}.", usd(r.total_usd), r.source, fx(base), fx(n), self.pricing, bills.join(", "));
            }
        }
        let _ = writeln!(o, "\n## Charts\n");
        for (name, what) in [
            ("cost", "Monthly bill per strategy"),
            ("cost-per-user", "Monthly bill per concurrent user"),
            ("p99", "Message p99"),
            ("refused", "Rejection and abandonment rates"),
        ] {
            let _ = writeln!(o, "![{what}]({stem}-{name}.svg)\n");
        }
        let _ = writeln!(o, "## Points\n");
        let driven = self.drive.is_some();
        let _ = writeln!(
            o,
            "| {} | line | USD/month | USD/user | message p99 | rejected | gave up | overload errors |{}",
            self.x_desc(),
            if driven {
                " measured USD/month | measured message p99 | measured rejected (of arrived) |"
            } else {
                ""
            }
        );
        let _ = writeln!(
            o,
            "|---:|---|---:|---:|---:|---:|---:|---:|{}",
            if driven { "---:|---:|---:|" } else { "" }
        );
        for g in self.groups() {
            let line = std::iter::once(g.strategy.to_string())
                .chain(g.rest.iter().cloned())
                .collect::<Vec<_>>()
                .join(" · ");
            for p in &g.points {
                let bill = Self::bill_at(p);
                let per_user = p
                    .values
                    .get(crate::vary::CONCURRENT_USERS)
                    .filter(|&&u| u > 0.0)
                    .map_or("-".into(), |u| format!("${:.4}", bill / u));
                let measured = match (driven, &p.measured) {
                    (false, _) => String::new(),
                    (true, None) => " not driven | - | - |".into(),
                    (true, Some(m)) => format!(
                        " {} | {} | {} |",
                        m.monthly_total_usd.map_or("-".into(), usd),
                        m.message_p99_ms
                            .map_or("-".into(), |v| format!("{v:.1} ms")),
                        m.rejection_rate.map_or("-".into(), |v| format!(
                            "{:.2}% (of {})",
                            v * 100.0,
                            m.sessions_arrived
                        ))
                    ),
                };
                let _ = writeln!(
                    o,
                    "| {} | {line} | {} | {per_user} | {} | {:.2}% | {:.2}% | {} |{measured}",
                    fx(self.x_of(p)),
                    usd(bill),
                    p.message_p99_ms
                        .map_or("-".into(), |v| format!("{v:.1} ms")),
                    p.rejection_rate * 100.0,
                    p.abandon_rate * 100.0,
                    p.overload_errors
                );
            }
        }
        o
    }
}

/// Opacity of a confidence band's fill (its outline colour is the series').
pub(crate) const BAND_OPACITY: f64 = 0.15;
/// Width of an error bar's caps, in pixels.
const ERROR_BAR_WIDTH: u32 = 10;

/// Size of the SVG chart, in pixels.
pub(crate) const SVG_WIDTH: u32 = 960;
pub(crate) const SVG_HEIGHT: u32 = 540;
/// Width of the column right of the plot that holds the legend.
pub(crate) const LEGEND_WIDTH: u32 = 230;
/// Space around the legend box inside its column.
pub(crate) const LEGEND_MARGIN: i32 = 12;
pub(crate) const LEGEND_BORDER: RGBColor = RGBColor(0x77, 0x77, 0x77);

/// Series colours: the Okabe–Ito colour-blind-safe palette without its yellow, orange and
/// sky blue, which have less than 3:1 contrast on white; strongest first.
const SERIES_COLOURS: [RGBColor; 5] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
    RGBColor(0x00, 0x00, 0x00), // black
];

/// Marker shapes, one per series in turn: hollow shapes of different sizes, so markers that
/// fall on the same point stay visible around each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkerShape {
    Dot,
    Triangle,
    Square,
    Diamond,
    Cross,
}

const MARKERS: [MarkerShape; 5] = [
    MarkerShape::Dot,
    MarkerShape::Triangle,
    MarkerShape::Square,
    MarkerShape::Diamond,
    MarkerShape::Cross,
];

/// Dash and gap lengths in pixels, one pattern per series in turn (none: solid), so lines that
/// lie on each other show through each other's gaps.
const DASHES: [Option<(u32, u32)>; 4] = [None, Some((10, 6)), Some((3, 5)), Some((16, 5))];

/// How one series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SeriesStyle {
    pub(crate) colour: RGBColor,
    marker: MarkerShape,
    pub(crate) dash: Option<(u32, u32)>,
    pub(crate) width: u32,
}

impl SeriesStyle {
    pub(crate) fn of(i: usize) -> SeriesStyle {
        SeriesStyle {
            colour: SERIES_COLOURS[i % SERIES_COLOURS.len()],
            marker: MARKERS[i % MARKERS.len()],
            dash: DASHES[i % DASHES.len()],
            // The first, solid line is drawn wider so that dashed ones on it stay apart.
            width: if i % DASHES.len() == 0 { 3 } else { 2 },
        }
    }
}

/// A series' marker at one point.
pub(crate) struct Mark<C> {
    pub(crate) at: C,
    pub(crate) style: SeriesStyle,
}

impl<'a, C> PointCollection<'a, C> for &'a Mark<C> {
    type Point = &'a C;
    type IntoIter = std::iter::Once<&'a C>;
    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.at)
    }
}

impl<C, DB: DrawingBackend> Drawable<DB> for Mark<C> {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut points: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = points.next() else {
            return Ok(());
        };
        let style = self.style.colour.stroke_width(2);
        let mut outline = |corners: &[(i32, i32)]| {
            let mut path: Vec<BackendCoord> =
                corners.iter().map(|(dx, dy)| (x + dx, y + dy)).collect();
            path.push(path[0]);
            backend.draw_path(path, &style)
        };
        match self.style.marker {
            MarkerShape::Dot => backend.draw_circle((x, y), 4, &style.filled(), true),
            MarkerShape::Triangle => outline(&[(0, -8), (7, 5), (-7, 5)]),
            MarkerShape::Square => outline(&[(-6, -6), (6, -6), (6, 6), (-6, 6)]),
            MarkerShape::Diamond => outline(&[(0, -9), (9, 0), (0, 9), (-9, 0)]),
            MarkerShape::Cross => {
                backend.draw_line((x - 6, y - 6), (x + 6, y + 6), &style)?;
                backend.draw_line((x - 6, y + 6), (x + 6, y - 6), &style)
            }
        }
    }
}

/// A measured point (`sweep --drive`): a filled five-pointed star in `colour` with a black
/// outline, larger than every line's marker, so that it shows on its own line; `dx` pixels
/// right of its point, so that the stars of several strategies at one value stay apart.
pub(crate) struct MeasuredMark<C> {
    pub(crate) at: C,
    pub(crate) colour: RGBColor,
    pub(crate) dx: i32,
}

/// The horizontal offset of the `j`-th of `n` measured series' stars, pixels.
pub(crate) fn star_offset(j: usize, n: usize) -> i32 {
    (2 * j as i32 - (n as i32 - 1)) * 4
}

/// Outer and inner radius of a measured point's star, pixels.
const STAR_RADII: (f64, f64) = (10.0, 4.5);

impl<'a, C> PointCollection<'a, C> for &'a MeasuredMark<C> {
    type Point = &'a C;
    type IntoIter = std::iter::Once<&'a C>;
    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.at)
    }
}

impl<C, DB: DrawingBackend> Drawable<DB> for MeasuredMark<C> {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut points: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = points.next() else {
            return Ok(());
        };
        let x = x + self.dx;
        let star: Vec<BackendCoord> = (0..10)
            .map(|k| {
                let r = if k % 2 == 0 {
                    STAR_RADII.0
                } else {
                    STAR_RADII.1
                };
                let a = std::f64::consts::PI * (k as f64 / 5.0 - 0.5);
                (
                    x + (r * a.cos()).round() as i32,
                    y + (r * a.sin()).round() as i32,
                )
            })
            .collect();
        backend.fill_polygon(star.clone(), &self.colour.filled())?;
        let mut outline = star;
        outline.push(outline[0]);
        backend.draw_path(outline, &BLACK.stroke_width(1))
    }
}

/// A vertical error bar from `ends[0]` to `ends[1]`, with caps.
pub(crate) struct ErrorBar<C> {
    pub(crate) ends: [C; 2],
    pub(crate) colour: RGBColor,
}

impl<'a, C> PointCollection<'a, C> for &'a ErrorBar<C> {
    type Point = &'a C;
    type IntoIter = &'a [C];
    fn point_iter(self) -> Self::IntoIter {
        &self.ends
    }
}

impl<C, DB: DrawingBackend> Drawable<DB> for ErrorBar<C> {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut points: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let (Some(a), Some(b)) = (points.next(), points.next()) else {
            return Ok(());
        };
        let style = self.colour.stroke_width(1);
        let cap = ERROR_BAR_WIDTH as i32 / 2;
        backend.draw_line(a, b, &style)?;
        backend.draw_line((a.0 - cap, a.1), (a.0 + cap, a.1), &style)?;
        backend.draw_line((b.0 - cap, b.1), (b.0 + cap, b.1), &style)
    }
}

/// Words of `s` in lines of at most `width` characters (a longer word gets a line alone).
pub(crate) fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in s.split_whitespace() {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + word.chars().count() <= width => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(bills: &[(&str, [f64; 3])]) -> Sweep {
        let mut points = Vec::new();
        for (i, load) in [100.0, 200.0, 400.0].into_iter().enumerate() {
            for (strategy, usd) in bills {
                points.push(SweepPoint {
                    sessions_per_day: load,
                    strategy: strategy.to_string(),
                    monthly_total_usd: usd[i],
                    peak_connections: 1,
                    message_p99_ms: None,
                    connect_p99_ms: None,
                    rejection_rate: 0.0,
                    abandon_rate: 0.0,
                    overload_errors: 0,
                    replications: None,
                    values: BTreeMap::new(),
                    measured: None,
                });
            }
        }
        Sweep {
            scenario: "s".into(),
            pricing: "p".into(),
            websocket_api: WebSocketApi::Accept,
            method: "simulated".into(),
            replications: None,
            design: None,
            drive: None,
            points,
        }
    }

    /// The SVG's elements as (tag, attributes text).
    fn elements(svg: &str) -> Vec<(&str, &str)> {
        // The attributes keep their leading space, so " x=" finds `x` and not `dx`.
        svg.split('<')
            .filter_map(|e| e.find(' ').map(|i| (&e[..i], &e[i..])))
            .filter(|(tag, _)| tag.chars().all(|c| c.is_ascii_alphabetic()))
            .collect()
    }

    fn attr<'a>(e: &'a str, name: &str) -> Option<&'a str> {
        let start = e.find(&format!(" {name}=\"")).map(|i| i + name.len() + 3)?;
        e[start..].split('"').next()
    }

    fn num(e: &str, name: &str) -> f64 {
        attr(e, name).unwrap().parse().unwrap()
    }

    fn points(e: &str) -> Vec<(f64, f64)> {
        attr(e, "points")
            .unwrap()
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    #[test]
    fn the_legend_is_beside_the_plot_and_covers_no_data() {
        let svg = sweep(&[("single", [5.0, 5.0, 5.0]), ("per-room", [5.0, 9.0, 30.0])])
            .to_svg()
            .unwrap();
        let els = elements(&svg);
        let legend = els
            .iter()
            .find(|(tag, a)| *tag == "rect" && attr(a, "stroke") == Some(&hex(LEGEND_BORDER)))
            .expect("a legend box")
            .1;
        let (x, y) = (num(legend, "x"), num(legend, "y"));
        let (w, h) = (num(legend, "width"), num(legend, "height"));
        let inside = |&(px, py): &(f64, f64)| px >= x && px <= x + w && py >= y && py <= y + h;
        // Every line that is not the legend's own (axes, grid, series) ends left of the box.
        let mut lines = 0;
        for (_, a) in els.iter().filter(|(tag, _)| *tag == "polyline") {
            let pts = points(a);
            if pts.iter().all(inside) {
                continue;
            }
            lines += 1;
            for (px, _) in pts {
                assert!(px < x, "a line reaches x={px}, the legend starts at x={x}");
            }
        }
        assert!(lines > 2, "{svg}");
        // Both names are written in the legend box.
        for name in ["single", "per-room"] {
            let label = els
                .iter()
                .find(|(tag, a)| *tag == "text" && a.ends_with(&format!(">\n{name}\n")))
                .unwrap_or_else(|| panic!("no label {name} in\n{svg}"))
                .1;
            assert!(inside(&(num(label, "x"), num(label, "y"))), "{label}");
        }
    }

    #[test]
    fn series_have_distinct_markers_and_dashes_and_no_low_contrast_colour() {
        let names = ["single", "per-room", "sharded:4", "sharded:16"];
        for i in 0..names.len() {
            for j in 0..i {
                let (a, b) = (SeriesStyle::of(i), SeriesStyle::of(j));
                assert!(a.marker != b.marker && a.dash != b.dash && a.colour != b.colour);
            }
        }
        let svg = sweep(&[
            (names[0], [5.0, 5.0, 5.0]),
            (names[1], [5.0, 9.0, 30.0]),
            (names[2], [5.0, 6.0, 8.0]),
            (names[3], [6.0, 7.0, 12.0]),
        ])
        .to_svg()
        .unwrap();
        // The markers of each series (a dot, or a closed outline of some size) differ.
        let mut shapes = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let colour = hex(SeriesStyle::of(i).colour);
            let mut shape = None;
            for (tag, a) in elements(&svg) {
                if tag == "circle" && attr(a, "fill") == Some(&colour) {
                    shape = Some(("dot".to_string(), 0.0));
                }
                if tag == "polyline" && attr(a, "stroke") == Some(&colour) {
                    let p = points(a);
                    if p.len() > 3 && p.first() == p.last() {
                        let width = p.iter().map(|q| q.0).fold(f64::MIN, f64::max)
                            - p.iter().map(|q| q.0).fold(f64::MAX, f64::min);
                        shape = Some((format!("{} corners", p.len() - 1), width));
                    }
                }
            }
            shapes.push(shape.unwrap_or_else(|| panic!("no marker for {name}")));
        }
        for i in 0..shapes.len() {
            for j in 0..i {
                assert_ne!(shapes[i], shapes[j], "{} and {}", names[i], names[j]);
            }
        }
        // No yellow, and every colour drawn has at least 3:1 contrast on white (WCAG's bar
        // for graphics).
        let luminance = |c: &str| {
            let ch = |i: usize| {
                let v = f64::from(u8::from_str_radix(&c[i..i + 2], 16).unwrap()) / 255.0;
                if v <= 0.04045 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * ch(1) + 0.7152 * ch(3) + 0.0722 * ch(5)
        };
        let mut colours: Vec<&str> = svg
            .match_indices('#')
            .map(|(i, _)| &svg[i..i + 7])
            .filter(|c| c != &"#FFFFFF")
            .collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(colours.len() >= names.len(), "{colours:?}");
        for c in colours {
            let contrast = 1.05 / (luminance(c) + 0.05);
            assert!(contrast >= 3.0, "{c} has contrast {contrast:.2} on white");
        }
    }

    #[test]
    fn series_that_coincide_at_every_point_are_named_in_a_note() {
        let svg = sweep(&[
            ("single", [5.0, 5.0, 5.0]),
            ("per-room", [5.0, 9.0, 30.0]),
            ("sharded:4", [5.0, 9.0, 30.0]),
        ])
        .to_svg()
        .unwrap();
        assert!(svg.contains("at every point):"), "{svg}");
        assert!(svg.contains(">\nper-room = sharded:4\n<"), "{svg}");
        // Equal at some points only (single and the others at 100): no note.
        let svg = sweep(&[("single", [5.0, 5.0, 5.0]), ("per-room", [5.0, 9.0, 30.0])])
            .to_svg()
            .unwrap();
        assert!(!svg.contains("at every point"), "{svg}");
    }

    #[test]
    fn text_csv_and_chart_name_the_websocket_api() {
        let s = sweep(&[("single", [5.0, 5.0, 5.0])]);
        assert!(s
            .render_text()
            .contains("\nWebSocket API: standard accept() sockets"));
        let csv = s.to_csv();
        let mut lines = csv.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("scenario,pricing,websocket_api,"));
        assert!(lines.all(|l| l.starts_with("s,p,accept,")), "{csv}");
        assert!(s.to_svg().unwrap().contains("accept() sockets"));
    }

    #[test]
    fn replicated_points_are_drawn_as_means_in_a_band_with_error_bars() {
        let mut s = sweep(&[("single", [5.0, 5.0, 5.0]), ("per-room", [5.0, 9.0, 30.0])]);
        s.replications = Some("replicated".into());
        // Replication 0's bill is the plain field; the mean differs, with a ±2 interval.
        for p in &mut s.points {
            let mean = p.monthly_total_usd + 1.0;
            p.replications = Some(PointReplications {
                count: 4,
                precision_met: None,
                figures: [(
                    "monthly_cost_usd".to_string(),
                    Figure::of(vec![
                        Some(mean - 1.0),
                        Some(mean + 1.0),
                        Some(mean - 1.0),
                        Some(mean + 1.0),
                    ]),
                )]
                .into(),
            });
        }
        let svg = s.to_svg().unwrap();
        assert!(svg.contains("95% CI over 4"), "{svg}");
        let els = elements(&svg);
        for (i, name) in ["single", "per-room"].iter().enumerate() {
            let colour = hex(SeriesStyle::of(i).colour);
            let band = els
                .iter()
                .find(|(tag, a)| *tag == "polygon" && attr(a, "fill") == Some(&colour))
                .unwrap_or_else(|| panic!("no band for {name}"))
                .1;
            assert_eq!(attr(band, "opacity"), Some("0.15"));
            // The band's outline: the low ends left to right, then the high ends back.
            let outline = points(band);
            assert_eq!(outline.len(), 6, "{band}");
            // An error bar per point (a vertical line and its two caps, in the series
            // colour), from the band's low end to its high end.
            let lines: Vec<[f64; 4]> = els
                .iter()
                .filter(|(tag, a)| *tag == "line" && attr(a, "stroke") == Some(&colour))
                .map(|(_, a)| [num(a, "x1"), num(a, "y1"), num(a, "x2"), num(a, "y2")])
                .collect();
            assert_eq!(lines.len(), 3 * 3, "{name}");
            let bars: Vec<&[f64; 4]> = lines.iter().filter(|l| l[0] == l[2]).collect();
            assert_eq!(bars.len(), 3, "{name}: {lines:?}");
            for (j, bar) in bars.iter().enumerate() {
                let (low, high) = (outline[j], outline[5 - j]);
                assert_eq!([low.0, low.1, high.0, high.1], **bar, "{name}");
                // SVG y grows downwards: the low end is below the high end.
                assert!(high.1 < low.1, "{name}: {bar:?}");
            }
            if i == 0 {
                // The first series' markers (dots) are at the means, inside the bars.
                let dots: Vec<(f64, f64)> = els
                    .iter()
                    .filter(|(tag, a)| *tag == "circle" && attr(a, "fill") == Some(&colour))
                    .map(|(_, a)| (num(a, "cx"), num(a, "cy")))
                    .filter(|d| bars.iter().any(|b| b[0] == d.0))
                    .collect();
                assert_eq!(dots.len(), 3, "{dots:?}");
                for (d, b) in dots.iter().zip(&bars) {
                    assert!(b[3] < d.1 && d.1 < b[1], "{d:?} not inside {b:?}");
                }
            }
        }
        // Without replications, no band.
        let plain = sweep(&[("single", [5.0, 5.0, 5.0])]).to_svg().unwrap();
        assert!(!plain.contains("<polygon"));
    }

    #[test]
    fn measured_points_stand_beside_the_simulated_ones_in_every_output() {
        let mut s = sweep(&[("single", [5.0, 5.0, 5.0]), ("per-room", [5.0, 9.0, 30.0])]);
        s.drive = Some(crate::empirical::DriveDesign {
            method: "driven".into(),
            simulated: "simulated, calibrated from cal.toml".into(),
            duration_seconds: 20.0,
            speedup: 1.0,
            drives: 6,
            budget_seconds: 600.0,
            estimate_seconds: 150.0,
            elapsed_seconds: 130.0,
        });
        // Every point driven but the last.
        let n = s.points.len();
        for p in s.points.iter_mut().take(n - 1) {
            p.measured = Some(crate::empirical::Measured {
                monthly_total_usd: Some(p.monthly_total_usd * 1.5),
                message_p99_ms: Some(4.0),
                connect_p99_ms: Some(3.0),
                rejection_rate: Some(0.0),
                abandon_rate: Some(0.0),
                sessions_arrived: 11,
                sessions_carried: 200,
                overload_errors: 0,
                from: "day 0 21:00:00".into(),
                duration_seconds: 20.0,
                speedup: 1.0,
                covered_scenario_seconds: 20.0,
                status: "complete".into(),
                reconciled: Some(true),
                warnings: Vec::new(),
                elapsed_seconds: 22.5,
            });
        }
        let text = s.render_text();
        assert!(text.contains("Measured figures: driven."), "{text}");
        assert!(text.contains("Simulated figures: simulated, calibrated from cal.toml."));
        let rows: Vec<&str> = text.lines().filter(|l| l.ends_with("complete")).collect();
        assert_eq!(rows.len(), n - 1, "{text}");
        assert!(
            rows[3].contains("$13.50") && rows[3].contains("$9.00"),
            "{text}"
        );
        let csv = s.to_csv();
        assert!(
            csv.lines().next().unwrap().ends_with(MEASURED_CSV_HEADER),
            "{csv}"
        );
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .ends_with(",7.50,4,3,0.000000,0.000000,11,20,1,complete"),
            "{csv}"
        );
        assert!(csv.trim_end().ends_with(",,,,,,,,,not driven"), "{csv}");
        // The --svg chart: a star per driven point and the legend's, in the line's colour.
        let svg = s.to_svg().unwrap();
        assert!(svg.contains(crate::chart::MEASURED_LABEL), "{svg}");
        let stars: Vec<(&str, &str)> = elements(&svg)
            .into_iter()
            .filter(|(tag, a)| {
                *tag == "polygon"
                    && attr(a, "points").is_some_and(|p| p.split_whitespace().count() == 10)
            })
            .collect();
        assert_eq!(stars.len(), n - 1 + 1, "{svg}");
        let blue = hex(SeriesStyle::of(0).colour);
        assert_eq!(
            stars
                .iter()
                .filter(|(_, a)| attr(a, "fill") == Some(&blue))
                .count(),
            3
        );
        // The report's charts: measured series after the lines, one legend entry for them.
        for (name, svg) in s.charts().unwrap() {
            if name == "cost-per-user" {
                continue;
            }
            assert!(svg.contains(crate::chart::MEASURED_LABEL), "{name}");
            assert_eq!(
                svg.matches(crate::chart::MEASURED_LABEL).count(),
                1,
                "{name}"
            );
        }
        let md = s.to_markdown(
            "curve",
            &crate::scenario::Scenario::parse(
                "name = \"s\"\n[window]\nlength = \"1d\"\n[arrivals]\nsessions_per_day = 100\n",
                std::path::Path::new("s.toml"),
            )
            .unwrap(),
        );
        assert!(
            md.contains("6 drives in 130 s") || md.contains("6 drives in 2 min"),
            "{md}"
        );
        assert!(md.contains("| $7.50 | 4.0 ms | 0.00% (of 11) |"), "{md}");
        assert!(md.contains(" not driven | - | - |"), "{md}");
    }

    #[test]
    fn wrap_breaks_at_words() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("toolongword x", 4), ["toolongword", "x"]);
    }
}
