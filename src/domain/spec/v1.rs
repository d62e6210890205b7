//! The `burnguard.dev/v1` wire format, exactly as users write it in YAML.
//!
//! Fields people must give are still `Option` here so that validation can name every missing
//! one with its path instead of stopping at the first; `Spanned` keeps the line for messages.
//! Nothing here is trusted: `validate` turns it into `policy` types.
//!
//! Owns: the serde shape of kind `SLO`. Must not touch: I/O, defaults, range checks.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// The only apiVersion this build reads natively.
pub const API_VERSION: &str = "burnguard.dev/v1";

/// Just enough of any document to decide how to read the rest.
#[derive(Debug, Default, Deserialize)]
pub struct Header {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
}

/// A whole `kind: SLO` document.
#[derive(Debug, Deserialize)]
pub struct SloDocument {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    pub metadata: Option<Metadata>,
    pub spec: Option<SloSpec>,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub name: Option<Spanned<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SloSpec {
    pub service: Option<Spanned<String>>,
    pub description: Option<String>,
    /// Percent, as people say it: 99.9.
    pub objective: Option<Spanned<f64>>,
    pub window: Option<Spanned<String>>,
    pub indicator: Option<IndicatorSpec>,
    pub min_events: Option<Spanned<u64>>,
    /// Cron expression (seconds first) for evaluating this SLO off the service's interval.
    pub schedule: Option<Spanned<String>>,
    /// How long nothing must fire before an open incident resolves (default 15m).
    pub resolve_after: Option<Spanned<String>>,
    pub alerting: Option<AlertingSpec>,
    /// When to run playbooks or freeze deployments.
    pub budget_policy: Option<Vec<BudgetRuleSpec>>,
}

#[derive(Debug, Deserialize)]
pub struct IndicatorSpec {
    pub ratio: Option<RatioSpec>,
    pub latency: Option<LatencySpec>,
    pub raw: Option<RawSpec>,
}

#[derive(Debug, Deserialize)]
pub struct RatioSpec {
    pub errors: Option<Spanned<String>>,
    pub good: Option<Spanned<String>>,
    pub total: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct LatencySpec {
    pub histogram: Option<Spanned<String>>,
    pub selector: Option<Spanned<String>>,
    pub threshold: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
pub struct RawSpec {
    #[serde(rename = "errorRatio")]
    pub error_ratio: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct AlertingSpec {
    pub name: Option<Spanned<String>>,
    pub windows: Option<WindowsSpec>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// `windows:` is either the name of a catalogue or an explicit list of rows.
#[derive(Debug)]
pub enum WindowsSpec {
    Catalogue(String),
    List(Vec<AlertWindowSpec>),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertWindowSpec {
    pub severity: Option<Spanned<String>>,
    pub long: Option<Spanned<String>>,
    pub short: Option<Spanned<String>>,
    /// Percent of the SLO window's budget the long window spends at the threshold.
    pub budget_percent: Option<Spanned<f64>>,
    /// The burn-rate threshold itself, for people who think in factors.
    pub burn_rate: Option<Spanned<f64>>,
}

impl<'de> Deserialize<'de> for WindowsSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WindowsVisitor;

        impl<'de> Visitor<'de> for WindowsVisitor {
            type Value = WindowsSpec;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a catalogue name (google) or a list of {severity, long, short, budgetPercent}",
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
#[derive(Debug, Deserialize)]
pub struct BudgetRuleSpec {
    /// The rule's identity in the journal; derived from `when` (and what it runs) if absent.
    pub id: Option<Spanned<String>>,
    pub when: Option<WhenSpec>,
    pub run: Option<Spanned<String>>,
    pub freeze: Option<FreezeSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhenSpec {
    pub alert: Option<Spanned<String>>,
    pub budget_remaining_below: Option<Spanned<f64>>,
    pub burn_rate_above: Option<Spanned<f64>>,
    #[serde(rename = "for")]
    pub for_: Option<Spanned<String>>,
    pub window: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct FreezeSpec {
    pub service: Option<String>,
    pub namespace: Option<String>,
    pub deployments: Option<Vec<String>>,
    pub selector: Option<Spanned<String>>,
}

/// A whole `kind: Playbook` document.
#[derive(Debug, Deserialize)]
pub struct PlaybookDocument {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    pub metadata: Option<Metadata>,
    pub spec: Option<PlaybookSpec>,
}

#[derive(Debug, Deserialize)]
pub struct PlaybookSpec {
    pub mode: Option<Spanned<String>>,
    pub cooldown: Option<Spanned<String>>,
    pub steps: Option<Vec<StepSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepSpec {
    pub name: Option<Spanned<String>>,
    pub http: Option<HttpSpec>,
    pub rollback: Option<TargetSpec>,
    pub scale: Option<ScaleSpec>,
    pub freeze: Option<FreezeSpec>,
    pub verify: Option<VerifySpec>,
    pub continue_on_error: Option<bool>,
    pub idempotent: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSpec {
    pub method: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub body: Option<String>,
    pub expect_status: Option<Vec<u16>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct TargetSpec {
    pub namespace: Option<String>,
    pub deployment: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ScaleSpec {
    pub namespace: Option<String>,
    pub deployment: Option<String>,
    pub replicas: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifySpec {
    pub window: Option<Spanned<String>>,
    pub burn_rate_below: Option<Spanned<f64>>,
    pub within: Option<Spanned<String>>,
}
