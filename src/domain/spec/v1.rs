//! The `burnguard.dev/v1` wire format, exactly as users write it in YAML.
//!
//! Fields people must give are still `Option` here so that validation can name every missing
//! one with its path instead of stopping at the first; `Spanned` keeps the line for messages.
//! Nothing here is trusted: `validate` turns it into `policy` types.
//!
//! Owns: the serde shape of kind `SLO`. Must not touch: I/O, defaults, range checks.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// The only apiVersion this build reads natively.
pub const API_VERSION: &str = "burnguard.dev/v1";

/// The kind of an SLO as a Kubernetes object; files may say `SLO` or this.
pub const KUBERNETES_SLO_KIND: &str = "ServiceLevelObjective";

/// What a duration looks like (`30d`, `1h30m`): units largest first, each at most once. The
/// CRD schema carries it so the API server refuses a malformed one before burnguard sees it.
pub const DURATION_PATTERN: &str = "^([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$";

/// Just enough of any document to decide how to read the rest.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct Header {
    #[serde(rename = "apiVersion")]
    #[schemars(with = "Option<String>")]
    pub api_version: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub kind: Option<Spanned<String>>,
    /// Sloth's plain files say `version: prometheus/v1` instead of an apiVersion.
    #[schemars(with = "Option<String>")]
    pub version: Option<Spanned<String>>,
}

/// A whole `kind: SLO` document.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct SloDocument {
    #[serde(rename = "apiVersion")]
    #[schemars(with = "Option<String>")]
    pub api_version: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub kind: Option<Spanned<String>>,
    pub metadata: Option<Metadata>,
    pub spec: Option<SloSpec>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct Metadata {
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// A Kubernetes object's namespace: allowed so one file serves `kubectl apply` and
    /// `burnguard validate`; burnguard's own loader does not use it.
    pub namespace: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(extend("required" = ["service", "objective", "indicator"]))]
#[serde(rename_all = "camelCase")]
pub struct SloSpec {
    #[schemars(with = "Option<String>", length(min = 1))]
    pub service: Option<Spanned<String>>,
    pub description: Option<String>,
    /// Percent, as people say it: 99.9.
    #[schemars(with = "Option<f64>", extend("minimum" = 0, "exclusiveMinimum" = true, "maximum" = 100, "exclusiveMaximum" = true))]
    pub objective: Option<Spanned<f64>>,
    /// A rolling duration (`30d`), or a calendar period: `{calendar: month, timeZone: Europe/Berlin}`.
    #[schemars(with = "Option<WindowSpec>")]
    pub window: Option<Spanned<WindowSpec>>,
    pub indicator: Option<IndicatorSpec>,
    #[schemars(with = "Option<u64>")]
    pub min_events: Option<Spanned<u64>>,
    /// Cron expression (seconds first) for evaluating this SLO off the service's interval.
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Spanned<String>>,
    /// How long nothing must fire before an open incident resolves (default 15m).
    #[schemars(with = "Option<String>", regex(pattern = crate::domain::spec::v1::DURATION_PATTERN), length(min = 2, max = 32))]
    pub resolve_after: Option<Spanned<String>>,
    pub alerting: Option<AlertingSpec>,
    /// When to run playbooks or freeze deployments.
    pub budget_policy: Option<Vec<BudgetRuleSpec>>,
    /// Label names whose values split this SLO into one objective each (`[route]`): the
    /// queries must aggregate `by` these labels.
    #[schemars(with = "Option<Vec<String>>", length(max = 5))]
    pub group_by: Option<Spanned<Vec<String>>>,
    /// At most this many groups (default 100); past it the SLO is an error, never a guess.
    #[schemars(with = "Option<u32>", range(min = 1, max = 10000))]
    pub max_groups: Option<Spanned<u32>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "[has(self.ratio), has(self.latency), has(self.raw)].filter(x, x).size() == 1", "message": "give exactly one of ratio, latency or raw"}]))]
pub struct IndicatorSpec {
    pub ratio: Option<RatioSpec>,
    pub latency: Option<LatencySpec>,
    pub raw: Option<RawSpec>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(extend("required" = ["total"]))]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "!(has(self.errors) && has(self.good))", "message": "give errors or good, not both"}]))]
pub struct RatioSpec {
    #[schemars(with = "Option<String>")]
    pub errors: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub good: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub total: Option<Spanned<String>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct LatencySpec {
    #[schemars(with = "Option<String>")]
    pub histogram: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub selector: Option<Spanned<String>>,
    #[schemars(with = "Option<f64>", extend("minimum" = 0, "exclusiveMinimum" = true))]
    pub threshold: Option<Spanned<f64>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct RawSpec {
    #[serde(rename = "errorRatio")]
    #[schemars(with = "Option<String>")]
    pub error_ratio: Option<Spanned<String>>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct AlertingSpec {
    #[schemars(
        with = "Option<String>",
        regex(pattern = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    )]
    pub name: Option<Spanned<String>>,
    pub windows: Option<WindowsSpec>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// Extra labels and annotations for the page rows.
    pub page: Option<AlertRouteSpec>,
    /// Extra labels and annotations for the ticket rows.
    pub ticket: Option<AlertRouteSpec>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct AlertRouteSpec {
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// `windows:` is either the name of a catalogue (`google`, or `none` for no alerts) or an
/// explicit list of rows.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum WindowsSpec {
    Catalogue(String),
    List(Vec<AlertWindowSpec>),
}

impl JsonSchema for WindowsSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "WindowsSpec".into()
    }

    /// A string or a list: a Kubernetes structural schema cannot say "one of two types", so
    /// the API server keeps the field as written and burnguard checks it (the object's
    /// status names any problem).
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A catalogue name (`google`, or `none` for no alerts), or a list of rows {severity, long, short, budgetPercent | burnRate}.",
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

/// `window:` is a rolling duration (`28d`) or a calendar period in a time zone.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum WindowSpec {
    Rolling(String),
    Calendar(CalendarSpec),
}

/// `{calendar: week | month, timeZone: Europe/Berlin}`: the budget resets at each period's
/// start in that zone (UTC when absent).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalendarSpec {
    pub calendar: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl JsonSchema for WindowSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "WindowSpec".into()
    }

    /// A string or an object, so (as for `windows`) kept as written by the API server, with
    /// a CEL rule for the shape; burnguard checks the rest (zone names, durations).
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let duration = DURATION_PATTERN;
        schemars::json_schema!({
            "description": "A rolling duration such as 30d or 4w, or a calendar period: {calendar: week | month, timeZone: Europe/Berlin}.",
            "x-kubernetes-preserve-unknown-fields": true,
            "x-kubernetes-validations": [{
                "rule": format!("type(self) == string ? (size(self) >= 2 && self.matches('{duration}')) : (type(self) == map && has(self.calendar) && self.calendar in ['week', 'month'])"),
                "message": "give a duration such as 30d, or {calendar: week | month, timeZone: <IANA zone>}"
            }]
        })
    }
}

impl<'de> Deserialize<'de> for WindowSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WindowVisitor;

        impl<'de> Visitor<'de> for WindowVisitor {
            type Value = WindowSpec;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a duration such as 30d, or {calendar: week | month, timeZone: Europe/Berlin}",
                )
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(WindowSpec::Rolling(text.to_string()))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                CalendarSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(WindowSpec::Calendar)
            }
        }

        deserializer.deserialize_any(WindowVisitor)
    }
}

/// One alert-window row. Its cross-field rules (short < long, budgetPercent or burnRate) are
/// burnguard's to check: `windows` takes a name or a list, which a structural schema cannot
/// type, so the API server keeps it as written and the object's status reports problems.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertWindowSpec {
    #[schemars(with = "Option<String>", extend("enum" = ["page", "ticket"]))]
    pub severity: Option<Spanned<String>>,
    #[schemars(with = "Option<String>", regex(pattern = crate::domain::spec::v1::DURATION_PATTERN), length(min = 2, max = 32))]
    pub long: Option<Spanned<String>>,
    #[schemars(with = "Option<String>", regex(pattern = crate::domain::spec::v1::DURATION_PATTERN), length(min = 2, max = 32))]
    pub short: Option<Spanned<String>>,
    /// Percent of the SLO window's budget the long window spends at the threshold.
    #[schemars(with = "Option<f64>", extend("minimum" = 0, "exclusiveMinimum" = true, "maximum" = 100))]
    pub budget_percent: Option<Spanned<f64>>,
    /// The burn-rate threshold itself, for people who think in factors.
    #[schemars(with = "Option<f64>", extend("minimum" = 0, "exclusiveMinimum" = true))]
    pub burn_rate: Option<Spanned<f64>>,
}

impl<'de> Deserialize<'de> for WindowsSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WindowsVisitor;

        impl<'de> Visitor<'de> for WindowsVisitor {
            type Value = WindowsSpec;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a catalogue name (google, or none) or a list of {severity, long, short, budgetPercent}",
                )
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
                Ok(WindowsSpec::Catalogue(name.to_string()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut rows = Vec::new();
                while let Some(row) = seq.next_element()? {
                    rows.push(row);
                }
                Ok(WindowsSpec::List(rows))
            }
        }

        deserializer.deserialize_any(WindowsVisitor)
    }
}

/// One entry of `spec.budgetPolicy`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "!(has(self.run) && has(self.freeze))", "message": "give run or freeze, not both"}]))]
pub struct BudgetRuleSpec {
    /// The rule's identity in the journal; derived from `when` (and what it runs) if absent.
    #[schemars(with = "Option<String>")]
    pub id: Option<Spanned<String>>,
    pub when: Option<WhenSpec>,
    #[schemars(with = "Option<String>")]
    pub run: Option<Spanned<String>>,
    pub freeze: Option<FreezeSpec>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "[has(self.alert), has(self.budgetRemainingBelow), has(self.burnRateAbove)].filter(x, x).size() == 1", "message": "give exactly one of alert, budgetRemainingBelow or burnRateAbove"}]))]
#[serde(rename_all = "camelCase")]
pub struct WhenSpec {
    #[schemars(with = "Option<String>", extend("enum" = ["page", "ticket"]))]
    pub alert: Option<Spanned<String>>,
    #[schemars(with = "Option<f64>", range(min = 0.0, max = 100.0))]
    pub budget_remaining_below: Option<Spanned<f64>>,
    #[schemars(with = "Option<f64>", extend("minimum" = 0, "exclusiveMinimum" = true))]
    pub burn_rate_above: Option<Spanned<f64>>,
    #[serde(rename = "for")]
    #[schemars(with = "Option<String>", regex(pattern = crate::domain::spec::v1::DURATION_PATTERN), length(min = 2, max = 32))]
    pub for_: Option<Spanned<String>>,
    #[schemars(with = "Option<String>", regex(pattern = crate::domain::spec::v1::DURATION_PATTERN), length(min = 2, max = 32))]
    pub window: Option<Spanned<String>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct FreezeSpec {
    pub service: Option<String>,
    pub namespace: Option<String>,
    pub deployments: Option<Vec<String>>,
    #[schemars(with = "Option<String>")]
    pub selector: Option<Spanned<String>>,
}

/// A whole `kind: Playbook` document.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct PlaybookDocument {
    #[serde(rename = "apiVersion")]
    #[schemars(with = "Option<String>")]
    pub api_version: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub kind: Option<Spanned<String>>,
    pub metadata: Option<Metadata>,
    pub spec: Option<PlaybookSpec>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(extend("required" = ["steps"]))]
pub struct PlaybookSpec {
    #[schemars(with = "Option<String>", extend("enum" = ["auto", "approve", "dry-run"]))]
    pub mode: Option<Spanned<String>>,
    #[schemars(with = "Option<String>", regex(pattern = crate::domain::spec::v1::DURATION_PATTERN), length(min = 2, max = 32))]
    pub cooldown: Option<Spanned<String>>,
    pub steps: Option<Vec<StepSpec>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(extend("required" = ["name"]))]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "[has(self.http), has(self.rollback), has(self.scale), has(self.freeze), has(self.verify)].filter(x, x).size() == 1", "message": "give exactly one of http, rollback, scale, freeze or verify"}]))]
#[serde(rename_all = "camelCase")]
pub struct StepSpec {
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    pub http: Option<HttpSpec>,
    pub rollback: Option<TargetSpec>,
    pub scale: Option<ScaleSpec>,
    pub freeze: Option<FreezeSpec>,
    pub verify: Option<VerifySpec>,
    pub continue_on_error: Option<bool>,
    pub idempotent: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSpec {
    #[schemars(with = "Option<String>")]
    pub method: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub body: Option<String>,
    pub expect_status: Option<Vec<u16>>,
    #[schemars(with = "Option<String>", regex(pattern = crate::domain::spec::v1::DURATION_PATTERN), length(min = 2, max = 32))]
    pub timeout: Option<Spanned<String>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct TargetSpec {
    pub namespace: Option<String>,
    pub deployment: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ScaleSpec {
    pub namespace: Option<String>,
    pub deployment: Option<String>,
    #[schemars(with = "Option<u32>")]
    pub replicas: Option<Spanned<u32>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifySpec {
    #[schemars(with = "Option<String>", regex(pattern = crate::domain::spec::v1::DURATION_PATTERN), length(min = 2, max = 32))]
    pub window: Option<Spanned<String>>,
    #[schemars(with = "Option<f64>", extend("minimum" = 0, "exclusiveMinimum" = true))]
    pub burn_rate_below: Option<Spanned<f64>>,
    #[schemars(with = "Option<String>", regex(pattern = crate::domain::spec::v1::DURATION_PATTERN), length(min = 2, max = 32))]
    pub within: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------------
// Writing: a validated SLO back as a `burnguard.dev/v1` document (what `burnguard import`
// writes). Reading the text back gives the same `Slo`: numbers are written so they parse to
// the same values, and defaults are left out.

mod out {
    use std::collections::BTreeMap;

    use serde::Serialize;

    #[derive(Serialize)]
    pub struct Slo<'a> {
        #[serde(rename = "apiVersion")]
        pub api_version: &'a str,
        pub kind: &'a str,
        pub metadata: Metadata<'a>,
        pub spec: Spec<'a>,
    }

    #[derive(Serialize)]
    pub struct Metadata<'a> {
        pub name: &'a str,
        #[serde(skip_serializing_if = "crate::domain::policy::SloLabels::is_empty")]
        pub labels: &'a crate::domain::policy::SloLabels,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Spec<'a> {
        pub service: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        pub description: &'a str,
        pub objective: f64,
        pub window: super::WindowSpec,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        pub group_by: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_groups: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub min_events: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub schedule: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub resolve_after: Option<String>,
        pub indicator: Indicator<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub alerting: Option<Alerting<'a>>,
    }

    #[derive(Serialize, Default)]
    pub struct Indicator<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ratio: Option<Ratio<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub latency: Option<Latency<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub raw: Option<Raw<'a>>,
    }

    #[derive(Serialize)]
    pub struct Ratio<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub errors: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub good: Option<&'a str>,
        pub total: &'a str,
    }

    #[derive(Serialize)]
    pub struct Latency<'a> {
        pub histogram: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub selector: Option<String>,
        pub threshold: f64,
    }

    #[derive(Serialize)]
    pub struct Raw<'a> {
        #[serde(rename = "errorRatio")]
        pub error_ratio: &'a str,
    }

    #[derive(Serialize, Default)]
    pub struct Alerting<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub windows: Option<Windows>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub labels: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub annotations: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub page: Option<Route<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ticket: Option<Route<'a>>,
    }

    #[derive(Serialize)]
    #[serde(untagged)]
    pub enum Windows {
        Catalogue(&'static str),
        List(Vec<Row>),
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Row {
        pub severity: &'static str,
        pub long: String,
        pub short: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub budget_percent: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub burn_rate: Option<f64>,
    }

    #[derive(Serialize)]
    pub struct Route<'a> {
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub labels: &'a BTreeMap<String, String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub annotations: &'a BTreeMap<String, String>,
    }
}

/// An SLO as a `burnguard.dev/v1` document (YAML, without a leading `---`). Budget policies are
/// not written: no imported format has them.
pub fn write_slo(slo: &crate::domain::policy::Slo) -> Result<String, serde_saphyr::SerializeError> {
    use crate::domain::policy::{AlertRoute, BadEvents, Indicator};
    use crate::domain::validate::{DEFAULT_ALERT_NAME, DEFAULT_RESOLVE_AFTER};
    use crate::domain::windows;

    let indicator = match &slo.indicator {
        Indicator::Ratio { bad, total } => out::Indicator {
            ratio: Some(out::Ratio {
                errors: match bad {
                    BadEvents::Errors(q) => Some(q.template()),
                    BadEvents::Good(_) => None,
                },
                good: match bad {
                    BadEvents::Good(q) => Some(q.template()),
                    BadEvents::Errors(_) => None,
                },
                total: total.template(),
            }),
            ..Default::default()
        },
        Indicator::Latency {
            histogram,
            matchers,
            threshold,
        } => out::Indicator {
            latency: Some(out::Latency {
                histogram,
                selector: (!matchers.is_empty()).then(|| format!("{{{matchers}}}")),
                threshold: *threshold,
            }),
            ..Default::default()
        },
        Indicator::Raw { error_ratio } => out::Indicator {
            raw: Some(out::Raw {
                error_ratio: error_ratio.template(),
            }),
            ..Default::default()
        },
    };
    let a = &slo.alerting;
    let google = slo.window >= windows::google_longest_window()
        && a.windows == windows::resolve(&windows::GOOGLE, slo.window);
    let rows = if google {
        None
    } else if a.windows.is_empty() {
        Some(out::Windows::Catalogue("none"))
    } else {
        Some(out::Windows::List(
            a.windows
                .iter()
                .map(|row| {
                    let (budget_percent, burn_rate) = row_threshold(row, slo.window);
                    out::Row {
                        severity: row.severity.as_str(),
                        long: row.long.to_string(),
                        short: row.short.to_string(),
                        budget_percent,
                        burn_rate,
                    }
                })
                .collect(),
        ))
    };
    fn route(r: &AlertRoute) -> Option<out::Route<'_>> {
        (!r.labels.is_empty() || !r.annotations.is_empty()).then_some(out::Route {
            labels: &r.labels,
            annotations: &r.annotations,
        })
    }
    let alerting = out::Alerting {
        name: (a.name != DEFAULT_ALERT_NAME).then_some(a.name.as_str()),
        windows: rows,
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        page: route(&a.page),
        ticket: route(&a.ticket),
    };
    let has_alerting = alerting.name.is_some()
        || alerting.windows.is_some()
        || !alerting.labels.is_empty()
        || !alerting.annotations.is_empty()
        || alerting.page.is_some()
        || alerting.ticket.is_some();
    let document = out::Slo {
        api_version: API_VERSION,
        kind: "SLO",
        metadata: out::Metadata {
            name: &slo.name,
            labels: &slo.labels,
        },
        spec: out::Spec {
            service: &slo.service,
            description: &slo.description,
            objective: slo
                .objective
                .percent_text()
                .parse()
                .unwrap_or_else(|_| slo.objective.percent()),
            window: match &slo.calendar {
                None => WindowSpec::Rolling(slo.window.to_string()),
                Some(c) => WindowSpec::Calendar(CalendarSpec {
                    calendar: c.period.as_str().to_string(),
                    time_zone: Some(c.zone_name.clone()),
                }),
            },
            group_by: &slo.group_by,
            max_groups: (slo.max_groups != crate::domain::policy::DEFAULT_MAX_GROUPS)
                .then_some(slo.max_groups),
            min_events: (slo.min_events > 0).then_some(slo.min_events),
            schedule: slo.schedule.as_deref(),
            resolve_after: (slo.resolve_after != DEFAULT_RESOLVE_AFTER)
                .then(|| slo.resolve_after.to_string()),
            indicator,
            alerting: has_alerting.then_some(alerting),
        },
    };
    serde_saphyr::to_string_with_options(&document, writer_options())
}

/// Long queries stay on one line (folding would break PromQL mid-operator for readers);
/// queries written over several lines keep them.
pub(crate) fn writer_options() -> serde_saphyr::SerializerOptions {
    serde_saphyr::ser_options! { folded_wrap_chars: 1_000_000 }
}

/// How to write a row's threshold: as `(budgetPercent, burnRate)` with one of them set, the
/// shorter of the two that reads back to exactly the row's threshold (the budget share for
/// catalogue rows, `2`; the factor for rows given as factors, `14`).
fn row_threshold(
    row: &crate::domain::policy::AlertWindow,
    slo_window: crate::domain::policy::Window,
) -> (Option<f64>, Option<f64>) {
    use crate::domain::sli::promql_number;
    use crate::domain::windows::burn_rate_threshold;
    let share = row.budget_share(slo_window) * 100.0;
    let percent = [promql_number(share), format!("{share}")]
        .into_iter()
        .find(|text| {
            text.parse::<f64>().is_ok_and(|pct| {
                pct > 0.0
                    && pct <= 100.0
                    && burn_rate_threshold(pct / 100.0, slo_window, row.long)
                        == row.burn_rate_threshold
            })
        });
    let rate = promql_number(row.burn_rate_threshold);
    let rate = if rate.parse::<f64>() == Ok(row.burn_rate_threshold) {
        rate
    } else {
        format!("{}", row.burn_rate_threshold)
    };
    match percent {
        Some(percent) if percent.len() <= rate.len() => (percent.parse().ok(), None),
        _ => (None, Some(row.burn_rate_threshold)),
    }
}

#[cfg(test)]
mod tests {
    use crate::policies::parse_source;

    fn one(text: &str) -> crate::domain::policy::Slo {
        let (loaded, problems) = parse_source("t.yaml", text);
        assert!(problems.is_empty(), "{problems:?}\n{text}");
        assert_eq!(loaded.len(), 1);
        loaded[0].slo.clone()
    }

    #[test]
    fn a_written_slo_reads_back_the_same() {
        let head = "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {name: s, labels: {team: a}}\nspec:\n  service: s\n";
        let ratio = "  indicator: {ratio: {errors: 'sum(rate(e[{{.window}}]))', total: 'sum(rate(t[{{.window}}]))'}}\n";
        let cases = [
            format!("{head}  objective: 99.9\n{ratio}"),
            format!(
                "{head}  objective: 99.95\n  window: 28d\n  minEvents: 20\n  schedule: '0 */5 * * * *'\n  resolveAfter: 1h\n{ratio}  alerting: {{name: Burn, labels: {{route: x}}, annotations: {{runbook: 'http://r'}}, page: {{labels: {{severity: critical}}, annotations: {{a: b}}}}, ticket: {{labels: {{severity: warning}}}}}}\n"
            ),
            format!(
                "{head}  objective: 99\n  window: 7d\n{ratio}  alerting:\n    windows:\n      - {{severity: page, long: 1h, short: 5m, budgetPercent: 5}}\n      - {{severity: ticket, long: 6h, short: 30m, burnRate: 1.3333333333333333}}\n"
            ),
            format!(
                "{head}  objective: 97.5\n  window: 1d\n{ratio}  alerting: {{windows: none}}\n"
            ),
            format!(
                "{head}  objective: 99.5\n  indicator: {{latency: {{histogram: rpc_seconds, selector: '{{job=\"a\", le_not=\"x\"}}', threshold: 0.25}}}}\n"
            ),
            format!(
                "{head}  objective: 99.5\n  indicator: {{latency: {{histogram: rpc_seconds, threshold: 1}}}}\n"
            ),
            format!(
                "{head}  description: 'multi\n    line: with # and \"quotes\"'\n  objective: 99.5\n  indicator: {{raw: {{errorRatio: \"1 - avg_over_time(x:ratio[{{{{.window}}}}])\"}}}}\n"
            ),
            format!(
                "{head}  objective: 99.5\n  indicator:\n    ratio:\n      good: |\n        sum(rate(g[{{{{.window}}}}]))\n          or vector(0)\n      total: sum(rate(t[{{{{.window}}}}]))\n"
            ),
        ];
        for text in cases {
            let slo = one(&text);
            let written = super::write_slo(&slo).unwrap();
            assert_eq!(one(&written), slo, "{text}\nwritten as\n{written}");
        }
    }
}
