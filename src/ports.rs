//! The outside world as the engine sees it: async traits the engine is generic over, and the
//! plain data that crosses them. Adapters implement these; tests can too.
//!
//! Owns: [`MetricsSource`] and its sample types and errors. Must not touch: any concrete
//! client library (those live in `adapters`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;

/// Label set of one series.
pub type Labels = BTreeMap<String, String>;

/// Unix time in whole seconds, the resolution Prometheus queries take.
pub type UnixSeconds = i64;

/// One series of an instant query.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    pub labels: SeriesLabels,
    pub value: f64,
}

/// The labels of one answered series, in name order, in one allocation: the names and values
/// back to back in one string. A series has a few labels, and a map per series would allocate
/// a whole tree node (about 500 bytes) for each of the tens of thousands of series a cycle
/// reads; a string per name and value would still be three allocations for one label.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesLabels {
    /// Every label's name then value, in name order.
    text: String,
    /// For each label, where its name ends and where its value ends in `text`; each name
    /// starts where the label before ends.
    ends: smallvec::SmallVec<[(usize, usize); 2]>,
}

impl SeriesLabels {
    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let label = (&self.text[start..name_end], &self.text[name_end..value_end]);
            start = value_end;
            label
        })
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Labels read in answer order: `text` holds each name then value back to back, `ends`
    /// where each ends. Sorted by name if they were not (Prometheus sends them sorted); of a
    /// name given twice, the last value.
    pub fn from_text(text: String, ends: &[(usize, usize)]) -> Self {
        let labels = Self {
            text,
            ends: ends.iter().copied().collect(),
        };
        let in_order = labels
            .iter()
            .zip(labels.iter().skip(1))
            .all(|((a, _), (b, _))| a < b);
        if in_order {
            return labels;
        }
        let mut pairs: Vec<(&str, &str)> = labels.iter().collect();
        pairs.reverse();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        pairs.dedup_by(|later, earlier| later.0 == earlier.0);
        pairs.into_iter().collect()
    }
}

impl SeriesLabels {
    /// `(name, value)` pairs in one allocation of exactly their size; in name order, of a
    /// name given twice the last value.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(labels: &[(N, V)]) -> Self {
        let size = labels
            .iter()
            .map(|(n, v)| n.as_ref().len() + v.as_ref().len())
            .sum();
        let mut text = String::with_capacity(size);
        let mut ends: smallvec::SmallVec<[(usize, usize); 4]> = smallvec::SmallVec::new();
        for (name, value) in labels {
            text.push_str(name.as_ref());
            let name_end = text.len();
            text.push_str(value.as_ref());
            ends.push((name_end, text.len()));
        }
        Self::from_text(text, &ends)
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for SeriesLabels {
    /// In name order; of a name given twice, the last value.
    fn from_iter<I: IntoIterator<Item = (N, V)>>(labels: I) -> Self {
        let pairs: smallvec::SmallVec<[(N, V); 4]> = labels.into_iter().collect();
        Self::from_pairs(&pairs)
    }
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
    /// The answer carried warnings (a partial response): its numbers may lack series.
    #[error("the metrics source answered only partially: {0}")]
    PartialResponse(String),
}

impl MetricsError {
    /// A short label for metrics: `timeout`, `unreachable`, `rejected`, `bad_response`,
    /// `partial_response`.
    pub fn reason(&self) -> &'static str {
        match self {
            MetricsError::Timeout { .. } => "timeout",
            MetricsError::Unreachable(_) => "unreachable",
            MetricsError::Rejected(_) => "rejected",
            MetricsError::BadResponse(_) => "bad_response",
            MetricsError::PartialResponse(_) => "partial_response",
        }
    }

    pub const REASONS: [&'static str; 5] = [
        "timeout",
        "unreachable",
        "rejected",
        "bad_response",
        "partial_response",
    ];
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
    pub incident_id: Option<i64>,
    pub slo: String,
    pub playbook: Option<String>,
    pub step: String,
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

/// One SLO evaluation as stored: the few columns queries need plus the whole snapshot. Its
/// key, service and status borrow from the evaluation where they can: a cycle of 10,000 SLOs
/// then copies none of them to record it.
#[derive(Clone, Debug, PartialEq)]
pub struct EvaluationRecord<'a> {
    pub slo: Cow<'a, str>,
    pub service: Cow<'a, str>,
    pub evaluated_at: UnixSeconds,
    /// `ok`, `ticket`, `page`, `no_data` or `error`.
    pub status: Cow<'a, str>,
    pub error_budget_remaining: Option<f64>,
    /// The full evaluation (ratios, burn rates, alerts) as JSON text: serialized straight from
    /// the evaluation, so a cycle of 10,000 SLOs never holds 10,000 JSON trees at once.
    pub snapshot: String,
}

/// Where burnguard remembers evaluations, incidents and (later) actions, freezes and webhooks.
pub trait Store: Send + Sync {
    /// Records one SLO's evaluation and applies `decide` to its unresolved incident, in one
    /// transaction: either all of it is stored or none. `decide` sees the incident as it is in
    /// the database at that moment, so two writers cannot both open one.
    fn record<F>(
        &self,
        evaluation: &EvaluationRecord<'_>,
        decide: F,
    ) -> impl Future<Output = Result<Transitioned, StoreError>> + Send
    where
        F: Fn(Option<&crate::domain::incident::OpenIncident>) -> crate::domain::incident::Decision
            + Send
            + Sync;

    /// Records a whole cycle: for each evaluation whose `kept[i]` is set a history row and
    /// the SLO's stored latest state (the others live only in the evaluating replica's
    /// memory), and `decide(i, open)` applied to the unresolved incident
    /// of `evaluations[i]`, in one transaction, so a crash leaves the cycle stored whole or not
    /// at all (the next cycle decides again from what is stored). The answer has one entry per
    /// evaluation, in order. Slow only where something changes: an evaluation that decides
    /// nothing writes its rows in shared statements.
    ///
    /// An evaluation's `snapshot` may be left empty (the caller spares serializing the
    /// evaluations it does not keep): where the store needs it after all (an evaluation that
    /// changes its incident), it asks `snapshot(i)`.
    fn record_batch<F, S>(
        &self,
        evaluations: &[EvaluationRecord<'_>],
        kept: &[bool],
        decide: F,
        snapshot: S,
    ) -> impl Future<Output = Result<Vec<Transitioned>, StoreError>> + Send
    where
        F: Fn(
                usize,
                Option<&crate::domain::incident::OpenIncident>,
            ) -> crate::domain::incident::Decision
            + Send
            + Sync,
        S: Fn(usize) -> String + Send + Sync;

    fn list_incidents(
        &self,
        filter: &IncidentFilter,
    ) -> impl Future<Output = Result<Vec<IncidentRecord>, StoreError>> + Send;

    /// Every incident not yet resolved (open or acknowledged), newest first, in one read.
    fn unresolved_incidents(
        &self,
    ) -> impl Future<Output = Result<Vec<IncidentRecord>, StoreError>> + Send;

    /// The id and key of every unresolved incident, or with `grouped_only` of those keyed by
    /// a group (`checkout{route="/pay"}`) only: what the check for SLOs whose `groupBy`
    /// changed reads each cycle, a few columns of the rows that can concern it.
    fn unresolved_keys(
        &self,
        grouped_only: bool,
    ) -> impl Future<Output = Result<Vec<(i64, String)>, StoreError>> + Send;

    fn incident(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<IncidentDetail>, StoreError>> + Send;

    /// Deletes evaluation history older than `before`, except each SLO's newest row (its
    /// stored latest state); returns how many rows went.
    fn prune_evaluations(
        &self,
        before: UnixSeconds,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Where an action is in its life: the domain's journal state machine.
pub use crate::domain::journal::StepStatus as ActionStatus;

/// An action about to be journaled.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionIntent {
    /// Unique per incident, rule and step: the journal refuses a second one.
    pub key: String,
    pub incident_id: Option<i64>,
    pub slo: String,
    pub playbook: Option<String>,
    pub step: String,
    pub kind: String,
    /// What will be done, secrets left as `${VAR}`.
    pub intent: serde_json::Value,
    pub status: ActionStatus,
    pub dry_run: bool,
    pub at: UnixSeconds,
}

/// What the journal said to an intent.
#[derive(Clone, Debug, PartialEq)]
pub enum Journaled {
    /// Written now, with this status.
    New { id: i64 },
    /// The key was journaled before: the step is not run again.
    Existing { id: i64, status: ActionStatus },
}

/// One burnguard process: `name` is stable across restarts (pod or host name); `id` is this
/// incarnation. Journal rows record the incarnation that started them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub id: String,
}

/// The guards checked in the same transaction that journals a step as started, so that two
/// cycles or two replicas cannot both pass them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Guards {
    /// At most `max` actions (started, succeeded, failed, unknown) since `since`.
    pub hourly_cap: Option<(UnixSeconds, u32)>,
    /// No step of this SLO's playbook started since `since`, other than this incident's own
    /// (the cooldown; only for a run that has not begun).
    pub cooldown: Option<Cooldown>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cooldown {
    pub slo: String,
    pub playbook: String,
    pub incident_id: i64,
    pub since: UnixSeconds,
    /// For the reason, as the policy spells it.
    pub text: String,
}

/// What a guarded start did.
#[derive(Clone, Debug, PartialEq)]
pub enum Started {
    /// Journaled (or claimed) as `started` by this instance: run it now.
    Run { id: i64 },
    /// A guard refused; a new step is journaled `skipped` with the reason (`id`).
    Refused { id: i64, reason: String, new: bool },
    /// Someone else moved the row first (another cycle, another replica): do nothing.
    Lost,
}

/// A playbook run's state for one incident and budget rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    /// Every step was done with; steps added to the playbook later do not run.
    Finished,
    /// A step failed (or is unknown and not repeatable); the run goes no further.
    Stopped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Stopped => "stopped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [RunStatus::Running, RunStatus::Finished, RunStatus::Stopped]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// The action journal: exactly-once bookkeeping for remediation steps.
pub trait Journal: Send + Sync {
    /// The journal row of a step, if any: its id and status.
    fn step_status(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(i64, ActionStatus)>, StoreError>> + Send;
    /// Every journal row whose key starts with `prefix` (one playbook run's steps), oldest first.
    fn run_actions(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ActionRecord>, StoreError>> + Send;
    /// Writes the intent unless its key exists (then returns what exists). For statuses that
    /// do not run anything (dry run, awaiting approval); starting goes through [`Self::start`].
    fn journal(
        &self,
        intent: &ActionIntent,
    ) -> impl Future<Output = Result<Journaled, StoreError>> + Send;
    /// In one transaction: checks `guards`, then journals the intent as `started` by
    /// `instance` (or, refused, as `skipped` with the reason). An existing row is `Lost`.
    fn start(
        &self,
        intent: &ActionIntent,
        instance: &Instance,
        guards: &Guards,
    ) -> impl Future<Output = Result<Started, StoreError>> + Send;
    /// In one transaction: checks `guards` (when given), then moves row `id` from `from` to
    /// `started` by `instance`. `Lost` when the row was no longer `from`.
    fn claim(
        &self,
        id: i64,
        from: ActionStatus,
        instance: &Instance,
        guards: Option<&Guards>,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<Started, StoreError>> + Send;
    /// Moves a row this instance started to `status` with its outcome; `false` (and nothing
    /// changed) when it is no longer `started` by this instance.
    fn settle(
        &self,
        id: i64,
        instance: &Instance,
        status: ActionStatus,
        outcome: serde_json::Value,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Registers this incarnation (at start) and refreshes its heartbeat (each cycle).
    fn heartbeat(
        &self,
        instance: &Instance,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Marks `started` rows `unknown` whose incarnation is dead: an earlier incarnation of
    /// this instance's own name, one that stopped, or one whose heartbeat is older than
    /// `stale_before`. Rows of live instances (other replicas) are left alone.
    fn recover_interrupted(
        &self,
        me: &Instance,
        stale_before: UnixSeconds,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<Vec<ActionRecord>, StoreError>> + Send;
    /// At shutdown, after the grace period: this incarnation's own `started` rows become
    /// `unknown`, and the incarnation is marked stopped.
    fn interrupt_own(
        &self,
        me: &Instance,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<Vec<ActionRecord>, StoreError>> + Send;
    /// The run of `playbook` for this incident and rule, created `running` if there is none.
    fn playbook_run(
        &self,
        incident_id: i64,
        rule_id: &str,
        playbook: &str,
        slo: &str,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<RunStatus, StoreError>> + Send;
    /// Ends a running run.
    fn end_run(
        &self,
        incident_id: i64,
        rule_id: &str,
        playbook: &str,
        status: RunStatus,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Pod templates (pod-template-hash) burnguard rolled this Deployment away from.
    fn rolled_away_from(
        &self,
        namespace: &str,
        deployment: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// The template burnguard rolled `namespace/deployment` to for this incident, if it did.
    fn rolled_to(
        &self,
        namespace: &str,
        deployment: &str,
        incident_id: i64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Records, before the patch, that burnguard rolls `namespace/deployment` from template
    /// `from` to `to`.
    fn record_rollback(
        &self,
        namespace: &str,
        deployment: &str,
        from: &str,
        to: &str,
        incident_id: Option<i64>,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// An incident timeline entry.
    fn add_event(
        &self,
        incident_id: i64,
        at: UnixSeconds,
        kind: &str,
        message: &str,
        actor: &str,
        detail: Option<serde_json::Value>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The unresolved incident of an SLO.
    fn unresolved_incident(
        &self,
        slo: &str,
    ) -> impl Future<Output = Result<Option<IncidentRecord>, StoreError>> + Send;
    /// Since when the SLO has been seen quiet on data, over all its incidents: the last time
    /// an alert row fired or data came back after a gap, whichever is later.
    fn quiet_since(
        &self,
        slo: &str,
    ) -> impl Future<Output = Result<Option<UnixSeconds>, StoreError>> + Send;
}

/// A deployment freeze as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FreezeRecord {
    pub id: i64,
    pub service: Option<String>,
    pub namespace: Option<String>,
    pub deployments: Vec<String>,
    pub selector: Option<String>,
    pub reason: String,
    pub incident_id: Option<i64>,
    pub slo: Option<String>,
    pub source_key: String,
    pub created_at: UnixSeconds,
    pub created_by: String,
    pub lifted_at: Option<UnixSeconds>,
    pub lifted_by: Option<String>,
    /// When to lift it automatically (a budget rule's trigger), as JSON.
    #[serde(skip)]
    pub lift_when: Option<serde_json::Value>,
    /// What was applied to Kubernetes, as JSON.
    #[serde(skip)]
    pub applied: Option<serde_json::Value>,
}

/// A freeze to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NewFreeze {
    pub target: crate::domain::playbook::FreezeTarget,
    pub reason: String,
    pub incident_id: Option<i64>,
    pub slo: Option<String>,
    pub source_key: String,
    pub created_by: String,
    pub lift_when: Option<serde_json::Value>,
    pub at: UnixSeconds,
}

/// Deployment freezes: the record the gate and the admission webhook read.
pub trait Freezes: Send + Sync {
    /// Creates the freeze unless one from the same source is active (`None` then).
    fn create_freeze(
        &self,
        freeze: &NewFreeze,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
    fn active_freezes(&self) -> impl Future<Output = Result<Vec<FreezeRecord>, StoreError>> + Send;
    /// Lifted freezes, the most recently lifted first, at most `limit`.
    fn lifted_freezes(
        &self,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<FreezeRecord>, StoreError>> + Send;
    /// Lifts an active freeze; `false` if it was not active.
    fn lift_freeze(
        &self,
        id: i64,
        by: &str,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Records what was applied to Kubernetes for the freeze (`None`: nothing is, so the
    /// reconcile pass applies it again).
    fn set_freeze_applied(
        &self,
        id: i64,
        applied: Option<serde_json::Value>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Lifted freezes whose Kubernetes marks have not been removed yet.
    fn lifted_not_removed(
        &self,
    ) -> impl Future<Output = Result<Vec<FreezeRecord>, StoreError>> + Send;
    /// Records that a lifted freeze's Kubernetes marks are gone.
    fn set_freeze_removed(
        &self,
        id: i64,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why an action did not do what it should.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The system the step needs is not set up (e.g. no Kubernetes cluster configured).
    #[error("not configured: {0}")]
    NotConfigured(String),
    /// The target said no (HTTP status outside expectStatus, a paused Deployment, ...).
    #[error("refused: {0}")]
    Refused(String),
    /// The call did not complete (timeout, connection refused, ...).
    #[error("failed: {0}")]
    Failed(String),
}

/// A freeze that could not be applied whole.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct PartialFreeze {
    pub error: ActionError,
    /// What was applied before the error (`{"namespace", "deployments", "complete": false}`),
    /// if anything.
    pub applied: Option<serde_json::Value>,
}

impl From<ActionError> for PartialFreeze {
    fn from(error: ActionError) -> Self {
        Self {
            error,
            applied: None,
        }
    }
}

/// Marks a freeze leaves on what it freezes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreezeMarks {
    pub reason: String,
    pub incident: Option<i64>,
    /// RFC 3339.
    pub at: String,
}

/// A Deployment rollback worked out by [`Actuator::plan_rollback`], not yet written. Serializes
/// to JSON for the journal, and back.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RollbackPlan {
    pub namespace: String,
    pub deployment: String,
    /// The revision and pod-template-hash rolled away from.
    pub from: crate::domain::rollback::TemplateRevision,
    /// The revision and pod-template-hash whose template is written.
    pub to: crate::domain::rollback::TemplateRevision,
    pub write: RollbackWrite,
}

/// What applying a [`RollbackPlan`] writes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackWrite {
    /// This pod template (`to`'s, without its `pod-template-hash` label) replaces the
    /// Deployment's `spec.template`.
    Template(serde_json::Value),
    /// The Deployment already asks for `to`'s template; nothing is written.
    NothingToDo,
}

/// What acts on the world: outbound HTTP and Kubernetes.
pub trait Actuator: Send + Sync {
    /// Calls an HTTP step; the outcome says what answered.
    fn call_http(
        &self,
        step: &crate::domain::playbook::HttpStep,
    ) -> impl Future<Output = Result<String, ActionError>> + Send;
    /// Works out a rollback of a Deployment without changing anything: from its current
    /// revision to the newest earlier one whose template is not in `avoid` (pod-template-hashes
    /// burnguard rolled away from before). Journal the plan's `from` before applying it.
    fn plan_rollback(
        &self,
        namespace: &str,
        deployment: &str,
        avoid: &[String],
    ) -> impl Future<Output = Result<RollbackPlan, ActionError>> + Send;
    /// Writes a planned rollback, unless the Deployment moved to another revision since.
    fn apply_rollback(
        &self,
        plan: &RollbackPlan,
    ) -> impl Future<Output = Result<String, ActionError>> + Send;
    /// Sets a Deployment's replicas.
    fn scale(
        &self,
        namespace: &str,
        deployment: &str,
        replicas: u32,
    ) -> impl Future<Output = Result<String, ActionError>> + Send;
    /// Marks the target's Deployments frozen; returns what was applied (to undo exactly that),
    /// or, when it stopped partway, the error with what was applied before it.
    fn freeze(
        &self,
        target: &crate::domain::playbook::FreezeTarget,
        marks: &FreezeMarks,
    ) -> impl Future<Output = Result<serde_json::Value, PartialFreeze>> + Send;
    /// Removes what `freeze` applied.
    fn unfreeze(
        &self,
        applied: &serde_json::Value,
    ) -> impl Future<Output = Result<String, ActionError>> + Send;
}

/// What a person's command did to an incident.
#[derive(Clone, Debug, PartialEq)]
pub enum CommandOutcome {
    Done(IncidentRecord),
    NotFound,
    /// The incident is not in a state the command applies to.
    Conflict(String),
}

/// A stored evaluation, as history.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EvaluationPoint {
    /// The key it is kept under: the SLO's name, with its group's labels for a grouped SLO.
    #[serde(skip)]
    pub slo: String,
    pub evaluated_at: UnixSeconds,
    pub status: String,
    pub error_budget_remaining: Option<f64>,
    pub snapshot: serde_json::Value,
}

/// What people do through the API: acknowledge, resolve, approve; read history.
pub trait Operations: Send + Sync {
    fn acknowledge(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<CommandOutcome, StoreError>> + Send;
    fn resolve_by_hand(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<CommandOutcome, StoreError>> + Send;
    /// Approves the incident's steps waiting for approval; `Conflict` when none waits.
    fn approve(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<CommandOutcome, StoreError>> + Send;
    /// The latest stored evaluation of every SLO.
    fn latest_evaluations(
        &self,
    ) -> impl Future<Output = Result<Vec<EvaluationPoint>, StoreError>> + Send;
    /// An SLO's evaluations in `[from, to]`, oldest first, at most `limit`.
    fn evaluation_history(
        &self,
        slo: &str,
        from: UnixSeconds,
        to: UnixSeconds,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<EvaluationPoint>, StoreError>> + Send;
    /// The playbook steps journaled for an SLO (its key: `checkout{route="/pay"}` for a
    /// group) that started, or were journaled, in `[from, to]`, oldest first, at most `limit`.
    fn slo_actions(
        &self,
        slo: &str,
        from: UnixSeconds,
        to: UnixSeconds,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<ActionRecord>, StoreError>> + Send;
}

/// Where an Alertmanager alert goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertTarget {
    /// The open incident of this loaded SLO, when there is one.
    Slo(String),
    /// The "external" incident `key`: opened while the alert fires, resolved with it.
    External {
        key: String,
        service: String,
        severity: crate::domain::policy::Severity,
        firing: bool,
    },
}

/// One received Alertmanager alert, read and checked by the HTTP side.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingAlert {
    /// `fingerprint/startsAt/status`: the same alert sent again is recorded once.
    pub dedup_key: String,
    pub target: AlertTarget,
    /// The timeline line, e.g. `Alertmanager: DiskFull firing: disk 95% full`.
    pub message: String,
    /// The alert's own labels, annotations, startsAt and fingerprint for the timeline.
    pub detail: serde_json::Value,
}

/// Inbound webhooks: each body stored once for audit, its events deduplicated and linked to
/// incidents, all kept only for the retention.
pub trait Webhooks: Send + Sync {
    /// Stores one received event with its body; `None` when `(source, dedup_key)` was seen
    /// before (and then nothing is stored).
    fn record_webhook(
        &self,
        source: &str,
        dedup_key: &str,
        body: &str,
        incident_id: Option<i64>,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
    /// Records one Alertmanager delivery in one transaction: the body once, an event per alert
    /// not seen before, and the incident changes those alerts bring. Alerts seen before change
    /// nothing; when none is new, nothing is stored. Returns how many were new.
    fn record_alerts(
        &self,
        body: &str,
        alerts: &[IncomingAlert],
        at: UnixSeconds,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
    /// Deletes stored bodies (with their events) received before `before`, and all but the
    /// newest `keep`. Returns how many bodies went.
    fn prune_webhooks(
        &self,
        before: UnixSeconds,
        keep: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// A notification channel as configured: its kind (`pagerduty`, `alertmanager`, `webhook`) and
/// a fingerprint of where it points (endpoint and routing key, URL). An outbox entry is bound
/// to the channels configured when it was written; pointing a kind elsewhere makes another
/// channel. The fingerprint is a hash: no secret is stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel {
    pub name: String,
    pub target: String,
}

/// A notification claimed for delivery on one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct DueDelivery {
    pub delivery_id: i64,
    /// The channel's kind: `pagerduty`, `alertmanager` or `webhook`.
    pub channel: String,
    /// The channel's fingerprint (`None`: planned before deliveries were bound to channels).
    pub target: Option<String>,
    /// Attempts made so far.
    pub attempts: i64,
    pub incident_id: i64,
    pub event: String,
    pub payload: serde_json::Value,
    /// When the outbox entry was written (its age counts from here).
    pub written_at: UnixSeconds,
}

impl DueDelivery {
    /// Whether this delivery is to `channel`.
    pub fn is_to(&self, channel: &Channel) -> bool {
        self.channel == channel.name && self.target.as_deref() == Some(channel.target.as_str())
    }
}

/// One delivery as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeliveryRecord {
    pub id: i64,
    pub incident_id: i64,
    pub event: String,
    pub channel: String,
    pub target: Option<String>,
    pub state: crate::domain::delivery::DeliveryState,
    pub attempts: i64,
    pub written_at: UnixSeconds,
    pub next_attempt_at: UnixSeconds,
    pub delivered_at: Option<UnixSeconds>,
    /// When it became dead or stopped.
    pub ended_at: Option<UnixSeconds>,
    pub last_error: Option<String>,
    /// Why it is dead or stopped.
    pub end_reason: Option<String>,
    pub claimed_by: Option<String>,
    pub claimed_until: Option<UnixSeconds>,
}

/// How a claimed delivery ends this attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Settlement {
    Delivered {
        outcome: String,
    },
    /// The attempt failed; try again at `retry_at`.
    Failed {
        error: String,
        retry_at: UnixSeconds,
    },
    /// A dead letter: never tried again. `attempted` when this pass made an attempt (that
    /// failed with `error`); otherwise it died before one (too old, too many attempts).
    Dead {
        attempted: bool,
        error: Option<String>,
        reason: String,
    },
}

impl Settlement {
    /// The kind of the timeline entry written with it.
    pub fn timeline_kind(&self) -> &'static str {
        match self {
            Settlement::Delivered { .. } => "notification_delivered",
            Settlement::Failed { .. } => "notification_failed",
            Settlement::Dead { .. } => "notification_dead",
        }
    }
}

/// The notification outbox: entries written with incident changes, each bound in the same
/// transaction to the channels configured then (one delivery per channel), claimed by one
/// delivery loop at a time and tried until delivered, dead or stopped.
pub trait Outbox: Send + Sync {
    /// At start, with the channels this process has: deliveries planned before channels were
    /// bound adopt the channel of their name; claims held by earlier incarnations of `me`'s
    /// name are released (they died); pending deliveries to any other channel (removed, or
    /// now pointing elsewhere) stop, each with a `notification_stopped` timeline entry. Returns
    /// the stopped deliveries.
    fn bind_channels(
        &self,
        channels: &[Channel],
        me: &Instance,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<Vec<DeliveryRecord>, StoreError>> + Send;
    /// Claims for `claimer` until `lease_until`, in one transaction, at most `limit` pending
    /// deliveries, oldest first, that are due at `at`, not claimed by anyone (or whose claim
    /// expired), not behind an earlier pending entry of the same incident on the same channel,
    /// and either to one of `channels` or written before `stale_before` (any replica may
    /// dead-letter those). PostgreSQL skips rows another replica is claiming
    /// (`FOR UPDATE SKIP LOCKED`); SQLite has one writer at a time.
    fn claim_due(
        &self,
        channels: &[Channel],
        claimer: &str,
        at: UnixSeconds,
        lease_until: UnixSeconds,
        stale_before: UnixSeconds,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<DueDelivery>, StoreError>> + Send;
    /// Settles a delivery `claimer` holds and writes `message` on its incident's timeline, in
    /// one transaction. `false`, and nothing written, when the claim was lost (it expired
    /// and another claimer took the delivery).
    fn settle_delivery(
        &self,
        delivery: &DueDelivery,
        claimer: &str,
        settlement: &Settlement,
        message: &str,
        at: UnixSeconds,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Gives a claim back without an attempt.
    fn release_claim(
        &self,
        delivery_id: i64,
        claimer: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// An incident's deliveries, oldest first.
    fn deliveries(
        &self,
        incident_id: i64,
    ) -> impl Future<Output = Result<Vec<DeliveryRecord>, StoreError>> + Send;
}

/// Sends notifications to pagers and webhooks.
pub trait Notifier: Send + Sync {
    /// The configured channels.
    fn channels(&self) -> Vec<Channel>;
    /// Delivers one notification; the error says why it did not arrive.
    fn deliver(
        &self,
        delivery: &DueDelivery,
    ) -> impl Future<Output = Result<String, String>> + Send;
}

/// Counts from the store that burnguard exports at `/metrics`, so dashboards can show what the
/// database holds (the same for every replica sharing it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreCounts {
    /// Unresolved incidents by SLO.
    pub open_incidents: BTreeMap<String, u64>,
    /// Active (not lifted) freezes by the SLO that made them.
    pub active_freezes: BTreeMap<String, u64>,
    /// Journaled remediation steps by (SLO, kind, status).
    pub actions: BTreeMap<(String, String, String), u64>,
    /// Notification deliveries not yet delivered.
    pub outbox_pending: u64,
}

/// The policies that came from cluster objects, by name, as the controller accepted them
/// (valid, and holding their names).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterPolicies {
    pub slos: BTreeMap<String, crate::domain::policy::Slo>,
    pub playbooks: BTreeMap<String, crate::domain::playbook::Playbook>,
}

/// What the service knows about one SLO, for its object's status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SloFacts {
    pub evaluation: Option<crate::domain::cluster::EvaluationFacts>,
    pub open_incident: Option<i64>,
    pub freezes: Vec<crate::domain::cluster::HeldFreeze>,
    pub last_action: Option<crate::domain::cluster::LastAction>,
}

/// Names already taken by policy files: a cluster object never takes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileNames {
    pub slos: std::collections::BTreeSet<String>,
    pub playbooks: std::collections::BTreeSet<String>,
}

/// What the Kubernetes controller needs from the running service: the names files hold, a
/// place to hand the accepted cluster policies, facts for each SLO's status, the clean-up
/// when an SLO object is deleted, and a place to count reconciles.
pub trait ClusterHost: Send + Sync + 'static {
    fn file_names(&self) -> FileNames;
    /// Replaces the cluster's share of the policies.
    fn set_cluster_policies(&self, policies: ClusterPolicies);
    fn slo_facts(&self, slo: &str) -> impl Future<Output = Result<SloFacts, String>> + Send;
    /// The SLO's object is being deleted: lift the freezes held for it and resolve its open
    /// incident with the reason "SLO deleted". Must be safe to call more than once.
    fn slo_deleted(&self, slo: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// One reconcile of `kind` (`ServiceLevelObjective`, `Playbook`) ended with `outcome`
    /// (`ok` or an error label) after `seconds`.
    fn reconciled(&self, kind: &str, outcome: &str, seconds: f64);
}

#[cfg(test)]
mod tests {
    use super::SeriesLabels;

    #[test]
    fn labels_given_out_of_order_are_kept_in_name_order_and_a_repeated_name_keeps_its_last_value() {
        let labels: SeriesLabels = [("slo", "a"), ("route", "/x"), ("env", ""), ("route", "/y")]
            .into_iter()
            .collect();
        let all: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(all, [("env", ""), ("route", "/y"), ("slo", "a")]);
        assert_eq!(labels.get("route"), Some("/y"));
        assert_eq!(labels.get("env"), Some(""));
        assert_eq!(labels.get("rout"), None);
        assert_eq!(labels.get("slo"), Some("a"));
    }

    #[test]
    fn labels_in_order_are_kept_as_read() {
        let text = "routé/pay{x}slocheckout".to_string();
        let labels = SeriesLabels::from_text(text, &[(6, 13), (16, 24)]);
        let all: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(all, [("routé", "/pay{x}"), ("slo", "checkout")]);
        assert!(SeriesLabels::default().is_empty());
        assert_eq!(SeriesLabels::default().get(""), None);
    }
}
