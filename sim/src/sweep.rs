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

use plotters::element::{DashedPathElement, Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::text_anchor;
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
    /// Every point, loads in the order given, strategies in the order given.
    pub points: Vec<SweepPoint>,
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

/// Simulate `scenario` at each of `loads` (sessions per day) under each strategy, each point
/// replicated as `plan` says, telling `on_progress` before each load and at the end.
pub fn run(
    scenario: &Scenario,
    loads: &[f64],
    strategies: &[Strategy],
    pricing: &PriceTable,
    extra_thresholds: &[Threshold],
    plan: &Plan,
    on_progress: &mut dyn FnMut(Progress),
) -> crate::Result<Sweep> {
    let mut points = Vec::new();
    let mut method = String::new();
    let mut replications = None;
    let total = loads.len() * strategies.len();
    // Every point is checked before the first runs, so a bad load fails at once.
    let scaled = loads
        .iter()
        .map(|&load| scale(scenario, load))
        .collect::<crate::Result<Vec<Scenario>>>()?;
    for (s, &load) in scaled.iter().zip(loads) {
        on_progress(Progress {
            done: points.len(),
            total,
            load: Some(load),
        });
        let reports = crate::replicate::compare(s, strategies, pricing, extra_thresholds, plan)?;
        for r in reports {
            if replications.is_none() {
                replications = r.replications.as_ref().map(|b| b.method.clone());
            }
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
    on_progress(Progress {
        done: points.len(),
        total,
        load: None,
    });
    Ok(Sweep {
        scenario: scenario.name.clone(),
        pricing: pricing.name.clone(),
        websocket_api: WebSocketApi::from_hibernation(scenario.platform.hibernation),
        method,
        replications,
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
        if let Some(how) = &self.replications {
            self.render_replicated(&mut o, how);
            return o;
        }
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
                    high.unwrap_or(0.0).max(Self::bill_at(p))
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

            // The legend, beside the plot so that it covers nothing.
            let (x0, y0) = (LEGEND_MARGIN, 40);
            let row = 28;
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
            let height = 16 + row * strategies.len() as i32 + 20 * note_lines.len() as i32;
            let box_width = LEGEND_WIDTH as i32 - 2 * LEGEND_MARGIN;
            side.draw(&Rectangle::new(
                [(x0, y0), (x0 + box_width, y0 + height)],
                LEGEND_BORDER.stroke_width(1),
            ))
            .map_err(|e| plot_err(&e))?;
            let font = ("sans-serif", 15).into_font();
            for (i, s) in strategies.iter().enumerate() {
                let style = SeriesStyle::of(i);
                let y = y0 + 22 + row * i as i32;
                let (a, b) = ((x0 + 10, y), (x0 + 50, y));
                let stroke = style.colour.stroke_width(style.width);
                match style.dash {
                    None => side.draw(&PathElement::new(vec![a, b], stroke)),
                    Some((dash, gap)) => {
                        side.draw(&DashedPathElement::new(vec![a, b], dash, gap, stroke))
                    }
                }
                .map_err(|e| plot_err(&e))?;
                side.draw(&Mark {
                    at: (x0 + 30, y),
                    style,
                })
                .map_err(|e| plot_err(&e))?;
                side.draw(&Text::new(
                    s.to_string(),
                    (x0 + 60, y),
                    font.color(&BLACK).pos(text_anchor::Pos::new(
                        text_anchor::HPos::Left,
                        text_anchor::VPos::Center,
                    )),
                ))
                .map_err(|e| plot_err(&e))?;
            }
            let small = ("sans-serif", 13).into_font();
            for (j, l) in note_lines.iter().enumerate() {
                let y = y0 + 8 + row * strategies.len() as i32 + 20 * j as i32;
                side.draw(&Text::new(
                    l.clone(),
                    (x0 + 10, y),
                    small.color(&BLACK).pos(text_anchor::Pos::new(
                        text_anchor::HPos::Left,
                        text_anchor::VPos::Top,
                    )),
                ))
                .map_err(|e| plot_err(&e))?;
            }
            root.present().map_err(|e| plot_err(&e))?;
        }
        Ok(svg)
    }
}

/// Opacity of a confidence band's fill (its outline colour is the series').
const BAND_OPACITY: f64 = 0.15;
/// Width of an error bar's caps, in pixels.
const ERROR_BAR_WIDTH: u32 = 10;

/// Size of the SVG chart, in pixels.
const SVG_WIDTH: u32 = 960;
const SVG_HEIGHT: u32 = 540;
/// Width of the column right of the plot that holds the legend.
const LEGEND_WIDTH: u32 = 230;
/// Space around the legend box inside its column.
const LEGEND_MARGIN: i32 = 12;
const LEGEND_BORDER: RGBColor = RGBColor(0x77, 0x77, 0x77);

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
struct SeriesStyle {
    colour: RGBColor,
    marker: MarkerShape,
    dash: Option<(u32, u32)>,
    width: u32,
}

impl SeriesStyle {
    fn of(i: usize) -> SeriesStyle {
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
struct Mark<C> {
    at: C,
    style: SeriesStyle,
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

/// A vertical error bar from `ends[0]` to `ends[1]`, with caps.
struct ErrorBar<C> {
    ends: [C; 2],
    colour: RGBColor,
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
fn wrap(s: &str, width: usize) -> Vec<String> {
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
                });
            }
        }
        Sweep {
            scenario: "s".into(),
            pricing: "p".into(),
            websocket_api: WebSocketApi::Accept,
            method: "simulated".into(),
            replications: None,
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
    fn wrap_breaks_at_words() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("toolongword x", 4), ["toolongword", "x"]);
    }
}
