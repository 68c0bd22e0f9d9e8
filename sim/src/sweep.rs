//! Sweep: one scenario simulated at several loads under several strategies — the cost curve.
//!
//! Each point scales the scenario's arrival rate (its daily profile is kept) and its number of
//! rooms in proportion (so users per room stay as in the scenario; the limits do not scale:
//! they are the design under test), and runs the ordinary simulation, so every point is a
//! full report; the sweep keeps the headline figures.

use std::fmt::Write as _;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::strategy::Strategy;
use crate::pricing::PriceTable;
use crate::report::Report;
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
}

/// A whole sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// The scenario's name.
    pub scenario: String,
    /// The price table.
    pub pricing: String,
    /// How the figures were obtained.
    pub method: String,
    /// Every point, loads in the order given, strategies in the order given.
    pub points: Vec<SweepPoint>,
}

/// Simulate `scenario` at each of `loads` (sessions per day) under each strategy.
pub fn run(
    scenario: &Scenario,
    loads: &[f64],
    strategies: &[Strategy],
    pricing: &PriceTable,
    extra_thresholds: &[Threshold],
) -> crate::Result<Sweep> {
    let mut points = Vec::new();
    let mut method = String::new();
    // Every point is checked before the first runs, so a bad load fails at once.
    let scaled = loads
        .iter()
        .map(|&load| scale(scenario, load))
        .collect::<crate::Result<Vec<Scenario>>>()?;
    for (s, &load) in scaled.iter().zip(loads) {
        let reports = crate::des::compare(s, strategies, pricing, extra_thresholds)?;
        for r in reports {
            if method.is_empty() {
                method = format!(
                    "{}; rooms scaled with the load ({} rooms at {} sessions/day), limits as in the scenario; monthly figures: {}",
                    r.provenance.method,
                    scenario.rooms.count,
                    crate::report::human_count(scenario.arrivals.mean_rate() * 86_400.0),
                    r.monthly_usage.method
                );
            }
            points.push(point(load, &r));
        }
    }
    Ok(Sweep {
        scenario: scenario.name.clone(),
        pricing: pricing.name.clone(),
        method,
        points,
    })
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
            "dosim sweep: scenario {} · prices {}\n{}\n",
            self.scenario, self.pricing, self.method
        );
        let _ = writeln!(
            o,
            "{:>14}  {:<14}{:>12}{:>14}{:>14}{:>10}{:>11}{:>11}{:>10}",
            "sessions/day",
            "strategy",
            "USD/month",
            "message p99",
            "connect p99",
            "peak",
            "rejected",
            "abandoned",
            "overload"
        );
        for p in &self.points {
            let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
            let _ = writeln!(
                o,
                "{:>14}  {:<14}{:>12.2}{:>14}{:>14}{:>10}{:>10.1}%{:>10.1}%{:>10}",
                crate::report::human_count(p.sessions_per_day),
                p.strategy,
                p.monthly_total_usd,
                ms(p.message_p99_ms),
                ms(p.connect_p99_ms),
                p.peak_connections,
                p.rejection_rate * 100.0,
                p.abandon_rate * 100.0,
                p.overload_errors
            );
        }
        o
    }

    /// One CSV row per point.
    pub fn to_csv(&self) -> String {
        let mut o = String::from(
            "scenario,pricing,sessions_per_day,strategy,monthly_total_usd,peak_connections,message_p99_ms,connect_p99_ms,rejection_rate,abandon_rate,overload_errors\n",
        );
        for p in &self.points {
            let _ = writeln!(
                o,
                "{},{},{},{},{:.2},{},{},{},{:.6},{:.6},{}",
                self.scenario,
                self.pricing,
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
        }
        o
    }

    /// The cost curve as an SVG chart: monthly bill against sessions per day, one line per
    /// strategy.
    pub fn to_svg(&self) -> crate::Result<String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (900, 540)).into_drawing_area();
            let plot_err = |e: &dyn std::fmt::Display| crate::Error::Usage(format!("plot: {e}"));
            root.fill(&WHITE).map_err(|e| plot_err(&e))?;
            let loads = self.loads();
            let max_x = loads.iter().copied().fold(1.0, f64::max);
            let max_y = self
                .points
                .iter()
                .map(|p| p.monthly_total_usd)
                .fold(1.0, f64::max)
                * 1.1;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    format!("Monthly bill: {} ({})", self.scenario, self.pricing),
                    ("sans-serif", 22),
                )
                .margin(16)
                .x_label_area_size(48)
                .y_label_area_size(72)
                .build_cartesian_2d(0.0..max_x * 1.05, 0.0..max_y)
                .map_err(|e| plot_err(&e))?;
            chart
                .configure_mesh()
                .x_desc("sessions per day (simulated)")
                .y_desc("USD per month")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("${y:.0}"))
                .draw()
                .map_err(|e| plot_err(&e))?;
            for (i, s) in self.strategies().into_iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let line: Vec<(f64, f64)> = loads
                    .iter()
                    .filter_map(|&l| self.at(l, s).map(|p| (l, p.monthly_total_usd)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                    .map_err(|e| plot_err(&e))?
                    .label(s.to_string())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| plot_err(&e))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| plot_err(&e))?;
            root.present().map_err(|e| plot_err(&e))?;
        }
        Ok(svg)
    }
}
