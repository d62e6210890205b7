//! What a `ServiceLevelObjective` or `Playbook` object in a cluster should look like, worked
//! out from facts: its `status` (conditions, budget, burn rates, incident, freezes), whether
//! that status is worth writing now, the Kubernetes Events its change tells, which object owns
//! an SLO name when two claim it, and the `PrometheusRule` that carries its rules.
//!
//! Owns: those decisions, as pure functions of (object, evaluation, current state). Must not
//! touch: the API server (the `adapters::kube` controller reads and writes; this decides),
//! the clock (`now` is a parameter).

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::policy::Slo;
use super::problem::Problem;
use super::rules::{self, Rule};

/// The API group and version of burnguard's resources.
pub const GROUP: &str = "burnguard.dev";
pub const VERSION: &str = "v1";
/// The finalizer burnguard puts on every SLO object it reconciles, so that deleting the SLO
/// lifts its freezes and resolves its incident before the object goes.
pub const FINALIZER: &str = "burnguard.dev/cleanup";

/// Condition types on an SLO object.
pub const VALID: &str = "Valid";
pub const RULES_APPLIED: &str = "RulesApplied";
pub const BURNING: &str = "Burning";
pub const FROZEN: &str = "Frozen";

/// One condition, in the shape `kubectl` and every controller library read
/// (`metav1.Condition`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339); a new reason or message alone keeps it.
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A field path and what is wrong there.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FieldProblem {
    pub path: String,
    pub message: String,
}

/// The burn rate over one alert window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowBurnRate {
    pub window: String,
    pub burn_rate: f64,
}

/// A Deployment burnguard holds frozen for this SLO.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct HeldFreeze {
    pub namespace: String,
    pub deployment: String,
}

/// The last remediation action taken for this SLO's open incident.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastAction {
    /// The journal's id of the action: a new id is a new action.
    pub id: i64,
    /// `rollback`, `scale`, `http`, `freeze`, `verify`.
    pub kind: String,
    pub step: String,
    /// `done`, `failed`, `skipped`, `unknown`, ...
    pub status: String,
    /// `namespace/deployment` for Kubernetes actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `status` of a `ServiceLevelObjective`. Every field burnguard owns is always sent (server-side
/// apply removes fields a manager stops sending), so absent values are `None`, not omitted
/// from the struct.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The evaluation status: ok, warning, ticket, page, partial, no_data, error; or
    /// `invalid`, `pending` (not evaluated yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Percent of the window's error budget left (100 untouched, below 0 overspent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_remaining_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub burn_rates: Vec<WindowBurnRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_incident: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_freezes: Vec<HeldFreeze>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<LastAction>,
    /// Every problem found in the spec, with its field path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<FieldProblem>,
}

/// `status` of a `Playbook`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaybookStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<FieldProblem>,
}

/// Whether an object's spec was accepted.
#[derive(Clone, Debug, PartialEq)]
pub enum Validity {
    Valid,
    /// The spec has problems; each with its field path.
    Invalid(Vec<Problem>),
    /// The spec is fine but another object (or a policy file) already holds its name.
    NameTaken {
        holder: String,
    },
}

/// What happened to the SLO's `PrometheusRule`.
#[derive(Clone, Debug, PartialEq)]
pub enum RulesOutcome {
    Applied,
    /// The Prometheus Operator's CRD is not in the cluster: nothing to apply to.
    OperatorMissing,
    /// Turned off in the settings.
    Disabled,
    Failed(String),
    /// Not attempted (the spec is not valid).
    NotAttempted,
}

/// The latest evaluation of an SLO, as the status shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct EvaluationFacts {
    /// `ok`, `warning`, `ticket`, `page`, `partial`, `no_data`, `error`.
    pub status: String,
    pub budget_remaining: Option<f64>,
    /// `(window, burn rate)` for each window that had data.
    pub burn_rates: Vec<(String, f64)>,
    pub at: i64,
}

/// Everything the status is made from.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusFacts {
    pub generation: Option<i64>,
    pub validity: Validity,
    pub rules: RulesOutcome,
    pub evaluation: Option<EvaluationFacts>,
    pub open_incident: Option<i64>,
    pub freezes: Vec<HeldFreeze>,
    pub last_action: Option<LastAction>,
}

/// `2026-01-04T00:00:00Z` for unix seconds (what `metav1.Time` and `timefmt` write).
pub fn rfc3339(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| at.to_string())
}

/// A condition whose `lastTransitionTime` moves only when its status flips.
fn condition(
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: i64,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| rfc3339(now));
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time,
        observed_generation: generation,
    }
}

/// Numbers rounded so that noise in the last digits is not a change worth an API write:
/// budget to 0.01 percentage points, burn rates to 0.001.
fn round_to(value: f64, step: f64) -> f64 {
    (value / step).round() * step
}

fn problems_of(validity: &Validity) -> Vec<FieldProblem> {
    match validity {
        Validity::Invalid(problems) => problems
            .iter()
            .map(|p| FieldProblem {
                path: p.path.clone(),
                message: p.message.clone(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The `Valid` condition for either kind.
fn valid_condition(
    previous: &[Condition],
    validity: &Validity,
    generation: Option<i64>,
    now: i64,
) -> Condition {
    match validity {
        Validity::Valid => condition(
            previous,
            VALID,
            "True",
            "Valid",
            "the spec is valid".into(),
            generation,
            now,
        ),
        Validity::Invalid(problems) => condition(
            previous,
            VALID,
            "False",
            "InvalidSpec",
            problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect::<Vec<_>>()
                .join("; "),
            generation,
            now,
        ),
        Validity::NameTaken { holder } => condition(
            previous,
            VALID,
            "False",
            "NameConflict",
            format!("the SLO name is already used by {holder}; rename this object or that one"),
            generation,
            now,
        ),
    }
}

/// The status an SLO object should have, given the facts and its current status (for the
/// transition times it keeps).
pub fn desired_slo_status(facts: &StatusFacts, current: Option<&SloStatus>, now: i64) -> SloStatus {
    let previous: &[Condition] = current.map_or(&[], |s| s.conditions.as_slice());
    let generation = facts.generation;
    let rules = match &facts.rules {
        RulesOutcome::NotAttempted => condition(
            previous,
            RULES_APPLIED,
            "Unknown",
            "NoValidSpec",
            "no valid version of this SLO is evaluated, so no rules are applied".into(),
            generation,
            now,
        ),
        RulesOutcome::Applied => condition(
            previous,
            RULES_APPLIED,
            "True",
            "Applied",
            "the PrometheusRule holds this SLO's recording and alerting rules".into(),
            generation,
            now,
        ),
        RulesOutcome::OperatorMissing => condition(
            previous,
            RULES_APPLIED,
            "False",
            "PrometheusRuleCRDMissing",
            "the cluster has no monitoring.coreos.com/v1 PrometheusRule; load the rules from `burnguard rules` instead".into(),
            generation,
            now,
        ),
        RulesOutcome::Disabled => condition(
            previous,
            RULES_APPLIED,
            "False",
            "Disabled",
            "PrometheusRule objects are turned off in burnguard's settings".into(),
            generation,
            now,
        ),
        RulesOutcome::Failed(why) => condition(
            previous,
            RULES_APPLIED,
            "False",
            "ApplyFailed",
            why.clone(),
            generation,
            now,
        ),
    };
    // While an edit is invalid, the last valid version is still evaluated: its numbers show.
    let evaluation = facts.evaluation.as_ref();
    let burning = match evaluation.map(|e| e.status.as_str()) {
        None => condition(
            previous,
            BURNING,
            "Unknown",
            "NotEvaluated",
            "not evaluated yet".into(),
            generation,
            now,
        ),
        Some(s @ ("page" | "ticket")) => condition(
            previous,
            BURNING,
            "True",
            if s == "page" { "FastBurn" } else { "SlowBurn" },
            format!("a {s} alert window is firing"),
            generation,
            now,
        ),
        Some(s @ ("ok" | "warning")) => condition(
            previous,
            BURNING,
            "False",
            if s == "ok" { "WithinBudget" } else { "Warning" },
            "no alert window is firing".into(),
            generation,
            now,
        ),
        Some(s) => condition(
            previous,
            BURNING,
            "Unknown",
            match s {
                "no_data" => "NoData",
                "partial" => "PartialData",
                _ => "EvaluationFailed",
            },
            format!("the last evaluation was {s}: nothing is decided on it"),
            generation,
            now,
        ),
    };
    let frozen = if facts.freezes.is_empty() {
        condition(
            previous,
            FROZEN,
            "False",
            "NotFrozen",
            "no deployment is frozen for this SLO".into(),
            generation,
            now,
        )
    } else {
        condition(
            previous,
            FROZEN,
            "True",
            "BudgetPolicy",
            format!(
                "deployments frozen: {}",
                facts
                    .freezes
                    .iter()
                    .map(|f| format!("{}/{}", f.namespace, f.deployment))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            generation,
            now,
        )
    };
    let status = match (&facts.validity, evaluation) {
        (_, Some(e)) => e.status.clone(),
        (Validity::Valid, None) => "pending".into(),
        (Validity::Invalid(_), None) => "invalid".into(),
        (Validity::NameTaken { .. }, None) => "conflict".into(),
    };
    SloStatus {
        observed_generation: generation,
        conditions: vec![
            valid_condition(previous, &facts.validity, generation, now),
            rules,
            burning,
            frozen,
        ],
        status: Some(status),
        budget_remaining_percent: evaluation
            .and_then(|e| e.budget_remaining)
            .filter(|b| b.is_finite())
            .map(|b| round_to(b * 100.0, 0.01)),
        burn_rates: evaluation
            .map(|e| {
                e.burn_rates
                    .iter()
                    .filter(|(_, rate)| rate.is_finite())
                    .map(|(window, rate)| WindowBurnRate {
                        window: window.clone(),
                        burn_rate: round_to(*rate, 0.001),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        last_evaluation_time: evaluation.map(|e| rfc3339(e.at)),
        open_incident: facts.open_incident,
        active_freezes: {
            let mut freezes = facts.freezes.clone();
            freezes.sort();
            freezes.dedup();
            freezes
        },
        last_action: facts.last_action.clone(),
        problems: problems_of(&facts.validity),
    }
}

/// The status a `Playbook` object should have.
pub fn desired_playbook_status(
    generation: Option<i64>,
    validity: &Validity,
    current: Option<&PlaybookStatus>,
    now: i64,
) -> PlaybookStatus {
    let previous: &[Condition] = current.map_or(&[], |s| s.conditions.as_slice());
    PlaybookStatus {
        observed_generation: generation,
        conditions: vec![valid_condition(previous, validity, generation, now)],
        problems: problems_of(validity),
    }
}

/// Whether to write a status now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusWrite {
    /// The object already says this.
    Unchanged,
    /// Something a reader acts on changed (a condition, the generation, the incident, the
    /// freezes, the problems, the last action): write now.
    Now,
    /// Only the numbers moved, and the object was written less than the interval ago: write
    /// at this unix time (or sooner if something material changes).
    At(i64),
}

/// The parts of a status that someone acts on, without the numbers that move every
/// evaluation and the times that move with them.
fn material(status: &SloStatus) -> impl PartialEq + '_ {
    (
        status.observed_generation,
        status
            .conditions
            .iter()
            .map(|c| (&c.type_, &c.status, &c.reason, &c.message))
            .collect::<Vec<_>>(),
        &status.status,
        status.open_incident,
        &status.active_freezes,
        &status.last_action,
        &status.problems,
    )
}

/// Decides whether `desired` is written: material changes at once, number-only changes at
/// most once per `interval` seconds per object (so 1,000 SLOs with a 300 s interval cost at
/// most 3.3 number writes a second), nothing when the object already says it.
pub fn status_write(
    current: Option<&SloStatus>,
    desired: &SloStatus,
    last_write: Option<i64>,
    now: i64,
    interval: i64,
) -> StatusWrite {
    let Some(current) = current else {
        return StatusWrite::Now;
    };
    if current == desired {
        return StatusWrite::Unchanged;
    }
    if material(current) != material(desired) {
        return StatusWrite::Now;
    }
    match last_write {
        Some(at) if now < at + interval => StatusWrite::At(at + interval),
        _ => StatusWrite::Now,
    }
}

/// Warning or Normal, as Kubernetes Events have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// A Kubernetes Event to publish about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEvent {
    pub type_: EventType,
    /// CamelCase, machine-readable: `IncidentOpened`.
    pub reason: String,
    /// What burnguard did or saw: `Evaluate`, `Freeze`, `Rollback`, ...
    pub action: String,
    pub note: String,
}

fn event(type_: EventType, reason: &str, action: &str, note: String) -> ObjectEvent {
    ObjectEvent {
        type_,
        reason: reason.into(),
        action: action.into(),
        note,
    }
}

fn condition_of<'a>(status: Option<&'a SloStatus>, type_: &str) -> Option<&'a Condition> {
    status.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
}

/// The Events that a status change tells, so that `kubectl describe slo` reads as the
/// story: problems found or fixed, incidents opened and resolved, freezes set and lifted,
/// remediation actions finished, rules that could not be applied.
pub fn status_events(before: Option<&SloStatus>, after: &SloStatus) -> Vec<ObjectEvent> {
    let mut events = Vec::new();
    let valid_before = condition_of(before, VALID);
    if let Some(valid) = condition_of(Some(after), VALID) {
        let changed =
            valid_before.is_none_or(|b| b.status != valid.status || b.message != valid.message);
        if changed && valid.status == "False" {
            events.push(event(
                EventType::Warning,
                &valid.reason,
                "Validate",
                valid.message.clone(),
            ));
        } else if changed && valid_before.is_some_and(|b| b.status == "False") {
            events.push(event(
                EventType::Normal,
                "Valid",
                "Validate",
                "the spec is valid again; the SLO is evaluated from this version".into(),
            ));
        }
    }
    let rules_before = condition_of(before, RULES_APPLIED);
    if let Some(rules) = condition_of(Some(after), RULES_APPLIED)
        && rules.reason == "ApplyFailed"
        && rules_before.is_none_or(|b| b.reason != rules.reason || b.message != rules.message)
    {
        events.push(event(
            EventType::Warning,
            "RulesNotApplied",
            "ApplyRules",
            rules.message.clone(),
        ));
    }
    let incident_before = before.and_then(|b| b.open_incident);
    match (incident_before, after.open_incident) {
        (None, Some(id)) => events.push(event(
            EventType::Warning,
            "IncidentOpened",
            "Evaluate",
            format!(
                "incident {id} opened: {}",
                after.status.as_deref().unwrap_or("burning")
            ),
        )),
        (Some(old), Some(new)) if old != new => {
            events.push(event(
                EventType::Normal,
                "IncidentResolved",
                "Evaluate",
                format!("incident {old} resolved"),
            ));
            events.push(event(
                EventType::Warning,
                "IncidentOpened",
                "Evaluate",
                format!("incident {new} opened"),
            ));
        }
        (Some(old), None) => events.push(event(
            EventType::Normal,
            "IncidentResolved",
            "Evaluate",
            format!("incident {old} resolved"),
        )),
        _ => {}
    }
    let held_before: BTreeSet<&HeldFreeze> = before
        .map(|b| b.active_freezes.iter().collect())
        .unwrap_or_default();
    let held_after: BTreeSet<&HeldFreeze> = after.active_freezes.iter().collect();
    for added in held_after.difference(&held_before) {
        events.push(event(
            EventType::Warning,
            "DeploymentFrozen",
            "Freeze",
            format!(
                "deployment {}/{} frozen: this SLO's error budget policy tripped",
                added.namespace, added.deployment
            ),
        ));
    }
    for lifted in held_before.difference(&held_after) {
        events.push(event(
            EventType::Normal,
            "DeploymentUnfrozen",
            "Unfreeze",
            format!(
                "deployment {}/{} unfrozen",
                lifted.namespace, lifted.deployment
            ),
        ));
    }
    if let Some(action) = &after.last_action
        && before
            .and_then(|b| b.last_action.as_ref())
            .is_none_or(|b| b.id != action.id || b.status != action.status)
    {
        let (reason, action_name) = match action.kind.as_str() {
            "rollback" => ("RolledBack", "Rollback"),
            "scale" => ("Scaled", "Scale"),
            "http" => ("Degraded", "CallHTTP"),
            "freeze" => ("Frozen", "Freeze"),
            _ => ("Remediated", "Remediate"),
        };
        let failed = !matches!(action.status.as_str(), "done" | "running" | "started");
        events.push(event(
            if failed {
                EventType::Warning
            } else {
                EventType::Normal
            },
            if failed { "RemediationFailed" } else { reason },
            action_name,
            format!(
                "step `{}` ({}{}) is {}",
                action.step,
                action.kind,
                action
                    .target
                    .as_ref()
                    .map(|t| format!(" on {t}"))
                    .unwrap_or_default(),
                action.status
            ),
        ));
    }
    events
}

/// An object in the cluster that claims an SLO (or playbook) name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claim {
    /// `creationTimestamp` as unix seconds: the older object keeps the name.
    pub created: i64,
    /// `namespace/name`: breaks ties so every replica decides the same.
    pub key: String,
    pub name: String,
}

/// Who holds each claimed name: files first (a file's name is never taken by an object),
/// then the oldest object. Returns, for each object key, `None` when it holds its name or
/// `Some(holder)` naming who does.
pub fn name_holders(
    file_names: &BTreeSet<String>,
    claims: &[Claim],
) -> BTreeMap<String, Option<String>> {
    let mut sorted: Vec<&Claim> = claims.iter().collect();
    sorted.sort();
    let mut holders: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for claim in sorted {
        let taken_by = if file_names.contains(&claim.name) {
            Some(format!("a policy file (SLO `{}`)", claim.name))
        } else if let Some(holder) = holders.get(claim.name.as_str()) {
            Some(format!("object {holder}"))
        } else {
            holders.insert(&claim.name, &claim.key);
            None
        };
        out.insert(claim.key.clone(), taken_by);
    }
    out
}

/// The labels of a cluster object that become the SLO's labels: those with a Prometheus
/// label name. Kubernetes-style keys (`app.kubernetes.io/name`, anything with `/` or `.`)
/// stay Kubernetes labels, used for selection only.
pub fn slo_labels(object_labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    object_labels
        .iter()
        .filter(|(k, _)| super::validate::is_label_name(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The owner reference that makes Kubernetes delete a child with its SLO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub uid: String,
}

/// The `PrometheusRule` (Prometheus Operator, `monitoring.coreos.com/v1`) that carries one
/// SLO's generated rules, as a server-side apply body: only the fields burnguard owns. A
/// calendar SLO's object also carries its calendar's period-bounds group, so each object
/// stands alone (the operator gives every object its own rule file); objects on the same
/// calendar record the same values.
pub fn prometheus_rule(slo: &Slo, namespace: &str, owner: &Owner) -> serde_json::Value {
    let groups: Vec<serde_json::Value> = slo
        .calendar
        .as_ref()
        .and_then(rules::calendar_group)
        .into_iter()
        .chain(rules::rule_groups(slo))
        .map(|group| match group.interval {
            Some(interval) => serde_json::json!({
                "name": group.name, "interval": interval.to_string(), "rules": rule_bodies(&group)
            }),
            None => serde_json::json!({"name": group.name, "rules": rule_bodies(&group)}),
        })
        .collect();
    serde_json::json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": prometheus_rule_name(&owner.name),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "burnguard",
                "burnguard.dev/slo": slo.name,
            },
            "ownerReferences": [{
                "apiVersion": format!("{GROUP}/{VERSION}"),
                "kind": super::spec::v1::KUBERNETES_SLO_KIND,
                "name": owner.name,
                "uid": owner.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {"groups": groups},
    })
}

/// A rule group's rules as `PrometheusRule` bodies.
fn rule_bodies(group: &rules::RuleGroup) -> Vec<serde_json::Value> {
    group
        .rules
        .iter()
        .map(|rule| match rule {
            Rule::Recording {
                record,
                expr,
                labels,
            } => serde_json::json!({"record": record, "expr": expr, "labels": labels}),
            Rule::Alerting {
                alert,
                expr,
                labels,
                annotations,
            } => serde_json::json!({
                "alert": alert, "expr": expr, "labels": labels, "annotations": annotations
            }),
        })
        .collect()
}

/// The name of the `PrometheusRule` for the SLO object `object_name`.
pub fn prometheus_rule_name(object_name: &str) -> String {
    format!("{object_name}-slo-rules")
}

/// A policy read from a cluster object.
#[derive(Clone, Debug, PartialEq)]
pub enum ObjectPolicy {
    Slo(Box<Slo>),
    Playbook(Box<super::playbook::Playbook>),
}

/// Reads a `ServiceLevelObjective` (`is_slo`) or `Playbook` object the way a policy file is
/// read: the same parser, the same validation, every problem with its field path. `labels`
/// are the object's Kubernetes labels (see [`slo_labels`]); `spec` is the object's spec as
/// the API server returned it.
pub fn read_object(
    is_slo: bool,
    name: &str,
    labels: &BTreeMap<String, String>,
    spec: Option<&serde_json::Value>,
) -> Result<ObjectPolicy, Vec<Problem>> {
    let kind = if is_slo {
        super::spec::v1::KUBERNETES_SLO_KIND
    } else {
        "Playbook"
    };
    let mut document = serde_json::json!({
        "apiVersion": super::spec::v1::API_VERSION,
        "kind": kind,
        "metadata": {"name": name},
    });
    if is_slo {
        let labels = slo_labels(labels);
        if !labels.is_empty() {
            document["metadata"]["labels"] = serde_json::json!(labels);
        }
    }
    if let Some(spec) = spec {
        document["spec"] = spec.clone();
    }
    // JSON is YAML: the text goes through the very parser a file does. Its lines are not the
    // user's, so problems keep only their paths.
    let text = serde_json::to_string_pretty(&document).unwrap_or_default();
    let source = super::spec::SourceDocument {
        index: 1,
        first_line: 1,
        text: text.into(),
    };
    let without_lines = |problems: Vec<Problem>| -> Vec<Problem> {
        problems
            .into_iter()
            .map(|mut p| {
                p.line = None;
                p
            })
            .collect()
    };
    let parsed = super::spec::parse_document(&source).map_err(without_lines)?;
    let read = match parsed.document {
        super::spec::Document::Slo(slo) => {
            super::validate::validate_slo(&source, *slo).map(|s| ObjectPolicy::Slo(Box::new(s)))
        }
        super::spec::Document::Playbook(book) => super::validate::validate_playbook(&source, *book)
            .map(|b| ObjectPolicy::Playbook(Box::new(b))),
        _ => Err(vec![Problem::new(
            "kind",
            None,
            "is not an SLO or a Playbook",
        )]),
    };
    match (read, parsed.unknown_fields) {
        (Ok(policy), unknown) if unknown.is_empty() => Ok(policy),
        (Ok(_), unknown) => Err(without_lines(unknown)),
        (Err(mut problems), unknown) => {
            problems.extend(unknown);
            Err(without_lines(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_484_800; // 2026-01-04T00:00:00Z

    fn facts(status: Option<&str>) -> StatusFacts {
        StatusFacts {
            generation: Some(3),
            validity: Validity::Valid,
            rules: RulesOutcome::Applied,
            evaluation: status.map(|s| EvaluationFacts {
                status: s.into(),
                budget_remaining: Some(0.4567),
                burn_rates: vec![("5m".into(), 2.00049), ("1h".into(), f64::NAN)],
                at: NOW - 30,
            }),
            open_incident: None,
            freezes: vec![],
            last_action: None,
        }
    }

    fn condition_of<'a>(s: &'a SloStatus, type_: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn burning_follows_the_evaluation_and_never_says_false_on_missing_data() {
        let cases = [
            (None, "Unknown", "NotEvaluated"),
            (Some("page"), "True", "FastBurn"),
            (Some("ticket"), "True", "SlowBurn"),
            (Some("ok"), "False", "WithinBudget"),
            (Some("warning"), "False", "Warning"),
            (Some("no_data"), "Unknown", "NoData"),
            (Some("partial"), "Unknown", "PartialData"),
            (Some("error"), "Unknown", "EvaluationFailed"),
        ];
        for (status, want, reason) in cases {
            let s = desired_slo_status(&facts(status), None, NOW);
            let c = condition_of(&s, BURNING);
            assert_eq!(
                (c.status.as_str(), c.reason.as_str()),
                (want, reason),
                "{status:?}"
            );
        }
    }

    #[test]
    fn numbers_are_rounded_and_impossible_ones_left_out() {
        let s = desired_slo_status(&facts(Some("ok")), None, NOW);
        assert_eq!(s.budget_remaining_percent, Some(45.67));
        assert_eq!(
            s.burn_rates,
            vec![WindowBurnRate {
                window: "5m".into(),
                burn_rate: 2.0
            }],
            "NaN is not a burn rate"
        );
        assert_eq!(
            s.last_evaluation_time.as_deref(),
            Some("2026-01-03T23:59:30Z")
        );
        assert_eq!(s.status.as_deref(), Some("ok"));
    }

    #[test]
    fn a_transition_time_moves_only_when_the_condition_flips() {
        let first = desired_slo_status(&facts(Some("ok")), None, NOW);
        // Same status an hour later, a new message: the time stays.
        let mut later = facts(Some("warning"));
        later.generation = Some(4);
        let second = desired_slo_status(&later, Some(&first), NOW + 3600);
        let c = condition_of(&second, BURNING);
        assert_eq!(c.reason, "Warning");
        assert_eq!(c.last_transition_time, "2026-01-04T00:00:00Z");
        assert_eq!(c.observed_generation, Some(4));
        // It flips: the time moves.
        let third = desired_slo_status(&facts(Some("page")), Some(&second), NOW + 7200);
        assert_eq!(
            condition_of(&third, BURNING).last_transition_time,
            "2026-01-04T02:00:00Z"
        );
        assert_eq!(
            condition_of(&third, VALID).last_transition_time,
            "2026-01-04T00:00:00Z"
        );
    }

    #[test]
    fn an_invalid_spec_names_every_problem_and_a_taken_name_says_who_holds_it() {
        let mut f = facts(None);
        f.validity = Validity::Invalid(vec![
            Problem::new("spec.objective", None, "is out of range"),
            Problem::new("spec.window", None, "is not a duration"),
        ]);
        f.rules = RulesOutcome::NotAttempted;
        let s = desired_slo_status(&f, None, NOW);
        let v = condition_of(&s, VALID);
        assert_eq!(
            (v.status.as_str(), v.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert_eq!(
            v.message,
            "spec.objective: is out of range; spec.window: is not a duration"
        );
        assert_eq!(s.problems.len(), 2);
        assert_eq!(s.status.as_deref(), Some("invalid"));
        assert_eq!(condition_of(&s, RULES_APPLIED).status, "Unknown");
        f.validity = Validity::NameTaken {
            holder: "object shop/checkout".into(),
        };
        let s = desired_slo_status(&f, None, NOW);
        assert_eq!(condition_of(&s, VALID).reason, "NameConflict");
        assert!(
            condition_of(&s, VALID)
                .message
                .contains("object shop/checkout")
        );
        assert_eq!(s.status.as_deref(), Some("conflict"));
    }

    #[test]
    fn writes_happen_for_material_changes_at_once_and_for_numbers_once_per_interval() {
        let base = desired_slo_status(&facts(Some("ok")), None, NOW);
        assert_eq!(status_write(None, &base, None, NOW, 300), StatusWrite::Now);
        assert_eq!(
            status_write(Some(&base), &base, Some(NOW), NOW, 300),
            StatusWrite::Unchanged
        );
        let mut numbers = base.clone();
        numbers.budget_remaining_percent = Some(40.0);
        numbers.last_evaluation_time = Some("2026-01-04T00:01:00Z".into());
        assert_eq!(
            status_write(Some(&base), &numbers, Some(NOW), NOW + 60, 300),
            StatusWrite::At(NOW + 300)
        );
        assert_eq!(
            status_write(Some(&base), &numbers, Some(NOW), NOW + 300, 300),
            StatusWrite::Now
        );
        assert_eq!(
            status_write(Some(&base), &numbers, None, NOW + 60, 300),
            StatusWrite::Now,
            "a restart knows no last write"
        );
        for change in [
            |s: &mut SloStatus| s.open_incident = Some(9),
            |s: &mut SloStatus| s.observed_generation = Some(99),
            |s: &mut SloStatus| s.conditions[2].status = "True".into(),
            |s: &mut SloStatus| {
                s.active_freezes.push(HeldFreeze {
                    namespace: "a".into(),
                    deployment: "b".into(),
                })
            },
            |s: &mut SloStatus| s.status = Some("page".into()),
        ] {
            let mut material = numbers.clone();
            change(&mut material);
            assert_eq!(
                status_write(Some(&base), &material, Some(NOW), NOW + 1, 300),
                StatusWrite::Now
            );
        }
    }

    fn status_with(incident: Option<i64>, freezes: &[(&str, &str)]) -> SloStatus {
        let mut f = facts(Some("page"));
        f.open_incident = incident;
        f.freezes = freezes
            .iter()
            .map(|(n, d)| HeldFreeze {
                namespace: n.to_string(),
                deployment: d.to_string(),
            })
            .collect();
        desired_slo_status(&f, None, NOW)
    }

    fn reasons(events: &[ObjectEvent]) -> Vec<&str> {
        events.iter().map(|e| e.reason.as_str()).collect()
    }

    #[test]
    fn events_tell_the_story_of_a_change_once() {
        let quiet = status_with(None, &[]);
        let burning = status_with(Some(7), &[("shop", "checkout")]);
        assert_eq!(
            reasons(&status_events(Some(&quiet), &burning)),
            ["IncidentOpened", "DeploymentFrozen"]
        );
        assert_eq!(
            reasons(&status_events(Some(&burning), &burning)),
            Vec::<&str>::new(),
            "no change, no event"
        );
        assert_eq!(
            reasons(&status_events(Some(&burning), &quiet)),
            ["IncidentResolved", "DeploymentUnfrozen"]
        );
        let next = status_with(Some(8), &[("shop", "checkout")]);
        assert_eq!(
            reasons(&status_events(Some(&burning), &next)),
            ["IncidentResolved", "IncidentOpened"]
        );
        let mut acted = burning.clone();
        acted.last_action = Some(LastAction {
            id: 3,
            kind: "rollback".into(),
            step: "roll back".into(),
            status: "done".into(),
            target: Some("shop/checkout".into()),
        });
        let e = status_events(Some(&burning), &acted);
        assert_eq!(reasons(&e), ["RolledBack"]);
        assert_eq!(
            e[0].note,
            "step `roll back` (rollback on shop/checkout) is done"
        );
        let mut failed = acted.clone();
        failed.last_action.as_mut().unwrap().status = "failed".into();
        let e = status_events(Some(&acted), &failed);
        assert_eq!(
            (reasons(&e), e[0].type_),
            (vec!["RemediationFailed"], EventType::Warning)
        );
    }

    #[test]
    fn the_older_object_holds_a_name_whatever_the_order_and_files_always_win() {
        let claim = |created, key: &str, name: &str| Claim {
            created,
            key: key.into(),
            name: name.into(),
        };
        let older = claim(100, "shop/checkout", "checkout");
        let newer = claim(200, "pay/checkout", "checkout");
        let other = claim(300, "pay/api", "api");
        for claims in [
            vec![older.clone(), newer.clone(), other.clone()],
            vec![other.clone(), newer.clone(), older.clone()],
        ] {
            let holders = name_holders(&BTreeSet::new(), &claims);
            assert_eq!(holders["shop/checkout"], None);
            assert_eq!(
                holders["pay/checkout"].as_deref(),
                Some("object shop/checkout")
            );
            assert_eq!(holders["pay/api"], None);
        }
        // Same age: the key decides, the same on every replica.
        let twin = claim(100, "a/checkout", "checkout");
        assert_eq!(
            name_holders(&BTreeSet::new(), &[older.clone(), twin])["shop/checkout"].as_deref(),
            Some("object a/checkout")
        );
        let files = BTreeSet::from(["checkout".to_string()]);
        let holders = name_holders(&files, &[older]);
        assert!(
            holders["shop/checkout"]
                .as_deref()
                .unwrap()
                .contains("policy file")
        );
    }

    #[test]
    fn only_prometheus_named_labels_become_slo_labels() {
        let labels = BTreeMap::from([
            ("team".to_string(), "payments".to_string()),
            ("app.kubernetes.io/name".to_string(), "checkout".to_string()),
            ("tier".to_string(), "1".to_string()),
        ]);
        assert_eq!(
            slo_labels(&labels).keys().collect::<Vec<_>>(),
            ["team", "tier"]
        );
    }

    #[test]
    fn an_object_reads_like_a_file_with_paths_and_no_lines() {
        let spec = serde_json::json!({"service": "checkout", "objective": 150, "indicator": {"raw": {"errorRatio": "sum(rate(errors_total[{{.window}}])) / sum(rate(requests_total[{{.window}}]))"}}, "typo": 1});
        let problems = read_object(true, "checkout", &BTreeMap::new(), Some(&spec)).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["spec.objective", "spec.typo"]);
        assert!(problems.iter().all(|p| p.line.is_none()));
        assert!(read_object(true, "Bad_Name", &BTreeMap::new(), None).is_err());
        let spec = serde_json::json!({"service": "checkout", "objective": 99.5, "indicator": {"raw": {"errorRatio": "sum(rate(errors_total[{{.window}}])) / sum(rate(requests_total[{{.window}}]))"}}});
        let Ok(ObjectPolicy::Slo(slo)) =
            read_object(true, "checkout", &BTreeMap::new(), Some(&spec))
        else {
            panic!("valid");
        };
        assert_eq!(slo.name, "checkout");
    }

    #[test]
    fn the_prometheus_rule_is_owned_by_its_slo() {
        let spec = serde_json::json!({"service": "checkout", "objective": 99.5, "indicator": {"raw": {"errorRatio": "sum(rate(errors_total[{{.window}}])) / sum(rate(requests_total[{{.window}}]))"}}});
        let Ok(ObjectPolicy::Slo(slo)) =
            read_object(true, "checkout", &BTreeMap::new(), Some(&spec))
        else {
            panic!("valid");
        };
        let rule = prometheus_rule(
            &slo,
            "shop",
            &Owner {
                name: "checkout".into(),
                uid: "u-1".into(),
            },
        );
        assert_eq!(rule["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(rule["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(rule["metadata"]["name"], "checkout-slo-rules");
        assert_eq!(rule["spec"]["groups"].as_array().unwrap().len(), 1);
    }
}
