//! The outside world as the engine sees it: async traits the engine is generic over, and the
//! plain data that crosses them. Adapters implement these; tests can too.
//!
//! Owns: [`MetricsSource`] and its sample types and errors. Must not touch: any concrete
//! client library (those live in `adapters`).

use std::collections::BTreeMap;
use std::future::Future;

/// Label set of one series.
pub type Labels = BTreeMap<String, String>;

/// Unix time in whole seconds, the resolution Prometheus queries take.
pub type UnixSeconds = i64;

/// One series of an instant query.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub value: f64,
}

/// One series of a range query: `(time, value)` points in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(UnixSeconds, f64)>,
}

/// Why a query gave no answer. None of these is ever read as a number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("query timed out after {seconds}s")]
    Timeout { seconds: u64 },
    #[error("cannot reach the metrics source: {0}")]
    Unreachable(String),
    #[error("the metrics source refused the query: {0}")]
    Rejected(String),
    #[error("the metrics source answered something unreadable: {0}")]
    BadResponse(String),
}

/// Where SLI numbers come from: Prometheus or anything that speaks its query API.
pub trait MetricsSource: Send + Sync {
    /// Evaluates `expr` at `at`.
    fn instant(
        &self,
        expr: &str,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<Vec<InstantSample>, MetricsError>> + Send;

    /// Evaluates `expr` at every `step` seconds from `start` to `end` inclusive.
    fn range(
        &self,
        expr: &str,
        start: UnixSeconds,
        end: UnixSeconds,
        step: u64,
    ) -> impl Future<Output = Result<Vec<RangeSeries>, MetricsError>> + Send;
}

/// An incident as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct IncidentRecord {
    pub id: i64,
    pub slo: String,
    pub service: String,
    pub severity: String,
    pub status: String,
    pub opened_at: UnixSeconds,
    pub acknowledged_at: Option<UnixSeconds>,
    pub resolved_at: Option<UnixSeconds>,
    pub last_firing_at: UnixSeconds,
    pub peak_burn_rate: f64,
    pub budget_remaining_at_open: Option<f64>,
    pub budget_remaining_at_resolve: Option<f64>,
}

/// One entry of an incident's timeline.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TimelineEvent {
    pub id: i64,
    pub at: UnixSeconds,
    /// `opened`, `escalated`, `resolved`, `data_missing`, `data_back`, `acknowledged`, ...
    pub kind: String,
    pub message: String,
    pub actor: Option<String>,
    /// Structured detail, e.g. the evaluation snapshot that caused the change.
    pub detail: Option<serde_json::Value>,
}

/// A remediation step as journaled.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ActionRecord {
    pub id: i64,
    pub idempotency_key: String,
    pub kind: String,
    pub status: String,
    pub dry_run: bool,
    pub created_at: UnixSeconds,
    pub started_at: Option<UnixSeconds>,
    pub finished_at: Option<UnixSeconds>,
    pub intent: serde_json::Value,
    pub outcome: Option<serde_json::Value>,
}

/// An incident with its timeline and actions.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: IncidentRecord,
    pub timeline: Vec<TimelineEvent>,
    pub actions: Vec<ActionRecord>,
}

/// Which incidents to list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentFilter {
    /// `None` lists every status.
    pub status: Option<crate::domain::incident::IncidentStatus>,
    pub slo: Option<String>,
    pub limit: Option<i64>,
}

/// What a lifecycle step did to an SLO's incidents.
#[derive(Clone, Debug, PartialEq)]
pub struct Transitioned {
    pub decision: crate::domain::incident::Decision,
    /// The incident the decision applied to (`None` when there was none and none opened).
    pub incident_id: Option<i64>,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error(
        "the database was migrated by a newer burnguard (it has migration {version}, which this build does not know); upgrade burnguard or use another database"
    )]
    NewerSchema { version: i64 },
    #[error("migrating the database failed: {0}")]
    Migrate(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

/// One SLO evaluation as stored: the few columns queries need plus the whole snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct EvaluationRecord {
    pub slo: String,
    pub service: String,
    pub evaluated_at: UnixSeconds,
    /// `ok`, `ticket`, `page`, `no_data` or `error`.
    pub status: String,
    pub error_budget_remaining: Option<f64>,
    /// The full evaluation (ratios, burn rates, alerts) as JSON.
    pub snapshot: serde_json::Value,
}

/// Where burnguard remembers evaluations, incidents and (later) actions, freezes and webhooks.
pub trait Store: Send + Sync {
    /// Records one SLO's evaluation and applies `decide` to its unresolved incident, in one
    /// transaction: either all of it is stored or none. `decide` sees the incident as it is in
    /// the database at that moment, so two writers cannot both open one.
    fn record<F>(
        &self,
        evaluation: &EvaluationRecord,
        decide: F,
    ) -> impl Future<Output = Result<Transitioned, StoreError>> + Send
    where
        F: Fn(Option<&crate::domain::incident::OpenIncident>) -> crate::domain::incident::Decision
            + Send
            + Sync;

    fn list_incidents(
        &self,
        filter: &IncidentFilter,
    ) -> impl Future<Output = Result<Vec<IncidentRecord>, StoreError>> + Send;

    fn incident(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<IncidentDetail>, StoreError>> + Send;

    /// Deletes evaluation history older than `before`; returns how many rows went.
    fn prune_evaluations(
        &self,
        before: UnixSeconds,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
