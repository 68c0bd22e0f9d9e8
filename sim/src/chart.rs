//! Chart: one figure of a sweep as an SVG line chart — series of (x, y) points with optional
//! 95% intervals drawn as bands and error bars, log axes where the range spans two decades
//! or more, the legend beside the plot. The series' look (colour, marker, dash) is the cost
//! curve's ([`crate::sweep`]). Measured points (`sweep --drive`) are series of their own,
//! drawn as filled stars without a line in the colour of the simulated line they stand
//! beside, with one legend entry, [`MEASURED_LABEL`].

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor;

use crate::sweep::{
    star_offset, wrap, ErrorBar, Mark, MeasuredMark, SeriesStyle, BAND_OPACITY, LEGEND_BORDER,
    LEGEND_MARGIN, LEGEND_WIDTH, SVG_HEIGHT, SVG_WIDTH,
};

/// The legend entry of measured points.
pub const MEASURED_LABEL: &str = "measured (local workerd)";

/// One point of a series: x, y and, with replications, the 95% interval of y.
pub type ChartPoint = (f64, f64, Option<(f64, f64)>);

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its legend entry.
    pub name: String,
    /// Its points, in x order.
    pub points: Vec<ChartPoint>,
    /// A line or measured points.
    pub kind: SeriesKind,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeriesKind {
    /// A line through its points with its own colour, marker and dash (the series' index
    /// among the lines chooses them), a band and error bars where it has intervals, and a
    /// legend entry of its own.
    #[default]
    Line,
    /// Measured points: a filled star at each, no line, no band, in the colour of the line
    /// `of` (its index in the chart's series, a [`SeriesKind::Line`]); the legend has one
    /// entry for every measured series, [`MEASURED_LABEL`].
    Measured {
        /// The line it stands beside.
        of: usize,
    },
}

/// How the y axis' labels are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// US dollars.
    Usd,
    /// Milliseconds.
    Ms,
    /// A share, shown in percent.
    Percent,
    /// A plain number.
    Number,
}

/// A chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The title.
    pub title: String,
    /// The x axis' description.
    pub x_desc: String,
    /// The y axis' description.
    pub y_desc: String,
    /// The y axis' unit.
    pub unit: Unit,
    /// The lines.
    pub series: Vec<Series>,
    /// Lines of a note under the legend.
    pub note: Vec<String>,
}

/// A log axis when the positive values span at least this ratio.
pub const LOG_RATIO: f64 = 100.0;

fn plot_err(e: &dyn std::fmt::Display) -> crate::Error {
    crate::Error::Usage(format!("plot: {e}"))
}

fn label(unit: Unit, v: f64, small: bool) -> String {
    match unit {
        Unit::Usd if small => format!("${v:.2}"),
        Unit::Usd if v < 10.0 => format!("${v:.2}"),
        Unit::Usd => format!("${}", crate::report::human_count(v.round())),
        Unit::Ms if v < 10.0 => format!("{v:.2} ms"),
        Unit::Ms => format!("{} ms", crate::report::human_count(v.round())),
        Unit::Percent => format!("{:.0}%", v * 100.0),
        Unit::Number => crate::report::human_count(v),
    }
}

/// Draw the series on a chart context of any coordinate kinds (linear or log).
macro_rules! draw_on {
    ($self:ident, $plot:ident, $x:expr, $y:expr, $small:expr) => {{
        let mut chart = ChartBuilder::on(&$plot)
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(96)
            .build_cartesian_2d($x, $y)
            .map_err(|e| plot_err(&e))?;
        let unit = $self.unit;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.15))
            .x_desc($self.x_desc.as_str())
            .y_desc($self.y_desc.as_str())
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .x_label_formatter(&|x| crate::report::human_count(*x))
            .y_label_formatter(&|y| label(unit, *y, $small))
            .draw()
            .map_err(|e| plot_err(&e))?;
        for (i, s) in $self.lines() {
            let band: Vec<(f64, f64, f64)> = s
                .points
                .iter()
                .filter_map(|&(x, _, ci)| ci.map(|(lo, hi)| (x, lo, hi)))
                .collect();
            if band.len() >= 2 {
                let outline: Vec<(f64, f64)> = band
                    .iter()
                    .map(|&(x, lo, _)| (x, lo))
                    .chain(band.iter().rev().map(|&(x, _, hi)| (x, hi)))
                    .collect();
                let fill = SeriesStyle::of(i).colour.mix(BAND_OPACITY).filled();
                chart
                    .draw_series(std::iter::once(Polygon::new(outline, fill)))
                    .map_err(|e| plot_err(&e))?;
            }
        }
        for (i, s) in $self.lines() {
            let style = SeriesStyle::of(i);
            chart
                .draw_series(s.points.iter().filter_map(|&(x, _, ci)| {
                    ci.map(|(lo, hi)| ErrorBar {
                        ends: [(x, lo), (x, hi)],
                        colour: style.colour,
                    })
                }))
                .map_err(|e| plot_err(&e))?;
            let line: Vec<(f64, f64)> = s.points.iter().map(|&(x, y, _)| (x, y)).collect();
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
        // Measured points last, on top of every line, side by side where they coincide.
        let measured: Vec<(usize, &Series)> = $self
            .series
            .iter()
            .filter_map(|s| match s.kind {
                SeriesKind::Measured { of } => Some((of, s)),
                SeriesKind::Line => None,
            })
            .collect();
        for (j, &(of, s)) in measured.iter().enumerate() {
            let colour = SeriesStyle::of(of).colour;
            let dx = star_offset(j, measured.len());
            chart
                .draw_series(s.points.iter().map(|&(x, y, _)| MeasuredMark {
                    at: (x, y),
                    colour,
                    dx,
                }))
                .map_err(|e| plot_err(&e))?;
        }
    }};
}

impl Chart {
    /// The lines (not the measured series) with their index, which chooses their look.
    fn lines(&self) -> impl Iterator<Item = (usize, &Series)> {
        self.series
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == SeriesKind::Line)
    }

    /// Whether the x axis is logarithmic (its values span [`LOG_RATIO`] or more).
    pub fn log_x(&self) -> bool {
        log_range(
            self.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0)),
        )
    }

    /// Whether the y axis is logarithmic.
    pub fn log_y(&self) -> bool {
        self.unit != Unit::Percent
            && log_range(self.series.iter().flat_map(|s| {
                s.points
                    .iter()
                    .flat_map(|p| [Some(p.1), p.2.map(|c| c.0), p.2.map(|c| c.1)])
                    .flatten()
            }))
    }

    /// The chart as SVG.
    pub fn to_svg(&self) -> crate::Result<String> {
        let mut svg = String::new();
        {
            let root =
                SVGBackend::with_string(&mut svg, (SVG_WIDTH, SVG_HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| plot_err(&e))?;
            let root = root
                .titled(&self.title, ("sans-serif", 22))
                .map_err(|e| plot_err(&e))?;
            let (plot, side) = root.split_horizontally(SVG_WIDTH - LEGEND_WIDTH);
            let xs: Vec<f64> = self
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0))
                .collect();
            let ys: Vec<f64> = self
                .series
                .iter()
                .flat_map(|s| {
                    s.points
                        .iter()
                        .flat_map(|p| [Some(p.1), p.2.map(|c| c.0), p.2.map(|c| c.1)])
                        .flatten()
                })
                .collect();
            let (x0, x1) = bounds(&xs);
            let (y0, y1) = bounds(&ys);
            let small = y1 < 20.0;
            match (self.log_x(), self.log_y()) {
                (true, true) => draw_on!(
                    self,
                    plot,
                    (x0 / 1.2..x1 * 1.2).log_scale(),
                    (y0.max(1e-9) / 1.5..y1 * 1.5).log_scale(),
                    small
                ),
                (true, false) => draw_on!(
                    self,
                    plot,
                    (x0 / 1.2..x1 * 1.2).log_scale(),
                    0.0..y1.max(1e-9) * 1.1,
                    small
                ),
                (false, true) => draw_on!(
                    self,
                    plot,
                    0.0..x1.max(1e-9) * 1.05,
                    (y0.max(1e-9) / 1.5..y1 * 1.5).log_scale(),
                    small
                ),
                (false, false) => draw_on!(
                    self,
                    plot,
                    0.0..x1.max(1e-9) * 1.05,
                    0.0..y1.max(1e-9) * 1.1,
                    small
                ),
            }
            self.legend(&side)?;
            root.present().map_err(|e| plot_err(&e))?;
        }
        Ok(svg)
    }

    fn legend<DB: DrawingBackend>(
        &self,
        side: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> crate::Result<()>
    where
        DB::ErrorType: 'static,
    {
        let note: Vec<String> = self.note.iter().flat_map(|l| wrap(l, 30)).collect();
        let names: Vec<(usize, String)> = self.lines().map(|(i, s)| (i, s.name.clone())).collect();
        let measured = self
            .series
            .iter()
            .any(|s| matches!(s.kind, SeriesKind::Measured { .. }));
        draw_legend(side, &names, measured, &note, 26, 14)
    }
}

fn log_range(values: impl Iterator<Item = f64>) -> bool {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values {
        if v <= 0.0 {
            return false;
        }
        lo = lo.min(v);
        hi = hi.max(v);
    }
    hi > 0.0 && hi / lo >= LOG_RATIO
}

fn bounds(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    if lo.is_finite() {
        (lo, hi.max(lo))
    } else {
        (1.0, 1.0)
    }
}

/// The legend beside a plot: one row per line (its line, dash and marker — those of
/// [`SeriesStyle::of`] its index —, then its name, `row` pixels apart in a `font_px` font),
/// with `measured` a row for measured points (a star, [`MEASURED_LABEL`]), then the note's
/// lines in a smaller font.
pub(crate) fn draw_legend<DB: DrawingBackend>(
    side: &DrawingArea<DB, plotters::coord::Shift>,
    names: &[(usize, String)],
    measured: bool,
    note: &[String],
    row: i32,
    font_px: u32,
) -> crate::Result<()>
where
    DB::ErrorType: 'static,
{
    let (x0, y0) = (LEGEND_MARGIN, 40);
    let rows = names.len() as i32 + i32::from(measured);
    let height = 16 + row * rows + 20 * note.len() as i32;
    let box_width = LEGEND_WIDTH as i32 - 2 * LEGEND_MARGIN;
    side.draw(&Rectangle::new(
        [(x0, y0), (x0 + box_width, y0 + height)],
        LEGEND_BORDER.stroke_width(1),
    ))
    .map_err(|e| plot_err(&e))?;
    let font = ("sans-serif", font_px).into_font();
    let left = text_anchor::Pos::new(text_anchor::HPos::Left, text_anchor::VPos::Center);
    for (j, (i, name)) in names.iter().enumerate() {
        let style = SeriesStyle::of(*i);
        let y = y0 + 22 + row * j as i32;
        let (a, b) = ((x0 + 10, y), (x0 + 50, y));
        let stroke = style.colour.stroke_width(style.width);
        match style.dash {
            None => side.draw(&PathElement::new(vec![a, b], stroke)),
            Some((dash, gap)) => side.draw(&DashedPathElement::new(vec![a, b], dash, gap, stroke)),
        }
        .map_err(|e| plot_err(&e))?;
        side.draw(&Mark {
            at: (x0 + 30, y),
            style,
        })
        .map_err(|e| plot_err(&e))?;
        side.draw(&Text::new(
            name.clone(),
            (x0 + 60, y),
            font.color(&BLACK).pos(left),
        ))
        .map_err(|e| plot_err(&e))?;
    }
    let small = ("sans-serif", 13).into_font();
    if measured {
        let y = y0 + 22 + row * names.len() as i32;
        side.draw(&MeasuredMark {
            at: (x0 + 22, y),
            colour: BLACK,
            dx: 0,
        })
        .map_err(|e| plot_err(&e))?;
        side.draw(&Text::new(
            MEASURED_LABEL.to_string(),
            (x0 + 38, y),
            small.color(&BLACK).pos(left),
        ))
        .map_err(|e| plot_err(&e))?;
    }
    let top = text_anchor::Pos::new(text_anchor::HPos::Left, text_anchor::VPos::Top);
    for (j, l) in note.iter().enumerate() {
        let y = y0 + 8 + row * rows + 20 * j as i32;
        side.draw(&Text::new(
            l.clone(),
            (x0 + 10, y),
            small.color(&BLACK).pos(top),
        ))
        .map_err(|e| plot_err(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(ys: [f64; 3]) -> Chart {
        Chart {
            title: "t".into(),
            x_desc: "x".into(),
            y_desc: "y".into(),
            unit: Unit::Usd,
            series: vec![Series {
                name: "single".into(),
                points: vec![
                    (50.0, ys[0], None),
                    (5000.0, ys[1], None),
                    (100_000.0, ys[2], Some((ys[2] * 0.9, ys[2] * 1.1))),
                ],
                kind: SeriesKind::Line,
            }],
            note: vec!["a note".into()],
        }
    }

    #[test]
    fn axes_are_logarithmic_over_two_decades_or_more() {
        let c = chart([1.0, 10.0, 1000.0]);
        assert!(c.log_x() && c.log_y());
        let c = chart([1.0, 2.0, 3.0]);
        assert!(c.log_x() && !c.log_y());
        let svg = c.to_svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("single") && svg.contains("a note"));
        // The interval's error bar is drawn.
        assert!(svg.contains("<line"), "{svg}");
        let svg = chart([1.0, 10.0, 1000.0]).to_svg().unwrap();
        assert!(
            svg.contains("100,000") || svg.contains("100k") || svg.contains("100 k"),
            "{svg}"
        );
    }
}
