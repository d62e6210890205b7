//! Pyrra's `pyrra.dev/v1alpha1` `ServiceLevelObjective`, read as it is.
//!
//! How it maps:
//! - the name is `metadata.name`; the labels are the object's `pyrra.dev/`-prefixed labels
//!   without the prefix (what Pyrra puts on its rules) and `namespace` when the object has one;
//!   `pyrra.dev/service` is the SLO's service (the name when absent);
//! - `target` is a percentage (Pyrra writes it as a string), `window` the rolling window;
//! - Pyrra's metrics are bare selectors it turns into rates: `ratio` is
//!   `sum(rate(errors[w])) / sum(rate(total[w]))`; `latency` is good events (`success`, a
//!   `_bucket` selector with `le`) over `total`, read as burnguard's latency indicator when the
//!   two are the same histogram's `_bucket` and `_count` with the same matchers; `bool_gauge`
//!   counts samples of a 0/1 gauge (`sum_over_time` good, `count_over_time` all);
//! - alerts are Pyrra's four burn-rate rows, scaled with the window as Pyrra scales them
//!   (for 28d: page 1h/5m x14 and 6h/30m x7, ticket 1d/2h x2 and 4d/6h x1); `alerting.name`
//!   names them; `disabled` or `burnrates: false` switch them off.
//!
//! `grouping` becomes `groupBy`, its queries summed by those labels as Pyrra does.
//! Refused per field: `latencyNative` (native histograms), not
//! supported yet; `absent: true`, `absentName` and `burnRateType: dynamic`, which have no
//! equivalent.
//!
//! Owns: Pyrra's wire shape and its mapping. Must not touch: I/O.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_saphyr::Spanned;

use super::SourceDocument;
use super::draft::{self, Anything, Draft, ObjectMeta};
use super::queries;
use crate::domain::policy::{
    AlertWindow, Alerting, BadEvents, Indicator, QueryTemplate, Severity, Slo, Window,
};
use crate::domain::problem::Problem;
use crate::domain::sli;
use crate::domain::validate::{Problems, check_alert_name, check_labels};

pub const API_VERSION: &str = "pyrra.dev/v1alpha1";
pub const KIND: &str = "ServiceLevelObjective";
/// Object labels with this prefix are copied onto Pyrra's rules, without it.
pub const PROPAGATED_LABEL_PREFIX: &str = "pyrra.dev/";

#[derive(Debug, Deserialize)]
pub struct PyrraDocument {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    pub metadata: Option<ObjectMeta>,
    pub spec: Option<PyrraSpec>,
    /// Written by Pyrra's operator.
    pub status: Option<Anything>,
}

#[derive(Debug, Deserialize)]
pub struct PyrraSpec {
    pub description: Option<String>,
    /// Percent, as a string (`"99.9"`); a number is read too.
    pub target: Option<Spanned<Number>>,
    pub window: Option<Spanned<String>>,
    pub indicator: Option<PyrraIndicator>,
    pub alerting: Option<PyrraAlerting>,
}

#[derive(Debug, Deserialize)]
pub struct PyrraIndicator {
    pub ratio: Option<RatioIndicator>,
    pub latency: Option<LatencyIndicator>,
    #[serde(rename = "latencyNative")]
    pub latency_native: Option<Spanned<Anything>>,
    pub bool_gauge: Option<BoolGaugeIndicator>,
}

#[derive(Debug, Deserialize)]
pub struct Metric {
    pub metric: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RatioIndicator {
    pub errors: Option<Metric>,
    pub total: Option<Metric>,
    pub grouping: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
pub struct LatencyIndicator {
    pub success: Option<Metric>,
    pub total: Option<Metric>,
    pub grouping: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
pub struct BoolGaugeIndicator {
    pub metric: Option<Spanned<String>>,
    pub grouping: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PyrraAlerting {
    pub disabled: Option<Spanned<bool>>,
    pub name: Option<Spanned<String>>,
    pub burnrates: Option<Spanned<bool>>,
    pub absent: Option<Spanned<bool>>,
    pub absent_name: Option<Spanned<String>>,
    pub burn_rate_type: Option<Spanned<String>>,
}

/// A number written as a YAML number or as a string holding one (Pyrra's `target`).
#[derive(Debug, Clone)]
pub struct Number(pub Result<f64, String>);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a percentage such as \"99.9\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(Ok(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(Ok(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(Ok(v as f64)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Number, E> {
                Ok(Number(v.trim().parse::<f64>().map_err(|_| v.to_string())))
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

/// The SLO of one Pyrra document.
pub fn import(doc: &SourceDocument<'_>, document: PyrraDocument) -> Result<Slo, Vec<Problem>> {
    let mut p = Problems::new(doc);
    let metadata = document.metadata.unwrap_or_default();
    let name = match &metadata.name {
        Some(name) => draft::slo_name(
            &mut p,
            "metadata.name",
            name,
            name.value.clone(),
            "the ServiceLevelObjective's name is the SLO's name",
        ),
        None => {
            p.missing(
                "metadata.name",
                "lowercase letters, digits and '-', such as checkout-availability",
            );
            None
        }
    };
    let (service, labels) = labels(&mut p, &metadata, name.as_deref());
    let Some(spec) = document.spec else {
        p.missing(
            "spec",
            "a ServiceLevelObjective needs target, window and indicator",
        );
        return Err(p.into_problems());
    };
    let objective = match &spec.target {
        Some(target) => match &target.value.0 {
            Ok(percent) => draft::objective_percent(
                &mut p,
                "spec.target",
                &Spanned::new(*percent, target.referenced, target.defined),
            ),
            Err(text) => {
                p.at(
                    "spec.target",
                    target,
                    format!("`{text}` is not a number; expected a percentage such as \"99.9\""),
                );
                None
            }
        },
        None => {
            p.missing("spec.target", "a percentage such as \"99.9\"");
            None
        }
    };
    let window = match &spec.window {
        Some(w) => draft::window(&mut p, "spec.window", w),
        None => {
            p.missing("spec.window", "a rolling window such as 28d or 4w");
            None
        }
    };
    let (indicator, group_by) = match spec.indicator.map(|i| import_indicator(&mut p, i)) {
        Some(Some((indicator, by))) => (Some(indicator), by),
        Some(None) => (None, Vec::new()),
        None => {
            p.missing(
                "spec.indicator",
                "exactly one of ratio, latency or bool_gauge",
            );
            (None, Vec::new())
        }
    };
    let alerting = alerting(&mut p, spec.alerting.unwrap_or_default(), window);
    let slo = Draft {
        name,
        service,
        description: spec.description.unwrap_or_default(),
        labels,
        objective,
        window,
        calendar: None,
        indicator,
        group_by,
        alerting,
    }
    .finish();
    match slo {
        Some(slo) if p.is_empty() => Ok(slo),
        _ => Err(p.into_problems()),
    }
}

/// The service (from `pyrra.dev/service`, else the name) and the labels Pyrra puts on its
/// rules: the `pyrra.dev/` labels without the prefix, and the namespace.
fn labels(
    p: &mut Problems<'_>,
    metadata: &ObjectMeta,
    name: Option<&str>,
) -> (Option<String>, BTreeMap<String, String>) {
    let mut labels = BTreeMap::new();
    let mut service = None;
    for (key, value) in metadata.labels.iter().flatten() {
        let Some(label) = key.strip_prefix(PROPAGATED_LABEL_PREFIX) else {
            // Kubernetes labels (`prometheus: k8s`) select the object; Pyrra does not copy them.
            continue;
        };
        if label == "service" {
            service = Some(value.clone());
        } else {
            labels.insert(label.to_string(), value.clone());
        }
    }
    // Checked without the prefix, reported with the keys as written.
    let mut found = Problems::new(p.document());
    check_labels(&mut found, "metadata.labels", &labels);
    for mut problem in found.into_problems() {
        if let Some(label) = problem.path.strip_prefix("metadata.labels.") {
            problem.path = format!("metadata.labels.{PROPAGATED_LABEL_PREFIX}{label}");
        }
        p.extend([problem]);
    }
    if let Some(namespace) = &metadata.namespace {
        labels.insert("namespace".to_string(), namespace.value.clone());
    }
    let service = service.or_else(|| name.map(str::to_string));
    (service, labels)
}

/// Pyrra's `grouping`: the labels of a grouped SLO, checked as burnguard checks `groupBy`.
fn grouping(
    p: &mut Problems<'_>,
    path: &str,
    grouping: &Option<Spanned<Vec<String>>>,
) -> Vec<String> {
    let Some(g) = grouping else {
        return Vec::new();
    };
    for name in &g.value {
        if let Some(why) = crate::domain::validate::group_label_problem(name) {
            p.at(path, g, format!("`{name}` cannot group an SLO: {why}"));
        }
    }
    g.value.clone()
}

/// The indicator summed by the grouping labels (Pyrra's `sum by (grouping)`).
fn grouped(indicator: Indicator, by: &[String]) -> Indicator {
    if by.is_empty() {
        return indicator;
    }
    match indicator {
        Indicator::Ratio { bad, total } => Indicator::Ratio {
            bad: match bad {
                BadEvents::Errors(t) => BadEvents::Errors(sli::sum_by(&t, by)),
                BadEvents::Good(t) => BadEvents::Good(sli::sum_by(&t, by)),
            },
            total: sli::sum_by(&total, by),
        },
        Indicator::Latency {
            histogram,
            matchers,
            threshold,
        } => {
            let (good, total) = sli::latency_templates_by(&histogram, &matchers, threshold, by);
            Indicator::Ratio {
                bad: BadEvents::Good(good),
                total,
            }
        }
        raw => raw,
    }
}

/// A Pyrra metric (a bare selector) as a rate template; `None` after a problem.
fn metric_rate(p: &mut Problems<'_>, path: &str, metric: Option<&Metric>) -> Option<String> {
    let Some(text) = metric.and_then(|m| m.metric.as_ref()) else {
        p.missing(
            &format!("{path}.metric"),
            "a selector such as http_requests_total{job=\"api\"}",
        );
        return None;
    };
    match queries::counter_rate(&text.value) {
        Ok(template) => Some(template.template().to_string()),
        Err(why) => {
            p.at(&format!("{path}.metric"), text, why);
            None
        }
    }
}

fn import_indicator(
    p: &mut Problems<'_>,
    indicator: PyrraIndicator,
) -> Option<(Indicator, Vec<String>)> {
    draft::refuse(
        p,
        "spec.indicator.latencyNative",
        &indicator.latency_native,
        "native histograms are not supported yet; use a classic histogram with `latency` (success: the `_bucket` series with `le`, total: `_count`)",
    );
    let given = [
        indicator.ratio.is_some(),
        indicator.latency.is_some(),
        indicator.latency_native.is_some(),
        indicator.bool_gauge.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given > 1 {
        p.push(
            "spec.indicator",
            format!("has {given} indicators; give exactly one of ratio, latency or bool_gauge"),
        );
        return None;
    }
    if let Some(ratio) = indicator.ratio {
        let by = grouping(p, "spec.indicator.ratio.grouping", &ratio.grouping);
        let errors = metric_rate(p, "spec.indicator.ratio.errors", ratio.errors.as_ref());
        let total = metric_rate(p, "spec.indicator.ratio.total", ratio.total.as_ref());
        let indicator = Indicator::Ratio {
            bad: BadEvents::Errors(QueryTemplate::new(errors?)),
            total: QueryTemplate::new(total?),
        };
        return Some((grouped(indicator, &by), by));
    }
    if let Some(latency) = indicator.latency {
        let by = grouping(p, "spec.indicator.latency.grouping", &latency.grouping);
        let good = metric_rate(
            p,
            "spec.indicator.latency.success",
            latency.success.as_ref(),
        );
        let total = metric_rate(p, "spec.indicator.latency.total", latency.total.as_ref());
        let (good, total) = (good?, total?);
        let indicator = queries::recognise_latency(&good, &total).unwrap_or(Indicator::Ratio {
            bad: BadEvents::Good(QueryTemplate::new(good)),
            total: QueryTemplate::new(total),
        });
        return Some((grouped(indicator, &by), by));
    }
    if let Some(gauge) = indicator.bool_gauge {
        let by = grouping(p, "spec.indicator.bool_gauge.grouping", &gauge.grouping);
        let Some(metric) = &gauge.metric else {
            p.missing(
                "spec.indicator.bool_gauge.metric",
                "a selector of a gauge that is 1 when things are good, such as probe_success{job=\"web\"}",
            );
            return None;
        };
        return match queries::bool_gauge(&metric.value) {
            Ok((good, total)) => {
                let indicator = Indicator::Ratio {
                    bad: BadEvents::Good(good),
                    total,
                };
                Some((grouped(indicator, &by), by))
            }
            Err(why) => {
                p.at("spec.indicator.bool_gauge.metric", metric, why);
                None
            }
        };
    }
    if given == 0 {
        p.push(
            "spec.indicator",
            "has no indicator; give exactly one of ratio, latency or bool_gauge",
        );
    }
    None
}

/// Pyrra's burn-rate rows for `window`: its 28-day table scaled to the window, each window
/// rounded to the minute, with Pyrra's factors.
pub fn pyrra_windows(window: Window) -> Option<Vec<AlertWindow>> {
    let scaled = |divisor: u64| -> Option<Window> {
        // Round to the nearest minute, as Pyrra does.
        let minutes = (window.as_secs() as f64 / divisor as f64 / 60.0).round() as u64;
        (minutes > 0).then(|| Window::from_secs(minutes * 60))
    };
    let row = |severity, long: u64, short: u64, factor: f64| -> Option<AlertWindow> {
        Some(AlertWindow {
            severity,
            long: scaled(long)?,
            short: scaled(short)?,
            burn_rate_threshold: factor,
        })
    };
    // Divisors of the window: 28d / 672 = 1h, 28d / 8064 = 5m, and so on.
    Some(vec![
        row(Severity::Page, 672, 8_064, 14.0)?,
        row(Severity::Page, 112, 1_344, 7.0)?,
        row(Severity::Ticket, 28, 336, 2.0)?,
        row(Severity::Ticket, 7, 112, 1.0)?,
    ])
}

fn alerting(
    p: &mut Problems<'_>,
    alerting: PyrraAlerting,
    window: Option<Window>,
) -> Option<Alerting> {
    let name = match &alerting.name {
        None => None,
        Some(n) => match check_alert_name(&n.value) {
            Ok(()) => Some(n.value.clone()),
            Err(why) => {
                p.at("spec.alerting.name", n, why);
                return None;
            }
        },
    };
    if let Some(absent) = &alerting.absent
        && absent.value
    {
        p.at(
            "spec.alerting.absent",
            absent,
            "has no equivalent: burnguard has no alert for a missing metric (an SLO without data shows status no_data instead); remove it or set it to false",
        );
    }
    draft::refuse(
        p,
        "spec.alerting.absentName",
        &alerting.absent_name,
        "has no equivalent: burnguard has no alert for a missing metric; remove it",
    );
    if let Some(kind) = &alerting.burn_rate_type
        && kind.value != "static"
    {
        p.at(
            "spec.alerting.burnRateType",
            kind,
            format!(
                "`{}` has no equivalent: burnguard's burn-rate thresholds are static; remove it or set it to static",
                kind.value
            ),
        );
    }
    let off = alerting.disabled.as_ref().is_some_and(|d| d.value)
        || alerting.burnrates.as_ref().is_some_and(|b| !b.value);
    let window = window?;
    let windows = if off {
        Vec::new()
    } else {
        match pyrra_windows(window) {
            Some(rows) => rows,
            None => {
                p.push(
                    "spec.window",
                    format!(
                        "{window} is too short for Pyrra's alert windows (the shortest would be under a minute); use a longer window, or set spec.alerting.disabled"
                    ),
                );
                return None;
            }
        }
    };
    let mut alerting = draft::default_alerting(windows);
    if let Some(name) = name {
        alerting.name = name;
    }
    Some(alerting)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyrra_windows_scale_with_the_slo_window_as_pyrra_scales_them() {
        let rows = |w: &str| -> Vec<(String, String, f64)> {
            pyrra_windows(Window::parse(w).unwrap())
                .unwrap()
                .into_iter()
                .map(|r| {
                    (
                        r.long.to_string(),
                        r.short.to_string(),
                        r.burn_rate_threshold,
                    )
                })
                .collect()
        };
        let owned = |rows: &[(&str, &str, f64)]| -> Vec<(String, String, f64)> {
            rows.iter()
                .map(|(l, s, f)| (l.to_string(), s.to_string(), *f))
                .collect()
        };
        assert_eq!(
            rows("28d"),
            owned(&[
                ("1h", "5m", 14.0),
                ("6h", "30m", 7.0),
                ("1d", "2h", 2.0),
                ("4d", "6h", 1.0)
            ])
        );
        // 30 days: 30d/672 = 64.28m, 30d/8064 = 5.36m, rounded to the minute.
        assert_eq!(
            rows("30d"),
            owned(&[
                ("1h4m", "5m", 14.0),
                ("6h26m", "32m", 7.0),
                ("1d1h43m", "2h9m", 2.0),
                ("4d6h51m", "6h26m", 1.0)
            ])
        );
        assert!(pyrra_windows(Window::parse("1d").unwrap()).is_none());
    }
}
