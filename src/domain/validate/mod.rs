//! Turns a `burnguard.dev/v1` document into a validated [`Slo`], reporting every problem it
//! finds (not just the first) with its field path and line, and what would be accepted.
//!
//! Owns: defaults, ranges, cross-field rules (exactly one indicator, short < long <= window),
//! PromQL syntax checks after `{{.window}}` substitution, name uniqueness across a set.
//! Must not touch: files, Prometheus (a latency bucket's existence is checked at evaluation).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use promql_parser::parser::{self, Expr};
use serde_saphyr::Spanned;

mod remediation;

pub use remediation::{check_label_selector, check_playbook_references, validate_playbook};

use super::calendar::{CalendarPeriod, CalendarWindow};
use super::playbook::BudgetRule;
use super::policy::{
    AlertRoute, AlertWindow, Alerting, BadEvents, DEFAULT_MAX_GROUPS, Indicator, Objective,
    QueryTemplate, Severity, Slo, WINDOW_PLACEHOLDER, Window,
};
use super::problem::Problem;
use super::spec::SourceDocument;
use super::spec::v1::{
    AlertRouteSpec, AlertWindowSpec, AlertingSpec, IndicatorSpec, LatencySpec, SloDocument,
    SloSpec, WindowSpec, WindowsSpec,
};
use super::windows;

/// The SLO window when a policy gives none.
pub const DEFAULT_WINDOW: Window = Window::from_secs(30 * 86_400);
/// How long nothing must fire before an incident resolves, when a policy does not say.
pub const DEFAULT_RESOLVE_AFTER: Window = Window::from_secs(15 * 60);
/// The alert name when a policy gives none.
pub const DEFAULT_ALERT_NAME: &str = "ErrorBudgetBurn";
/// Labels burnguard sets itself on series and alerts; policies may not set them.
pub const RESERVED_LABELS: [&str; 5] =
    ["slo", "service", "severity", "long_window", "short_window"];

/// Collects problems for one document, turning parser-relative lines into file lines.
pub(crate) struct Problems<'a> {
    doc: &'a SourceDocument<'a>,
    found: Vec<Problem>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(doc: &'a SourceDocument<'a>) -> Self {
        Self {
            doc,
            found: Vec::new(),
        }
    }

    pub(crate) fn into_problems(self) -> Vec<Problem> {
        self.found
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub(crate) fn line<T>(&self, spanned: &Spanned<T>) -> Option<u64> {
        Some(self.doc.first_line + spanned.referenced.line().saturating_sub(1))
    }

    pub(crate) fn at<T>(&mut self, path: &str, spanned: &Spanned<T>, message: impl Into<String>) {
        let line = self.line(spanned);
        self.found.push(Problem::new(path, line, message));
    }

    pub(crate) fn missing(&mut self, path: &str, accepted: &str) {
        self.found
            .push(Problem::new(path, None, format!("is required; {accepted}")));
    }

    pub(crate) fn push(&mut self, path: &str, message: impl Into<String>) {
        self.found.push(Problem::new(path, None, message));
    }

    /// The document these problems are about.
    pub(crate) fn document(&self) -> &'a SourceDocument<'a> {
        self.doc
    }

    /// A problem found elsewhere (already located) joins this document's.
    pub(crate) fn extend(&mut self, problems: impl IntoIterator<Item = Problem>) {
        self.found.extend(problems);
    }
}

/// Validates one SLO document.
pub fn validate_slo(doc: &SourceDocument<'_>, slo: SloDocument) -> Result<Slo, Vec<Problem>> {
    let mut p = Problems {
        doc,
        found: Vec::new(),
    };
    let metadata = slo.metadata;
    let name = match metadata.as_ref().and_then(|m| m.name.as_ref()) {
        Some(name) => {
            if let Err(why) = check_slo_name(&name.value) {
                p.at("metadata.name", name, why);
            }
            Some(name.value.clone())
        }
        None => {
            p.missing(
                "metadata.name",
                "lowercase letters, digits and '-', such as checkout-availability",
            );
            None
        }
    };
    let labels = metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    check_labels(&mut p, "metadata.labels", &labels);

    let Some(spec) = slo.spec else {
        p.missing(
            "spec",
            "an SLO needs at least service, objective and indicator",
        );
        return Err(p.found);
    };
    let built = validate_spec(&mut p, spec);
    match (name, built) {
        (Some(name), Some(parts)) if p.found.is_empty() => Ok(Slo {
            name,
            service: parts.service,
            description: parts.description,
            labels: labels.into(),
            objective: parts.objective,
            window: parts.window,
            calendar: parts.calendar,
            indicator: parts.indicator,
            min_events: parts.min_events,
            schedule: parts.schedule,
            resolve_after: parts.resolve_after,
            budget_policy: parts.budget_policy,
            alerting: parts.alerting,
            group_by: parts.group_by,
            max_groups: parts.max_groups,
        }),
        _ => Err(p.found),
    }
}

/// The SLO window: a rolling duration, or a calendar period (with its nominal length, which
/// sizes the alert rows).
pub(crate) fn budget_window(spec: &WindowSpec) -> Result<(Window, Option<CalendarWindow>), String> {
    match spec {
        WindowSpec::Rolling(text) => Window::parse(text).map(|w| (w, None)).map_err(|why| {
            format!(
                "{why}; or give a calendar period: {{calendar: month, timeZone: Europe/Berlin}}"
            )
        }),
        WindowSpec::Calendar(c) => calendar_window(&c.calendar, c.time_zone.as_deref()),
    }
}

/// A calendar window from its period name and zone (UTC when none).
pub(crate) fn calendar_window(
    period: &str,
    zone: Option<&str>,
) -> Result<(Window, Option<CalendarWindow>), String> {
    let Some(period) = CalendarPeriod::parse(period) else {
        return Err(format!(
            "calendar `{period}` is not a period burnguard knows; expected week or month"
        ));
    };
    let calendar =
        CalendarWindow::new(period, zone.unwrap_or("UTC")).map_err(|e| format!("timeZone: {e}"))?;
    Ok((Window::from_secs(period.nominal_seconds()), Some(calendar)))
}

struct SpecParts {
    service: String,
    description: String,
    objective: Objective,
    window: Window,
    calendar: Option<CalendarWindow>,
    indicator: Indicator,
    min_events: u64,
    schedule: Option<String>,
    resolve_after: Window,
    budget_policy: Vec<BudgetRule>,
    alerting: Alerting,
    group_by: Vec<String>,
    max_groups: usize,
}

fn validate_spec(p: &mut Problems<'_>, spec: SloSpec) -> Option<SpecParts> {
    let service = match &spec.service {
        Some(s) if !s.value.trim().is_empty() => Some(s.value.trim().to_string()),
        Some(s) => {
            p.at(
                "spec.service",
                s,
                "is empty; name the service this SLO belongs to",
            );
            None
        }
        None => {
            p.missing(
                "spec.service",
                "name the service this SLO belongs to, such as checkout",
            );
            None
        }
    };
    let objective = match &spec.objective {
        Some(o) => {
            let parsed = Objective::from_percent(o.value);
            if parsed.is_none() {
                p.at(
                    "spec.objective",
                    o,
                    format!(
                        "{} is out of range; expected a percentage strictly between 0 and 100, such as 99.9",
                        o.value
                    ),
                );
            }
            parsed
        }
        None => {
            p.missing(
                "spec.objective",
                "a percentage strictly between 0 and 100, such as 99.9",
            );
            None
        }
    };
    let (window, calendar) = match &spec.window {
        None => (Some(DEFAULT_WINDOW), Some(None)),
        Some(w) => match budget_window(&w.value) {
            Ok((window, calendar)) => (Some(window), Some(calendar)),
            Err(why) => {
                p.at("spec.window", w, why);
                (None, None)
            }
        },
    };
    let min_events = spec.min_events.as_ref().map_or(0, |m| m.value);
    let indicator = match spec.indicator {
        Some(ind) => validate_indicator(p, ind),
        None => {
            p.missing("spec.indicator", "exactly one of ratio, latency or raw");
            None
        }
    };
    if let (Some(Indicator::Raw { .. }), Some(m)) = (&indicator, &spec.min_events)
        && m.value > 0
    {
        p.at(
            "spec.minEvents",
            m,
            "needs event counts, which a raw indicator does not have; use a ratio or latency indicator, or drop minEvents",
        );
    }
    let budget_policy = match spec.budget_policy {
        None => Some(Vec::new()),
        Some(rules) => remediation::budget_policy(p, rules),
    };
    let schedule = match &spec.schedule {
        None => Some(None),
        Some(text) => match cron::Schedule::from_str(text.value.trim()) {
            Ok(_) => Some(Some(text.value.trim().to_string())),
            Err(why) => {
                p.at(
                    "spec.schedule",
                    text,
                    format!("is not a cron expression ({why}); expected six or seven fields, seconds first, such as `0 */5 * * * *`"),
                );
                None
            }
        },
    };
    let resolve_after = match &spec.resolve_after {
        None => Some(DEFAULT_RESOLVE_AFTER),
        Some(text) => match Window::parse(&text.value) {
            Ok(w) => Some(w),
            Err(why) => {
                p.at("spec.resolveAfter", text, why.to_string());
                None
            }
        },
    };
    let alerting = validate_alerting(p, spec.alerting, window);
    let group_by = group_by(p, spec.group_by.as_ref());
    // A grouped SLO's rules act per group, through its group's incident; what cannot yet be
    // told apart per group is refused.
    if let (Some(groups), Some(rules)) = (&group_by, &budget_policy)
        && !groups.is_empty()
    {
        for (i, rule) in rules.iter().enumerate() {
            if matches!(rule.when, super::playbook::Trigger::BurnRateAbove { .. }) {
                p.push(
                    &format!("spec.budgetPolicy[{i}].when.burnRateAbove"),
                    "is not supported on a grouped SLO yet (its check reads the SLO as one series); use alert or budgetRemainingBelow",
                );
            }
            if matches!(rule.then, super::playbook::Response::Freeze(_)) {
                p.push(
                    &format!("spec.budgetPolicy[{i}].freeze"),
                    "is not supported on a grouped SLO yet (a rule holds one freeze, not one per group); run a playbook with a freeze step instead",
                );
            }
        }
    }
    let max_groups = spec
        .max_groups
        .as_ref()
        .map_or(DEFAULT_MAX_GROUPS, |m| m.value as usize);
    if let Some(m) = &spec.max_groups
        && (m.value == 0 || m.value > 10_000)
    {
        p.at(
            "spec.maxGroups",
            m,
            format!("{} is out of range; expected 1 to 10000", m.value),
        );
    }
    // A latency indicator is built by burnguard: it aggregates by the groups itself.
    let indicator = match (indicator, &group_by) {
        (
            Some(Indicator::Latency {
                histogram,
                matchers,
                threshold,
            }),
            Some(groups),
        ) if !groups.is_empty() => {
            let (good, total) =
                super::sli::latency_templates_by(&histogram, &matchers, threshold, groups);
            Some(Indicator::Ratio {
                bad: BadEvents::Good(good),
                total,
            })
        }
        (other, _) => other,
    };
    Some(SpecParts {
        service: service?,
        description: spec.description.unwrap_or_default(),
        objective: objective?,
        window: window?,
        calendar: calendar?,
        indicator: indicator?,
        min_events,
        schedule: schedule?,
        resolve_after: resolve_after?,
        budget_policy: budget_policy?,
        alerting: alerting?,
        group_by: group_by?,
        max_groups,
    })
}

/// Why `name` cannot group an SLO, if it cannot: not a label name, or one burnguard sets.
pub(crate) fn group_label_problem(name: &str) -> Option<String> {
    if !is_label_name(name) || name.starts_with("__") {
        Some(format!("`{name}` is not a Prometheus label name"))
    } else if RESERVED_LABELS.contains(&name) || name == "le" {
        Some(format!(
            "`{name}` is a label burnguard sets itself (reserved: {}, le)",
            RESERVED_LABELS.join(", ")
        ))
    } else {
        None
    }
}

/// `groupBy`: label names, none of burnguard's own, none twice.
fn group_by(p: &mut Problems<'_>, spec: Option<&Spanned<Vec<String>>>) -> Option<Vec<String>> {
    let Some(spec) = spec else {
        return Some(Vec::new());
    };
    let mut seen = Vec::new();
    let mut ok = true;
    for (i, name) in spec.value.iter().enumerate() {
        let path = format!("spec.groupBy[{i}]");
        let why = if let Some(why) = group_label_problem(name) {
            Some(why)
        } else if seen.contains(name) {
            Some(format!("`{name}` is listed twice"))
        } else {
            None
        };
        if let Some(why) = why {
            p.at(&path, spec, why);
            ok = false;
        }
        seen.push(name.clone());
    }
    ok.then_some(seen)
}

fn validate_indicator(p: &mut Problems<'_>, ind: IndicatorSpec) -> Option<Indicator> {
    let given = [
        ind.ratio.is_some(),
        ind.latency.is_some(),
        ind.raw.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        p.push(
            "spec.indicator",
            format!("has {given} indicators; give exactly one of ratio, latency or raw"),
        );
        return None;
    }
    if let Some(ratio) = ind.ratio {
        let total = query(p, "spec.indicator.ratio.total", ratio.total.as_ref());
        let bad = match (&ratio.errors, &ratio.good) {
            (Some(_), Some(_)) => {
                p.push(
                    "spec.indicator.ratio",
                    "has both errors and good; give one of them (bad events or good events) with total",
                );
                None
            }
            (Some(errors), None) => {
                query(p, "spec.indicator.ratio.errors", Some(errors)).map(BadEvents::Errors)
            }
            (None, Some(good)) => {
                query(p, "spec.indicator.ratio.good", Some(good)).map(BadEvents::Good)
            }
            (None, None) => {
                p.missing(
                    "spec.indicator.ratio.errors",
                    "a PromQL rate of failed events with {{.window}} (or give `good` instead)",
                );
                None
            }
        };
        return Some(Indicator::Ratio {
            bad: bad?,
            total: total?,
        });
    }
    if let Some(latency) = ind.latency {
        return validate_latency(p, latency);
    }
    let raw = ind.raw?;
    let error_ratio = query(p, "spec.indicator.raw.errorRatio", raw.error_ratio.as_ref())?;
    Some(Indicator::Raw { error_ratio })
}

/// A query template: present, with `{{.window}}`, and valid PromQL once substituted.
fn query(
    p: &mut Problems<'_>,
    path: &str,
    text: Option<&Spanned<String>>,
) -> Option<QueryTemplate> {
    let Some(text) = text else {
        p.missing(
            path,
            "a PromQL expression with {{.window}} where the range goes",
        );
        return None;
    };
    match check_query_template(&text.value) {
        Ok(()) => Some(QueryTemplate::new(text.value.trim())),
        Err(why) => {
            p.at(path, text, why);
            None
        }
    }
}

/// Checks a query template on its own. Public for importers that build templates.
pub fn check_query_template(template: &str) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err("is empty; expected a PromQL expression with {{.window}}".into());
    }
    if !template.contains(WINDOW_PLACEHOLDER) {
        return Err(
            "has no {{.window}} placeholder; write the range as [{{.window}}], e.g. rate(http_requests_total[{{.window}}])"
                .into(),
        );
    }
    let rendered = template.replace(WINDOW_PLACEHOLDER, "5m");
    if rendered.contains("{{") {
        return Err(
            "has a template placeholder other than {{.window}} (names are case-sensitive)".into(),
        );
    }
    parser::parse(&rendered)
        .map(|_| ())
        .map_err(|why| format!("is not valid PromQL after {{{{.window}}}} becomes 5m: {why}"))
}

pub(crate) fn validate_latency(p: &mut Problems<'_>, latency: LatencySpec) -> Option<Indicator> {
    let histogram = match &latency.histogram {
        None => {
            p.missing(
                "spec.indicator.latency.histogram",
                "the histogram's base name, such as http_request_duration_seconds",
            );
            None
        }
        Some(h) => match check_histogram_name(&h.value) {
            Ok(()) => Some(h.value.clone()),
            Err(why) => {
                p.at("spec.indicator.latency.histogram", h, why);
                None
            }
        },
    };
    let matchers = match &latency.selector {
        None => Some(String::new()),
        Some(s) => match selector_matchers(&s.value) {
            Ok(m) => Some(m),
            Err(why) => {
                p.at("spec.indicator.latency.selector", s, why);
                None
            }
        },
    };
    let threshold = match &latency.threshold {
        None => {
            p.missing(
                "spec.indicator.latency.threshold",
                "seconds, an existing `le` bucket boundary of the histogram, such as 0.3",
            );
            None
        }
        Some(t) if t.value.is_finite() && t.value > 0.0 => Some(t.value),
        Some(t) => {
            p.at(
                "spec.indicator.latency.threshold",
                t,
                format!(
                    "{} is not a bucket boundary; expected a positive number of seconds, such as 0.3",
                    t.value
                ),
            );
            None
        }
    };
    Some(Indicator::Latency {
        histogram: histogram?,
        matchers: matchers?,
        threshold: threshold?,
    })
}

fn check_histogram_name(name: &str) -> Result<(), String> {
    if !is_metric_name(name) {
        return Err(format!(
            "`{name}` is not a metric name; expected letters, digits, '_' and ':', not starting with a digit"
        ));
    }
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return Err(format!(
                "`{name}` ends in {suffix}; give the base name `{base}` (burnguard adds _bucket and _count)"
            ));
        }
    }
    Ok(())
}

/// `{job="search"}` -> `job="search"`, checked by parsing it as a vector selector.
pub(crate) fn selector_matchers(selector: &str) -> Result<String, String> {
    let trimmed = selector.trim();
    let inner = trimmed
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| {
            format!("`{trimmed}` is not a label selector; expected label matchers in braces, such as {{job=\"search\"}}")
        })?
        .trim();
    if inner.is_empty() {
        return Ok(String::new());
    }
    match parser::parse(&format!("selector_check{{{inner}}}")) {
        Ok(Expr::VectorSelector(vs)) => {
            if vs.matchers.matchers.iter().any(|m| m.name == "le") {
                return Err(
                    "matches on `le`; leave it out, burnguard picks the bucket from threshold"
                        .into(),
                );
            }
            if vs.matchers.matchers.iter().any(|m| m.name == "__name__") {
                return Err("matches on `__name__`; the metric comes from histogram".into());
            }
            if !vs.matchers.or_matchers.is_empty() {
                return Err("uses `or` between matchers; give one set of matchers".into());
            }
            Ok(inner.to_string())
        }
        Ok(_) => Err(format!("`{trimmed}` is not a plain label selector")),
        Err(why) => Err(format!("`{trimmed}` is not a valid label selector: {why}")),
    }
}

fn validate_alerting(
    p: &mut Problems<'_>,
    alerting: Option<AlertingSpec>,
    slo_window: Option<Window>,
) -> Option<Alerting> {
    let alerting = alerting.unwrap_or_default();
    let name = match &alerting.name {
        None => Some(DEFAULT_ALERT_NAME.to_string()),
        Some(n) => match check_alert_name(&n.value) {
            Ok(()) => Some(n.value.clone()),
            Err(why) => {
                p.at("spec.alerting.name", n, why);
                None
            }
        },
    };
    let labels = alerting.labels.unwrap_or_default();
    check_labels(p, "spec.alerting.labels", &labels);
    let annotations = alerting.annotations.unwrap_or_default();
    check_annotations(p, "spec.alerting.annotations", &annotations);
    let mut route = |severity: &str, spec: Option<AlertRouteSpec>| {
        let spec = spec.unwrap_or_default();
        let route = AlertRoute {
            labels: spec.labels.unwrap_or_default(),
            annotations: spec.annotations.unwrap_or_default(),
        };
        check_route(p, &format!("spec.alerting.{severity}"), &route);
        route
    };
    let page = route("page", alerting.page);
    let ticket = route("ticket", alerting.ticket);
    let windows = match alerting.windows {
        None => google_windows(p, "spec.window", slo_window),
        Some(WindowsSpec::Catalogue(name)) if name == "google" => {
            google_windows(p, "spec.window", slo_window)
        }
        Some(WindowsSpec::Catalogue(name)) if name == "none" => Some(Vec::new()),
        Some(WindowsSpec::Catalogue(other)) => {
            p.push(
                "spec.alerting.windows",
                format!("unknown catalogue `{other}`; expected `google`, `none` (no alerts) or a list of {{severity, long, short, budgetPercent}}"),
            );
            None
        }
        Some(WindowsSpec::List(rows)) => alert_window_list(p, rows, slo_window),
    };
    Some(Alerting {
        name: name?,
        windows: windows?,
        labels,
        annotations,
        page,
        ticket,
    })
}

/// An alert name Prometheus accepts.
pub(crate) fn check_alert_name(name: &str) -> Result<(), String> {
    if is_label_name(name) {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a usable alert name; expected letters, digits and '_', such as ErrorBudgetBurn"
        ))
    }
}

/// Annotation names: letters, digits and '_'.
pub(crate) fn check_annotations(
    p: &mut Problems<'_>,
    path: &str,
    annotations: &BTreeMap<String, String>,
) {
    for key in annotations.keys() {
        if !is_label_name(key) {
            p.push(
                &format!("{path}.{key}"),
                "is not a valid annotation name; expected letters, digits and '_'",
            );
        }
    }
}

/// The labels and annotations of one severity's alerts. Like the SLO's own labels, except
/// that `severity` may be set: it replaces burnguard's `page` or `ticket` on those alerts.
pub(crate) fn check_route(p: &mut Problems<'_>, path: &str, route: &AlertRoute) {
    let mut labels = route.labels.clone();
    labels.remove("severity");
    check_labels(p, &format!("{path}.labels"), &labels);
    check_annotations(p, &format!("{path}.annotations"), &route.annotations);
}

/// The workbook catalogue, if the SLO window is long enough to hold its longest window;
/// a problem at `window_path` otherwise.
pub(crate) fn google_windows(
    p: &mut Problems<'_>,
    window_path: &str,
    slo_window: Option<Window>,
) -> Option<Vec<AlertWindow>> {
    let slo_window = slo_window?;
    let longest = windows::google_longest_window();
    if slo_window < longest {
        p.push(
            window_path,
            format!(
                "{slo_window} is shorter than the {longest} window of the google alert catalogue; use a window of at least {longest} or list spec.alerting.windows yourself"
            ),
        );
        return None;
    }
    Some(windows::resolve(&windows::GOOGLE, slo_window))
}

fn alert_window_list(
    p: &mut Problems<'_>,
    rows: Vec<AlertWindowSpec>,
    slo_window: Option<Window>,
) -> Option<Vec<AlertWindow>> {
    if rows.is_empty() {
        p.push(
            "spec.alerting.windows",
            "is an empty list; give at least one {severity, long, short, budgetPercent}, or `google`",
        );
        return None;
    }
    let mut resolved = Vec::new();
    let mut ok = true;
    for (i, row) in rows.into_iter().enumerate() {
        match alert_window_row(p, &format!("spec.alerting.windows[{i}]"), row, slo_window) {
            Some(w) => resolved.push(w),
            None => ok = false,
        }
    }
    ok.then_some(resolved)
}

fn alert_window_row(
    p: &mut Problems<'_>,
    path: &str,
    row: AlertWindowSpec,
    slo_window: Option<Window>,
) -> Option<AlertWindow> {
    let severity = match &row.severity {
        None => {
            p.missing(&format!("{path}.severity"), "page or ticket");
            None
        }
        Some(s) => match s.value.as_str() {
            "page" => Some(Severity::Page),
            "ticket" => Some(Severity::Ticket),
            other => {
                p.at(
                    &format!("{path}.severity"),
                    s,
                    format!("`{other}` is not a severity; expected page or ticket"),
                );
                None
            }
        },
    };
    let mut window = |field: &str, value: &Option<Spanned<String>>| -> Option<Window> {
        let field_path = format!("{path}.{field}");
        match value {
            None => {
                p.missing(&field_path, "a duration such as 1h");
                None
            }
            Some(v) => match Window::parse(&v.value) {
                Ok(w) => Some(w),
                Err(why) => {
                    p.at(&field_path, v, why.to_string());
                    None
                }
            },
        }
    };
    let long = window("long", &row.long);
    let short = window("short", &row.short);
    if let (Some(long), Some(short)) = (long, short)
        && short >= long
    {
        p.push(
            &format!("{path}.short"),
            format!("{short} is not shorter than long ({long}); the short window confirms the burn is still going on, so it must be shorter (1/12 of long is usual)"),
        );
    }
    if let (Some(long), Some(slo_window)) = (long, slo_window)
        && long > slo_window
    {
        p.push(
            &format!("{path}.long"),
            format!(
                "{long} is longer than the SLO window ({slo_window}); use at most {slo_window}"
            ),
        );
    }
    let threshold = match (&row.budget_percent, &row.burn_rate) {
        (Some(_), Some(_)) => {
            p.push(
                path,
                "has both budgetPercent and burnRate; give one of them",
            );
            None
        }
        (None, None) => {
            p.missing(
                &format!("{path}.budgetPercent"),
                "the percent of the budget this row lets the long window spend, such as 2 (or give burnRate)",
            );
            None
        }
        (Some(pct), None) => {
            if pct.value.is_finite() && pct.value > 0.0 && pct.value <= 100.0 {
                match (slo_window, long) {
                    (Some(sw), Some(l)) => {
                        Some(windows::burn_rate_threshold(pct.value / 100.0, sw, l))
                    }
                    _ => None,
                }
            } else {
                p.at(
                    &format!("{path}.budgetPercent"),
                    pct,
                    format!(
                        "{} is out of range; expected a percent in (0, 100], such as 2",
                        pct.value
                    ),
                );
                None
            }
        }
        (None, Some(rate)) => {
            if rate.value.is_finite() && rate.value > 0.0 {
                Some(rate.value)
            } else {
                p.at(
                    &format!("{path}.burnRate"),
                    rate,
                    format!(
                        "{} is not a burn rate; expected a positive factor, such as 14.4",
                        rate.value
                    ),
                );
                None
            }
        }
    };
    if let (Some(long), Some(short)) = (long, short)
        && short >= long
    {
        return None;
    }
    Some(AlertWindow {
        severity: severity?,
        long: long?,
        short: short?,
        burn_rate_threshold: threshold?,
    })
}

pub(crate) fn check_labels(p: &mut Problems<'_>, path: &str, labels: &BTreeMap<String, String>) {
    for key in labels.keys() {
        let key_path = format!("{path}.{key}");
        if !is_label_name(key) || key.starts_with("__") {
            p.push(
                &key_path,
                "is not a valid Prometheus label name; expected letters, digits and '_', not starting with a digit or '__'",
            );
        } else if RESERVED_LABELS.contains(&key.as_str()) {
            p.push(
                &key_path,
                format!(
                    "is set by burnguard itself; choose another name (reserved: {})",
                    RESERVED_LABELS.join(", ")
                ),
            );
        }
    }
}

pub(crate) fn check_slo_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name; expected 1-63 lowercase letters, digits and '-', not starting or ending with '-'"
        ))
    }
}

pub(crate) fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Where an SLO was defined, for messages about the whole set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub source: String,
    pub document: usize,
}

/// Problems for names used more than once across everything loaded: `(origin, problem)` for
/// each later use, pointing back at the first.
pub fn duplicate_names<'a>(
    slos: impl IntoIterator<Item = (&'a Origin, &'a Slo)>,
) -> Vec<(Origin, Problem)> {
    let mut first_seen: HashMap<&str, &Origin> = HashMap::new();
    let mut problems = Vec::new();
    for (origin, slo) in slos {
        match first_seen.get(slo.name.as_str()) {
            Some(first) => {
                let mut problem = Problem::new(
                    "metadata.name",
                    None,
                    format!(
                        "`{}` is already defined in {} (document {}); SLO names must be unique",
                        slo.name, first.source, first.document
                    ),
                );
                problem.document = origin.document;
                problems.push((origin.clone(), problem));
            }
            None => {
                first_seen.insert(&slo.name, origin);
            }
        }
    }
    problems
}
