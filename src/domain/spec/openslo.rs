//! OpenSLO `openslo/v1`: read as it is, and written from burnguard SLOs.
//!
//! Reading. An `SLO` document becomes one burnguard SLO:
//! - `metadata.name`, `labels` (single strings), `spec.service`, `spec.description`;
//! - the indicator inline (`indicator`) or by name (`indicatorRef`, an `SLI` document anywhere
//!   in the set of files loaded), with a `ratioMetric`: `bad` or `good` with `total`, or `raw`
//!   with `rawType` (`failure` is the error ratio, `success` is one minus it). Each metric
//!   needs `metricSource.type: Prometheus` (or a `metricSourceRef` to a `DataSource` of that
//!   type) and `spec.query`: a query with `{{.window}}`, or with `counter: true` a bare counter
//!   selector, read as its rate over each window. `good` and `total` that are exactly the
//!   queries burnguard writes for a latency histogram read back as that latency indicator;
//! - `timeWindow`: one rolling window (default 30d); `budgetingMethod: Occurrences`;
//! - `objectives`: one, with `target` (a fraction) or `targetPercent`.
//!
//! Refused per field, with their paths: calendar periods other than a month or a week and
//! `startTime`s off burnguard's period starts, `Timeslices` and `RatioTimeslices`
//! budgeting, threshold metrics and objectives, several or composite objectives (not supported
//! yet); non-Prometheus metric sources, `alertPolicies`, and metric source fields other than
//! `query` (no equivalent). `displayName` and `annotations` are descriptive and not carried;
//! `Service`, `DataSource`, `AlertPolicy`, `AlertCondition` and `AlertNotificationTarget`
//! documents load nothing by themselves.
//!
//! Writing ([`export`]): every SLO as an `SLO` document with its indicator inline; burnguard
//! settings OpenSLO cannot hold are listed, never silently dropped.
//!
//! Owns: OpenSLO's wire shapes, resolving references within a set, and the export shape.
//! Must not touch: I/O (callers pass the documents of every file at once).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::draft::{self, Anything, Draft};
use super::{SourceDocument, deserialize, queries};
use crate::domain::calendar::{CalendarPeriod, CalendarWindow};
use crate::domain::policy::{BadEvents, Indicator, Objective, QueryTemplate, Slo, Window};
use crate::domain::problem::Problem;
use crate::domain::sli;
use crate::domain::validate::{
    DEFAULT_ALERT_NAME, DEFAULT_RESOLVE_AFTER, DEFAULT_WINDOW, Problems, check_labels,
    check_query_template,
};
use crate::domain::windows;

pub const API_VERSION: &str = "openslo/v1";
/// The kinds of `openslo/v1`, for messages.
pub const KINDS: &str = "`SLO`, `SLI`, `DataSource`, `Service`, `AlertPolicy`, `AlertCondition` or `AlertNotificationTarget`";

/// An OpenSLO kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Slo,
    Sli,
    DataSource,
    Service,
    AlertPolicy,
    AlertCondition,
    AlertNotificationTarget,
}

impl Kind {
    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "SLO" => Kind::Slo,
            "SLI" => Kind::Sli,
            "DataSource" => Kind::DataSource,
            "Service" => Kind::Service,
            "AlertPolicy" => Kind::AlertPolicy,
            "AlertCondition" => Kind::AlertCondition,
            "AlertNotificationTarget" => Kind::AlertNotificationTarget,
            _ => return None,
        })
    }
}

/// One OpenSLO document.
#[derive(Debug)]
pub enum Object {
    Slo(Box<ObjectDocument<SloSpec>>),
    Sli(Box<ObjectDocument<SliSpec>>),
    DataSource(Box<ObjectDocument<DataSourceSpec>>),
    /// Kinds that load nothing by themselves.
    Other(Kind),
}

#[derive(Debug, Deserialize)]
pub struct ObjectDocument<S> {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    pub metadata: Option<Metadata>,
    pub spec: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub name: Option<Spanned<String>>,
    pub display_name: Option<String>,
    pub labels: Option<BTreeMap<String, LabelValue>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// OpenSLO label values are a string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelValue {
    One(String),
    Many,
}

impl<'de> Deserialize<'de> for LabelValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LabelVisitor;
        impl<'de> Visitor<'de> for LabelVisitor {
            type Value = LabelValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LabelValue, E> {
                Ok(LabelValue::One(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LabelValue, E> {
                Ok(LabelValue::One(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LabelValue, E> {
                Ok(LabelValue::One(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LabelValue, E> {
                Ok(LabelValue::One(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<LabelValue, E> {
                Ok(LabelValue::One(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<LabelValue, A::Error> {
                while seq.next_element::<Anything>()?.is_some() {}
                Ok(LabelValue::Many)
            }
        }
        deserializer.deserialize_any(LabelVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SloSpec {
    pub description: Option<String>,
    pub service: Option<Spanned<String>>,
    pub indicator: Option<InlineSli>,
    pub indicator_ref: Option<Spanned<String>>,
    pub time_window: Option<Spanned<Vec<TimeWindow>>>,
    pub budgeting_method: Option<Spanned<String>>,
    pub objectives: Option<Spanned<Vec<ObjectiveSpec>>>,
    pub alert_policies: Option<Spanned<Vec<Anything>>>,
}

#[derive(Debug, Deserialize)]
pub struct InlineSli {
    pub metadata: Option<Metadata>,
    pub spec: Option<SliSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeWindow {
    pub duration: Option<Spanned<String>>,
    pub is_rolling: Option<Spanned<bool>>,
    pub calendar: Option<Spanned<CalendarSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarSpec {
    pub start_time: Option<Spanned<String>>,
    pub time_zone: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveSpec {
    pub display_name: Option<String>,
    pub op: Option<Spanned<Anything>>,
    pub value: Option<Spanned<Anything>>,
    pub target: Option<Spanned<f64>>,
    pub target_percent: Option<Spanned<f64>>,
    pub time_slice_target: Option<Spanned<Anything>>,
    pub time_slice_window: Option<Spanned<Anything>>,
    pub indicator: Option<Spanned<Anything>>,
    pub indicator_ref: Option<Spanned<Anything>>,
    pub composite_weight: Option<Spanned<Anything>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SliSpec {
    pub description: Option<String>,
    pub threshold_metric: Option<Spanned<Anything>>,
    pub ratio_metric: Option<RatioMetric>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RatioMetric {
    pub counter: Option<Spanned<bool>>,
    pub good: Option<MetricHolder>,
    pub bad: Option<MetricHolder>,
    pub total: Option<MetricHolder>,
    pub raw: Option<MetricHolder>,
    pub raw_type: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricHolder {
    pub metric_source: Option<MetricSource>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSource {
    pub metric_source_ref: Option<Spanned<String>>,
    #[serde(rename = "type")]
    pub source_type: Option<Spanned<String>>,
    pub spec: Option<MetricSourceSpec>,
}

/// Of a metric source's free-form spec burnguard reads `query`; any other field is reported.
#[derive(Debug, Deserialize)]
pub struct MetricSourceSpec {
    pub query: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataSourceSpec {
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub source_type: Option<Spanned<String>>,
    /// How to reach the source: burnguard's own `--prometheus` flags say that.
    pub connection_details: Option<Anything>,
}

/// Reads one OpenSLO document of kind `kind`, with its unknown fields as problems.
pub fn parse(doc: &SourceDocument<'_>, kind: Kind) -> Result<(Object, Vec<Problem>), Vec<Problem>> {
    let one = |p| vec![p];
    let (object, unknown) = match kind {
        Kind::Slo => {
            let (d, u) = deserialize::<ObjectDocument<SloSpec>>(doc, true).map_err(one)?;
            (Object::Slo(Box::new(d)), u)
        }
        Kind::Sli => {
            let (d, u) = deserialize::<ObjectDocument<SliSpec>>(doc, true).map_err(one)?;
            (Object::Sli(Box::new(d)), u)
        }
        Kind::DataSource => {
            let (d, u) = deserialize::<ObjectDocument<DataSourceSpec>>(doc, true).map_err(one)?;
            (Object::DataSource(Box::new(d)), u)
        }
        other => {
            deserialize::<ObjectDocument<Anything>>(doc, false).map_err(one)?;
            (Object::Other(other), Vec::new())
        }
    };
    let unknown = unknown
        .into_iter()
        .map(|mut problem| {
            if problem.path.contains("metricSource.spec.") {
                problem.message = "has no equivalent: of a Prometheus metric source burnguard reads only `query` (the connection comes from --prometheus); remove it".into();
            }
            problem
        })
        .collect();
    Ok((object, unknown))
}

/// One OpenSLO document of a set, with where it is (`a.yaml document 2`) for messages that
/// point from one document to another.
#[derive(Debug)]
pub struct Entry<'a> {
    pub doc: SourceDocument<'a>,
    pub object: Object,
    pub place: String,
}

/// What a DataSource says, by name.
struct DataSource<'e> {
    source_type: Option<String>,
    place: &'e str,
}

/// Every entry's result, in order: `Ok(Some(slo))` for an SLO document, `Ok(None)` for the
/// other kinds, or its problems. SLIs and DataSources are looked up by name across the set.
pub fn import_set(entries: &[Entry<'_>]) -> Vec<Result<Option<Slo>, Vec<Problem>>> {
    let mut results: Vec<Result<Option<Slo>, Vec<Problem>>> =
        entries.iter().map(|_| Ok(None)).collect();
    let fail =
        |results: &mut Vec<Result<Option<Slo>, Vec<Problem>>>, i: usize, problems: Vec<Problem>| {
            if !problems.is_empty() {
                match &mut results[i] {
                    Err(found) => found.extend(problems),
                    slot => *slot = Err(problems),
                }
            }
        };

    // Names first: duplicates are refused where they repeat.
    let mut data_sources: HashMap<String, DataSource<'_>> = HashMap::new();
    let mut sli_names: HashMap<String, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let (metadata, what) = match &entry.object {
            Object::DataSource(d) => (&d.metadata, "DataSource"),
            Object::Sli(d) => (&d.metadata, "SLI"),
            _ => continue,
        };
        let mut p = Problems::new(&entry.doc);
        let Some(name) = metadata.as_ref().and_then(|m| m.name.as_ref()) else {
            p.missing(
                "metadata.name",
                &format!("the name SLOs refer to this {what} by"),
            );
            fail(&mut results, i, p.into_problems());
            continue;
        };
        let first = match &entry.object {
            Object::DataSource(d) => {
                let source_type = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.source_type.as_ref())
                    .map(|t| t.value.clone());
                match data_sources.get(&name.value) {
                    Some(first) => Some(first.place.to_string()),
                    None => {
                        data_sources.insert(
                            name.value.clone(),
                            DataSource {
                                source_type,
                                place: &entry.place,
                            },
                        );
                        None
                    }
                }
            }
            _ => match sli_names.get(&name.value) {
                Some(first) => Some(entries[*first].place.clone()),
                None => {
                    sli_names.insert(name.value.clone(), i);
                    None
                }
            },
        };
        if let Some(first) = first {
            p.at(
                "metadata.name",
                name,
                format!(
                    "{what} `{}` is already defined in {first}; names must be unique",
                    name.value
                ),
            );
            fail(&mut results, i, p.into_problems());
        }
    }

    // Each SLI once, in its own document.
    let mut slis: HashMap<usize, Option<Indicator>> = HashMap::new();
    for i in sli_names.values() {
        let entry = &entries[*i];
        let Object::Sli(sli) = &entry.object else {
            continue;
        };
        let mut p = Problems::new(&entry.doc);
        let indicator = match &sli.spec {
            Some(spec) => sli_indicator(&mut p, "spec", spec, &data_sources),
            None => {
                p.missing("spec", "an SLI needs a ratioMetric");
                None
            }
        };
        slis.insert(*i, indicator.filter(|_| p.is_empty()));
        fail(&mut results, *i, p.into_problems());
    }

    for (i, entry) in entries.iter().enumerate() {
        let Object::Slo(slo) = &entry.object else {
            continue;
        };
        let mut p = Problems::new(&entry.doc);
        let indicator_of = |name: &Spanned<String>, p: &mut Problems<'_>| -> Option<Indicator> {
            match sli_names.get(&name.value) {
                Some(j) => {
                    let found = slis.get(j).cloned().flatten();
                    if found.is_none() {
                        p.at(
                            "spec.indicatorRef",
                            name,
                            format!(
                                "names SLI `{}` ({}), which has problems of its own (reported there)",
                                name.value, entries[*j].place
                            ),
                        );
                    }
                    found
                }
                None => {
                    p.at(
                        "spec.indicatorRef",
                        name,
                        format!(
                            "names no SLI in the files loaded; load the file with the SLI `{}` too, or write the indicator inline",
                            name.value
                        ),
                    );
                    None
                }
            }
        };
        let imported = import_slo(&mut p, slo, &data_sources, indicator_of);
        match imported {
            Some(slo) if p.is_empty() => results[i] = Ok(Some(slo)),
            _ => fail(&mut results, i, p.into_problems()),
        }
    }
    results
}

fn import_slo(
    p: &mut Problems<'_>,
    document: &ObjectDocument<SloSpec>,
    data_sources: &HashMap<String, DataSource<'_>>,
    indicator_of: impl Fn(&Spanned<String>, &mut Problems<'_>) -> Option<Indicator>,
) -> Option<Slo> {
    let metadata = document.metadata.as_ref();
    let name = match metadata.and_then(|m| m.name.as_ref()) {
        Some(name) => draft::slo_name(
            p,
            "metadata.name",
            name,
            name.value.clone(),
            "the OpenSLO SLO's name is the SLO's name",
        ),
        None => {
            p.missing(
                "metadata.name",
                "lowercase letters, digits and '-', such as checkout-availability",
            );
            None
        }
    };
    let labels = metadata.map(|m| labels(p, m)).unwrap_or_default();
    let Some(spec) = &document.spec else {
        p.missing(
            "spec",
            "an SLO needs service, indicator (or indicatorRef) and objectives",
        );
        return None;
    };
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
                "the service this SLO belongs to, such as checkout",
            );
            None
        }
    };
    let indicator = match (&spec.indicator, &spec.indicator_ref) {
        (Some(inline), None) => match &inline.spec {
            Some(sli) => sli_indicator(p, "spec.indicator.spec", sli, data_sources),
            None => {
                p.missing("spec.indicator.spec", "an SLI needs a ratioMetric");
                None
            }
        },
        (None, Some(name)) => indicator_of(name, p),
        (Some(_), Some(_)) => {
            p.push(
                "spec",
                "has both indicator and indicatorRef; give one of them",
            );
            None
        }
        (None, None) => {
            p.missing(
                "spec.indicator",
                "an inline SLI with a ratioMetric, or indicatorRef naming an SLI document",
            );
            None
        }
    };
    let window = time_window(p, spec.time_window.as_ref());
    let (window, calendar) = match window {
        Some((w, c)) => (Some(w), c),
        None => (None, None),
    };
    budgeting_method(p, spec.budgeting_method.as_ref());
    let objective = objective(p, spec.objectives.as_ref());
    if let Some(policies) = &spec.alert_policies
        && !policies.value.is_empty()
    {
        p.at(
            "spec.alertPolicies",
            policies,
            "has no equivalent yet: burnguard alerts with the SRE Workbook's multi-window burn-rate rows (both a long and a short window must burn), not single-window conditions; remove alertPolicies and the SLO gets those rows",
        );
    }
    let slo_window = window?;
    let rows = if slo_window >= windows::google_longest_window() {
        Some(windows::resolve(&windows::GOOGLE, slo_window))
    } else {
        p.push(
            "spec.timeWindow[0].duration",
            format!(
                "{slo_window} is shorter than the {} window of burnguard's alert rows; use a window of at least {}",
                windows::google_longest_window(),
                windows::google_longest_window()
            ),
        );
        None
    };
    Draft {
        name,
        service,
        description: spec.description.clone().unwrap_or_default(),
        labels,
        objective,
        window: Some(slo_window),
        calendar,
        indicator,
        group_by: Vec::new(),
        alerting: rows.map(draft::default_alerting),
    }
    .finish()
}

fn labels(p: &mut Problems<'_>, metadata: &Metadata) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for (key, value) in metadata.labels.iter().flatten() {
        match value {
            LabelValue::One(v) => {
                labels.insert(key.clone(), v.clone());
            }
            LabelValue::Many => p.push(
                &format!("metadata.labels.{key}"),
                "is a list; burnguard labels are single strings (they go on every series and alert); join the values or remove it",
            ),
        }
    }
    check_labels(p, "metadata.labels", &labels);
    labels
}

/// The SLO window: rolling (`duration` + `isRolling: true`), or calendar-aligned (`calendar`
/// with `duration: 1M` or `1w`, its `startTime` on a period boundary of burnguard's, which are
/// the 1st at 00:00 and Monday 00:00).
fn time_window(
    p: &mut Problems<'_>,
    windows: Option<&Spanned<Vec<TimeWindow>>>,
) -> Option<(Window, Option<CalendarWindow>)> {
    let Some(windows) = windows else {
        return Some((DEFAULT_WINDOW, None));
    };
    let [window] = windows.value.as_slice() else {
        p.at(
            "spec.timeWindow",
            windows,
            format!(
                "has {} items; give exactly one window, such as [{{duration: 30d, isRolling: true}}]",
                windows.value.len()
            ),
        );
        return None;
    };
    let rolling = window.is_rolling.as_ref().is_none_or(|r| r.value);
    match (&window.calendar, rolling) {
        (Some(calendar), true) => {
            p.at(
                "spec.timeWindow[0].calendar",
                calendar,
                "is set on a rolling window; give isRolling: false for a calendar window, or remove calendar",
            );
            return None;
        }
        (None, false) => {
            p.missing(
                "spec.timeWindow[0].calendar",
                "a calendar window (isRolling: false) needs calendar: {startTime, timeZone}",
            );
            return None;
        }
        (Some(calendar), false) => return calendar_time_window(p, window, calendar),
        (None, true) => {}
    }
    let Some(duration) = &window.duration else {
        p.missing(
            "spec.timeWindow[0].duration",
            "a rolling window such as 30d or 4w",
        );
        return None;
    };
    let text = duration.value.trim();
    if text.ends_with(['M', 'Q', 'Y']) {
        p.at(
            "spec.timeWindow[0].duration",
            duration,
            format!(
                "`{text}` is in months, quarters or years, which only calendar windows use; give the rolling window in days or weeks, such as 30d or 4w, or make it a calendar window (isRolling: false with calendar)"
            ),
        );
        return None;
    }
    draft::window(p, "spec.timeWindow[0].duration", duration).map(|w| (w, None))
}

fn calendar_time_window(
    p: &mut Problems<'_>,
    window: &TimeWindow,
    calendar: &Spanned<CalendarSpec>,
) -> Option<(Window, Option<CalendarWindow>)> {
    let period = match &window.duration {
        None => {
            p.missing(
                "spec.timeWindow[0].duration",
                "1M for a calendar month or 1w for a calendar week",
            );
            None
        }
        Some(d) => match d.value.trim() {
            "1M" => Some(CalendarPeriod::Month),
            "1w" | "7d" => Some(CalendarPeriod::Week),
            other => {
                p.at(
                    "spec.timeWindow[0].duration",
                    d,
                    format!("`{other}` is not a calendar period burnguard supports; use 1M (a month) or 1w (a week)"),
                );
                None
            }
        },
    };
    let zone = calendar.value.time_zone.as_ref();
    let checked_zone = match zone {
        None => {
            p.missing(
                "spec.timeWindow[0].calendar.timeZone",
                "an IANA time zone such as Europe/Berlin or UTC",
            );
            None
        }
        Some(z) => match CalendarWindow::new(period.unwrap_or(CalendarPeriod::Month), &z.value) {
            Ok(_) => Some(z.value.trim()),
            Err(e) => {
                p.at("spec.timeWindow[0].calendar.timeZone", z, e.to_string());
                None
            }
        },
    };
    if let (Some(period), Some(start)) = (period, &calendar.value.start_time)
        && let Err(why) = crate::domain::calendar::check_period_start(period, &start.value)
    {
        p.at("spec.timeWindow[0].calendar.startTime", start, why);
        return None;
    }
    let (period, zone) = (period?, checked_zone?);
    crate::domain::validate::calendar_window(period.as_str(), Some(zone)).ok()
}

fn budgeting_method(p: &mut Problems<'_>, method: Option<&Spanned<String>>) {
    let Some(method) = method else {
        return;
    };
    match method.value.as_str() {
        "Occurrences" => {}
        "Timeslices" | "RatioTimeslices" => p.at(
            "spec.budgetingMethod",
            method,
            format!(
                "`{}` is not supported yet; burnguard budgets by Occurrences (bad events over all events)",
                method.value
            ),
        ),
        other => p.at(
            "spec.budgetingMethod",
            method,
            format!("unknown budgeting method `{other}`; expected Occurrences"),
        ),
    }
}

fn objective(
    p: &mut Problems<'_>,
    objectives: Option<&Spanned<Vec<ObjectiveSpec>>>,
) -> Option<Objective> {
    let Some(objectives) = objectives else {
        p.missing(
            "spec.objectives",
            "one objective with target (such as 0.999) or targetPercent (such as 99.9)",
        );
        return None;
    };
    let Some(first) = objectives.value.first() else {
        p.at(
            "spec.objectives",
            objectives,
            "is empty; give one objective with target or targetPercent",
        );
        return None;
    };
    if objectives.value.len() > 1 {
        p.at(
            "spec.objectives[1]",
            objectives,
            format!(
                "is one of {} objectives; several objectives per SLO are not supported yet: write one SLO per objective",
                objectives.value.len()
            ),
        );
    }
    let path = "spec.objectives[0]";
    let threshold =
        "threshold objectives are for thresholdMetric SLIs, which are not supported yet; remove it";
    draft::refuse(p, &format!("{path}.op"), &first.op, threshold);
    draft::refuse(p, &format!("{path}.value"), &first.value, threshold);
    let slices = "time slices are not supported yet (budgetingMethod Occurrences only); remove it";
    draft::refuse(
        p,
        &format!("{path}.timeSliceTarget"),
        &first.time_slice_target,
        slices,
    );
    draft::refuse(
        p,
        &format!("{path}.timeSliceWindow"),
        &first.time_slice_window,
        slices,
    );
    let composite = "composite SLOs (an indicator per objective) are not supported yet; give the SLO's indicator in spec";
    draft::refuse(p, &format!("{path}.indicator"), &first.indicator, composite);
    draft::refuse(
        p,
        &format!("{path}.indicatorRef"),
        &first.indicator_ref,
        composite,
    );
    draft::refuse(
        p,
        &format!("{path}.compositeWeight"),
        &first.composite_weight,
        composite,
    );
    match (&first.target, &first.target_percent) {
        (Some(target), None) => {
            let objective = Objective::from_ratio(target.value);
            if objective.is_none() {
                p.at(
                    &format!("{path}.target"),
                    target,
                    format!(
                        "{} is out of range; burnguard needs a fraction strictly between 0 and 1, such as 0.999",
                        target.value
                    ),
                );
            }
            objective
        }
        (None, Some(percent)) => {
            draft::objective_percent(p, &format!("{path}.targetPercent"), percent)
        }
        (Some(_), Some(_)) => {
            p.push(path, "has both target and targetPercent; give one of them");
            None
        }
        (None, None) => {
            p.missing(
                &format!("{path}.target"),
                "a fraction such as 0.999 (or targetPercent such as 99.9)",
            );
            None
        }
    }
}

/// The indicator of an SLI spec at `path` (`spec` of an SLI document, or
/// `spec.indicator.spec` inline).
fn sli_indicator(
    p: &mut Problems<'_>,
    path: &str,
    spec: &SliSpec,
    data_sources: &HashMap<String, DataSource<'_>>,
) -> Option<Indicator> {
    if let Some(threshold) = &spec.threshold_metric {
        p.at(
            &format!("{path}.thresholdMetric"),
            threshold,
            "threshold metrics are not supported yet; use a ratioMetric (good or bad events over total)",
        );
        return None;
    }
    let Some(ratio) = &spec.ratio_metric else {
        p.missing(
            &format!("{path}.ratioMetric"),
            "good or bad with total, or raw with rawType",
        );
        return None;
    };
    let path = format!("{path}.ratioMetric");
    let counter = ratio.counter.as_ref().is_some_and(|c| c.value);
    let metric = |p: &mut Problems<'_>, key: &str, holder: &Option<MetricHolder>| {
        metric_query(
            p,
            &format!("{path}.{key}"),
            holder.as_ref(),
            counter,
            data_sources,
        )
    };
    if ratio.raw.is_some() {
        if ratio.good.is_some() || ratio.bad.is_some() || ratio.total.is_some() {
            p.push(
                &path,
                "has raw together with good, bad or total; give raw alone (with rawType), or good or bad with total",
            );
            return None;
        }
        let query = metric_raw(p, &format!("{path}.raw"), ratio.raw.as_ref(), data_sources);
        let error_ratio = match &ratio.raw_type {
            Some(t) if t.value == "failure" => query.map(|q| q.template().to_string()),
            Some(t) if t.value == "success" => query.map(|q| format!("1 - ({})", q.template())),
            Some(t) => {
                p.at(
                    &format!("{path}.rawType"),
                    t,
                    format!(
                        "`{}` is not a raw type; expected success or failure",
                        t.value
                    ),
                );
                None
            }
            None => {
                p.missing(
                    &format!("{path}.rawType"),
                    "failure (the query is the error ratio) or success (the query is the success ratio)",
                );
                None
            }
        };
        return Some(Indicator::Raw {
            error_ratio: QueryTemplate::new(error_ratio?),
        });
    }
    if let Some(raw_type) = &ratio.raw_type {
        p.at(
            &format!("{path}.rawType"),
            raw_type,
            "goes with raw only; remove it (good or bad says which events are counted)",
        );
    }
    let total = metric(p, "total", &ratio.total);
    let bad = match (&ratio.good, &ratio.bad) {
        (Some(_), Some(_)) => {
            p.push(&path, "has both good and bad; give one of them with total");
            None
        }
        (None, Some(_)) => metric(p, "bad", &ratio.bad).map(BadEvents::Errors),
        (Some(_), None) => metric(p, "good", &ratio.good).map(BadEvents::Good),
        (None, None) => {
            p.missing(
                &format!("{path}.bad"),
                "the bad events (or good instead), with total; or raw with rawType",
            );
            None
        }
    };
    let (bad, total) = (bad?, total?);
    if let BadEvents::Good(good) = &bad
        && let Some(latency) = queries::recognise_latency(good.template(), total.template())
    {
        return Some(latency);
    }
    Some(Indicator::Ratio { bad, total })
}

/// The query of one metric (`good`, `bad`, `total`) as a template.
fn metric_query(
    p: &mut Problems<'_>,
    path: &str,
    holder: Option<&MetricHolder>,
    counter: bool,
    data_sources: &HashMap<String, DataSource<'_>>,
) -> Option<QueryTemplate> {
    let query = prometheus_query(p, path, holder, data_sources)?;
    let query_path = format!("{path}.metricSource.spec.query");
    if query
        .value
        .contains(crate::domain::policy::WINDOW_PLACEHOLDER)
    {
        return draft::query(p, &query_path, Some(query));
    }
    let hint = "burnguard evaluates every query over several windows: write the range as [{{.window}}], such as sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}])), or give a bare counter selector with `counter: true`";
    if !counter {
        p.at(
            &query_path,
            query,
            format!("has no {{{{.window}}}} placeholder and the metric is not marked `counter: true`; {hint}"),
        );
        return None;
    }
    match queries::counter_rate(&query.value) {
        Ok(template) => Some(template),
        Err(why) => {
            p.at(
                &query_path,
                query,
                format!("has no {{{{.window}}}} placeholder, and {why}; {hint}"),
            );
            None
        }
    }
}

/// The query of a `raw` metric: an error or success ratio over `{{.window}}`.
fn metric_raw(
    p: &mut Problems<'_>,
    path: &str,
    holder: Option<&MetricHolder>,
    data_sources: &HashMap<String, DataSource<'_>>,
) -> Option<QueryTemplate> {
    let query = prometheus_query(p, path, holder, data_sources)?;
    let query_path = format!("{path}.metricSource.spec.query");
    match check_query_template(&query.value) {
        Ok(()) => Some(QueryTemplate::new(query.value.trim())),
        Err(why) => {
            p.at(
                &query_path,
                query,
                format!("{why} (a raw ratio is read over each window)"),
            );
            None
        }
    }
}

/// The query text of a metric whose source is Prometheus (directly or by its DataSource).
fn prometheus_query<'m>(
    p: &mut Problems<'_>,
    path: &str,
    holder: Option<&'m MetricHolder>,
    data_sources: &HashMap<String, DataSource<'_>>,
) -> Option<&'m Spanned<String>> {
    let Some(holder) = holder else {
        p.missing(path, "a metricSource of type Prometheus with spec.query");
        return None;
    };
    let Some(source) = &holder.metric_source else {
        p.missing(
            &format!("{path}.metricSource"),
            "type: Prometheus and spec.query",
        );
        return None;
    };
    let source_path = format!("{path}.metricSource");
    let is_prometheus = |t: &str| t.eq_ignore_ascii_case("prometheus");
    let not_prometheus = |t: &str| {
        format!(
            "`{t}` is not a Prometheus source; burnguard reads Prometheus-compatible query APIs only (Prometheus, Thanos, Mimir, VictoriaMetrics)"
        )
    };
    let mut ok = true;
    match (&source.source_type, &source.metric_source_ref) {
        (Some(t), _) => {
            if !is_prometheus(&t.value) {
                p.at(&format!("{source_path}.type"), t, not_prometheus(&t.value));
                ok = false;
            }
        }
        (None, Some(name)) => match data_sources.get(&name.value) {
            Some(DataSource {
                source_type: Some(t),
                ..
            }) if is_prometheus(t) => {}
            Some(found) => {
                let t = found.source_type.as_deref().unwrap_or("(no type)");
                p.at(
                    &format!("{source_path}.metricSourceRef"),
                    name,
                    format!(
                        "names the DataSource in {}, whose type {}",
                        found.place,
                        not_prometheus(t)
                    ),
                );
                ok = false;
            }
            None => {
                p.at(
                    &format!("{source_path}.metricSourceRef"),
                    name,
                    format!(
                        "names no DataSource in the files loaded; load the file with DataSource `{}`, or give type: Prometheus",
                        name.value
                    ),
                );
                ok = false;
            }
        },
        (None, None) => {
            p.missing(
                &format!("{source_path}.type"),
                "Prometheus (or a metricSourceRef naming a DataSource of type Prometheus)",
            );
            ok = false;
        }
    }
    let query = source.spec.as_ref().and_then(|s| s.query.as_ref());
    if query.is_none() {
        p.missing(
            &format!("{source_path}.spec.query"),
            "a PromQL query with {{.window}} where the range goes",
        );
    }
    if ok { query } else { None }
}

// ---------------------------------------------------------------------------------------------
// Writing

#[derive(Serialize)]
struct OutDocument<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'a str,
    metadata: OutMetadata<'a>,
    spec: OutSloSpec<'a>,
}

#[derive(Serialize)]
struct OutMetadata<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "crate::domain::policy::SloLabels::is_empty")]
    labels: &'a crate::domain::policy::SloLabels,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutSloSpec<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    service: &'a str,
    indicator: OutSli<'a>,
    time_window: Vec<OutTimeWindow>,
    budgeting_method: &'a str,
    objectives: Vec<OutObjective>,
}

#[derive(Serialize)]
struct OutSli<'a> {
    metadata: OutSliMetadata<'a>,
    spec: OutSliSpec,
}

#[derive(Serialize)]
struct OutSliMetadata<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutSliSpec {
    ratio_metric: OutRatioMetric,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutRatioMetric {
    counter: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    good: Option<OutMetric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bad: Option<OutMetric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<OutMetric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<OutMetric>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutMetric {
    metric_source: OutMetricSource,
}

#[derive(Serialize)]
struct OutMetricSource {
    #[serde(rename = "type")]
    source_type: &'static str,
    spec: OutQuery,
}

#[derive(Serialize)]
struct OutQuery {
    query: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutTimeWindow {
    duration: String,
    is_rolling: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    calendar: Option<OutCalendar>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutCalendar {
    /// Any period start will do: OpenSLO counts periods from it. 2024-01-01 was a Monday.
    start_time: &'static str,
    time_zone: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutObjective {
    target_percent: f64,
}

fn prometheus(query: &QueryTemplate) -> Option<OutMetric> {
    Some(OutMetric {
        metric_source: OutMetricSource {
            source_type: "Prometheus",
            spec: OutQuery {
                query: query.template().to_string(),
            },
        },
    })
}

/// OpenSLO's duration shorthand: one number and one unit.
fn shorthand(window: Window) -> String {
    let secs = window.as_secs();
    for (unit, size) in [('d', 86_400), ('h', 3_600), ('m', 60)] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    window.to_string()
}

/// An SLO as an OpenSLO `SLO` document (YAML, without a leading `---`), and the settings it
/// has that OpenSLO cannot hold, as problems with their burnguard paths (the document then
/// reads back without them: with burnguard's defaults).
pub fn export(slo: &Slo) -> Result<(String, Vec<Problem>), serde_saphyr::SerializeError> {
    let ratio = match &slo.indicator {
        Indicator::Ratio { bad, total } => OutRatioMetric {
            counter: true,
            good: match bad {
                BadEvents::Good(good) => prometheus(good),
                BadEvents::Errors(_) => None,
            },
            bad: match bad {
                BadEvents::Errors(errors) => prometheus(errors),
                BadEvents::Good(_) => None,
            },
            total: prometheus(total),
            raw_type: None,
            raw: None,
        },
        Indicator::Latency {
            histogram,
            matchers,
            threshold,
        } => {
            let (good, total) = sli::latency_templates(histogram, matchers, *threshold);
            OutRatioMetric {
                counter: true,
                good: prometheus(&good),
                bad: None,
                total: prometheus(&total),
                raw_type: None,
                raw: None,
            }
        }
        Indicator::Raw { error_ratio } => OutRatioMetric {
            counter: false,
            good: None,
            bad: None,
            total: None,
            raw_type: Some("failure"),
            raw: prometheus(error_ratio),
        },
    };
    let percent: f64 = slo
        .objective
        .percent_text()
        .parse()
        .unwrap_or_else(|_| slo.objective.percent());
    let document = OutDocument {
        api_version: API_VERSION,
        kind: "SLO",
        metadata: OutMetadata {
            name: &slo.name,
            labels: &slo.labels,
        },
        spec: OutSloSpec {
            description: &slo.description,
            service: &slo.service,
            indicator: OutSli {
                metadata: OutSliMetadata { name: &slo.name },
                spec: OutSliSpec {
                    ratio_metric: ratio,
                },
            },
            time_window: vec![match &slo.calendar {
                None => OutTimeWindow {
                    duration: shorthand(slo.window),
                    is_rolling: true,
                    calendar: None,
                },
                Some(c) => OutTimeWindow {
                    duration: match c.period {
                        CalendarPeriod::Week => "1w".to_string(),
                        CalendarPeriod::Month => "1M".to_string(),
                    },
                    is_rolling: false,
                    calendar: Some(OutCalendar {
                        start_time: "2024-01-01 00:00:00",
                        time_zone: c.zone_name.clone(),
                    }),
                },
            }],
            budgeting_method: "Occurrences",
            objectives: vec![OutObjective {
                target_percent: percent,
            }],
        },
    };
    let yaml = serde_saphyr::to_string_with_options(&document, super::v1::writer_options())?;
    Ok((yaml, not_exported(slo)))
}

/// burnguard settings of `slo` that an OpenSLO document cannot hold.
fn not_exported(slo: &Slo) -> Vec<Problem> {
    let mut lost = Vec::new();
    let mut note = |path: &str, message: &str| {
        lost.push(Problem::new(path, None, format!("not exported: {message}")));
    };
    if slo.min_events > 0 {
        note(
            "spec.minEvents",
            "OpenSLO has no minimum event count; read back, every window with traffic counts",
        );
    }
    if slo.schedule.is_some() {
        note("spec.schedule", "OpenSLO has no evaluation schedule");
    }
    if !slo.group_by.is_empty() {
        note(
            "spec.groupBy",
            "OpenSLO has no grouping; read back, the queries' groups are one SLO's series (an error until they are summed)",
        );
    }
    if slo.resolve_after != DEFAULT_RESOLVE_AFTER {
        note("spec.resolveAfter", "OpenSLO has no incident settings");
    }
    if !slo.budget_policy.is_empty() {
        note(
            "spec.budgetPolicy",
            "OpenSLO has no budget policies or playbooks",
        );
    }
    let a = &slo.alerting;
    let google = slo.window >= windows::google_longest_window()
        && a.windows == windows::resolve(&windows::GOOGLE, slo.window);
    if !google {
        note(
            "spec.alerting.windows",
            "OpenSLO has no multi-window burn-rate rows; read back, the SLO alerts with the google catalogue",
        );
    }
    if a.name != DEFAULT_ALERT_NAME {
        note("spec.alerting.name", "OpenSLO has no alert names");
    }
    if !a.labels.is_empty() || !a.page.labels.is_empty() || !a.ticket.labels.is_empty() {
        note("spec.alerting.labels", "OpenSLO has no alert labels");
    }
    if !a.annotations.is_empty()
        || !a.page.annotations.is_empty()
        || !a.ticket.annotations.is_empty()
    {
        note(
            "spec.alerting.annotations",
            "OpenSLO has no alert annotations",
        );
    }
    lost
}
