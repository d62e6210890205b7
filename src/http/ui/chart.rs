//! Line charts drawn on the server as SVG: time on x, one polyline per series, dashed
//! horizontal lines for thresholds and vertical markers for events (incidents, freezes).
//! A missing value breaks its line: a gap shows a gap in the data, never a zero.
//!
//! Owns: the geometry of a chart and its SVG text. Must not touch: I/O, the store.

use std::fmt::Write as _;

/// One line: its name (the legend and `data-series`), its CSS class and its points
/// `(unix seconds, value)`; `None` is missing data.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub name: String,
    pub class: String,
    pub points: Vec<(i64, Option<f64>)>,
}

/// A horizontal line across the chart (an alert threshold, the objective).
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    pub value: f64,
    pub label: String,
    pub class: String,
}

/// A vertical marker at a time (an incident opened, a freeze).
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    pub at: i64,
    pub label: String,
    pub class: String,
}

/// A chart over `[from, to]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chart {
    pub title: String,
    pub from: i64,
    pub to: i64,
    pub lines: Vec<Line>,
    pub levels: Vec<Level>,
    pub markers: Vec<Marker>,
    /// Formats a y value for the axis (percent, a plain number).
    pub percent: bool,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 24.0;

/// The y range that shows every value and level, with zero at the bottom when all are
/// positive, widened to whole [`tick_step`]s so the axis reads 0, 5, 10 and not 0, 4.7, 9.4.
pub fn y_range(chart: &Chart) -> (f64, f64) {
    let (low, high, _) = y_axis(chart);
    (low, high)
}

/// [`y_range`] and the tick step it was rounded to.
pub fn y_axis(chart: &Chart) -> (f64, f64, f64) {
    let values = chart
        .lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|(_, v)| *v))
        .chain(chart.levels.iter().map(|l| l.value))
        .filter(|v| v.is_finite());
    let (mut low, mut high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !low.is_finite() {
        return (0.0, 1.0, 0.25);
    }
    low = low.min(0.0);
    if high <= low {
        high = low + 1.0;
    }
    // Some room above the highest value, so a line along the top stays visible.
    high += (high - low) * 0.04;
    let step = tick_step(high - low);
    (
        (low / step).floor() * step,
        (high / step).ceil() * step,
        step,
    )
}

/// A round distance between y ticks (1, 2 or 5 times a power of ten) that cuts `span` into
/// about four parts.
pub fn tick_step(span: f64) -> f64 {
    let raw = span / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw * 0.999)
        .unwrap_or(10.0 * magnitude);
    if step.is_finite() && step > 0.0 {
        step
    } else {
        1.0
    }
}

/// The y values the axis labels: every `step` from `low` to `high`.
pub fn ticks((low, high, step): (f64, f64, f64)) -> Vec<f64> {
    let count = ((high - low) / step).round() as i64;
    (0..=count.clamp(1, 20))
        .map(|k| low + step * k as f64)
        .collect()
}

/// Where `(t, v)` lands in the drawing, for a y range.
pub fn position(chart: &Chart, (low, high): (f64, f64), t: i64, v: f64) -> (f64, f64) {
    let span = (chart.to - chart.from).max(1) as f64;
    let x = LEFT + (t - chart.from) as f64 / span * (WIDTH - LEFT - RIGHT);
    let y = TOP + (high - v) / (high - low) * (HEIGHT - TOP - BOTTOM);
    (x, y)
}

/// The runs of consecutive present points of a line: one polyline each.
pub fn runs(points: &[(i64, Option<f64>)]) -> Vec<Vec<(i64, f64)>> {
    let mut runs = Vec::new();
    let mut current = Vec::new();
    for (t, v) in points {
        match v.filter(|v| v.is_finite()) {
            Some(v) => current.push((*t, v)),
            None if current.is_empty() => {}
            None => runs.push(std::mem::take(&mut current)),
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A y-axis label short enough for the margin: fewer decimals as the values grow.
pub fn axis_label(value: f64, percent: bool) -> String {
    let (shown, unit) = if percent {
        (value * 100.0, "%")
    } else {
        (value, "x")
    };
    let text = match shown.abs() {
        a if a >= 100.0 => format!("{shown:.0}"),
        a if a >= 10.0 => format!("{shown:.1}"),
        a if a >= 1.0 || a == 0.0 => format!("{shown:.2}"),
        _ => format!("{shown:.3}"),
    };
    // Ticks are round: 5% rather than 5.00%.
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    let text = if text == "-0" { "0" } else { text };
    format!("{text}{unit}")
}

/// The chart as an SVG element.
pub fn svg(chart: &Chart) -> String {
    let range = y_range(chart);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" data-chart="{}">"#,
        escape(&chart.title),
        escape(&chart.title)
    );
    let _ = write!(
        out,
        r#"<text class="chart-title" x="{LEFT}" y="14">{}</text>"#,
        escape(&chart.title)
    );
    // The legend, after the title, when there is more than one line to tell apart.
    if chart.lines.len() > 1 {
        let mut x = LEFT + 12.0 + 7.0 * chart.title.len() as f64;
        for line in &chart.lines {
            let _ = write!(
                out,
                r#"<g class="legend line {}"><polyline points="{x:.1},10 {:.1},10"/><text class="tick" x="{:.1}" y="14">{}</text></g>"#,
                escape(&line.class),
                x + 14.0,
                x + 17.0,
                escape(&line.name)
            );
            x += 28.0 + 6.0 * line.name.chars().count() as f64;
        }
    }
    // Axes and the y grid lines.
    for value in ticks(y_axis(chart)) {
        let (_, y) = position(chart, range, chart.from, value);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 3.0,
            axis_label(value, chart.percent)
        );
    }
    for k in 0..=4 {
        let t = chart.from + (chart.to - chart.from) * k / 4;
        let (x, _) = position(chart, range, t, range.0);
        let label = chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.format("%m-%d %H:%M").to_string())
            .unwrap_or_default();
        // The end labels stay inside the drawing.
        let anchor = match k {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            r#"<text class="tick" x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{label}</text>"#,
            HEIGHT - 6.0
        );
    }
    for marker in &chart.markers {
        if marker.at < chart.from || marker.at > chart.to {
            continue;
        }
        let (x, _) = position(chart, range, marker.at, range.0);
        let _ = write!(
            out,
            r#"<line class="marker {}" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"><title>{}</title></line>"#,
            escape(&marker.class),
            HEIGHT - BOTTOM,
            escape(&marker.label)
        );
    }
    for level in &chart.levels {
        let (_, y) = position(chart, range, chart.from, level.value);
        let _ = write!(
            out,
            r#"<line class="level {}" data-level="{}" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"><title>{}</title></line>"#,
            escape(&level.class),
            level.value,
            WIDTH - RIGHT,
            escape(&level.label)
        );
    }
    for line in &chart.lines {
        let _ = write!(
            out,
            r#"<g class="line {}" data-series="{}"><title>{}</title>"#,
            escape(&line.class),
            escape(&line.name),
            escape(&line.name)
        );
        for run in runs(&line.points) {
            let points: Vec<String> = run
                .iter()
                .map(|(t, v)| {
                    let (x, y) = position(chart, range, *t, *v);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            let _ = write!(out, r#"<polyline points="{}"/>"#, points.join(" "));
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(points: Vec<(i64, Option<f64>)>) -> Chart {
        Chart {
            title: "burn rate".into(),
            from: 0,
            to: 100,
            lines: vec![Line {
                name: "1h".into(),
                class: "w1".into(),
                points,
            }],
            levels: vec![Level {
                value: 14.4,
                label: "page at 14.4x".into(),
                class: "page".into(),
            }],
            markers: Vec::new(),
            percent: false,
        }
    }

    #[test]
    fn missing_values_break_the_line_instead_of_dropping_to_zero() {
        let points = vec![
            (0, Some(1.0)),
            (10, Some(2.0)),
            (20, None),
            (30, Some(f64::NAN)),
            (40, Some(3.0)),
        ];
        assert_eq!(
            runs(&points),
            vec![vec![(0, 1.0), (10, 2.0)], vec![(40, 3.0)]]
        );
        let svg = svg(&chart(points));
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
    }

    #[test]
    fn the_y_range_holds_every_value_and_threshold_from_zero() {
        let c = chart(vec![(0, Some(2.0)), (50, Some(20.0))]);
        let (low, high) = y_range(&c);
        assert_eq!(low, 0.0);
        assert!((20.0..=30.0).contains(&high), "{high}");
        // Time maps left to right, value bottom to top.
        let (x0, y0) = position(&c, (low, high), 0, 0.0);
        let (x1, y1) = position(&c, (low, high), 100, high);
        assert_eq!((x0, x1), (LEFT, WIDTH - RIGHT));
        assert_eq!((y0, y1), (HEIGHT - BOTTOM, TOP));
        // The threshold is drawn where 14.4 lies.
        let svg = svg(&c);
        let (_, y) = position(&c, (low, high), 0, 14.4);
        assert!(
            svg.contains(&format!(r#"data-level="14.4" x1="{LEFT}" y1="{y:.1}""#)),
            "{svg}"
        );
        // No data at all still draws axes, no line.
        let empty = chart(vec![(0, None)]);
        assert_eq!(
            y_range(&Chart {
                levels: vec![],
                ..empty.clone()
            }),
            (0.0, 1.0)
        );
        assert!(!svg_has_polyline(&empty));
    }

    fn svg_has_polyline(c: &Chart) -> bool {
        svg(c).contains("<polyline")
    }

    #[test]
    fn axis_labels_fit_the_margin() {
        assert_eq!(axis_label(-49.0, true), "-4900%");
        assert_eq!(axis_label(0.125, true), "12.5%");
        assert_eq!(axis_label(0.001, true), "0.1%");
        assert_eq!(axis_label(14.4, false), "14.4x");
        assert_eq!(axis_label(0.0, false), "0x");
        assert_eq!(axis_label(-0.0, true), "0%");
        assert_eq!(axis_label(20.0, false), "20x");
    }

    #[test]
    fn ticks_are_round_and_cover_the_values() {
        assert_eq!(tick_step(1.0), 0.5);
        assert_eq!(tick_step(54.0), 20.0);
        assert_eq!(tick_step(4.2), 2.0);
        assert!((tick_step(0.054) - 0.02).abs() < 1e-12);
        // Budget from -310% to 100%: ticks every 200%, from -400% to 200%.
        let mut c = chart(vec![(0, Some(-3.1)), (1, Some(1.0))]);
        c.levels.clear();
        assert_eq!(y_range(&c), (-4.0, 2.0));
        assert_eq!(ticks(y_axis(&c)), vec![-4.0, -2.0, 0.0, 2.0]);
        // Burn rates up to 50 with a 14.4 threshold: 0 to 60 by 20.
        let mut c = chart(vec![(0, Some(50.0)), (1, Some(0.0))]);
        c.levels.clear();
        assert_eq!(ticks(y_axis(&c)), vec![0.0, 20.0, 40.0, 60.0]);
    }

    #[test]
    fn names_are_escaped() {
        let mut c = chart(vec![(0, Some(1.0))]);
        c.title = "<script>".into();
        assert!(!svg(&c).contains("<script>"));
    }
}
