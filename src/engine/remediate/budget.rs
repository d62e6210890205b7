//! Budget rules: whether each rule of an SLO holds on this cycle's (decisive) evaluation, and
//! what it then starts: a playbook run for the SLO's incident, or a freeze.
//!
//! `burnRateAbove ... for: D` is judged from Prometheus with a subquery over `D` on its own
//! schedule (once per subquery step, not every cycle): it holds only when samples cover at
//! least 90% of the period and even the lowest burn rate in it is above the limit.

use std::sync::Arc;

use tracing::{info, warn};

use super::{Remediator, log_without_incident};
use crate::domain::burn::{self, Sustained};
use crate::domain::playbook::{BudgetRule, Playbook, Response, Trigger};
use crate::domain::policy::{Severity, Slo, Window};
use crate::domain::sli;
use crate::engine::evaluate::SloEvaluation;
use crate::engine::reading::{Reading, read_one};
use crate::ports::{Actuator, Freezes, Journal, MetricsSource, UnixSeconds};

/// The last sustained-burn check of one rule.
#[derive(Clone, Debug, PartialEq)]
pub struct SustainedBurn {
    pub checked_at: UnixSeconds,
    pub verdict: Sustained,
}

/// The key of a rule in the remediator's memory: `slo/rule id`.
pub(super) fn rule_key(slo: &Slo, rule: &BudgetRule) -> String {
    format!("{}/{}", slo.name, rule.id)
}

/// The subquery step of a sustained-burn check: a twelfth of the burn window, 1m to 1h.
fn sustained_step(window: Window) -> u64 {
    (window.as_secs() / 12).clamp(60, 3_600)
}

/// The trigger as the policy spells it, for reasons and for lifting freezes.
pub(super) fn describe_trigger(when: &Trigger) -> String {
    match when {
        Trigger::Alert(severity) => format!("{severity} alert fired"),
        Trigger::BudgetRemainingBelow(t) => {
            format!("error budget below {}%", sli::promql_number(t * 100.0))
        }
        Trigger::BurnRateAbove {
            rate,
            duration,
            window,
        } => format!("burn rate over {window} above {rate} for {duration}"),
    }
}

pub(super) fn trigger_json(when: &Trigger) -> serde_json::Value {
    match when {
        Trigger::Alert(severity) => serde_json::json!({"alert": severity.as_str()}),
        Trigger::BudgetRemainingBelow(t) => serde_json::json!({"budgetRemainingBelow": t}),
        Trigger::BurnRateAbove {
            rate,
            duration,
            window,
        } => {
            serde_json::json!({"burnRateAbove": rate, "for": duration.to_string(), "window": window.to_string()})
        }
    }
}

impl<S, A, M> Remediator<S, A, M>
where
    S: Journal + Freezes + 'static,
    A: Actuator + 'static,
    M: MetricsSource + 'static,
{
    /// Acts on one rule if it holds. Called only with a decisive evaluation.
    pub(super) async fn apply_rule(
        self: &Arc<Self>,
        slo: &Slo,
        e: &SloEvaluation,
        rule: &BudgetRule,
        playbooks: &std::collections::BTreeMap<String, Playbook>,
        at: UnixSeconds,
    ) -> Result<(), String> {
        // A grouped SLO's groups each have their own incident.
        let incident = self
            .store
            .unresolved_incident(&e.key())
            .await
            .map_err(|e| e.to_string())?;
        let holds = match &rule.when {
            Trigger::Alert(severity) => incident.as_ref().is_some_and(|i| {
                let level = if i.severity == "page" {
                    Severity::Page
                } else {
                    Severity::Ticket
                };
                level >= *severity
            }),
            Trigger::BudgetRemainingBelow(threshold) => {
                e.error_budget_remaining.is_some_and(|b| b < *threshold)
            }
            // Validation refuses sustained-burn rules on grouped SLOs (their subquery reads
            // the SLO as one series); never act on a guess if one gets here.
            Trigger::BurnRateAbove { .. } if !e.group.is_empty() => false,
            Trigger::BurnRateAbove { .. } => matches!(
                self.sustained_burn(slo, rule, at).await,
                Sustained::Held { .. }
            ),
        };
        if !holds {
            return Ok(());
        }
        let incident_id = incident.as_ref().map(|i| i.id);
        match &rule.then {
            Response::Run(name) => {
                let Some(playbook) = playbooks.get(name) else {
                    return Err(format!("playbook {name} is not loaded"));
                };
                let Some(incident_id) = incident_id else {
                    log_without_incident(
                        &slo.name,
                        &rule.id,
                        "budget rule holds without an open incident; playbooks attach to incidents, so it waits for one",
                    );
                    return Ok(());
                };
                self.start_playbook(
                    slo.clone(),
                    e.group.clone(),
                    incident_id,
                    rule.id.clone(),
                    playbook.clone(),
                );
                Ok(())
            }
            // Refused by validation on grouped SLOs: one freeze per rule, not per group.
            Response::Freeze(_) if !e.group.is_empty() => Ok(()),
            Response::Freeze(target) => {
                let reason = format!("{}: {}", slo.name, describe_trigger(&rule.when));
                self.freeze(
                    slo,
                    incident_id,
                    format!("slo:{}/rule:{}", slo.name, rule.id),
                    target,
                    &reason,
                    Some(trigger_json(&rule.when)),
                    at,
                )
                .await
                .map(|_| ())
            }
        }
    }

    /// The verdict of a `burnRateAbove ... for` rule, re-read from Prometheus once per
    /// subquery step and remembered in between.
    async fn sustained_burn(&self, slo: &Slo, rule: &BudgetRule, at: UnixSeconds) -> Sustained {
        let Trigger::BurnRateAbove {
            rate,
            duration,
            window,
        } = rule.when
        else {
            return Sustained::Unknown { coverage: None };
        };
        let key = rule_key(slo, rule);
        let step = sustained_step(window);
        if let Ok(cache) = self.sustained.lock()
            && let Some(last) = cache.get(&key)
            && at - last.checked_at < step as i64
        {
            return last.verdict;
        }
        let ratio = sli::error_ratio(&slo.indicator, window, slo.min_events);
        let range = format!("[{duration}:{step}s]");
        let lowest = read_one(
            self.metrics.as_ref(),
            &format!("min_over_time(({ratio}){range})"),
            at,
        )
        .await;
        let samples = read_one(
            self.metrics.as_ref(),
            &format!("count_over_time(({ratio}){range})"),
            at,
        )
        .await;
        if let (Reading::Failed(why), _) | (_, Reading::Failed(why)) = (&lowest, &samples) {
            warn!(slo = %slo.name, rule = %rule.id, %why, "checking a sustained burn failed; the rule does not hold");
        }
        let verdict = burn::sustained(
            lowest.value().and_then(|r| burn::checked_ratio(r).ok()),
            samples.value(),
            duration.as_secs() / step,
            slo.error_budget(),
            rate,
        );
        if let Sustained::Unknown { coverage } = verdict {
            info!(slo = %slo.name, rule = %rule.id, ?coverage, "samples do not cover the sustained-burn period; the rule neither holds nor clears");
        }
        if let Ok(mut cache) = self.sustained.lock() {
            cache.insert(
                key,
                SustainedBurn {
                    checked_at: at,
                    verdict,
                },
            );
        }
        verdict
    }
}
