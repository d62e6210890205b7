//! Playbook runs: one per incident and budget rule, its steps taken in order through the
//! domain's journal state machine ([`crate::domain::journal`]).
//!
//! A step's journal key is its identity, `incident:<id>/rule:<rule id>/playbook:<name>/step:<step
//! name>` (dry runs apart, with `#dry-run`), never its position: inserting, removing,
//! reordering or renaming steps while an incident is open never re-runs a step that ran and
//! never marks a new one done. A run that finished stays finished for its incident, so steps
//! added later wait for the next incident.

use std::sync::Arc;

use serde_json::json;
use tracing::warn;

use super::{Remediator, now};
use crate::domain::journal::{
    self, Move, PastStep, StepNature, StopReason, WaitReason, renamed_from,
};
use crate::domain::playbook::{Playbook, PlaybookMode, Step, StepAction, expand_group};
use crate::domain::policy::{Slo, group_key};
use crate::ports::{
    ActionIntent, ActionStatus, Actuator, Cooldown, Freezes, Guards, Journal, Journaled,
    MetricsSource, RollbackWrite, RunStatus, Started,
};

/// A grouped SLO's group: its `groupBy` labels' values (empty for an ungrouped SLO).
pub(super) type Group = std::collections::BTreeMap<String, String>;

/// The common beginning of the journal keys of one run's steps.
fn run_prefix(incident_id: i64, rule_id: &str, playbook: &str) -> String {
    format!("incident:{incident_id}/rule:{rule_id}/playbook:{playbook}/step:")
}

/// The journal key of a step: its identity within the incident's run.
pub fn step_key(
    incident_id: i64,
    rule_id: &str,
    playbook: &str,
    step: &str,
    dry_run: bool,
) -> String {
    let key = format!("{}{step}", run_prefix(incident_id, rule_id, playbook));
    if dry_run {
        format!("{key}#dry-run")
    } else {
        key
    }
}

/// What a step does, without its name: how a rename is recognised.
fn action_fingerprint(intent: &serde_json::Value) -> String {
    format!("{} {}", intent["kind"], intent["action"])
}

/// Where a run is after looking at its steps this time.
enum RunEnd {
    Finished,
    Stopped,
    /// Waiting (approval, a guard, a step running elsewhere): looked at again next cycle.
    Paused,
}

impl<S, A, M> Remediator<S, A, M>
where
    S: Journal + Freezes + 'static,
    A: Actuator + 'static,
    M: MetricsSource + 'static,
{
    /// Starts looking at a playbook run in the background, unless this process already is.
    pub(super) fn start_playbook(
        self: &Arc<Self>,
        slo: Slo,
        group: Group,
        incident_id: i64,
        rule_id: String,
        playbook: Playbook,
    ) {
        if self.stopping.is_cancelled() {
            return;
        }
        let key = format!("incident:{incident_id}/rule:{rule_id}");
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
            this.run_playbook(&slo, &group, incident_id, &rule_id, &playbook)
                .await;
            if let Ok(mut running) = this.running.lock() {
                running.remove(&key);
            }
        });
    }

    fn guards(&self, slo: &Slo, group: &Group, playbook: &Playbook, incident_id: i64) -> Guards {
        let at = now();
        Guards {
            hourly_cap: Some((at - 3_600, self.settings.max_actions_per_hour)),
            // A grouped SLO's groups cool down on their own.
            cooldown: playbook.cooldown.map(|cooldown| Cooldown {
                slo: group_key(&slo.name, group),
                playbook: playbook.name.clone(),
                incident_id,
                since: at - cooldown.as_secs() as i64,
                text: cooldown.to_string(),
            }),
        }
    }

    /// Takes the run's steps in order as far as they may go now.
    async fn run_playbook(
        &self,
        slo: &Slo,
        group: &Group,
        incident_id: i64,
        rule_id: &str,
        playbook: &Playbook,
    ) {
        let dry_run = self.settings.dry_run || playbook.mode == PlaybookMode::DryRun;
        if !dry_run {
            match self
                .store
                .playbook_run(incident_id, rule_id, &playbook.name, &slo.name, now())
                .await
            {
                Ok(RunStatus::Running) => {}
                Ok(_) => return, // Finished or stopped for this incident: it stays so.
                Err(error) => {
                    warn!(%error, "reading the playbook run failed; not running it");
                    return;
                }
            }
        }
        let end = self
            .take_steps(slo, group, incident_id, rule_id, playbook, dry_run)
            .await;
        let status = match end {
            RunEnd::Finished => RunStatus::Finished,
            RunEnd::Stopped => RunStatus::Stopped,
            RunEnd::Paused => return,
        };
        if dry_run {
            return;
        }
        if let Err(error) = self
            .store
            .end_run(incident_id, rule_id, &playbook.name, status, now())
            .await
        {
            warn!(%error, "recording the end of a playbook run failed");
        }
        if status == RunStatus::Finished {
            self.event(
                incident_id,
                "playbook_finished",
                &format!(
                    "playbook `{}` finished for this incident; steps added to it later run for the next incident",
                    playbook.name
                ),
            )
            .await;
        }
    }

    async fn take_steps(
        &self,
        slo: &Slo,
        group: &Group,
        incident_id: i64,
        rule_id: &str,
        playbook: &Playbook,
        dry_run: bool,
    ) -> RunEnd {
        let mut mode = if dry_run {
            PlaybookMode::DryRun
        } else {
            playbook.mode
        };
        let past = match self
            .store
            .run_actions(&run_prefix(incident_id, rule_id, &playbook.name))
            .await
        {
            Ok(rows) => rows,
            Err(error) => {
                warn!(%error, "reading the journal failed; not going on");
                return RunEnd::Paused;
            }
        };
        let past: Vec<_> = past.into_iter().filter(|a| a.dry_run == dry_run).collect();
        let past_steps: Vec<PastStep> = past
            .iter()
            .filter_map(|a| {
                Some(PastStep {
                    name: a.step.clone(),
                    action: action_fingerprint(&a.intent),
                    status: ActionStatus::parse(&a.status)?,
                })
            })
            .collect();
        let names: Vec<&str> = playbook.steps.iter().map(|s| s.name.as_str()).collect();
        let mut announced = false;
        for step in &playbook.steps {
            if self.stopping.is_cancelled() {
                // Shutting down: no new step starts; the next instance takes the run up.
                return RunEnd::Paused;
            }
            let key = step_key(incident_id, rule_id, &playbook.name, &step.name, dry_run);
            let mut existing = past
                .iter()
                .find(|a| a.idempotency_key == key)
                .and_then(|a| Some((a.id, ActionStatus::parse(&a.status)?)));
            if existing.is_none()
                && let Some(old) = renamed_from(
                    &action_fingerprint(&describe_step(step)),
                    &names,
                    &past_steps,
                )
            {
                // The same action under a new name: it inherits the old step's state, so a
                // rename never runs an action twice.
                match self
                    .inherit(&key, slo, incident_id, playbook, step, old, dry_run)
                    .await
                {
                    Some(inherited) => existing = Some(inherited),
                    None => return RunEnd::Paused,
                }
            }
            let nature = StepNature {
                safe_to_repeat: step.safe_to_repeat(),
                continue_on_error: step.continue_on_error,
            };
            let intent = |status| ActionIntent {
                key: key.clone(),
                incident_id: Some(incident_id),
                slo: slo.name.clone(),
                playbook: Some(playbook.name.clone()),
                step: step.name.clone(),
                kind: step.action.kind().into(),
                intent: describe_step(step),
                status,
                dry_run,
                at: now(),
            };
            let next = journal::next_move(existing.map(|(_, s)| s), nature, mode);
            let started = match next {
                Move::Next => {
                    if let Some((_, status)) = existing {
                        mode = journal::mode_after(mode, status);
                    }
                    continue;
                }
                Move::Wait(WaitReason::Approval | WaitReason::Running) => return RunEnd::Paused,
                Move::Wait(WaitReason::SkippedOutsideAuto) => return RunEnd::Paused,
                Move::Stop(reason) => {
                    let why = match reason {
                        StopReason::Failed => "failed",
                        StopReason::UnknownNotRepeatable => {
                            "was interrupted, may have taken effect and is not safe to repeat (a person decides; mark it idempotent if it is)"
                        }
                    };
                    self.event(
                        incident_id,
                        "playbook_stopped",
                        &format!(
                            "playbook `{}` stops at step `{}`: it {why}",
                            playbook.name, step.name
                        ),
                    )
                    .await;
                    return RunEnd::Stopped;
                }
                Move::Journal(status) => {
                    match self.store.journal(&intent(status)).await {
                        Ok(Journaled::New { .. }) => {}
                        Ok(Journaled::Existing { .. }) => return RunEnd::Paused,
                        Err(error) => {
                            warn!(%key, %error, "journaling a step failed");
                            return RunEnd::Paused;
                        }
                    }
                    if status == ActionStatus::DryRun {
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
                    return RunEnd::Paused;
                }
                Move::Start => {
                    if past.is_empty() && !announced {
                        // Before the first journal row, so that a crash right after it still
                        // leaves the run's beginning on the timeline.
                        announced = true;
                        self.event(
                            incident_id,
                            "playbook_started",
                            &format!("running playbook `{}` for {}", playbook.name, slo.name),
                        )
                        .await;
                    }
                    let guards = self.guards(slo, group, playbook, incident_id);
                    super::crash_point("step-before-journal");
                    self.store
                        .start(&intent(ActionStatus::Started), &self.instance, &guards)
                        .await
                }
                Move::Claim { from, guarded } => {
                    let guards = guarded.then(|| self.guards(slo, group, playbook, incident_id));
                    let id = existing.map(|(id, _)| id).unwrap_or_default();
                    let claimed = self
                        .store
                        .claim(id, from, &self.instance, guards.as_ref(), now())
                        .await;
                    if matches!(claimed, Ok(Started::Run { .. })) {
                        // Past an approved step, the rest of the run does not ask again.
                        mode = journal::mode_after(mode, from);
                    }
                    claimed
                }
            };
            let id = match started {
                Ok(Started::Run { id }) => id,
                Ok(Started::Refused { reason, new, .. }) => {
                    if new {
                        self.event(incident_id, "action_skipped", &format!(
                            "step `{}` of `{}` is held back: {reason}; it is checked again every cycle and runs when allowed",
                            step.name, playbook.name
                        ))
                        .await;
                    }
                    return RunEnd::Paused;
                }
                Ok(Started::Lost) => return RunEnd::Paused,
                Err(error) => {
                    warn!(%key, %error, "journaling a step failed; not running it");
                    return RunEnd::Paused;
                }
            };
            super::crash_point("step-after-journal");
            match existing.map(|(_, s)| s) {
                Some(ActionStatus::Skipped) => {
                    self.event(
                        incident_id,
                        "action_unblocked",
                        &format!(
                            "step `{}` of `{}` runs now: the guards that held it back allow it",
                            step.name, playbook.name
                        ),
                    )
                    .await;
                }
                Some(ActionStatus::Unknown) => {
                    self.event(
                        incident_id,
                        "action_retry",
                        &format!(
                            "running step `{}` again after an interruption: it is safe to repeat",
                            step.name
                        ),
                    )
                    .await;
                }
                _ => {}
            }
            let outcome = tokio::select! {
                outcome = self.run_step(slo, group, incident_id, rule_id, playbook, step) => outcome,
                // The shutdown grace is over: the call is abandoned, the row stays `started`
                // and the shutdown journals it as interrupted. Nothing more is written here.
                () = self.interrupted.cancelled() => return RunEnd::Paused,
            };
            super::crash_point("step-after-call");
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
            match self
                .store
                .settle(id, &self.instance, status, detail, now())
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    // Marked interrupted meanwhile (a shutdown past its grace period): the
                    // journal keeps `unknown`, and the timeline says what was seen.
                    warn!(%key, "the step's journal row was no longer ours to settle");
                }
                Err(error) => warn!(%key, %error, "recording a step's outcome failed"),
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
                return RunEnd::Stopped;
            }
            if outcome.is_ok() {
                mode = journal::mode_after(mode, ActionStatus::Succeeded);
            }
        }
        RunEnd::Finished
    }

    /// Journals a renamed step with the state of the step it was, and says so.
    #[allow(clippy::too_many_arguments)]
    async fn inherit(
        &self,
        key: &str,
        slo: &Slo,
        incident_id: i64,
        playbook: &Playbook,
        step: &Step,
        old: &PastStep,
        dry_run: bool,
    ) -> Option<(i64, ActionStatus)> {
        if old.status == ActionStatus::Started {
            return None; // Still running under its old name: wait for it.
        }
        let intent = ActionIntent {
            key: key.to_string(),
            incident_id: Some(incident_id),
            slo: slo.name.clone(),
            playbook: Some(playbook.name.clone()),
            step: step.name.clone(),
            kind: step.action.kind().into(),
            intent: describe_step(step),
            status: old.status,
            dry_run,
            at: now(),
        };
        match self.store.journal(&intent).await {
            Ok(Journaled::New { id }) => {
                self.event(
                    incident_id,
                    "step_renamed",
                    &format!(
                        "step `{}` of `{}` does what step `{}` did ({}); it keeps that step's state ({}) and does not run again",
                        step.name,
                        playbook.name,
                        old.name,
                        summarize(step),
                        old.status.as_str()
                    ),
                )
                .await;
                Some((id, old.status))
            }
            Ok(Journaled::Existing { id, status }) => Some((id, status)),
            Err(error) => {
                warn!(%key, %error, "journaling a renamed step failed");
                None
            }
        }
    }

    async fn run_step(
        &self,
        slo: &Slo,
        group: &Group,
        incident_id: i64,
        rule_id: &str,
        playbook: &Playbook,
        step: &Step,
    ) -> Result<String, String> {
        // `${group.<label>}` filled in for a grouped SLO's group; a label it lacks or a value
        // unsafe to send fails the step before anything goes out.
        let action = expand_group(&step.action, group)?;
        match &action {
            StepAction::Http(http) => self
                .actuator
                .call_http(http)
                .await
                .map_err(|e| e.to_string()),
            StepAction::Rollback {
                namespace,
                deployment,
            } => self.rollback(incident_id, namespace, deployment).await,
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
                let key = step_key(incident_id, rule_id, &playbook.name, &step.name, false);
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
            }
            StepAction::Verify {
                window,
                burn_rate_below,
                within,
            } => {
                self.verify(slo, group, *window, *burn_rate_below, *within)
                    .await
            }
        }
    }

    /// Rolls a Deployment back, never to a pod template burnguard has itself rolled it away
    /// from (remembered in the store before the patch is sent).
    async fn rollback(
        &self,
        incident_id: i64,
        namespace: &str,
        deployment: &str,
    ) -> Result<String, String> {
        let avoid = self
            .store
            .rolled_away_from(namespace, deployment)
            .await
            .map_err(|e| format!("reading earlier rollbacks: {e}"))?;
        let plan = self
            .actuator
            .plan_rollback(namespace, deployment, &avoid)
            .await
            .map_err(|e| e.to_string())?;
        // Run again after an interruption (a rollback marked idempotent): if the Deployment
        // already runs what this incident rolled it to, it is done; going on would roll back
        // one release further.
        let done_before = self
            .store
            .rolled_to(namespace, deployment, incident_id)
            .await
            .map_err(|e| format!("reading earlier rollbacks: {e}"))?;
        if done_before.as_deref() == Some(plan.from.template_hash.as_str()) {
            return Ok(format!(
                "{namespace}/{deployment} already runs the template (revision {}) this incident rolled it back to",
                plan.from.revision
            ));
        }
        if let RollbackWrite::Template(_) = plan.write {
            // Remembered before the patch: burnguard never rolls back to this template.
            self.store
                .record_rollback(
                    namespace,
                    deployment,
                    &plan.from.template_hash,
                    &plan.to.template_hash,
                    Some(incident_id),
                    now(),
                )
                .await
                .map_err(|e| format!("recording the rollback before it is made: {e}"))?;
        }
        self.actuator
            .apply_rollback(&plan)
            .await
            .map_err(|e| e.to_string())
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
