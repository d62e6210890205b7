//! Prometheus recording and alerting rules for a set of SLOs, as data ready to serialize.
//!
//! Per SLO, one rule group `burnguard-<slo>` holding, in evaluation order:
//! 1. base series over 5m: `burnguard:sli_errors:rate5m` and `burnguard:sli_total:rate5m`
//!    (per-second bad and total events; ratio and latency indicators only);
//! 2. `burnguard:sli_error:ratio_rate<W>` for every window the SLO reads:
//!    - windows up to 6h straight from the indicator's queries (these decide pages, so they
//!      are exact and fresh);
//!    - windows over 6h up to 1d derived from the 5m base series as
//!      `avg_over_time(errors[W]) / avg_over_time(total[W])`. Both averages run over the same
//!      evaluation timestamps, so this is a traffic-weighted ratio (not an average of ratios)
//!      and costs one sample per evaluation per series instead of a raw range query over W.
//!      Its error against `increase()` over raw counters: events within 5m of either edge of
//!      the window count partially (the window is shifted back by 2.5m on average), at most
//!      5m/W of the events (0.35% of them for 1d);
//!    - windows over 1d (3d, the SLO window) derived the same way from the hourly series
//!      (below): `avg_over_time` over W of a series with one sample an hour reads W/1h samples
//!      (720 for 30d) instead of one per evaluation (43,200 at a 1m interval), which is what
//!      made the SLO window the most expensive rule by far. The hourly samples tile the
//!      window exactly, but it ends at the last hourly evaluation, so it lags by under an
//!      hour: at most 1h/W of the events (1.4% for 3d, 0.14% for 30d) count late.
//!    - common to the derived windows: gaps in rule evaluation drop the events of the missed
//!      samples, and a window only covers history since the rules were loaded (backfill with
//!      `promtool tsdb create-blocks-from rules`; the 3d and 30d series appear with the first
//!      hourly evaluation, within an hour of loading the rules);
//!    - raw indicators have no event counts, so their long windows are the time average of
//!      the 5m ratio, which over-weights quiet periods: prefer ratio or latency indicators.
//! 3. `burnguard:slo_objective:ratio` and `burnguard:slo_error_budget_remaining:ratio`, so
//!    dashboards need no constants;
//! 4. one alert per alert row, firing when both of its windows exceed `threshold * budget`.
//!
//! and, when the SLO has a window over 1d and counts events, a second group
//! `burnguard-<slo>-hourly` evaluated every hour (`interval: 1h`):
//! `burnguard:sli_errors:rate1h` and `burnguard:sli_total:rate1h`, the indicator's per-second
//! bad and total events over the hour, straight from its queries (so they depend on no other
//! rule). Nothing reads them at an instant: only `avg_over_time` over a day or more.
//!
//! A calendar SLO (budget per week or month in a time zone) records no SLO-window ratio;
//! instead, since PromQL knows no time zones:
//! - once per calendar (`month` or `week` in one zone), however many SLOs share it, in a
//!   group of its own: `burnguard:calendar_period_run_start:timestamp_seconds` and
//!   `burnguard:calendar_period_length:seconds` (labels `calendar`, `time_zone`): the start of
//!   the current run of equal-length periods and their length, from the step table burnguard
//!   computes with the zone database ([`CalendarWindow::step_table`]), each a sum of
//!   `delta_i * (time() >= bool s_i)` over the table. Weeks in a zone without daylight saving
//!   are one step and each DST change adds two; months take one per month. The table covers
//!   [`PERIOD_TABLE_FROM`] to [`PERIOD_TABLE_UNTIL`]; outside it the series are absent (no
//!   data, never a wrong period). Cost, measured on Prometheus 2.42: about 9 ms per
//!   evaluation for each of the two month series (120 terms), under 2 ms for weeks; no series
//!   is read. Shared, so 10,000 SLOs on one calendar pay it once, not 10,000 times.
//! - per SLO, `burnguard:slo_period_length:seconds` (the calendar's, with the SLO's labels)
//!   and the rules below. The shared series come from another group, so they can be one
//!   evaluation interval old; the start stays exact (a run's start plus whole lengths lands on
//!   the next period's start too), while for one interval after a step the length and the end
//!   can still be the previous period's (the budget's elapsed share is then off by under
//!   interval/length).
//! - `burnguard:slo_period_start:timestamp_seconds` = `run + floor((time() - run) / length) * length`
//!   and `..._end:...` = start + length.
//! - `burnguard:sli_error:ratio_period`: bad over total events since the period start, from
//!   the 5m base series through a `[32d:5m]` subquery keeping the steps whose 5m range lies
//!   in the period (`time() - 300 >= start @ end()`): at most 9,216 steps of two recorded
//!   series per evaluation, cheaper than the 30d `avg_over_time` of a rolling SLO (43,200
//!   samples of each at a 1m interval). The first 5 minutes of a period count in neither it
//!   nor the one before.
//! - `burnguard:slo_error_budget_remaining:ratio` = `1 - ratio / budget * elapsed / length`
//!   (see `burn::period_budget_remaining`).
//!
//! Every series carries `slo`, `service` and the SLO's `metadata.labels`.
//!
//! Owns: rule names, expressions and alert wording. Must not touch: I/O.

use std::collections::BTreeMap;

use serde::Serialize;

use super::calendar::CalendarWindow;
use super::policy::{AlertWindow, BASE_WINDOW, Indicator, Severity, Slo, Window};
use super::sli::{self, promql_number};

/// Windows longer than this are derived from the 5m base series.
pub const DIRECT_WINDOW_LIMIT: Window = Window::from_secs(6 * 3_600);
/// Windows longer than this are derived from the hourly series.
pub const BASE_WINDOW_LIMIT: Window = Window::from_secs(86_400);
/// The window of the hourly series, and how often their group is evaluated.
pub const HOURLY_WINDOW: Window = Window::from_secs(3_600);

/// A Prometheus rule file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleFile {
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleGroup {
    pub name: String,
    /// How often Prometheus evaluates the group; its global `evaluation_interval` when `None`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "interval_text"
    )]
    pub interval: Option<Window>,
    pub rules: Vec<Rule>,
}

/// A group's interval in Prometheus duration notation (`1h`).
fn interval_text<S: serde::Serializer>(
    interval: &Option<Window>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match interval {
        Some(window) => serializer.serialize_str(&window.to_string()),
        None => serializer.serialize_none(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Rule {
    Recording {
        record: String,
        expr: String,
        labels: BTreeMap<String, String>,
    },
    Alerting {
        alert: String,
        expr: String,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    },
}

/// Recorded error ratio over `window`.
pub fn error_ratio_series(window: Window) -> String {
    format!("burnguard:sli_error:ratio_rate{window}")
}

pub const BAD_RATE_SERIES: &str = "burnguard:sli_errors:rate5m";
pub const TOTAL_RATE_SERIES: &str = "burnguard:sli_total:rate5m";
/// Per-second bad events over the hour, recorded once an hour (see the module docs).
pub const HOURLY_BAD_RATE_SERIES: &str = "burnguard:sli_errors:rate1h";
/// Per-second events over the hour, recorded once an hour.
pub const HOURLY_TOTAL_RATE_SERIES: &str = "burnguard:sli_total:rate1h";
pub const OBJECTIVE_SERIES: &str = "burnguard:slo_objective:ratio";
pub const BUDGET_REMAINING_SERIES: &str = "burnguard:slo_error_budget_remaining:ratio";
/// A calendar SLO's error ratio over its period so far.
pub const PERIOD_RATIO_SERIES: &str = "burnguard:sli_error:ratio_period";
/// The start of a calendar's current run of equal-length periods (see the module docs);
/// one series per calendar, labelled `calendar` and `time_zone`.
pub const CALENDAR_RUN_START_SERIES: &str = "burnguard:calendar_period_run_start:timestamp_seconds";
/// A calendar's current period length, one series per calendar.
pub const CALENDAR_LENGTH_SERIES: &str = "burnguard:calendar_period_length:seconds";
/// An SLO's current period length (its calendar's).
pub const PERIOD_LENGTH_SERIES: &str = "burnguard:slo_period_length:seconds";
pub const PERIOD_START_SERIES: &str = "burnguard:slo_period_start:timestamp_seconds";
pub const PERIOD_END_SERIES: &str = "burnguard:slo_period_end:timestamp_seconds";
/// The calendar rules know periods from 2025-01-01 to 2035-01-01 (UTC): fixed, so the same
/// policy always gives the same rules, and short, because Prometheus's cost per evaluation
/// grows faster than the table (see the module docs).
pub const PERIOD_TABLE_FROM: i64 = 1_735_689_600;
pub const PERIOD_TABLE_UNTIL: i64 = 2_051_222_400;

/// The label of [`OBJECTIVE_SERIES`] that fingerprints the rules recording an SLO's series.
pub const RULES_HASH_LABEL: &str = "burnguard_rules_hash";

/// A fingerprint of everything that shapes an SLO's recorded series: every recording rule's
/// name, expression and labels (so its queries, windows and `minEvents`) and the objective.
/// `auto` mode reads the recorded series only when the loaded rules carry the fingerprint of
/// the policy as it is now; any edit makes them stale until the rules are regenerated.
pub fn rules_fingerprint(slo: &Slo) -> String {
    let group = rule_group(slo);
    group
        .rules
        .iter()
        .find_map(|rule| match rule {
            Rule::Recording { record, labels, .. } if record == OBJECTIVE_SERIES => {
                labels.get(RULES_HASH_LABEL).cloned()
            }
            _ => None,
        })
        .unwrap_or_default()
}

fn rules_fingerprint_of(recording: &[Rule], slo: &Slo) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for rule in recording {
        if let Rule::Recording {
            record,
            expr,
            labels,
        } = rule
        {
            hasher.update(record.as_bytes());
            hasher.update([0]);
            hasher.update(expr.as_bytes());
            hasher.update([0]);
            for (k, v) in labels {
                hasher.update(k.as_bytes());
                hasher.update([1]);
                hasher.update(v.as_bytes());
                hasher.update([0]);
            }
        }
    }
    hasher.update(promql_number(slo.objective.ratio()).as_bytes());
    hex::encode(&hasher.finalize()[..8])
}

/// Rules for every SLO, one group each, in the order given, after one group per calendar
/// the calendar SLOs share.
pub fn rule_file(slos: &[Slo]) -> RuleFile {
    let calendars: BTreeMap<(&str, &str), &CalendarWindow> = slos
        .iter()
        .filter_map(|slo| slo.calendar.as_ref())
        .map(|c| ((c.period.as_str(), c.zone_name.as_str()), c))
        .collect();
    RuleFile {
        groups: calendars
            .values()
            .filter_map(|c| calendar_group(c))
            .chain(slos.iter().flat_map(rule_groups))
            .collect(),
    }
}

/// The period bounds of one calendar, shared by every SLO on it (see the module docs); `None`
/// when the table knows no period of it.
pub fn calendar_group(calendar: &CalendarWindow) -> Option<RuleGroup> {
    let steps = calendar
        .step_table(PERIOD_TABLE_FROM, PERIOD_TABLE_UNTIL)
        .unwrap_or_default();
    let first = steps.first()?;
    // Sums of steps: each term adds the change at its start once `time()` has passed it.
    let step_sum = |value: &dyn Fn(&crate::domain::calendar::PeriodStep) -> i64| {
        let mut expr = value(first).to_string();
        for pair in steps.windows(2) {
            let delta = value(&pair[1]) - value(&pair[0]);
            if delta != 0 {
                let sign = if delta < 0 { '-' } else { '+' };
                expr.push_str(&format!(
                    " {sign} {} * (time() >= bool {})",
                    delta.abs(),
                    pair[1].start
                ));
            }
        }
        expr
    };
    let within = format!(
        "and on() ((vector(time()) >= {}) < {})",
        first.start, PERIOD_TABLE_UNTIL
    );
    let labels = BTreeMap::from([
        ("calendar".to_string(), calendar.period.as_str().to_string()),
        ("time_zone".to_string(), calendar.zone_name.clone()),
    ]);
    let record = |record: &str, expr: String| Rule::Recording {
        record: record.into(),
        expr,
        labels: labels.clone(),
    };
    Some(RuleGroup {
        interval: None,
        name: format!(
            "burnguard-calendar-{}-{}",
            calendar.period.as_str(),
            calendar.zone_name
        ),
        rules: vec![
            record(
                CALENDAR_RUN_START_SERIES,
                format!("vector({}) {within}", step_sum(&|s| s.start)),
            ),
            record(
                CALENDAR_LENGTH_SERIES,
                format!("vector({}) {within}", step_sum(&|s| s.length)),
            ),
        ],
    })
}

/// The selector of a calendar's shared series.
fn calendar_selector(calendar: &CalendarWindow) -> String {
    format!(
        "{{calendar=\"{}\",time_zone=\"{}\"}}",
        calendar.period.as_str(),
        calendar.zone_name
    )
}

/// The rule groups of one SLO: [`rule_group`], then [`hourly_group`] when it has one.
pub fn rule_groups(slo: &Slo) -> Vec<RuleGroup> {
    std::iter::once(rule_group(slo))
        .chain(hourly_group(slo))
        .collect()
}

/// Whether an SLO's windows over 1d come from the hourly series: those of an indicator that
/// counts events (see the module docs).
fn reads_hourly(slo: &Slo) -> bool {
    counts_events(slo) && slo.windows().iter().any(|&w| w > BASE_WINDOW_LIMIT)
}

fn counts_events(slo: &Slo) -> bool {
    !matches!(slo.indicator, Indicator::Raw { .. })
}

/// The hourly series of one SLO, in a group evaluated once an hour; `None` when no window
/// reads them.
pub fn hourly_group(slo: &Slo) -> Option<RuleGroup> {
    if !reads_hourly(slo) {
        return None;
    }
    Some(RuleGroup {
        name: format!("burnguard-{}-hourly", slo.name),
        interval: Some(HOURLY_WINDOW),
        rules: hourly_rules(slo),
    })
}

fn hourly_rules(slo: &Slo) -> Vec<Rule> {
    let labels = series_labels(slo);
    let record = |record: &str, expr: Option<String>| Rule::Recording {
        record: record.into(),
        expr: expr.unwrap_or_default(),
        labels: labels.clone(),
    };
    vec![
        record(
            HOURLY_BAD_RATE_SERIES,
            sli::bad_rate(&slo.indicator, HOURLY_WINDOW),
        ),
        record(
            HOURLY_TOTAL_RATE_SERIES,
            sli::total_rate(&slo.indicator, HOURLY_WINDOW),
        ),
    ]
}

/// The error ratio over a window longer than [`DIRECT_WINDOW_LIMIT`], from the recorded
/// rates: the 5m ones up to [`BASE_WINDOW_LIMIT`], the hourly ones beyond.
fn derived_error_ratio(slo: &Slo, window: Window, selector: &str) -> String {
    if !counts_events(slo) {
        return format!(
            "avg_over_time({}{selector}[{window}])",
            error_ratio_series(BASE_WINDOW)
        );
    }
    let (bad, total) = if window > BASE_WINDOW_LIMIT {
        (HOURLY_BAD_RATE_SERIES, HOURLY_TOTAL_RATE_SERIES)
    } else {
        (BAD_RATE_SERIES, TOTAL_RATE_SERIES)
    };
    sli::ratio_of_rates(
        &format!("avg_over_time({bad}{selector}[{window}])"),
        &format!("avg_over_time({total}{selector}[{window}])"),
        window,
        slo.min_events,
    )
}

/// The main rule group of one SLO (see the module docs).
pub fn rule_group(slo: &Slo) -> RuleGroup {
    let labels = series_labels(slo);
    let selector = format!("{{slo=\"{}\"}}", slo.name);
    let record = |record: String, expr: String| Rule::Recording {
        record,
        expr,
        labels: labels.clone(),
    };
    let mut rules = Vec::new();

    let events = counts_events(slo);
    if events {
        let bad = sli::bad_rate(&slo.indicator, BASE_WINDOW).unwrap_or_default();
        let total = sli::total_rate(&slo.indicator, BASE_WINDOW).unwrap_or_default();
        rules.push(record(BAD_RATE_SERIES.into(), bad));
        rules.push(record(TOTAL_RATE_SERIES.into(), total));
    }
    for window in slo.windows() {
        let expr = if window <= DIRECT_WINDOW_LIMIT {
            sli::error_ratio(&slo.indicator, window, slo.min_events)
        } else {
            derived_error_ratio(slo, window, &selector)
        };
        rules.push(record(error_ratio_series(window), expr));
    }

    if let Some(calendar) = &slo.calendar {
        rules.extend(calendar_rules(slo, calendar, &selector, events, &record));
    }

    let budget = promql_number(slo.error_budget().ratio());
    let mut objective_labels = labels.clone();
    // The hourly rules shape the long windows' series too.
    let mut recording = rules.clone();
    if reads_hourly(slo) {
        recording.extend(hourly_rules(slo));
    }
    objective_labels.insert(
        RULES_HASH_LABEL.into(),
        rules_fingerprint_of(&recording, slo),
    );
    rules.push(Rule::Recording {
        record: OBJECTIVE_SERIES.into(),
        expr: format!("vector({})", promql_number(slo.objective.ratio())),
        labels: objective_labels,
    });
    let budget_remaining = match slo.calendar {
        None => format!(
            "1 - {}{selector} / {budget}",
            error_ratio_series(slo.window)
        ),
        Some(_) => format!(
            // The period series carry the SLO's labels only; a grouped SLO's ratio has one
            // series per group, each matched to them on `slo`.
            "1 - {PERIOD_RATIO_SERIES}{selector} / {budget} * on (slo) group_left () ((time() - {PERIOD_START_SERIES}{selector}) / {PERIOD_LENGTH_SERIES}{selector})"
        ),
    };
    rules.push(record(BUDGET_REMAINING_SERIES.into(), budget_remaining));

    for row in &slo.alerting.windows {
        rules.push(alert_rule(slo, row, &selector, &budget));
    }

    RuleGroup {
        name: format!("burnguard-{}", slo.name),
        interval: None,
        rules,
    }
}

/// The period bounds and the period's error ratio of a calendar SLO, from its calendar's
/// shared series (see the module docs).
fn calendar_rules(
    slo: &Slo,
    calendar: &CalendarWindow,
    selector: &str,
    events: bool,
    record: &dyn Fn(String, String) -> Rule,
) -> Vec<Rule> {
    let shared = calendar_selector(calendar);
    let run_start = format!("{CALENDAR_RUN_START_SERIES}{shared}");
    let shared_length = format!("{CALENDAR_LENGTH_SERIES}{shared}");
    let start =
        format!("{run_start} + floor((time() - {run_start}) / {shared_length}) * {shared_length}");
    let end = format!("{PERIOD_START_SERIES}{selector} + {PERIOD_LENGTH_SERIES}{selector}");
    let base = BASE_WINDOW.as_secs();
    let in_period = format!(
        "and on() (vector(time()) - {base} >= scalar({PERIOD_START_SERIES}{selector} @ end()))"
    );
    let period_sum =
        |series: &str| format!("sum_over_time(({series}{selector} {in_period})[32d:5m])");
    let ratio = if events {
        let total = period_sum(TOTAL_RATE_SERIES);
        let traffic = if slo.min_events == 0 {
            format!("({total}) > 0")
        } else {
            // Each step holds a per-second rate over 5m: events = sum * 300.
            format!("({total}) >= ({} / {base})", slo.min_events)
        };
        format!("({}) / ({traffic})", period_sum(BAD_RATE_SERIES))
    } else {
        format!(
            "avg_over_time(({}{selector} {in_period})[32d:5m])",
            error_ratio_series(BASE_WINDOW)
        )
    };
    vec![
        record(PERIOD_LENGTH_SERIES.into(), shared_length),
        record(PERIOD_START_SERIES.into(), start),
        record(PERIOD_END_SERIES.into(), end),
        record(PERIOD_RATIO_SERIES.into(), ratio),
    ]
}

fn series_labels(slo: &Slo) -> BTreeMap<String, String> {
    let mut labels = slo.labels.to_map();
    labels.insert("slo".into(), slo.name.clone());
    labels.insert("service".into(), slo.service.clone());
    labels
}

fn alert_rule(slo: &Slo, row: &AlertWindow, selector: &str, budget: &str) -> Rule {
    let threshold = promql_number(row.burn_rate_threshold);
    let condition = |window: Window| {
        format!(
            "{}{selector} > ({threshold} * {budget})",
            error_ratio_series(window)
        )
    };
    let expr = format!("{} and {}", condition(row.long), condition(row.short));

    // `slo` and `service` also arrive on the series; naming them here keeps every alert rule
    // distinct for linters and readers.
    let mut labels = slo.alerting.labels.clone();
    labels.insert("slo".into(), slo.name.clone());
    labels.insert("service".into(), slo.service.clone());
    labels.insert("severity".into(), row.severity.as_str().into());
    labels.insert("long_window".into(), row.long.to_string());
    labels.insert("short_window".into(), row.short.to_string());
    // The severity's own labels last: validation lets them set only `severity` among ours.
    let route = slo.alerting.route(row.severity);
    labels.extend(route.labels.clone());

    let mut annotations = alert_annotations(slo, row);
    annotations.extend(slo.alerting.annotations.clone());
    annotations.extend(route.annotations.clone());

    Rule::Alerting {
        alert: slo.alerting.name.clone(),
        expr,
        labels,
        annotations,
    }
}

/// Words for the person who gets the alert: what burns, how fast, and how urgent it is.
/// Static text (no `$value`), so the alert reads the same in every tool that shows it.
pub fn alert_annotations(slo: &Slo, row: &AlertWindow) -> BTreeMap<String, String> {
    let threshold = promql_number(row.burn_rate_threshold);
    let error_percent = promql_number(row.burn_rate_threshold * slo.error_budget().ratio() * 100.0);
    let share_percent = promql_number(row.budget_share(slo.window) * 100.0);
    let exhaustion = human_duration(slo.window.as_secs_f64() / row.burn_rate_threshold);
    let urgency = match row.severity {
        Severity::Page => "act now",
        Severity::Ticket => "look into it within working hours",
    };
    let summary = format!(
        "{} ({}) is burning its error budget {threshold}x faster than sustainable: {urgency}",
        slo.name, slo.service
    );
    let description = format!(
        "More than {error_percent}% of events failed over both the last {} and the last {} (objective {}%). \
At this rate {share_percent}% of the {} error budget goes every {}, and a full budget lasts about {exhaustion}.",
        row.long,
        row.short,
        promql_number(slo.objective.percent()),
        slo.window,
        row.long,
    );
    BTreeMap::from([
        ("summary".to_string(), summary),
        ("description".to_string(), description),
    ])
}

/// `180000` seconds -> `2d2h`, rounded down to the minute; at least `1m`.
fn human_duration(seconds: f64) -> String {
    let minutes = (seconds / 60.0).floor().max(1.0) as u64;
    Window::from_secs(minutes * 60).to_string()
}

/// The rule file as YAML, with a header saying where it came from.
pub fn to_yaml(
    file: &RuleFile,
    generated_from: &str,
) -> Result<String, serde_saphyr::SerializeError> {
    // One line per expression: folded scalars would break PromQL mid-operator for readers.
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    let body = serde_saphyr::to_string_with_options(file, options)?;
    Ok(format!(
        "# Generated by `burnguard rules` from {generated_from}. Do not edit: change the policies and regenerate.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo(objective: &str, min_events: &str, query: &str, runbook: &str) -> Slo {
        let text = format!(
            "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {{name: s}}\nspec:\n  service: s\n  objective: {objective}\n  minEvents: {min_events}\n  indicator: {{ratio: {{errors: 'sum(rate({query}{{code=~\"5..\"}}[{{{{.window}}}}]))', total: 'sum(rate({query}[{{{{.window}}}}]))'}}}}\n  alerting: {{annotations: {{runbook_url: {runbook}}}}}\n"
        );
        let (loaded, problems) = crate::policies::parse_source("t.yaml", &text);
        assert!(problems.is_empty(), "{problems:?}");
        loaded[0].slo.clone()
    }

    #[test]
    fn the_rules_fingerprint_changes_with_whatever_shapes_the_recorded_series() {
        let base = slo("99.9", "0", "http_requests_total", "a");
        let fingerprint = rules_fingerprint(&base);
        assert_eq!(fingerprint.len(), 16);
        assert_eq!(rules_fingerprint(&base), fingerprint, "stable");
        for (what, changed) in [
            ("objective", slo("99.5", "0", "http_requests_total", "a")),
            ("minEvents", slo("99.9", "100", "http_requests_total", "a")),
            ("query", slo("99.9", "0", "requests_total", "a")),
        ] {
            assert_ne!(rules_fingerprint(&changed), fingerprint, "{what}");
        }
        // An annotation shapes no recorded series.
        assert_eq!(
            rules_fingerprint(&slo("99.9", "0", "http_requests_total", "b")),
            fingerprint
        );
    }

    #[test]
    fn the_objective_series_carries_the_fingerprint() {
        let s = slo("99.9", "0", "http_requests_total", "a");
        let group = rule_group(&s);
        let labels = group
            .rules
            .iter()
            .find_map(|r| match r {
                Rule::Recording { record, labels, .. } if record == OBJECTIVE_SERIES => {
                    Some(labels.clone())
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(labels[RULES_HASH_LABEL], rules_fingerprint(&s));
    }

    #[test]
    fn a_severitys_labels_and_annotations_reach_only_its_alerts() {
        let text = "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {name: s}\nspec:\n  service: s\n  objective: 99.9\n  indicator: {ratio: {errors: 'sum(rate(e[{{.window}}]))', total: 'sum(rate(t[{{.window}}]))'}}\n  alerting: {labels: {team: a}, page: {labels: {severity: critical, pager: x}}, ticket: {annotations: {queue: q}}}\n";
        let (loaded, problems) = crate::policies::parse_source("t.yaml", text);
        assert!(problems.is_empty(), "{problems:?}");
        let group = rule_group(&loaded[0].slo);
        type Labels = BTreeMap<String, String>;
        let alerts: Vec<(&Labels, &Labels)> = group
            .rules
            .iter()
            .filter_map(|r| match r {
                Rule::Alerting {
                    labels,
                    annotations,
                    ..
                } => Some((labels, annotations)),
                _ => None,
            })
            .collect();
        assert_eq!(alerts.len(), 4);
        for (labels, annotations) in &alerts[..2] {
            assert_eq!(labels["severity"], "critical");
            assert_eq!(labels["pager"], "x");
            assert_eq!(labels["team"], "a");
            assert!(!annotations.contains_key("queue"));
        }
        for (labels, annotations) in &alerts[2..] {
            assert_eq!(labels["severity"], "ticket");
            assert!(!labels.contains_key("pager"));
            assert_eq!(annotations["queue"], "q");
            assert!(annotations.contains_key("summary"));
        }
    }

    #[test]
    fn an_slo_without_alerts_still_records_its_series() {
        let text = "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {name: s}\nspec:\n  service: s\n  objective: 99.9\n  window: 1d\n  indicator: {ratio: {errors: 'sum(rate(e[{{.window}}]))', total: 'sum(rate(t[{{.window}}]))'}}\n  alerting: {windows: none}\n";
        let (loaded, problems) = crate::policies::parse_source("t.yaml", text);
        assert!(problems.is_empty(), "{problems:?}");
        let group = rule_group(&loaded[0].slo);
        assert!(
            group
                .rules
                .iter()
                .all(|r| matches!(r, Rule::Recording { .. }))
        );
        assert!(group.rules.iter().any(
            |r| matches!(r, Rule::Recording { record, .. } if record == BUDGET_REMAINING_SERIES)
        ));
    }
}
