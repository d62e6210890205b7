//! Remediation: after each cycle, the SLOs' budget rules decide what to run; playbooks run in
//! the background, step by step, journaled by identity before each step runs and settled
//! after, so a step runs at most once per incident whatever happens to the policy.
//!
//! - [`budget`]: which budget rules hold, on decisive data only (never on `no_data`,
//!   `partial` or `error`), with sustained-burn checks on their own slower schedule;
//! - [`playbook`]: a run's steps through the domain's journal state machine, guards checked
//!   in the transaction that journals a step;
//! - [`freezes`]: freeze records, their reconciliation with Kubernetes, and lifting them;
//! - [`verify`]: the `verify` step.
//!
//! Shutdown: no new run or step starts once it begins; running steps get the grace period, then
//! are abandoned (their calls dropped) and journaled as interrupted.
//!
//! Crash safety: each process is an [`Instance`] (a stable name, one incarnation) that keeps a
//! heartbeat in the store. Steps left `started` by a dead incarnation become `unknown` and run
//! again only when safe to repeat; steps of live replicas are never touched. On shutdown,
//! running steps get a grace period, then whatever is left is journaled as interrupted.
//!
//! Crash points: `crash_point` exists for the crash tests (`tests/remediation_e2e.rs`) and
//! does nothing unless the environment variable `BURNGUARD_CRASH_AT` names one of its points
//! (`step-before-journal`, `step-after-journal`, `step-after-call`, `freeze-after-record`);
//! then the process aborts there, as kill -9 would.

mod budget;
mod freezes;
mod playbook;
mod verify;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing::{info, warn};

use super::evaluate::{EvalStatus, Evaluation, SloEvaluation};
use crate::domain::playbook::Playbook;
use crate::domain::policy::Slo;
use crate::ports::{Actuator, Freezes, Instance, Journal, MetricsSource, UnixSeconds};

pub use budget::SustainedBurn;
pub use playbook::step_key;

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
    /// How long a process may go without a heartbeat before its running steps count as
    /// interrupted.
    pub heartbeat_timeout: Duration,
    /// How long shutdown waits for running steps before journaling them as interrupted.
    pub shutdown_grace: Duration,
}

impl Default for RemediationSettings {
    fn default() -> Self {
        Self {
            dry_run: false,
            max_actions_per_hour: 20,
            unfreeze_after: Duration::from_secs(3_600),
            unfreeze_margin: 0.05,
            heartbeat_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

const ACTOR: &str = "burnguard";

fn now() -> UnixSeconds {
    chrono::Utc::now().timestamp()
}

/// Test hook for the crash tests: when `BURNGUARD_CRASH_AT` (read once) equals `name`, writes
/// one line to stderr and aborts the process on the spot, with no destructors and no
/// shutdown, as kill -9 would. Does nothing when the variable is unset or names another point.
fn crash_point(name: &str) {
    static CRASH_AT: OnceLock<Option<String>> = OnceLock::new();
    if CRASH_AT
        .get_or_init(|| std::env::var("BURNGUARD_CRASH_AT").ok())
        .as_deref()
        == Some(name)
    {
        eprintln!("burnguard: BURNGUARD_CRASH_AT={name}: aborting at this crash point");
        std::process::abort();
    }
}

/// Whether an evaluation is a judgement made on data: firing, or every alert row quiet on
/// data. Nothing fires, clears, lifts or runs on anything else.
pub fn decisive(e: &SloEvaluation) -> bool {
    matches!(e.status, EvalStatus::Assessed(status) if status.is_decisive())
}

/// Runs budget rules and playbooks against a store, an actuator and a metrics source.
pub struct Remediator<S, A, M> {
    store: Arc<S>,
    actuator: Arc<A>,
    metrics: Arc<M>,
    settings: RemediationSettings,
    instance: Instance,
    /// Playbook runs in progress here (`incident/rule` keys), so a cycle does not start a second.
    running: Mutex<HashSet<String>>,
    /// Sustained-burn checks, refreshed on their own schedule (`slo/rule` keys).
    sustained: Mutex<HashMap<String, SustainedBurn>>,
    /// Freezes whose failure to reach Kubernetes is already on the timeline.
    noted_apply_failures: Mutex<HashSet<i64>>,
    tasks: tokio_util::task::TaskTracker,
    /// Set when shutdown begins: no new playbook run or step starts.
    stopping: tokio_util::sync::CancellationToken,
    /// Set when the shutdown grace is over: running steps are abandoned.
    interrupted: tokio_util::sync::CancellationToken,
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
        instance: Instance,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            actuator,
            metrics,
            settings,
            instance,
            running: Mutex::new(HashSet::new()),
            sustained: Mutex::new(HashMap::new()),
            noted_apply_failures: Mutex::new(HashSet::new()),
            tasks: tokio_util::task::TaskTracker::new(),
            stopping: tokio_util::sync::CancellationToken::new(),
            interrupted: tokio_util::sync::CancellationToken::new(),
        })
    }

    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// Waits for playbook runs in progress (tests).
    pub async fn wait_idle(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }

    /// Shutdown: waits up to the grace period for running steps, then journals what is still
    /// running as interrupted (`unknown`, with a timeline entry) and marks this incarnation
    /// stopped, so that the next one recovers nothing by guesswork.
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        self.tasks.close();
        let grace = self.settings.shutdown_grace;
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                ?grace,
                "steps still running at the end of the shutdown grace period; abandoning them"
            );
            self.interrupted.cancel();
            // The runs return at once when interrupted; wait for them so that nothing writes
            // after the journal below.
            self.tasks.wait().await;
        }
        match self.store.interrupt_own(&self.instance, now()).await {
            Ok(actions) => {
                for action in actions {
                    warn!(key = %action.idempotency_key, "a step was interrupted by the shutdown; its effect is unknown");
                    if let Some(incident) = action.incident_id {
                        self.event(incident, "action_interrupted", &format!(
                            "step `{}` was still running when burnguard shut down (grace period {}s); whether it took effect is unknown (it runs again only if it is safe to repeat)",
                            action.step,
                            grace.as_secs()
                        ))
                        .await;
                    }
                }
            }
            Err(error) => warn!(%error, "journaling interrupted steps at shutdown failed"),
        }
    }

    /// Registers this incarnation and keeps its heartbeat fresh.
    pub async fn heartbeat(&self) {
        if let Err(error) = self.store.heartbeat(&self.instance, now()).await {
            warn!(%error, "writing the heartbeat failed");
        }
    }

    /// Steps left `started` by dead incarnations become `unknown`, each with a timeline entry.
    /// Called at start and every cycle (a replica that died is noticed once its heartbeat is
    /// older than the timeout); rows of live replicas are left alone.
    pub async fn recover(&self) {
        let at = now();
        let stale_before = at - self.settings.heartbeat_timeout.as_secs() as i64;
        match self
            .store
            .recover_interrupted(&self.instance, stale_before, at)
            .await
        {
            Ok(actions) => {
                for action in actions {
                    warn!(key = %action.idempotency_key, "a step was interrupted; its effect is unknown");
                    if let Some(incident) = action.incident_id {
                        self.event(
                            incident,
                            "action_unknown",
                            &format!(
                                "step `{}` was running in a burnguard process that died; whether it took effect is unknown (it runs again only if it is safe to repeat)",
                                action.step
                            ),
                        )
                        .await;
                    }
                }
            }
            Err(error) => warn!(%error, "checking for interrupted steps failed"),
        }
    }

    /// Applies every SLO's budget rules to this cycle's evaluations, lifts freezes whose
    /// conditions have cleared, and makes Kubernetes match the freezes.
    pub async fn after_cycle(
        self: &Arc<Self>,
        slos: &[Slo],
        playbooks: &BTreeMap<String, Playbook>,
        evaluation: &Evaluation,
    ) {
        self.heartbeat().await;
        self.recover().await;
        // One evaluation per SLO, or one per group of a grouped SLO: each acts on its own.
        // Only SLOs with budget rules act (often none of a large fleet).
        let acting: Vec<&Slo> = slos
            .iter()
            .filter(|s| !s.budget_policy.is_empty())
            .collect();
        let mut of_slo: HashMap<&str, Vec<&SloEvaluation>> = HashMap::new();
        if !acting.is_empty() {
            let names: HashSet<&str> = acting.iter().map(|s| s.name.as_str()).collect();
            for e in evaluation
                .slos
                .iter()
                .filter(|e| names.contains(e.name.as_str()))
            {
                of_slo.entry(e.name.as_str()).or_default().push(e);
            }
        }
        for slo in acting {
            for e in of_slo.get(slo.name.as_str()).into_iter().flatten() {
                if !decisive(e) {
                    // Never act on missing, partial or failed data; the incident's timeline
                    // already says the data is missing.
                    continue;
                }
                for rule in &slo.budget_policy {
                    if let Err(error) = self
                        .apply_rule(slo, e, rule, playbooks, evaluation.at)
                        .await
                    {
                        warn!(slo = %e.key(), rule = %rule.id, %error, "applying a budget rule failed");
                    }
                }
            }
        }
        self.lift_freezes(slos, &evaluation.slos, evaluation.at)
            .await;
        self.reconcile_freezes().await;
        // Sustained-burn checks of rules that are gone.
        let live: HashSet<String> = slos
            .iter()
            .flat_map(|s| s.budget_policy.iter().map(|r| budget::rule_key(s, r)))
            .collect();
        if let Ok(mut sustained) = self.sustained.lock() {
            sustained.retain(|k, _| live.contains(k));
        }
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
}

/// Logs a remediation decision that has no incident to put it on.
fn log_without_incident(slo: &str, rule: &str, what: &str) {
    info!(slo, rule, "{what}");
}
