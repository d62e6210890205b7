//! Persisting a cycle: every SLO's evaluation goes to the store together with what it means
//! for the SLO's incident (the domain's lifecycle rule, applied inside the store's transaction).

use std::collections::HashMap;

use tracing::{info, warn};

use super::evaluate::{EvalStatus, Evaluation, SloEvaluation};
use crate::domain::burn::Status;
use crate::domain::incident::{self, Decision, Observation};
use crate::domain::policy::{Severity, Slo};
use crate::ports::{EvaluationRecord, Store};

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
        snapshot: serde_json::to_value(e).unwrap_or_default(),
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

/// Stores every SLO evaluation of a cycle and drives its incident's lifecycle.
pub async fn record_cycle<S: Store>(store: &S, slos: &[Slo], evaluation: &Evaluation) -> Recorded {
    let by_name: HashMap<&str, &Slo> = slos.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut recorded = Recorded::default();
    for e in &evaluation.slos {
        let Some(slo) = by_name.get(e.name.as_str()) else {
            continue;
        };
        let seen = observation(e);
        let resolve_after = slo.resolve_after.as_secs();
        let at = evaluation.at;
        let result = store
            .record(&evaluation_record(e, at), |open| {
                incident::decide(open, &seen, at, resolve_after)
            })
            .await;
        match result {
            Ok(done) => match done.decision {
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
            },
            Err(error) => {
                recorded.failed += 1;
                warn!(slo = %e.key(), %error, "recording the evaluation failed");
            }
        }
    }
    recorded
}
