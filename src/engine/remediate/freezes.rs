//! Freezes: the record in the store is the truth (the freeze gate and the admission webhook
//! read it); [`crate::domain::reconcile`] works out what Kubernetes must look like, and the
//! reconcile pass here makes it so, every cycle: marks lost in a crash between record and
//! apply are applied, marks of lifted freezes are removed (only burnguard's own, by field
//! manager), and freezes made through the API reach Kubernetes the same way.
//!
//! burnguard lifts its own freezes only on decisive data: once the budget is back above the
//! threshold plus a margin (or the burn rate below its limit, or the incident resolved) and
//! nothing has fired for `unfreeze_after`.

use std::collections::BTreeMap;

use serde_json::json;
use tracing::{info, warn};

use super::{ACTOR, decisive, now};
use crate::domain::burn::Status;
use crate::domain::playbook::FreezeTarget;
use crate::domain::policy::{Slo, Window};
use crate::domain::reconcile::{AppliedMarks, FreezeOperation, FreezeState, freeze_operations};
use crate::engine::evaluate::{EvalStatus, SloEvaluation};
use crate::ports::{
    ActionIntent, ActionStatus, Actuator, FreezeMarks, FreezeRecord, Freezes, Journal, Journaled,
    MetricsSource, NewFreeze, PartialFreeze, UnixSeconds,
};
use crate::timefmt::rfc3339;

/// What a freeze record says is on Kubernetes.
fn applied_marks(applied: &serde_json::Value) -> Option<AppliedMarks> {
    Some(AppliedMarks {
        namespace: applied["namespace"].as_str()?.to_string(),
        deployments: serde_json::from_value(applied["deployments"].clone()).ok()?,
        // Records from before partial applies were noted are whole.
        complete: applied["complete"].as_bool().unwrap_or(true),
    })
}

fn freeze_state(record: &FreezeRecord) -> FreezeState {
    FreezeState {
        id: record.id,
        reaches_kubernetes: target_of(record).touches_kubernetes(),
        applied: record.applied.as_ref().and_then(applied_marks),
    }
}

fn target_of(record: &FreezeRecord) -> FreezeTarget {
    FreezeTarget {
        service: record.service.clone(),
        namespace: record.namespace.clone(),
        deployments: record.deployments.clone(),
        selector: record.selector.clone(),
    }
}

impl<S, A, M> super::Remediator<S, A, M>
where
    S: Journal + Freezes + 'static,
    A: Actuator + 'static,
    M: MetricsSource + 'static,
{
    /// Creates the freeze record (unless this source already has one active), then applies it
    /// to Kubernetes at once when it names Deployments; what fails to apply is applied by the
    /// next reconcile pass, and the freeze holds at the gate meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn freeze(
        &self,
        slo: &Slo,
        incident_id: Option<i64>,
        source_key: String,
        target: &FreezeTarget,
        reason: &str,
        lift_when: Option<serde_json::Value>,
        at: UnixSeconds,
    ) -> Result<String, String> {
        if self.settings.dry_run {
            if let Some(incident) = incident_id {
                let journaled = self
                    .store
                    .journal(&ActionIntent {
                        key: format!("{source_key}#dry-run"),
                        incident_id,
                        slo: slo.name.clone(),
                        playbook: None,
                        step: "freeze".into(),
                        kind: "freeze".into(),
                        intent: json!({"freeze": target.to_string(), "reason": reason}),
                        status: ActionStatus::DryRun,
                        dry_run: true,
                        at,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                if matches!(journaled, Journaled::New { .. }) {
                    self.event(
                        incident,
                        "action_dry_run",
                        &format!("dry run: would freeze {target} ({reason})"),
                    )
                    .await;
                }
            }
            return Ok(format!("dry run: would freeze {target}"));
        }
        let created = self
            .store
            .create_freeze(&NewFreeze {
                target: target.clone(),
                reason: reason.to_string(),
                incident_id,
                slo: Some(slo.name.clone()),
                source_key,
                created_by: ACTOR.into(),
                lift_when,
                at,
            })
            .await
            .map_err(|e| e.to_string())?;
        let Some(freeze_id) = created else {
            return Ok(format!("{target} was already frozen by this rule"));
        };
        super::crash_point("freeze-after-record");
        info!(slo = %slo.name, freeze = freeze_id, %target, "deployments frozen");
        if let Some(incident) = incident_id {
            self.event(incident, "frozen", &format!("froze {target}: {reason}"))
                .await;
        }
        if target.touches_kubernetes() {
            self.apply_freeze(freeze_id, target, reason, incident_id, at)
                .await;
        }
        Ok(format!("froze {target}"))
    }

    /// Applies one freeze's marks and records what was applied.
    async fn apply_freeze(
        &self,
        freeze_id: i64,
        target: &FreezeTarget,
        reason: &str,
        incident_id: Option<i64>,
        created_at: UnixSeconds,
    ) {
        let marks = FreezeMarks {
            reason: reason.to_string(),
            incident: incident_id,
            at: rfc3339(created_at),
        };
        match self.actuator.freeze(target, &marks).await {
            Ok(applied) => {
                if let Err(error) = self
                    .store
                    .set_freeze_applied(freeze_id, Some(applied))
                    .await
                {
                    warn!(freeze = freeze_id, %error, "recording an applied freeze failed; the next pass applies it again");
                }
                if let Ok(mut noted) = self.noted_apply_failures.lock() {
                    noted.remove(&freeze_id);
                }
            }
            Err(PartialFreeze { error, applied }) => {
                if let Some(applied) = applied
                    && let Err(error) = self
                        .store
                        .set_freeze_applied(freeze_id, Some(applied))
                        .await
                {
                    warn!(freeze = freeze_id, %error, "recording a partly applied freeze failed");
                }
                warn!(freeze = freeze_id, %error, "applying the freeze to Kubernetes failed; it holds at the freeze gate and is applied again next cycle");
                let first = self
                    .noted_apply_failures
                    .lock()
                    .map(|mut noted| noted.insert(freeze_id))
                    .unwrap_or(false);
                if first && let Some(incident) = incident_id {
                    self.event(incident, "freeze_not_applied", &format!(
                        "applying the freeze to Kubernetes failed ({error}); it holds at the freeze gate, and burnguard applies it again every cycle until it takes"
                    ))
                    .await;
                }
            }
        }
    }

    /// Makes Kubernetes match the store's freezes (see the module docs).
    pub async fn reconcile_freezes(&self) {
        let (Ok(active), Ok(lifted)) = (
            self.store.active_freezes().await,
            self.store.lifted_not_removed().await,
        ) else {
            warn!("reading freezes failed; reconciling them next cycle");
            return;
        };
        let states: Vec<FreezeState> = active.iter().map(freeze_state).collect();
        let lifted_states: Vec<FreezeState> = lifted.iter().map(freeze_state).collect();
        for operation in freeze_operations(&states, &lifted_states) {
            match operation {
                FreezeOperation::Apply { id } => {
                    let Some(record) = active.iter().find(|f| f.id == id) else {
                        continue;
                    };
                    self.apply_freeze(
                        id,
                        &target_of(record),
                        &record.reason,
                        record.incident_id,
                        record.created_at,
                    )
                    .await;
                }
                FreezeOperation::Remove {
                    id,
                    namespace,
                    deployments,
                } => {
                    if !deployments.is_empty() {
                        let applied = json!({"namespace": namespace, "deployments": deployments});
                        if let Err(error) = self.actuator.unfreeze(&applied).await {
                            warn!(freeze = id, %error, "removing a lifted freeze from Kubernetes failed; trying again next cycle");
                            continue;
                        }
                    }
                    if let Err(error) = self.store.set_freeze_removed(id, now()).await {
                        warn!(freeze = id, %error, "recording a removed freeze failed");
                    }
                }
            }
        }
    }

    /// Lifts burnguard's freezes whose conditions have cleared, on decisive data only. The
    /// marks come off Kubernetes in the reconcile pass that follows.
    pub(super) async fn lift_freezes(
        &self,
        slos: &[Slo],
        evaluations: &[std::sync::Arc<SloEvaluation>],
        at: UnixSeconds,
    ) {
        let Ok(freezes) = self.store.active_freezes().await else {
            return;
        };
        let freezes: Vec<_> = freezes
            .into_iter()
            .filter(|f| f.created_by == ACTOR)
            .collect();
        if freezes.is_empty() {
            return;
        }
        // Budget-rule freezes belong to ungrouped SLOs (validation refuses them on grouped
        // ones), so lifting reads the one evaluation of each.
        let evaluations: BTreeMap<&str, &SloEvaluation> = evaluations
            .iter()
            .filter(|e| e.group.is_empty())
            .map(|e| (e.name.as_str(), e.as_ref()))
            .collect();
        for freeze in freezes {
            let Some(slo_name) = freeze.slo.as_deref() else {
                continue;
            };
            let Some(slo) = slos.iter().find(|s| s.name == slo_name) else {
                continue;
            };
            let Some(e) = evaluations.get(slo_name) else {
                continue;
            };
            // Never lift on missing, partial or failed data: only quiet seen on data counts.
            if !decisive(e) || e.status != EvalStatus::Assessed(Status::Ok) {
                continue;
            }
            let quiet = match self.store.quiet_since(slo_name).await {
                Ok(Some(last)) => at - last >= self.settings.unfreeze_after.as_secs() as i64,
                Ok(None) => true,
                Err(_) => false,
            };
            if !quiet {
                continue;
            }
            let (recovered, why) = match &freeze.lift_when {
                Some(w) if w.get("budgetRemainingBelow").is_some() => {
                    let recovered = match w["budgetRemainingBelow"].as_f64() {
                        Some(threshold) => e
                            .error_budget_remaining
                            .is_some_and(|b| b >= threshold + self.settings.unfreeze_margin),
                        None => false,
                    };
                    (recovered, "the budget is back above its threshold")
                }
                Some(w) if w.get("burnRateAbove").is_some() => {
                    let rate = w["burnRateAbove"].as_f64();
                    let window = w["window"].as_str().and_then(|t| Window::parse(t).ok());
                    let recovered = match (rate, window) {
                        (Some(rate), Some(window)) => {
                            e.burn_rate.get(window).is_some_and(|b| b < rate)
                        }
                        _ => false,
                    };
                    (recovered, "the burn rate is back below its limit")
                }
                // Alert-driven and playbook freezes: the incident must be over.
                _ => (
                    matches!(self.store.unresolved_incident(slo_name).await, Ok(None)),
                    "the incident is resolved",
                ),
            };
            if !recovered {
                continue;
            }
            if let Ok(true) = self.store.lift_freeze(freeze.id, ACTOR, at).await {
                info!(slo = %slo.name, freeze = freeze.id, why, "freeze lifted");
                if let Some(incident) = freeze.incident_id {
                    self.event(incident, "unfrozen", &format!(
                        "lifted the freeze ({}): {why}, and for {}s the data showed nothing firing",
                        freeze.reason,
                        self.settings.unfreeze_after.as_secs()
                    ))
                    .await;
                }
            }
        }
    }
}
