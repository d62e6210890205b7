//! PromQL for an SLO's indicator over one window. Rule generation and the live evaluator both
//! build their queries here, so a number read from a recording rule and one computed from raw
//! queries mean exactly the same thing.
//!
//! Semantics carried by the expressions:
//! - a missing error series with traffic present reads as zero errors (`or 0 * total`);
//! - a missing good series is no data, not "everything failed": it is almost always a query
//!   mistake, and automation must not act on it;
//! - no traffic, or fewer than `minEvents` events, yields no sample at all (no data), never
//!   NaN and never 0.
//!
//! Owns: the expression text. Must not touch: I/O.

use super::policy::{BadEvents, Indicator, QueryTemplate, WINDOW_PLACEHOLDER, Window};

/// Formats a number for PromQL and YAML: at most 12 significant digits, so float noise such as
/// `0.0010000000000000009` prints as `0.001`.
pub fn promql_number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let rounded: f64 = format!("{x:.11e}").parse().unwrap_or(x);
    format!("{rounded}")
}

/// Per-second rate of all events over `window`; `None` for a raw indicator.
pub fn total_rate(indicator: &Indicator, window: Window) -> Option<String> {
    match indicator {
        Indicator::Ratio { total, .. } => Some(total.render(window)),
        Indicator::Latency {
            histogram,
            matchers,
            ..
        } => Some(histogram_count_rate(
            histogram,
            matchers,
            &window.to_string(),
        )),
        Indicator::Raw { .. } => None,
    }
}

/// All events of a classic histogram, over the range `range` (`5m`, or `{{.window}}`).
fn histogram_count_rate(histogram: &str, matchers: &str, range: &str) -> String {
    format!("sum(rate({histogram}_count{{{matchers}}}[{range}]))")
}

/// The events of a classic histogram no slower than `threshold`, over the range `range`.
fn histogram_bucket_rate(histogram: &str, matchers: &str, threshold: f64, range: &str) -> String {
    let bucket_matchers = join_matchers(matchers, &le_matcher(threshold));
    format!("sum(rate({histogram}_bucket{{{bucket_matchers}}}[{range}]))")
}

/// A latency indicator as ratio query templates: (good events, all events). Other formats
/// have no histogram indicator, so exporters write these, and importers that meet exactly
/// these two templates read them back as the latency indicator they came from.
pub fn latency_templates(
    histogram: &str,
    matchers: &str,
    threshold: f64,
) -> (QueryTemplate, QueryTemplate) {
    (
        QueryTemplate::new(histogram_bucket_rate(
            histogram,
            matchers,
            threshold,
            WINDOW_PLACEHOLDER,
        )),
        QueryTemplate::new(histogram_count_rate(
            histogram,
            matchers,
            WINDOW_PLACEHOLDER,
        )),
    )
}

/// [`latency_templates`] for a grouped SLO: each sum kept `by` the group labels.
pub fn latency_templates_by(
    histogram: &str,
    matchers: &str,
    threshold: f64,
    by: &[String],
) -> (QueryTemplate, QueryTemplate) {
    let (good, total) = latency_templates(histogram, matchers, threshold);
    (sum_by(&good, by), sum_by(&total, by))
}

/// A template that starts with `sum(` summed `by` the labels instead (a grouped SLO's).
pub fn sum_by(template: &QueryTemplate, by: &[String]) -> QueryTemplate {
    QueryTemplate::new(template.template().replacen(
        "sum(",
        &format!("sum by ({}) (", by.join(", ")),
        1,
    ))
}

/// Per-second rate of bad events over `window`; `None` for a raw indicator.
pub fn bad_rate(indicator: &Indicator, window: Window) -> Option<String> {
    match indicator {
        Indicator::Ratio {
            bad: BadEvents::Errors(errors),
            total,
        } => Some(format!(
            "({}) or (0 * ({}))",
            errors.render(window),
            total.render(window)
        )),
        Indicator::Ratio {
            bad: BadEvents::Good(good),
            total,
        } => Some(format!(
            "({}) - ({})",
            total.render(window),
            good.render(window)
        )),
        Indicator::Latency {
            histogram,
            matchers,
            threshold,
        } => {
            let range = window.to_string();
            Some(format!(
                "{} - {}",
                histogram_count_rate(histogram, matchers, &range),
                histogram_bucket_rate(histogram, matchers, *threshold, &range)
            ))
        }
        Indicator::Raw { .. } => None,
    }
}

/// The error ratio over `window`, with no sample when there is no data.
pub fn error_ratio(indicator: &Indicator, window: Window, min_events: u64) -> String {
    match indicator {
        Indicator::Raw { error_ratio } => error_ratio.render(window),
        _ => {
            let bad = bad_rate(indicator, window).unwrap_or_default();
            let total = total_rate(indicator, window).unwrap_or_default();
            ratio_of_rates(&bad, &total, window, min_events)
        }
    }
}

/// `bad / total`, keeping only samples whose window saw traffic (and at least `min_events`
/// events: a per-second rate `r` over `window` is `r * window` events).
pub fn ratio_of_rates(bad: &str, total: &str, window: Window, min_events: u64) -> String {
    format!("({bad}) / ({})", traffic_filter(total, window, min_events))
}

fn traffic_filter(total: &str, window: Window, min_events: u64) -> String {
    if min_events == 0 {
        format!("({total}) > 0")
    } else {
        // minEvents / window is the slowest per-second rate that still has enough events.
        format!("({total}) >= ({min_events} / {})", window.as_secs())
    }
}

/// Matches the `le` bucket boundary whichever way the exporter wrote it: `0.3`, and for whole
/// numbers both `1` (client_golang) and `1.0` (Prometheus 3's normalised form).
pub fn le_matcher(threshold: f64) -> String {
    let text = promql_number(threshold);
    if threshold.fract() == 0.0 && !text.contains(['e', '.']) {
        format!("le=~\"{text}(\\\\.0)?\"")
    } else {
        format!("le=\"{text}\"")
    }
}

fn join_matchers(existing: &str, extra: &str) -> String {
    if existing.trim().is_empty() {
        extra.to_string()
    } else {
        format!("{existing},{extra}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MINUTES: Window = Window::from_secs(300);

    #[test]
    fn numbers_lose_float_noise() {
        assert_eq!(promql_number(1.0 - 0.999), "0.001");
        assert_eq!(promql_number(0.02 * 720.0), "14.4");
        assert_eq!(promql_number(6.0), "6");
        assert_eq!(promql_number(0.3), "0.3");
    }

    #[test]
    fn missing_error_series_read_as_zero_errors() {
        let indicator = Indicator::Ratio {
            bad: BadEvents::Errors(QueryTemplate::new("sum(rate(e[{{.window}}]))")),
            total: QueryTemplate::new("sum(rate(t[{{.window}}]))"),
        };
        assert_eq!(
            error_ratio(&indicator, FIVE_MINUTES, 0),
            "((sum(rate(e[5m]))) or (0 * (sum(rate(t[5m]))))) / ((sum(rate(t[5m]))) > 0)"
        );
    }

    #[test]
    fn min_events_becomes_a_minimum_rate() {
        let indicator = Indicator::Ratio {
            bad: BadEvents::Good(QueryTemplate::new("g[{{.window}}]")),
            total: QueryTemplate::new("t[{{.window}}]"),
        };
        // 30 events in 5 minutes is 0.1 per second.
        assert_eq!(
            error_ratio(&indicator, FIVE_MINUTES, 30),
            "((t[5m]) - (g[5m])) / ((t[5m]) >= (30 / 300))"
        );
    }

    #[test]
    fn latency_reads_the_histogram_bucket_at_the_threshold() {
        let indicator = Indicator::Latency {
            histogram: "http_request_duration_seconds".into(),
            matchers: "job=\"search\"".into(),
            threshold: 0.3,
        };
        assert_eq!(
            bad_rate(&indicator, FIVE_MINUTES).unwrap(),
            "sum(rate(http_request_duration_seconds_count{job=\"search\"}[5m])) - sum(rate(http_request_duration_seconds_bucket{job=\"search\",le=\"0.3\"}[5m]))"
        );
        assert_eq!(le_matcher(1.0), "le=~\"1(\\\\.0)?\"");
    }
}
