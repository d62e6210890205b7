//! Remediation: after each cycle, the SLOs' budget rules decide what to run; playbooks run in
//! the background, step by step, each step journaled before it runs and settled after, so a
//! step runs at most once per incident (the journal's unique key is incident + rule + step).
//!
//! Guards, each leaving a timeline entry that says why: the service-wide dry run, a
//! playbook's `mode` (dry-run, approve), its `cooldown`, and `maxActionsPerHour`. Nothing
//! acts on an evaluation without data or that failed. After a crash, steps found `started`
//! are marked `unknown` and run again only when they are safe to repeat.
//!
//! Freezes are first a record in the store (the gate and the admission webhook read it), then
//! applied to Kubernetes when they name Deployments; a failure to apply is on the timeline and
//! does not lift the freeze. Budget-rule freezes lift themselves once the budget is back above
//! the threshold plus a margin and nothing has fired for `unfreeze_after`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::timefmt::rfc3339;
use tracing::{info, warn};

use super::evaluate::{EvalStatus, Evaluation, SloEvaluation};
use crate::domain::burn::Status;
use crate::domain::playbook::{
    BudgetRule, FreezeTarget, Playbook, PlaybookMode, Response, Step, StepAction, Trigger,
};
use crate::domain::policy::{Severity, Slo};
use crate::domain::sli;
use crate::ports::{
    ActionIntent, ActionStatus, Actuator, FreezeMarks, Freezes, Journal, Journaled, MetricsSource,
    NewFreeze, UnixSeconds,
};

/// Service-wide remediation settings.
#[derive(Clone, Debug)]
pub struct RemediationSettings {
    /// Nothing is called; every action is journaled and put on the timeline as a dry run.
    pub dry_run: bool,
    /// Actions (not dry runs) allowed per rolling hour across all SLOs.
    pub max_actions_per_hour: u32,
    /// How long nothing may fire before a freeze lifts itself.
    pub unfreeze_after: Duration,
    /// How far above its threshold the budget must be back before a budget freeze lifts
    /// (a fraction: 0.05 is 5 points).
    pub unfreeze_margin: f64,
}

impl Default for RemediationSettings {
    fn default() -> Self {
        Self {
            dry_run: false,
            max_actions_per_hour: 20,
            unfreeze_after: Duration::from_secs(3_600),
            unfreeze_margin: 0.05,
        }
    }
}

const ACTOR: &str = "burnguard";

fn now() -> UnixSeconds {
    chrono::Utc::now().timestamp()
}

/// Runs budget rules and playbooks against a store, an actuator and a metrics source.
pub struct Remediator<S, A, M> {
    store: Arc<S>,
    actuator: Arc<A>,
    metrics: Arc<M>,
    settings: RemediationSettings,
    /// Playbook runs in progress (`incident/rule` keys), so a cycle does not start a second.
    running: Mutex<HashSet<String>>,
    tasks: tokio_util::task::TaskTracker,
}

impl<S, A, M> Remediator<S, A, M>
where
    S: Journal + Freezes + 'static,
    A: Actuator + 'static,
    M: MetricsSource + 'static,
{
    pub fn new(
        store: Arc<S>,
        actuator: Arc<A>,
        metrics: Arc<M>,
        settings: RemediationSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            actuator,
            metrics,
            settings,
            running: Mutex::new(HashSet::new()),
            tasks: tokio_util::task::TaskTracker::new(),
        })
    }

    /// Waits for playbook runs in progress (shutdown, tests).
    pub async fn wait_idle(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }

    /// After a crash: steps found `started` become `unknown`, each with a timeline entry.
    pub async fn recover(&self) {
        let at = now();
        match self.store.mark_interrupted(at).await {
            Ok(actions) => {
                for action in actions {
                    warn!(key = %action.idempotency_key, "a step was interrupted; its effect is unknown");
                    if let Some(incident) = action.incident_id {
                        let _ = self
                            .store
                            .add_event(
                                incident,
                                at,
                                "action_unknown",
                                &format!(
                                    "step `{}` was running when burnguard stopped; whether it took effect is unknown (it runs again only if it is safe to repeat)",
                                    action.step
                                ),
                                ACTOR,
                                None,
                            )
                            .await;
                    }
                }
            }
            Err(error) => warn!(%error, "checking for interrupted steps failed"),
        }
    }

    /// Applies every SLO's budget rules to this cycle's evaluations, and lifts freezes whose
    /// conditions have cleared.
    pub async fn after_cycle(
        self: &Arc<Self>,
        slos: &[Slo],
        playbooks: &BTreeMap<String, Playbook>,
        evaluation: &Evaluation,
    ) {
        let by_name: BTreeMap<&str, &SloEvaluation> = evaluation
            .slos
            .iter()
            .map(|e| (e.name.as_str(), e))
            .collect();
        for slo in slos {
            let Some(e) = by_name.get(slo.name.as_str()) else {
                continue;
            };
            // Never act on missing or failed data.
            if matches!(
                e.status,
                EvalStatus::Error | EvalStatus::Assessed(Status::NoData)
            ) {
                continue;
            }
            for (r, rule) in slo.budget_policy.iter().enumerate() {
                if let Err(error) = self
                    .apply_rule(slo, e, (r, rule), playbooks, evaluation.at)
                    .await
                {
                    warn!(slo = %slo.name, rule = r, %error, "applying a budget rule failed");
                }
            }
        }
        self.lift_freezes(slos, &by_name, evaluation.at).await;
    }

    async fn apply_rule(
        self: &Arc<Self>,
        slo: &Slo,
        e: &SloEvaluation,
        (r, rule): (usize, &BudgetRule),
        playbooks: &BTreeMap<String, Playbook>,
        at: UnixSeconds,
    ) -> Result<(), String> {
        let (when, then) = (&rule.when, &rule.then);
        let incident = self
            .store
            .unresolved_incident(&slo.name)
            .await
            .map_err(|e| e.to_string())?;
        let fires = match when {
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
            Trigger::BurnRateAbove {
                rate,
                duration,
                window,
            } => self
                .sustained_burn(slo, *window, *duration, at)
                .await?
                .is_some_and(|min| min > *rate),
        };
        if !fires {
            return Ok(());
        }
        let incident_id = incident.as_ref().map(|i| i.id);
        match then {
            Response::Run(name) => {
                let Some(playbook) = playbooks.get(name) else {
                    return Err(format!("playbook {name} is not loaded"));
                };
                let Some(incident_id) = incident_id else {
                    info!(slo = %slo.name, rule = r, playbook = %name, "budget rule fired without an open incident; playbooks attach to incidents, so it waits for one");
                    return Ok(());
                };
                self.start_playbook(slo.clone(), incident_id, r, playbook.clone());
                Ok(())
            }
            Response::Freeze(target) => {
                let reason = format!("{}: {}", slo.name, describe_trigger(when));
                let lift_when = serde_json::to_value(trigger_json(when)).ok();
                self.freeze(
                    slo,
                    incident_id,
                    format!("slo:{}/rule:{r}", slo.name),
                    target,
                    &reason,
                    lift_when,
                    at,
                )
                .await
            }
        }
    }

    /// The lowest burn rate over `window` during the last `duration`, from Prometheus.
    async fn sustained_burn(
        &self,
        slo: &Slo,
        window: crate::domain::policy::Window,
        duration: crate::domain::policy::Window,
        at: UnixSeconds,
    ) -> Result<Option<f64>, String> {
        let step = (window.as_secs() / 12).clamp(60, 3_600);
        let expr = format!(
            "min_over_time(({})[{duration}:{step}s])",
            sli::error_ratio(&slo.indicator, window, slo.min_events)
        );
        let samples = self
            .metrics
            .instant(&expr, at)
            .await
            .map_err(|e| e.to_string())?;
        Ok(match samples.as_slice() {
            [one] if one.value.is_finite() => Some(one.value / slo.error_budget().ratio()),
            _ => None,
        })
    }

    /// Creates the freeze record (unless this source already has one active), then applies it
    /// to Kubernetes when it names Deployments.
    #[allow(clippy::too_many_arguments)]
    async fn freeze(
        &self,
        slo: &Slo,
        incident_id: Option<i64>,
        source_key: String,
        target: &FreezeTarget,
        reason: &str,
        lift_when: Option<serde_json::Value>,
        at: UnixSeconds,
    ) -> Result<(), String> {
        if self.settings.dry_run {
            if let Some(incident) = incident_id {
                let journaled = self
                    .store
                    .journal(&ActionIntent {
                        key: format!("{source_key}/dry-run"),
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
            return Ok(());
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
            return Ok(()); // Already frozen by this rule.
        };
        info!(slo = %slo.name, freeze = freeze_id, %target, "deployments frozen");
        if let Some(incident) = incident_id {
            self.event(incident, "frozen", &format!("froze {target}: {reason}"))
                .await;
        }
        if target.touches_kubernetes() {
            let marks = FreezeMarks {
                reason: reason.to_string(),
                incident: incident_id,
                at: rfc3339(at),
            };
            match self.actuator.freeze(target, &marks).await {
                Ok(applied) => {
                    let _ = self.store.set_freeze_applied(freeze_id, applied).await;
                }
                Err(error) => {
                    warn!(freeze = freeze_id, %error, "applying the freeze to Kubernetes failed; the freeze stays in force at the gate");
                    if let Some(incident) = incident_id {
                        self.event(incident, "freeze_not_applied", &format!("applying the freeze to Kubernetes failed ({error}); it stays in force at the freeze gate")).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts a playbook run in the background unless one for the same incident and rule is
    /// already running.
    fn start_playbook(
        self: &Arc<Self>,
        slo: Slo,
        incident_id: i64,
        rule: usize,
        playbook: Playbook,
    ) {
        let key = format!("incident:{incident_id}/rule:{rule}");
        {
            let Ok(mut running) = self.running.lock() else {
                return;
            };
            if !running.insert(key.clone()) {
                return;
            }
        }
        let this = self.clone();
        self.tasks.spawn(async move {
            this.run_playbook(&slo, incident_id, &key, &playbook).await;
            if let Ok(mut running) = this.running.lock() {
                running.remove(&key);
            }
        });
    }

    async fn event(&self, incident_id: i64, kind: &str, message: &str) {
        if let Err(error) = self
            .store
            .add_event(incident_id, now(), kind, message, ACTOR, None)
            .await
        {
            warn!(incident = incident_id, %error, "writing a timeline entry failed");
        }
    }

    /// Runs a playbook's steps in order, each at most once for this incident and rule.
    async fn run_playbook(&self, slo: &Slo, incident_id: i64, key_base: &str, playbook: &Playbook) {
        let mut mode = if self.settings.dry_run {
            PlaybookMode::DryRun
        } else {
            playbook.mode
        };
        let first_key = format!("{key_base}/step:0");
        for (i, step) in playbook.steps.iter().enumerate() {
            let key = format!("{key_base}/step:{i}");
            let at = now();
            // Guards that only apply to a run that has not begun yet.
            let mut skip_reason = None;
            if i == 0
                && mode == PlaybookMode::Auto
                && let Some(cooldown) = playbook.cooldown
                && let Ok(Some(last)) = self
                    .store
                    .last_playbook_run(&slo.name, &playbook.name)
                    .await
                && at - last < cooldown.as_secs() as i64
            {
                skip_reason = Some(format!(
                    "playbook `{}` ran for this SLO {}s ago, within its cooldown of {cooldown}",
                    playbook.name,
                    at - last
                ));
            }
            if skip_reason.is_none() && mode == PlaybookMode::Auto {
                match self.store.count_actions_since(at - 3_600).await {
                    Ok(n) if n >= i64::from(self.settings.max_actions_per_hour) => {
                        skip_reason = Some(format!(
                            "{n} actions ran in the last hour; maxActionsPerHour is {}",
                            self.settings.max_actions_per_hour
                        ));
                    }
                    Ok(_) => {}
                    Err(error) => {
                        skip_reason = Some(format!(
                            "cannot count recent actions ({error}); not acting without knowing"
                        ))
                    }
                }
            }
            let status = match (mode, &skip_reason) {
                (_, Some(_)) => ActionStatus::Skipped,
                (PlaybookMode::DryRun, None) => ActionStatus::DryRun,
                (PlaybookMode::Approve, None) => ActionStatus::AwaitingApproval,
                (PlaybookMode::Auto, None) => ActionStatus::Started,
            };
            let intent = ActionIntent {
                key: key.clone(),
                incident_id: Some(incident_id),
                slo: slo.name.clone(),
                playbook: Some(playbook.name.clone()),
                step: step.name.clone(),
                kind: step.action.kind().into(),
                intent: describe_step(step),
                status,
                dry_run: mode == PlaybookMode::DryRun,
                at,
            };
            let id = match self.store.journal(&intent).await {
                Err(error) => {
                    warn!(%key, %error, "journaling a step failed; not running it");
                    return;
                }
                Ok(Journaled::Existing {
                    id,
                    status: existing,
                }) => match existing {
                    // A person approved this run: this step runs now, the rest without asking again.
                    ActionStatus::Approved => match self.store.claim_approved(id, at).await {
                        Ok(true) => {
                            mode = PlaybookMode::Auto;
                            id
                        }
                        _ => return,
                    },
                    ActionStatus::DryRun => continue,
                    ActionStatus::Succeeded => {
                        // Past an approved step, the run is approved.
                        if mode == PlaybookMode::Approve {
                            mode = PlaybookMode::Auto;
                        }
                        continue;
                    }
                    ActionStatus::Failed if step.continue_on_error => continue,
                    ActionStatus::Unknown if step.safe_to_repeat() => {
                        match self.store.retry_unknown(id, at).await {
                            Ok(true) => {
                                self.event(incident_id, "action_retry", &format!("running step `{}` again after an interruption: it is safe to repeat", step.name)).await;
                                id
                            }
                            _ => return,
                        }
                    }
                    // Failed, skipped, awaiting approval, unknown and unsafe, or running
                    // elsewhere: the playbook does not go past this step.
                    _ => return,
                },
                Ok(Journaled::New { id }) => {
                    match status {
                        ActionStatus::Skipped => {
                            let reason = skip_reason.unwrap_or_default();
                            self.event(
                                incident_id,
                                "action_skipped",
                                &format!(
                                    "skipped step `{}` of `{}`: {reason}",
                                    step.name, playbook.name
                                ),
                            )
                            .await;
                            return;
                        }
                        ActionStatus::DryRun => {
                            self.event(
                                incident_id,
                                "action_dry_run",
                                &format!(
                                    "dry run: would run step `{}` of `{}` ({})",
                                    step.name,
                                    playbook.name,
                                    summarize(step)
                                ),
                            )
                            .await;
                            continue;
                        }
                        ActionStatus::AwaitingApproval => {
                            self.event(
                                incident_id,
                                "awaiting_approval",
                                &format!(
                                    "step `{}` of `{}` waits for approval ({})",
                                    step.name,
                                    playbook.name,
                                    summarize(step)
                                ),
                            )
                            .await;
                            return;
                        }
                        _ => {}
                    }
                    if key == first_key {
                        self.event(
                            incident_id,
                            "playbook_started",
                            &format!("running playbook `{}` for {}", playbook.name, slo.name),
                        )
                        .await;
                    }
                    id
                }
            };
            let outcome = self.run_step(slo, incident_id, step).await;
            let settled_at = now();
            let (status, message, detail) = match &outcome {
                Ok(done) => (
                    ActionStatus::Succeeded,
                    format!("step `{}` succeeded: {done}", step.name),
                    json!({"result": done}),
                ),
                Err(error) => (
                    ActionStatus::Failed,
                    format!("step `{}` failed: {error}", step.name),
                    json!({"error": error}),
                ),
            };
            if let Err(error) = self.store.settle(id, status, detail, settled_at).await {
                warn!(%key, %error, "recording a step's outcome failed");
            }
            let kind = if outcome.is_ok() {
                "action_succeeded"
            } else {
                "action_failed"
            };
            self.event(incident_id, kind, &message).await;
            if outcome.is_err() && !step.continue_on_error {
                self.event(
                    incident_id,
                    "playbook_stopped",
                    &format!(
                        "playbook `{}` stopped after step `{}` failed",
                        playbook.name, step.name
                    ),
                )
                .await;
                return;
            }
        }
    }

    async fn run_step(&self, slo: &Slo, incident_id: i64, step: &Step) -> Result<String, String> {
        match &step.action {
            StepAction::Http(http) => self
                .actuator
                .call_http(http)
                .await
                .map_err(|e| e.to_string()),
            StepAction::Rollback {
                namespace,
                deployment,
            } => {
                let plan = self
                    .actuator
                    .plan_rollback(namespace, deployment, &[])
                    .await
                    .map_err(|e| e.to_string())?;
                self.actuator
                    .apply_rollback(&plan)
                    .await
                    .map_err(|e| e.to_string())
            }
            StepAction::Scale {
                namespace,
                deployment,
                replicas,
            } => self
                .actuator
                .scale(namespace, deployment, *replicas)
                .await
                .map_err(|e| e.to_string()),
            StepAction::Freeze(target) => {
                let reason = format!("{}: playbook step `{}`", slo.name, step.name);
                let key = format!("incident:{incident_id}/step:{}", step.name);
                self.freeze(
                    slo,
                    Some(incident_id),
                    key,
                    target,
                    &reason,
                    Some(json!({"incidentResolved": incident_id})),
                    now(),
                )
                .await
                .map(|()| format!("froze {target}"))
            }
            StepAction::Verify {
                window,
                burn_rate_below,
                within,
            } => self.verify(slo, *window, *burn_rate_below, *within).await,
        }
    }

    /// Polls the burn rate over `window` until it is below the threshold or `within` passes.
    async fn verify(
        &self,
        slo: &Slo,
        window: crate::domain::policy::Window,
        below: f64,
        within: crate::domain::policy::Window,
    ) -> Result<String, String> {
        let deadline = now() + within.as_secs() as i64;
        let expr = sli::error_ratio(&slo.indicator, window, slo.min_events);
        // Often enough to notice recovery, never so late that the deadline passes unseen.
        let poll = Duration::from_secs(
            (window.as_secs() / 10)
                .min(within.as_secs() / 4)
                .clamp(1, 30),
        );
        loop {
            let at = now();
            let burn = match self.metrics.instant(&expr, at).await {
                Ok(samples) => match samples.as_slice() {
                    [one] if one.value.is_finite() => Some(one.value / slo.error_budget().ratio()),
                    _ => None,
                },
                Err(_) => None,
            };
            if let Some(burn) = burn
                && burn < below
            {
                return Ok(format!(
                    "burn rate over {window} is {burn:.2}, below {below}"
                ));
            }
            if at >= deadline {
                return Err(match burn {
                    Some(burn) => format!(
                        "burn rate over {window} is still {burn:.2} after {within} (wanted below {below})"
                    ),
                    None => format!("no burn rate over {window} could be read within {within}"),
                });
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Lifts burnguard's freezes whose conditions have cleared.
    async fn lift_freezes(
        &self,
        slos: &[Slo],
        evaluations: &BTreeMap<&str, &SloEvaluation>,
        at: UnixSeconds,
    ) {
        let Ok(freezes) = self.store.active_freezes().await else {
            return;
        };
        for freeze in freezes.into_iter().filter(|f| f.created_by == ACTOR) {
            let Some(slo_name) = freeze.slo.as_deref() else {
                continue;
            };
            let Some(slo) = slos.iter().find(|s| s.name == slo_name) else {
                continue;
            };
            let Some(e) = evaluations.get(slo_name) else {
                continue;
            };
            if matches!(
                e.status,
                EvalStatus::Error | EvalStatus::Assessed(Status::NoData)
            ) {
                continue; // Never decide on missing data.
            }
            let quiet = match self.store.last_firing_at(slo_name).await {
                Ok(Some(last)) => at - last >= self.settings.unfreeze_after.as_secs() as i64,
                Ok(None) => true,
                Err(_) => false,
            };
            if !quiet || !matches!(e.status, EvalStatus::Assessed(Status::Ok)) {
                continue;
            }
            let recovered = match &freeze.lift_when {
                Some(w) if w.get("budgetRemainingBelow").is_some() => {
                    let threshold = w["budgetRemainingBelow"].as_f64().unwrap_or(1.0);
                    e.error_budget_remaining
                        .is_some_and(|b| b >= threshold + self.settings.unfreeze_margin)
                }
                Some(w) if w.get("burnRateAbove").is_some() => {
                    let rate = w["burnRateAbove"].as_f64().unwrap_or(0.0);
                    let window = w["window"]
                        .as_str()
                        .and_then(|t| crate::domain::policy::Window::parse(t).ok());
                    match window {
                        Some(window) => e.burn_rate.get(window).is_some_and(|b| b < rate),
                        None => false,
                    }
                }
                // Alert-driven freezes: the incident must be over.
                _ => matches!(self.store.unresolved_incident(slo_name).await, Ok(None)),
            };
            if !recovered {
                continue;
            }
            if let Some(applied) = &freeze.applied
                && let Err(error) = self.actuator.unfreeze(applied).await
            {
                warn!(freeze = freeze.id, %error, "removing the freeze from Kubernetes failed; trying again next cycle");
                continue;
            }
            if let Ok(true) = self.store.lift_freeze(freeze.id, ACTOR, at).await {
                info!(slo = %slo.name, freeze = freeze.id, "freeze lifted: the budget recovered");
                if let Some(incident) = freeze.incident_id {
                    self.event(incident, "unfrozen", &format!("lifted the freeze ({}): the budget recovered and nothing fired for {:?}", freeze.reason, self.settings.unfreeze_after)).await;
                }
            }
        }
    }
}

fn describe_trigger(when: &Trigger) -> String {
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

fn trigger_json(when: &Trigger) -> serde_json::Value {
    match when {
        Trigger::Alert(severity) => json!({"alert": severity.as_str()}),
        Trigger::BudgetRemainingBelow(t) => json!({"budgetRemainingBelow": t}),
        Trigger::BurnRateAbove {
            rate,
            duration,
            window,
        } => {
            json!({"burnRateAbove": rate, "for": duration.to_string(), "window": window.to_string()})
        }
    }
}

/// The step as journaled: secrets stay `${VAR}` templates.
fn describe_step(step: &Step) -> serde_json::Value {
    let action = match &step.action {
        StepAction::Http(h) => {
            json!({"method": h.method, "url": h.url, "headers": h.headers.keys().collect::<Vec<_>>(), "expectStatus": h.expect_status})
        }
        StepAction::Rollback {
            namespace,
            deployment,
        } => json!({"namespace": namespace, "deployment": deployment}),
        StepAction::Scale {
            namespace,
            deployment,
            replicas,
        } => json!({"namespace": namespace, "deployment": deployment, "replicas": replicas}),
        StepAction::Freeze(t) => json!({"freeze": t.to_string()}),
        StepAction::Verify {
            window,
            burn_rate_below,
            within,
        } => {
            json!({"window": window.to_string(), "burnRateBelow": burn_rate_below, "within": within.to_string()})
        }
    };
    json!({"name": step.name, "kind": step.action.kind(), "action": action})
}

fn summarize(step: &Step) -> String {
    match &step.action {
        StepAction::Http(h) => format!("{} {}", h.method, h.url),
        StepAction::Rollback {
            namespace,
            deployment,
        } => format!("roll back {namespace}/{deployment}"),
        StepAction::Scale {
            namespace,
            deployment,
            replicas,
        } => format!("scale {namespace}/{deployment} to {replicas}"),
        StepAction::Freeze(t) => format!("freeze {t}"),
        StepAction::Verify {
            window,
            burn_rate_below,
            within,
        } => format!("verify burn rate over {window} below {burn_rate_below} within {within}"),
    }
}
