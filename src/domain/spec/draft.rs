//! What the importers share: an SLO put together from a foreign document's parts, each part
//! checked where it was found, and burnguard's defaults for what other formats do not have.
//!
//! Owns: the checks importers run on names, objectives, windows and queries with the
//! foreign path of the field. Must not touch: any one format's shape.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::domain::calendar::CalendarWindow;
use crate::domain::policy::{Alerting, Indicator, Objective, QueryTemplate, Slo, Window};
use crate::domain::validate::{
    DEFAULT_ALERT_NAME, DEFAULT_RESOLVE_AFTER, Problems, check_query_template, check_slo_name,
};

/// An SLO being imported. `None` parts had a problem (already reported).
pub(crate) struct Draft {
    pub name: Option<String>,
    pub service: Option<String>,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub objective: Option<Objective>,
    pub window: Option<Window>,
    /// A calendar window, when the format gave one (`window` is then its nominal length).
    pub calendar: Option<CalendarWindow>,
    pub indicator: Option<Indicator>,
    pub alerting: Option<Alerting>,
    /// Labels the format groups by (Pyrra's `grouping`); empty for one objective.
    pub group_by: Vec<String>,
}

impl Draft {
    /// The SLO, when every part is there. Imported SLOs have no event minimum, schedule or
    /// budget policy (no other format has them) and resolve incidents after the default.
    pub fn finish(self) -> Option<Slo> {
        Some(Slo {
            name: self.name?,
            service: self.service?,
            description: self.description,
            labels: self.labels.into(),
            objective: self.objective?,
            window: self.window?,
            calendar: self.calendar,
            indicator: self.indicator?,
            min_events: 0,
            schedule: None,
            resolve_after: DEFAULT_RESOLVE_AFTER,
            budget_policy: Vec::new(),
            alerting: self.alerting?,
            group_by: self.group_by,
            max_groups: crate::domain::policy::DEFAULT_MAX_GROUPS,
        })
    }
}

/// burnguard's alerting with `windows` rows and nothing else set.
pub(crate) fn default_alerting(windows: Vec<crate::domain::policy::AlertWindow>) -> Alerting {
    Alerting {
        name: DEFAULT_ALERT_NAME.to_string(),
        windows,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        page: Default::default(),
        ticket: Default::default(),
    }
}

/// A name burnguard accepts for an SLO, built by the format (`what` says how).
pub(crate) fn slo_name(
    p: &mut Problems<'_>,
    path: &str,
    at: &Spanned<String>,
    name: String,
    what: &str,
) -> Option<String> {
    match check_slo_name(&name) {
        Ok(()) => Some(name),
        Err(why) => {
            p.at(path, at, format!("{what}: {why}"));
            None
        }
    }
}

/// A percentage objective, strictly between 0 and 100.
pub(crate) fn objective_percent(
    p: &mut Problems<'_>,
    path: &str,
    percent: &Spanned<f64>,
) -> Option<Objective> {
    let objective = Objective::from_percent(percent.value);
    if objective.is_none() {
        p.at(
            path,
            percent,
            format!(
                "{} is out of range; burnguard needs a percentage strictly between 0 and 100 (100 leaves no error budget), such as 99.9",
                percent.value
            ),
        );
    }
    objective
}

/// A rolling window in Prometheus notation.
pub(crate) fn window(p: &mut Problems<'_>, path: &str, text: &Spanned<String>) -> Option<Window> {
    match Window::parse(&text.value) {
        Ok(window) => Some(window),
        Err(why) => {
            p.at(path, text, why.to_string());
            None
        }
    }
}

/// A query template with `{{.window}}`, valid PromQL.
pub(crate) fn query(
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

/// A field present with a value burnguard has no counterpart for.
pub(crate) fn refuse<T>(p: &mut Problems<'_>, path: &str, field: &Option<Spanned<T>>, why: &str) {
    if let Some(field) = field {
        p.at(path, field, why);
    }
}

/// The `metadata` of a Kubernetes object, as `kubectl get -o yaml` prints it. Only `name`,
/// `namespace` and `labels` mean anything to an importer; the rest is the API server's
/// bookkeeping and is read without complaint.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: Option<Spanned<String>>,
    pub namespace: Option<Spanned<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<Anything>,
    pub uid: Option<Anything>,
    pub resource_version: Option<Anything>,
    pub generation: Option<Anything>,
    pub generate_name: Option<Anything>,
    pub creation_timestamp: Option<Anything>,
    pub deletion_timestamp: Option<Anything>,
    pub deletion_grace_period_seconds: Option<Anything>,
    pub managed_fields: Option<Anything>,
    pub finalizers: Option<Anything>,
    pub owner_references: Option<Anything>,
    pub self_link: Option<Anything>,
}

/// Any YAML value, read and dropped. Unlike `serde::de::IgnoredAny` it does not count as an
/// unknown field: it is for fields a format has and burnguard knows it does not need (or
/// refuses by name, with the value's line).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Anything;

impl<'de> serde::Deserialize<'de> for Anything {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnythingVisitor)
    }
}

struct AnythingVisitor;

impl<'de> serde::de::Visitor<'de> for AnythingVisitor {
    type Value = Anything;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Anything, E> {
        Ok(Anything)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Anything, E> {
        Ok(Anything)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Anything, E> {
        Ok(Anything)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Anything, E> {
        Ok(Anything)
    }
    fn visit_str<E>(self, _: &str) -> Result<Anything, E> {
        Ok(Anything)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Anything, E> {
        Ok(Anything)
    }
    fn visit_none<E>(self) -> Result<Anything, E> {
        Ok(Anything)
    }
    fn visit_unit<E>(self) -> Result<Anything, E> {
        Ok(Anything)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Anything, D::Error> {
        Anything::deserialize(d)
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<Anything, D::Error> {
        Anything::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Anything, A::Error> {
        while seq.next_element::<Anything>()?.is_some() {}
        Ok(Anything)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Anything, A::Error> {
        while map.next_entry::<Anything, Anything>()?.is_some() {}
        Ok(Anything)
    }
}
