//! Persisting a cycle: every SLO's evaluation goes to the store together with what it means
//! for the SLO's incident (the domain's lifecycle rule, applied inside the store's transaction).

use std::collections::HashMap;

use tracing::{info, warn};

use super::evaluate::{EvalStatus, Evaluation, SloEvaluation};
use crate::domain::burn::Status;
use crate::domain::incident::{self, Decision, Observation};
use crate::domain::policy::{self, Severity, Slo};
use crate::ports::{CommandOutcome, EvaluationRecord, Operations, Store};

/// What one evaluation says for incidents.
pub fn observation(e: &SloEvaluation) -> Observation {
    match e.status {
        EvalStatus::Error => Observation::Failed {
            reason: e.error.clone().unwrap_or_else(|| "unknown error".into()),
        },
        EvalStatus::Assessed(Status::NoData) => Observation::NoData,
        EvalStatus::Assessed(Status::Partial) => Observation::Partial,
        EvalStatus::Assessed(Status::Ok) => Observation::Quiet {
            budget_remaining: e.error_budget_remaining,
        },
        EvalStatus::Assessed(status @ (Status::Page | Status::Ticket)) => {
            let burn_rate = e
                .alerts
                .iter()
                .filter(|a| a.firing)
                .filter_map(|a| e.burn_rate.get(a.long))
                .fold(0.0_f64, f64::max);
            Observation::Firing {
                severity: if status == Status::Page {
                    Severity::Page
                } else {
                    Severity::Ticket
                },
                burn_rate,
                budget_remaining: e.error_budget_remaining,
            }
        }
    }
}

/// The stored form of one evaluation.
pub fn evaluation_record(e: &SloEvaluation, at: i64) -> EvaluationRecord {
    EvaluationRecord {
        slo: e.key(),
        service: e.service.clone(),
        evaluated_at: at,
        status: e.status.as_str().to_string(),
        error_budget_remaining: e.error_budget_remaining,
        // A derived Serialize of plain data does not fail; `{}` keeps the column valid JSON.
        snapshot: serde_json::to_string(e).unwrap_or_else(|_| "{}".into()),
    }
}

/// Counts of what a cycle did to incidents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    pub opened: usize,
    pub escalated: usize,
    pub resolved: usize,
    /// SLOs whose record failed (logged); their evaluation is not stored.
    pub failed: usize,
}

/// Evaluations per store transaction: a cycle of 10,000 SLOs is two batches, so no batch
/// holds SQLite's write lock (which webhook intake also waits for) for long.
pub const RECORD_BATCH: usize = 5_000;

/// Stores every SLO evaluation of a cycle and drives its incident's lifecycle, in batches of
/// [`RECORD_BATCH`] evaluations, each one transaction: a crash mid-cycle leaves every batch
/// stored whole or not at all, and the next cycle decides again from what is stored. When a
/// batch fails, its SLOs are recorded one by one, so one bad record costs only itself.
pub async fn record_cycle<S: Store>(store: &S, slos: &[Slo], evaluation: &Evaluation) -> Recorded {
    let by_name: HashMap<&str, &Slo> = slos.iter().map(|s| (s.name.as_str(), s)).collect();
    let at = evaluation.at;
    // The evaluations of loaded SLOs, with what each says for its incident.
    let known: Vec<(&SloEvaluation, Observation, u64)> = evaluation
        .slos
        .iter()
        .filter_map(|e| {
            let slo = by_name.get(e.name.as_str())?;
            Some((e, observation(e), slo.resolve_after.as_secs()))
        })
        .collect();
    let mut recorded = Recorded::default();
    for batch in known.chunks(RECORD_BATCH) {
        let records: Vec<EvaluationRecord> = batch
            .iter()
            .map(|(e, ..)| evaluation_record(e, at))
            .collect();
        let decide = |i: usize, open: Option<&incident::OpenIncident>| {
            let (_, seen, resolve_after) = &batch[i];
            incident::decide(open, seen, at, *resolve_after)
        };
        match store.record_batch(&records, decide).await {
            Ok(done) => {
                for ((e, ..), done) in batch.iter().zip(done) {
                    count(&mut recorded, e, &done);
                }
            }
            Err(error) => {
                warn!(%error, slos = batch.len(), "recording the cycle's batch failed; recording its SLOs one by one");
                for (i, (e, ..)) in batch.iter().enumerate() {
                    match store.record(&records[i], |open| decide(i, open)).await {
                        Ok(done) => count(&mut recorded, e, &done),
                        Err(error) => {
                            recorded.failed += 1;
                            warn!(slo = %e.key(), %error, "recording the evaluation failed");
                        }
                    }
                }
            }
        }
    }
    recorded
}

/// Counts and logs what recording one evaluation did to its incident.
fn count(recorded: &mut Recorded, e: &SloEvaluation, done: &crate::ports::Transitioned) {
    match done.decision {
        Decision::Open { severity, .. } => {
            recorded.opened += 1;
            info!(slo = %e.key(), incident = ?done.incident_id, %severity, "incident opened");
        }
        Decision::Escalate { to, .. } => {
            recorded.escalated += 1;
            info!(slo = %e.key(), incident = ?done.incident_id, severity = %to, "incident escalated");
        }
        Decision::Resolve { .. } => {
            recorded.resolved += 1;
            info!(slo = %e.key(), incident = ?done.incident_id, "incident resolved");
        }
        _ => {}
    }
}

/// Resolves the unresolved incidents that an SLO's `groupBy` edit left behind: keyed by a
/// shape the SLO no longer has (`checkout` once it is grouped by route, or
/// `checkout{route="/pay"}` once it is not), no evaluation will ever carry them again. Only
/// once the SLO in its new shape was assessed on whole data this cycle: an SLO without data
/// keeps its old incidents. Returns how many were resolved.
pub async fn retire_reshaped<S: Store + Operations>(
    store: &S,
    slos: &[Slo],
    evaluation: &Evaluation,
    at: i64,
) -> usize {
    let assessed: HashMap<&str, &Slo> = slos
        .iter()
        .filter(|slo| {
            evaluation.slos.iter().any(|e| {
                e.name == slo.name
                    && matches!(
                        e.status,
                        EvalStatus::Assessed(Status::Ok | Status::Ticket | Status::Page)
                    )
            })
        })
        .map(|slo| (slo.name.as_str(), slo))
        .collect();
    if assessed.is_empty() {
        return 0;
    }
    let unresolved = match store.unresolved_incidents().await {
        Ok(found) => found,
        Err(error) => {
            warn!(%error, "listing unresolved incidents failed; reshaped SLOs are checked next cycle");
            return 0;
        }
    };
    let mut retired = 0;
    for incident in unresolved {
        let Some((name, _)) = policy::split_group_key(&incident.slo) else {
            continue;
        };
        let Some(slo) = assessed.get(name) else {
            continue;
        };
        if !policy::is_reshaped_key(&incident.slo, slo) {
            continue;
        }
        let note = reshaped_note(slo);
        match store
            .resolve_by_hand(incident.id, ACTOR, Some(&note), at)
            .await
        {
            Ok(CommandOutcome::Done(_)) => {
                retired += 1;
                info!(slo = %incident.slo, incident = incident.id, "incident resolved: its SLO's groupBy changed");
            }
            // Another replica resolved it first.
            Ok(_) => {}
            Err(error) => {
                warn!(slo = %incident.slo, %error, "resolving a reshaped SLO's incident failed")
            }
        }
    }
    retired
}

/// Who resolves what nobody else did.
const ACTOR: &str = "burnguard";

/// Why a reshaped SLO's incident was resolved, for its timeline.
fn reshaped_note(slo: &Slo) -> String {
    if slo.group_by.is_empty() {
        format!(
            "groupBy changed: {} is no longer grouped; this group's incident is resolved and the SLO as a whole is evaluated in its place",
            slo.name
        )
    } else {
        format!(
            "groupBy changed: {} is now grouped by [{}]; this incident's key names no group of it, so it is resolved and each group is evaluated on its own",
            slo.name,
            slo.group_by.join(", ")
        )
    }
}
