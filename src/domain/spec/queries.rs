//! PromQL the importers build from other formats' pieces: a bare selector read as a counter or
//! as a 0/1 gauge, and latency histograms recognised in a pair of ratio queries.
//!
//! Owns: turning selectors into `{{.window}}` templates, and the latency round trip.
//! Must not touch: paths or problems (callers say where a refused query was).

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr};

use crate::domain::policy::{Indicator, QueryTemplate, WINDOW_PLACEHOLDER};
use crate::domain::sli;
use crate::domain::validate::{check_query_template, selector_matchers};

/// A plain vector selector (`http_requests_total{code=~"5.."}`, optionally with `offset` or
/// `@`), split into the selector and its modifiers; an error naming what it is instead.
fn split_selector(text: &str) -> Result<(&str, &str), String> {
    let text = text.trim();
    match parser::parse(text) {
        Ok(Expr::VectorSelector(_)) => {}
        Ok(_) => {
            return Err(format!(
                "`{text}` is not a plain selector; expected a metric with label matchers, such as http_requests_total{{code=~\"5..\"}}"
            ));
        }
        Err(why) => return Err(format!("`{text}` is not valid PromQL: {why}")),
    }
    // After the closing brace only modifiers can follow, and they hold no brace; without
    // braces the metric name is the first word.
    let end = match text.rfind('}') {
        Some(i) => i + 1,
        None => text
            .find(|c: char| c.is_whitespace() || c == '@')
            .unwrap_or(text.len()),
    };
    Ok((text[..end].trim(), text[end..].trim()))
}

/// `selector` -> `sum(<function>(selector[{{.window}}] modifiers))`, checked.
fn over_window(function: &str, selector: &str) -> Result<QueryTemplate, String> {
    let (selector, modifiers) = split_selector(selector)?;
    let modifiers = if modifiers.is_empty() {
        String::new()
    } else {
        format!(" {modifiers}")
    };
    let template = format!("sum({function}({selector}[{WINDOW_PLACEHOLDER}]{modifiers}))");
    check_query_template(&template)?;
    Ok(QueryTemplate::new(template))
}

/// A counter selector as the per-second rate of its events over each window, summed to one
/// series (what Pyrra does with its metrics).
pub fn counter_rate(selector: &str) -> Result<QueryTemplate, String> {
    over_window("rate", selector)
}

/// A gauge of 0 and 1 samples (Pyrra's `bool_gauge`, such as `probe_success`) as events:
/// every sample is an event and the samples at 1 are the good ones. (good, total).
pub fn bool_gauge(selector: &str) -> Result<(QueryTemplate, QueryTemplate), String> {
    Ok((
        over_window("sum_over_time", selector)?,
        over_window("count_over_time", selector)?,
    ))
}

/// The latency indicator these two ratio queries (good events, all events) are exactly the
/// templates of ([`sli::latency_templates`]), if they are.
pub fn recognise_latency(good: &str, total: &str) -> Option<Indicator> {
    let inner = total
        .strip_prefix("sum(rate(")?
        .strip_suffix(&format!("}}[{WINDOW_PLACEHOLDER}]))"))?;
    let (name, matchers) = inner.split_once('{')?;
    let histogram = name.strip_suffix("_count")?;
    let matchers = selector_matchers(&format!("{{{matchers}}}")).ok()?;
    let threshold = le_bound(good)?;
    let (expected_good, expected_total) = sli::latency_templates(histogram, &matchers, threshold);
    (expected_good.template() == good && expected_total.template() == total).then(|| {
        Indicator::Latency {
            histogram: histogram.to_string(),
            matchers,
            threshold,
        }
    })
}

/// The bucket boundary a query selects with `le` (`le="0.3"`, or burnguard's `le=~"1(\.0)?"`).
fn le_bound(query: &str) -> Option<f64> {
    let expr = parser::parse(&query.replace(WINDOW_PLACEHOLDER, "5m")).ok()?;
    let value = le_value(&expr)?;
    let number = value.strip_suffix(r"(\.0)?").unwrap_or(&value);
    number
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t > 0.0)
}

fn le_value(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Aggregate(a) => le_value(&a.expr),
        Expr::Paren(p) => le_value(&p.expr),
        Expr::Call(c) => c.args.args.iter().find_map(|a| le_value(a)),
        Expr::MatrixSelector(m) => le_value(&Expr::VectorSelector(m.vs.clone())),
        Expr::VectorSelector(vs) => vs
            .matchers
            .matchers
            .iter()
            .find(|m| m.name == "le" && matches!(m.op, MatchOp::Equal | MatchOp::Re(_)))
            .map(|m| m.value.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_selector_becomes_a_summed_rate_over_the_window() {
        let cases = [
            (
                "http_requests_total{job=\"a\",code=~\"5..\"}",
                "sum(rate(http_requests_total{job=\"a\",code=~\"5..\"}[{{.window}}]))",
            ),
            ("up", "sum(rate(up[{{.window}}]))"),
            (
                "  x_total{a=\"}\"} offset 1m ",
                "sum(rate(x_total{a=\"}\"}[{{.window}}] offset 1m))",
            ),
            (
                "x_total offset 5m",
                "sum(rate(x_total[{{.window}}] offset 5m))",
            ),
        ];
        for (selector, expected) in cases {
            assert_eq!(
                counter_rate(selector).unwrap().template(),
                expected,
                "{selector}"
            );
        }
    }

    #[test]
    fn anything_but_a_plain_selector_is_refused_with_what_was_expected() {
        for text in ["sum(rate(x[5m]))", "x[5m]", "a / b", "x{", ""] {
            let error = counter_rate(text).unwrap_err();
            assert!(
                error.contains("plain selector") || error.contains("not valid PromQL"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn a_bool_gauge_counts_samples_and_the_samples_at_one() {
        let (good, total) = bool_gauge("probe_success{job=\"web\"}").unwrap();
        assert_eq!(
            good.template(),
            "sum(sum_over_time(probe_success{job=\"web\"}[{{.window}}]))"
        );
        assert_eq!(
            total.template(),
            "sum(count_over_time(probe_success{job=\"web\"}[{{.window}}]))"
        );
    }

    #[test]
    fn latency_templates_are_recognised_and_nothing_else_is() {
        for (matchers, threshold) in [
            ("job=\"a\", handler=\"/x\"", 0.3),
            ("", 1.0),
            ("a=\"b\"", 2.5),
        ] {
            let (good, total) = sli::latency_templates("rpc_seconds", matchers, threshold);
            assert_eq!(
                recognise_latency(good.template(), total.template()),
                Some(Indicator::Latency {
                    histogram: "rpc_seconds".into(),
                    matchers: matchers.into(),
                    threshold,
                }),
                "{matchers} {threshold}"
            );
        }
        let (good, total) = sli::latency_templates("rpc_seconds", "job=\"a\"", 0.3);
        // Another bucket, another histogram, another selector: just ratio queries.
        let others = [
            (
                good.template().replace("rpc_", "other_"),
                total.template().to_string(),
            ),
            (
                good.template().to_string(),
                total.template().replace("rpc_", "grpc_"),
            ),
            (
                good.template().to_string(),
                total.template().replace("job=\"a\"", "job=\"b\""),
            ),
            (
                good.template().to_string(),
                total.template().replace("rate", "increase"),
            ),
        ];
        for (g, t) in others {
            assert_eq!(recognise_latency(&g, &t), None, "{g} / {t}");
        }
    }
}
