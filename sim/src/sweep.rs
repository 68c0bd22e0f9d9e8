//! Sweep: one scenario simulated at several loads under several strategies — the cost curve.
//!
//! Each point scales the scenario's arrival rate (its daily profile is kept) and its number of
//! rooms in proportion (so users per room stay as in the scenario; the limits do not scale:
//! they are the design under test), and runs the ordinary simulation, so every point is a
//! full report; the sweep keeps the headline figures.

use std::fmt::Write as _;

use plotters::element::{DashedPathElement, Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::text_anchor;
use plotters_backend::{BackendCoord, DrawingErrorKind};
use serde::{Deserialize, Serialize};

use crate::model::strategy::Strategy;
use crate::pricing::PriceTable;
use crate::report::{csv_field, Report, WebSocketApi};
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
    /// The WebSocket API the room objects use (billed accordingly).
    pub websocket_api: WebSocketApi,
    /// How the figures were obtained.
    pub method: String,
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

/// Simulate `scenario` at each of `loads` (sessions per day) under each strategy, telling
/// `on_progress` before each load and at the end.
pub fn run(
    scenario: &Scenario,
    loads: &[f64],
    strategies: &[Strategy],
    pricing: &PriceTable,
    extra_thresholds: &[Threshold],
    on_progress: &mut dyn FnMut(Progress),
) -> crate::Result<Sweep> {
    let mut points = Vec::new();
    let mut method = String::new();
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
            "dosim sweep: scenario {} · prices {}\nWebSocket API: {}\n{}\n",
            self.scenario,
            self.pricing,
            self.websocket_api.describe(),
            self.method
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
            "scenario,pricing,websocket_api,sessions_per_day,strategy,monthly_total_usd,peak_connections,message_p99_ms,connect_p99_ms,rejection_rate,abandon_rate,overload_errors\n",
        );
        for p in &self.points {
            let _ = writeln!(
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
        }
        o
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
                        .map(|p| (p.monthly_total_usd * 100.0).round() as i64)
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
                .map(|p| p.monthly_total_usd)
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
            for (i, s) in strategies.iter().enumerate() {
                let style = SeriesStyle::of(i);
                let line: Vec<(f64, f64)> = loads
                    .iter()
                    .filter_map(|&l| self.at(l, s).map(|p| (l, p.monthly_total_usd)))
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
            let note_lines: Vec<String> = if groups.is_empty() {
                Vec::new()
            } else {
                std::iter::once("Lines on each other (the same".to_string())
                    .chain(std::iter::once("bill at every point):".to_string()))
                    .chain(groups.iter().flat_map(|g| wrap(&g.join(" = "), 30)))
                    .collect()
            };
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
                });
            }
        }
        Sweep {
            scenario: "s".into(),
            pricing: "p".into(),
            websocket_api: WebSocketApi::Accept,
            method: "simulated".into(),
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
    fn wrap_breaks_at_words() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("toolongword x", 4), ["toolongword", "x"]);
    }
}
