//! The long-running `serve` process: loads policies, evaluates them on schedule, serves HTTP,
//! reloads policies on SIGHUP or file change (validating first, keeping the old set when the
//! new one is invalid), and shuts down gracefully on SIGTERM or Ctrl-C.
//!
//! Owns: wiring and lifecycle. Must not touch: the math (domain) or how queries are chosen
//! (engine).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::adapters::actuator::Actuators;
use crate::adapters::http_action::HttpActuator;
use crate::adapters::kube::KubeActuator;
use crate::adapters::notify::HttpNotifier;
use crate::adapters::prometheus::Prometheus;
use crate::adapters::store::SqlStore;
use crate::config::Settings;
use crate::domain::policy::Slo;
use crate::engine::evaluate::{EvalStatus, Evaluator, ReadPlan, SloEvaluation};
use crate::engine::notify as notifications;
use crate::engine::record;
use crate::engine::remediate::Remediator;
use crate::engine::schedule::Scheduler;
use crate::http;
use crate::http::metrics::LatestEvaluation;
pub use crate::http::state::ServiceState;

pub mod cluster;
use crate::policies::{self, LoadError};
use crate::ports::Notifier;
use crate::ports::{Store, Webhooks};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the policies are invalid")]
    Policies(#[source] LoadError),
    #[error(transparent)]
    Prometheus(#[from] crate::adapters::prometheus::ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot watch policy files: {0}")]
    Watch(String),
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
    #[error("cannot set up actions: {0}")]
    Actuator(String),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] crate::http::tls::TlsError),
    #[error("cannot start the Kubernetes controller: {0}")]
    Kubernetes(String),
}

/// Runs until `shutdown` is cancelled. Logs the bound address (`listening addr=...`).
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let set = if settings.policies.is_empty() {
        // Cluster-only (`--kubernetes` without files).
        policies::PolicySet::default()
    } else {
        policies::load_with(&settings.policies, &settings.load).map_err(ServiceError::Policies)?
    };
    let mut file_slos = Arc::new(set.slos());
    let mut file_playbooks = set.playbooks();
    // The loaded set is a copy of every SLO: 10,000 SLOs keep no third copy for nothing.
    drop(set);
    // The evaluated set, shared with the HTTP side (the files' own until the cluster's join).
    let (mut slos, mut playbooks) = (file_slos.clone(), file_playbooks.clone());
    info!(
        slos = slos.len(),
        playbooks = playbooks.len(),
        "policies loaded"
    );

    let prometheus = Prometheus::new(&settings.prometheus)?;
    let evaluator = Evaluator::new(prometheus.clone(), settings.mode, settings.concurrency);
    let notifier = HttpNotifier::new(settings.notify.clone()).map_err(ServiceError::Actuator)?;
    let channels = notifier.channels();
    // Every outbox entry this process writes is bound to the channels it has now.
    let store = Arc::new(
        SqlStore::open(&settings.db)
            .await?
            .with_notify_channels(channels.clone()),
    );
    info!(backend = ?store.backend(), "store ready");
    let actuators = Actuators {
        http: HttpActuator::new().map_err(|e| ServiceError::Actuator(e.to_string()))?,
        kube: KubeActuator::from_environment().await,
    };
    let actuators = Arc::new(actuators);
    let instance = crate::ports::Instance {
        id: format!(
            "{}/{}-{}",
            settings.instance_name,
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ),
        name: settings.instance_name.clone(),
    };
    info!(instance = %instance.id, "instance registered");
    let remediator = Remediator::new(
        store.clone(),
        actuators,
        Arc::new(prometheus.clone()),
        settings.remediation.clone(),
        instance.clone(),
    );
    if settings.remediation.dry_run {
        info!("dry run: remediation journals and reports what it would do, and calls nothing");
    }
    remediator.heartbeat().await;
    // After the heartbeat registered this incarnation: claims of earlier ones are released.
    if let Err(error) =
        notifications::bind_channels(store.as_ref(), &channels, &instance, Utc::now().timestamp())
            .await
    {
        warn!(%error, "binding notification channels failed");
    }
    remediator.recover().await;
    remediator.reconcile_freezes().await;
    {
        // The heartbeat tells other replicas this process is alive, whatever the interval.
        let (remediator, stop) = (remediator.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => remediator.heartbeat().await,
                }
            }
        });
    }
    let mut service_state = ServiceState::new(store.clone(), settings.service_account.clone());
    service_state.api_auth = settings.api_auth.clone();
    service_state.metrics.slo_series = settings.slo_series;
    service_state.webhook_auth = settings.webhook_auth.clone();
    service_state.set_slos(slos.clone());
    service_state.prometheus = Some(prometheus.clone());
    let state = Arc::new(service_state);
    state.metrics.slos_loaded.set(slos.len() as i64);
    state.set_readiness(|r| r.policies_loaded = true);

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServiceError::Listen {
            addr: settings.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServiceError::Listen {
            addr: settings.listen,
            source,
        })?;
    let router = http::router(state.clone());
    let listener_metrics = state.metrics.listener.clone();
    let tls = match &settings.tls {
        Some((cert, key)) => {
            let certificate = http::tls::CertificateReloader::load(cert, key)?;
            certificate.clone().watch(
                http::tls::CHECK_INTERVAL,
                listener_metrics.clone(),
                shutdown.clone(),
            );
            Some(certificate.acceptor())
        }
        None => None,
    };
    info!(%addr, tls = tls.is_some(), "listening");
    warn_about_open_intake(&settings);
    let server = tokio::spawn(http::server::serve(
        listener,
        router,
        tls,
        settings.listener,
        listener_metrics,
        shutdown.clone(),
    ));

    for channel in &channels {
        // Every configured channel from the start, so a rate() over it never begins with a gap.
        let _ = state
            .metrics
            .notifications_dead
            .get_or_create(&vec![("channel".to_string(), channel.name.clone())]);
    }
    if !channels.is_empty() {
        let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
        info!(channels = ?names, "notifications enabled");
        let delivery = notifications::DeliverySettings {
            limits: settings.notify_retry,
            ..notifications::DeliverySettings::default()
        };
        let (store, stop, state, claimer) = (
            store.clone(),
            shutdown.clone(),
            state.clone(),
            instance.id.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        let now = Utc::now().timestamp();
                        match notifications::deliver_due(store.as_ref(), &notifier, &delivery, &claimer, now).await {
                            Ok(report) => {
                                for channel in &report.dead {
                                    state.metrics.notification_dead(channel);
                                }
                            }
                            Err(error) => {
                                state.metrics.store_errors.inc();
                                warn!(%error, "delivering notifications failed");
                            }
                        }
                    }
                }
            }
        });
    }

    let (reload_tx, mut reload_rx) = mpsc::channel::<&'static str>(8);
    spawn_sighup(reload_tx.clone(), shutdown.clone());
    let _watcher = watch_policies(&settings.policies, reload_tx)?;

    let mut kubernetes = match &settings.kubernetes {
        Some(k) => Some(
            start_controller(
                k,
                &settings,
                &state,
                &store,
                &remediator,
                &instance,
                &file_slos,
                &file_playbooks,
                &shutdown,
            )
            .await?,
        ),
        None => None,
    };
    // Without a cluster the evaluated set is the files' set: it is not kept twice.
    if kubernetes.is_none() {
        file_slos = Arc::default();
        file_playbooks = BTreeMap::new();
    }

    let (loaded_tx, mut loaded_rx) = mpsc::channel::<Option<LoadedPolicies>>(1);
    let (mut reloading, mut reload_again) = (false, None);
    // The files' policies merged with the cluster's, and planned, off this loop: at 100,000
    // SLOs that is seconds of work, which must not hold up the cycles. One merge at a time;
    // a change while one runs starts another when it ends, from the inputs as they are then.
    let (merged_tx, mut merged_rx) = mpsc::channel::<LoadedPolicies>(1);
    let mut merges = Merges::default();
    let (mut scheduler, mut plan) = schedule(&slos, settings.interval);
    let mut history = record::HistoryCadence::new(settings.history_resolution);
    let mut last_prune: Option<chrono::DateTime<Utc>> = None;
    loop {
        let wake = scheduler.next_wake();
        let sleep_for = (wake - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(cause) = reload_rx.recv() => {
                // Let a burst of file events settle, then reload once.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                while reload_rx.try_recv().is_ok() {}
                if cause == "SIGHUP"
                    && let Some(k) = &kubernetes
                {
                    match crate::config::reload_scope(&settings) {
                        Ok(scope) => {
                            k.scope.send_if_modified(|current| {
                                let changed = *current != scope;
                                *current = scope;
                                changed
                            });
                        }
                        Err(error) => warn!(%error, "keeping the controller's namespaces and selector"),
                    }
                }
                if settings.policies.is_empty() {
                    continue;
                }
                // Reading and validating a large policy set takes seconds: it runs on a
                // blocking thread while cycles go on, and one more follows if another change
                // arrives meanwhile.
                if reloading {
                    reload_again = Some(cause);
                } else {
                    reloading = spawn_reload(&settings, cause, &state, loaded_tx.clone());
                }
            }
            Some(loaded) = loaded_rx.recv() => {
                reloading = false;
                if let Some(cause) = reload_again.take() {
                    reloading = spawn_reload(&settings, cause, &state, loaded_tx.clone());
                }
                if let Some(LoadedPolicies { slos: new, plan: new_plan, playbooks: books }) = loaded {
                    if let Some(k) = &kubernetes {
                        // The cluster's SLOs join the files' in a merge of their own.
                        file_slos = Arc::new(new);
                        file_playbooks = books;
                        k.host.set_file_names(&file_slos, &file_playbooks);
                        if merges.wanted() {
                            spawn_merge((&file_slos, &file_playbooks), k, merged_tx.clone());
                        }
                    } else {
                        (slos, playbooks) = (Arc::new(new), books);
                        // Planned on the reload's thread, from exactly these SLOs.
                        scheduler = Scheduler::new(&slos, settings.interval, Utc::now());
                        plan = new_plan;
                        policies_changed(&state, &slos);
                        forget_removed(&mut history, &slos);
                    }
                }
            }
            Some(k) = cluster_changed(&mut kubernetes) => {
                if merges.wanted() {
                    spawn_merge((&file_slos, &file_playbooks), k, merged_tx.clone());
                }
            }
            Some(merged) = merged_rx.recv() => {
                if merges.finished()
                    && let Some(k) = &kubernetes
                {
                    spawn_merge((&file_slos, &file_playbooks), k, merged_tx.clone());
                }
                // Merges run one at a time, so each result is newer than the one before.
                (slos, playbooks) = (Arc::new(merged.slos), merged.playbooks);
                scheduler = Scheduler::new(&slos, settings.interval, Utc::now());
                plan = merged.plan;
                policies_changed(&state, &slos);
                forget_removed(&mut history, &slos);
                info!(slos = slos.len(), "policies from the files and the cluster applied");
            }
            _ = tokio::time::sleep(sleep_for) => {
                let now = Utc::now();
                let indices = scheduler.take_due(now);
                // Usually every SLO is due at once: then the loaded set itself, not a copy.
                let (subset, subset_plan): (Vec<Slo>, ReadPlan);
                let (due, due_plan): (&[Slo], &ReadPlan) = if indices.len() == slos.len() {
                    (&slos, &plan)
                } else {
                    subset_plan = plan.subset(&indices);
                    subset = indices.into_iter().map(|i| slos[i].clone()).collect();
                    (&subset, &subset_plan)
                };
                if !due.is_empty() {
                    let (evaluation, replaced) = cycle(
                        &evaluator,
                        &store,
                        (due, due_plan),
                        now.timestamp(),
                        &state,
                        &mut history,
                    )
                    .await;
                    if let Some(k) = &kubernetes {
                        k.host.evaluated(due, now.timestamp());
                    }
                    remediator.after_cycle(due, &playbooks, &evaluation).await;
                    refresh_store_counts(&store, &state).await;
                    // Freed once the cycle and its remediation are done, and before the
                    // allocator hands the free pages back.
                    drop((evaluation, replaced));
                    crate::allocator::release_free_memory();
                }
                if last_prune.is_none_or(|t| now - t > chrono::Duration::hours(1)) {
                    last_prune = Some(now);
                    prune(&store, &settings, now, &state).await;
                }
            }
        }
    }
    info!("shutting down");
    remediator.shutdown().await;
    // Open requests get a moment to finish; a client that holds its request open does not
    // hold the process.
    if tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .is_err()
    {
        warn!("requests still open 5s after shutdown began; closing them");
    }
    Ok(())
}

/// The controller's handles the main loop keeps.
struct Kubernetes {
    host: Arc<cluster::ServiceHost>,
    scope: tokio::sync::watch::Sender<crate::adapters::kube::controller::Scope>,
    policies: tokio::sync::watch::Receiver<Arc<crate::ports::ClusterPolicies>>,
}

#[allow(clippy::too_many_arguments)]
async fn start_controller(
    k: &crate::config::KubernetesSettings,
    settings: &Settings,
    state: &Arc<ServiceState>,
    store: &Arc<SqlStore>,
    remediator: &Arc<Remediator<SqlStore, Actuators, Prometheus>>,
    instance: &crate::ports::Instance,
    file_slos: &[Slo],
    file_playbooks: &BTreeMap<String, crate::domain::playbook::Playbook>,
    shutdown: &CancellationToken,
) -> Result<Kubernetes, ServiceError> {
    use crate::adapters::kube::controller;
    let (host, policies) =
        cluster::ServiceHost::new(state.clone(), store.clone(), remediator.clone());
    host.set_file_names(file_slos, file_playbooks);
    let host = Arc::new(host);
    let (scope, scope_changes) = tokio::sync::watch::channel(k.scope.clone());
    let controller_settings = controller::ControllerSettings {
        status_interval: k.status_interval,
        refresh: settings.interval.max(std::time::Duration::from_secs(5)),
        prometheus_rules: k.prometheus_rules,
        instance: instance.name.clone(),
    };
    controller::start(
        host.clone(),
        controller_settings,
        scope_changes,
        shutdown.clone(),
    )
    .await
    .map_err(ServiceError::Kubernetes)?;
    Ok(Kubernetes {
        host,
        scope,
        policies,
    })
}

/// The next change of the cluster's policies, after a short settle (a start lists many
/// objects at once); never, without the controller. The policies themselves are read by the
/// merge ([`spawn_merge`]), not here: copying them is work for its thread.
async fn cluster_changed(kubernetes: &mut Option<Kubernetes>) -> Option<&Kubernetes> {
    let Some(k) = kubernetes else {
        return std::future::pending().await;
    };
    if k.policies.changed().await.is_err() {
        return std::future::pending().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    k.policies.borrow_and_update();
    Some(k)
}

/// Whether a merge of the files' and the cluster's policies runs, and whether its inputs
/// changed since it started: one runs at a time, and every change is followed by a merge
/// that starts after it.
#[derive(Debug, Default)]
struct Merges {
    running: bool,
    again: bool,
}

impl Merges {
    /// The inputs changed: whether to start a merge now (else one starts when the running
    /// one finishes).
    fn wanted(&mut self) -> bool {
        if self.running {
            self.again = true;
            false
        } else {
            self.running = true;
            true
        }
    }

    /// The running merge finished: whether to start the next now.
    fn finished(&mut self) -> bool {
        self.running = std::mem::take(&mut self.again);
        self.running
    }
}

/// Merges the files' policies with the cluster's as they are now, and plans the merged set,
/// on a blocking thread; the result arrives on `tx`.
fn spawn_merge(
    files: (
        &Arc<Vec<Slo>>,
        &BTreeMap<String, crate::domain::playbook::Playbook>,
    ),
    k: &Kubernetes,
    tx: mpsc::Sender<LoadedPolicies>,
) {
    let (file_slos, file_playbooks, cluster) =
        (files.0.clone(), files.1.clone(), k.policies.clone());
    tokio::task::spawn_blocking(move || {
        // A handle on the newest policies: the lock is held only to clone the `Arc`.
        let cluster = Arc::clone(&cluster.borrow());
        let (slos, playbooks) = cluster::merge((&file_slos, &file_playbooks), &cluster);
        let plan = ReadPlan::of(&slos);
        info!(
            slos = slos.len(),
            cluster_slos = cluster.slos.len(),
            "policies from the cluster merged"
        );
        // The loop is gone only at shutdown, when the outcome no longer matters.
        let _ = tx.blocking_send(LoadedPolicies {
            slos,
            plan,
            playbooks,
        });
    });
}

/// What the HTTP side and /metrics know of the loaded SLOs, after the set changed.
fn policies_changed(state: &ServiceState, slos: &Arc<Vec<Slo>>) {
    let names: std::collections::BTreeSet<&str> = slos.iter().map(|s| s.name.as_str()).collect();
    if let Ok(mut latest) = state.latest.write() {
        latest.retain(|_, e| names.contains(e.evaluation.name.as_str()));
    }
    state.metrics.slos_loaded.set(slos.len() as i64);
    state.set_slos(slos.clone());
}

/// Reads the store's counts for `/metrics` (after the cycle and its remediation, so they
/// include what both did).
async fn refresh_store_counts(store: &SqlStore, state: &ServiceState) {
    match store.counts().await {
        Ok(counts) => state.metrics.set_store_counts(counts),
        Err(error) => {
            state.metrics.store_errors.inc();
            warn!(%error, "reading counts for /metrics failed");
        }
    }
}

/// Says at start which webhook routes take nothing, and which take anything.
fn warn_about_open_intake(settings: &Settings) {
    let auth = &settings.webhook_auth;
    let configured = auth.alertmanager_token.is_some() || auth.alertmanager_basic.is_some();
    match (configured, auth.alertmanager_allow_unauthenticated) {
        (false, true) => warn!(
            "POST /webhooks/alertmanager takes alerts WITHOUT authentication \
             (--alertmanager-allow-unauthenticated): anyone who reaches this port can open and resolve incidents"
        ),
        (false, false) => info!(
            "POST /webhooks/alertmanager refuses every delivery (503) until --alertmanager-token or \
             --alertmanager-basic-auth is set (or --alertmanager-allow-unauthenticated)"
        ),
        (true, true) => warn!(
            "--alertmanager-allow-unauthenticated is ignored: Alertmanager credentials are configured and required"
        ),
        (true, false) => {}
    }
}

/// Drops evaluation history and received webhook bodies past their retention.
async fn prune(
    store: &SqlStore,
    settings: &Settings,
    now: chrono::DateTime<Utc>,
    state: &ServiceState,
) {
    let retention = chrono::Duration::from_std(settings.evaluation_retention)
        .unwrap_or(chrono::Duration::days(7));
    match store.prune_evaluations((now - retention).timestamp()).await {
        Ok(0) => {}
        Ok(rows) => info!(rows, "pruned evaluation history"),
        Err(error) => {
            state.metrics.store_errors.inc();
            warn!(%error, "pruning evaluation history failed");
        }
    }
    let retention =
        chrono::Duration::from_std(settings.webhook_retention).unwrap_or(chrono::Duration::days(7));
    match store
        .prune_webhooks(
            (now - retention).timestamp(),
            settings.webhook_retention_count,
        )
        .await
    {
        Ok(0) => {}
        Ok(bodies) => info!(bodies, "pruned received webhook bodies and their events"),
        Err(error) => {
            state.metrics.store_errors.inc();
            warn!(%error, "pruning received webhooks failed");
        }
    }
}

/// One evaluation of `due`, recorded in the store, the shared state and the metrics. Returns
/// the evaluation and the latest states it replaced, which the caller frees when nothing
/// waits on it (10,000 of them take milliseconds).
async fn cycle(
    evaluator: &Evaluator<Prometheus>,
    store: &SqlStore,
    (due, plan): (&[Slo], &ReadPlan),
    at: i64,
    state: &ServiceState,
    history: &mut record::HistoryCadence,
) -> (crate::engine::Evaluation, Vec<LatestEvaluation>) {
    let span = info_span!("cycle", slos = due.len());
    async {
        let started = Instant::now();
        let evaluation = evaluator.evaluate_planned(due, plan, at).await;
        let read = started.elapsed();
        let recorded = record::record_cycle(store, due, &evaluation, history).await;
        let retired = record::retire_reshaped(store, due, &evaluation, at).await;
        let stored = started.elapsed() - read;
        // After the store: an SLO's latest state never shows what its incident does not yet.
        let replaced = remember_latest(state, at, &evaluation.slos);
        let elapsed = started.elapsed();
        let m = &state.metrics;
        m.store_errors.inc_by(recorded.failed as u64);
        m.evaluation_duration.observe(elapsed.as_secs_f64());
        m.queries.inc_by(evaluation.queries as u64);
        for (reason, n) in &evaluation.query_errors {
            m.query_errors
                .get_or_create(&vec![("reason".to_string(), reason.to_string())])
                .inc_by(*n as u64);
        }
        if evaluation.queries > 0 && evaluation.failed_queries == 0 {
            m.last_success.set(at as f64);
        }
        if evaluation.queries > 0 {
            let reached = evaluation.failed_queries < evaluation.queries;
            state.set_readiness(|r| r.reached_prometheus = Some(reached));
        }
        info!(
            queries = evaluation.queries,
            failed = evaluation.failed_queries,
            millis = elapsed.as_millis() as u64,
            read_millis = read.as_millis() as u64,
            answered_millis = evaluation.answered_after.as_millis() as u64,
            store_millis = stored.as_millis() as u64,
            opened = recorded.opened,
            escalated = recorded.escalated,
            resolved = recorded.resolved,
            retired,
            "evaluation cycle done"
        );
        (evaluation, replaced)
    }
    .instrument(span)
    .await
}

/// When each of the SLOs loaded at start is due, and what each reads. Every later set brings
/// its plan along ([`LoadedPolicies`]) and gets a new schedule with it, so a cycle never reads
/// with the plan of SLOs it no longer has.
fn schedule(slos: &[Slo], interval: std::time::Duration) -> (Scheduler, ReadPlan) {
    (
        Scheduler::new(slos, interval, Utc::now()),
        ReadPlan::of(slos),
    )
}

/// Forgets the history cadence of SLOs the policies no longer have.
fn forget_removed(history: &mut record::HistoryCadence, slos: &[Slo]) {
    let names: foldhash::HashSet<&str> = slos.iter().map(|s| s.name.as_str()).collect();
    history.retain(|key| {
        let name = crate::domain::policy::split_group_key(key).map_or(key, |(name, _)| name);
        names.contains(name)
    });
}

/// Keeps the cycle's evaluations (made at `at`) as the latest (what `/metrics`, the cluster
/// status and the UI's labels read), logging each SLO whose status changed. Returns the
/// latest states it replaced, for the caller to free where freeing them holds nothing up.
#[must_use = "the replaced latest states are returned to be freed off the cycle's path"]
fn remember_latest(
    state: &ServiceState,
    at: i64,
    evaluations: &[Arc<SloEvaluation>],
) -> Vec<LatestEvaluation> {
    let mut latest = match state.latest.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    // A grouped SLO's groups come and go with its series: a group not answered this
    // cycle is dropped (its open incident, if any, stays in the store). Only group keys can
    // go stale that way, so a fleet without any skips the check.
    let grouped = crate::domain::policy::is_group_key;
    if evaluations.iter().any(|e| !e.group.is_empty()) || latest.keys().any(|k| grouped(k)) {
        let evaluated: foldhash::HashSet<&str> =
            evaluations.iter().map(|e| e.name.as_str()).collect();
        let keys: foldhash::HashSet<std::borrow::Cow<'_, str>> =
            evaluations.iter().map(|e| e.key_text()).collect();
        latest.retain(|key, e| {
            !evaluated.contains(e.evaluation.name.as_str()) || keys.contains(key.as_str())
        });
    }
    // The evaluations replaced are freed after the lock is released: readers of the latest
    // state wait for the swap, not for freeing 10,000 evaluations.
    let mut replaced = Vec::with_capacity(evaluations.len());
    for e in evaluations {
        // `e` is a shared handle: the latest state holds the cycle's evaluation itself.
        let key = e.key_text();
        let point = LatestEvaluation {
            at,
            evaluation: e.clone(),
        };
        let before = match latest.get_mut(key.as_ref()) {
            Some(slot) => {
                let previous = std::mem::replace(slot, point);
                let status = previous.evaluation.status;
                replaced.push(previous);
                Some(status)
            }
            None => {
                latest.insert(key.to_string(), point);
                None
            }
        };
        if before != Some(e.status) {
            match (&e.error, e.status) {
                (Some(error), _) => {
                    warn!(slo = %key, service = %e.service, %error, "SLO could not be evaluated")
                }
                (None, EvalStatus::Assessed(status)) => {
                    info!(slo = %key, service = %e.service, status = status.as_str(), "SLO status changed")
                }
                (None, EvalStatus::Error) => {}
            }
        }
    }
    drop(latest);
    replaced
}

/// A policy set read again from the files, or the files' set joined with the cluster's, with
/// the read plan of its SLOs: made on a thread of its own (the reload's, the merge's), so that
/// a large set's plan (seconds of work at 100,000 SLOs) does not hold up the cycles either.
struct LoadedPolicies {
    slos: Vec<Slo>,
    plan: ReadPlan,
    playbooks: BTreeMap<String, crate::domain::playbook::Playbook>,
}

/// Reloads the policy files on a thread of its own; the outcome of [`reload`] arrives on
/// `tx`; whether the thread started. Not a runtime thread: a file that never finishes reading (a FIFO, a hung network
/// mount) must not hold up cycles, nor the runtime's shutdown.
fn spawn_reload(
    settings: &Settings,
    cause: &'static str,
    state: &Arc<ServiceState>,
    tx: mpsc::Sender<Option<LoadedPolicies>>,
) -> bool {
    let (paths, options, state) = (settings.policies.clone(), settings.load, state.clone());
    info!(cause, "policy reload started");
    let spawned = std::thread::Builder::new()
        .name("policy-reload".into())
        .spawn(move || {
            let loaded = reload(&paths, &options, cause, &state);
            // The loop is gone only at shutdown, when the outcome no longer matters.
            let _ = tx.blocking_send(loaded);
        });
    if let Err(error) = &spawned {
        warn!(%error, "cannot start a thread to reload the policies; keeping those loaded");
    }
    spawned.is_ok()
}

/// Loads the policy files again. `Some` with the new set when valid; `None` (old set kept)
/// when not.
fn reload(
    paths: &[PathBuf],
    options: &policies::LoadOptions,
    cause: &str,
    state: &ServiceState,
) -> Option<LoadedPolicies> {
    let reloads = &state.metrics.policy_reloads;
    match policies::load_with(paths, options) {
        Ok(set) => {
            // The caller merges these with the cluster's and then updates what the HTTP side
            // and /metrics know (`policies_changed`): updating it here with the files alone
            // would drop the cluster SLOs' latest evaluations.
            let slos = set.slos();
            let plan = ReadPlan::of(&slos);
            reloads
                .get_or_create(&vec![("result".into(), "applied".into())])
                .inc();
            info!(cause, slos = slos.len(), "policies reloaded");
            Some(LoadedPolicies {
                slos,
                plan,
                playbooks: set.playbooks(),
            })
        }
        Err(error) => {
            reloads
                .get_or_create(&vec![("result".into(), "rejected".into())])
                .inc();
            for problem in &error.problems {
                warn!(cause, problem = %problem, "policy reload rejected");
            }
            warn!(
                cause,
                problems = error.problems.len(),
                "keeping the policies already loaded"
            );
            None
        }
    }
}

#[cfg(unix)]
fn spawn_sighup(tx: mpsc::Sender<&'static str>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            warn!("cannot listen for SIGHUP; reload on file change only");
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                received = hup.recv() => {
                    if received.is_none() || tx.send("SIGHUP").await.is_err() {
                        return;
                    }
                }
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_sighup(_: mpsc::Sender<&'static str>, _: CancellationToken) {}

/// Watches the policy files and directories; any change asks for a reload.
fn watch_policies(
    paths: &[PathBuf],
    tx: mpsc::Sender<&'static str>,
) -> Result<notify::RecommendedWatcher, ServiceError> {
    use notify::{RecursiveMode, Watcher};
    let files: Vec<PathBuf> = paths.iter().filter(|p| p.is_file()).cloned().collect();
    // Only policy files matter: a database or editor swap file next to them must not
    // trigger reloads.
    let is_policy = move |path: &std::path::Path| {
        files
            .iter()
            .any(|f| path.ends_with(f) || f.file_name() == path.file_name())
            || path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml")
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && (event.kind.is_modify() || event.kind.is_create() || event.kind.is_remove())
            && event.paths.iter().any(|p| is_policy(p))
        {
            // A full channel already holds a pending reload.
            let _ = tx.try_send("file change");
        }
    })
    .map_err(|e| ServiceError::Watch(e.to_string()))?;
    for path in paths {
        // Watch a file's directory too: editors replace files by renaming over them.
        let target = if path.is_file() {
            path.parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
        } else {
            path.clone()
        };
        let target = if target.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            target
        };
        watcher
            .watch(&target, RecursiveMode::Recursive)
            .map_err(|e| ServiceError::Watch(format!("{}: {e}", target.display())))?;
    }
    Ok(watcher)
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("Ctrl-C received"),
            _ = terminate => info!("SIGTERM received"),
        }
        token.cancel();
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::remember_latest;
    use crate::domain::burn::Status;
    use crate::engine::evaluate::{EvalStatus, SloEvaluation, WindowValues};
    use crate::http::state::ServiceState;

    fn evaluation(name: &str, group: &[(&str, &str)]) -> Arc<SloEvaluation> {
        Arc::new(SloEvaluation {
            name: name.into(),
            group: group
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            service: "shop".into(),
            objective: 0.999,
            window: "30d".into(),
            status: EvalStatus::Assessed(Status::Ok),
            source: None,
            error_ratio: WindowValues(Vec::new()),
            burn_rate: WindowValues(Vec::new()),
            error_budget_remaining: Some(1.0),
            time_to_exhaustion_seconds: None,
            budget_period: None,
            alerts: Vec::new(),
            error: None,
        })
    }

    fn keys(state: &ServiceState) -> Vec<String> {
        state.latest.read().unwrap().keys().cloned().collect()
    }

    #[test]
    fn a_change_while_a_merge_runs_is_merged_once_after_it() {
        let mut merges = super::Merges::default();
        assert!(merges.wanted(), "nothing runs: start");
        assert!(!merges.wanted(), "one runs: wait");
        assert!(!merges.wanted(), "still one at a time");
        assert!(merges.finished(), "the changes meanwhile: one more");
        assert!(!merges.finished(), "nothing changed since it started");
        assert!(merges.wanted(), "idle again: start at once");
        assert!(!merges.finished());
    }

    #[tokio::test]
    async fn the_latest_state_drops_vanished_groups_and_old_shapes_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("b.db").display());
        let store = Arc::new(crate::adapters::store::SqlStore::open(&url).await.unwrap());
        let state = ServiceState::new(store, "burnguard".into());
        let pay = || evaluation("shop", &[("route", "/pay")]);
        let cart = || evaluation("shop", &[("route", "/cart")]);
        let search = || evaluation("search", &[]);

        // An ungrouped fleet: every SLO kept, nothing swept.
        let _ = remember_latest(&state, 100, &[search(), evaluation("shop", &[])]);
        assert_eq!(keys(&state), ["search", "shop"]);

        // `shop` is now grouped: its plain key goes, its groups come, `search` stays. What
        // was replaced comes back to be freed: `search`'s first evaluation.
        let replaced = remember_latest(&state, 130, &[search(), pay(), cart()]);
        let replaced: Vec<(&str, i64)> = replaced
            .iter()
            .map(|r| (r.evaluation.name.as_str(), r.at))
            .collect();
        assert_eq!(replaced, [("search", 100)]);
        assert_eq!(
            keys(&state),
            ["search", r#"shop{route="/cart"}"#, r#"shop{route="/pay"}"#]
        );

        // /cart's series vanish: its latest state goes with them.
        let _ = remember_latest(&state, 160, &[search(), pay()]);
        assert_eq!(keys(&state), ["search", r#"shop{route="/pay"}"#]);

        // An SLO not evaluated this cycle (not due) keeps what it had.
        let _ = remember_latest(&state, 190, &[pay()]);
        assert_eq!(keys(&state), ["search", r#"shop{route="/pay"}"#]);

        // Ungrouped again: the group keys go.
        let _ = remember_latest(&state, 220, &[search(), evaluation("shop", &[])]);
        assert_eq!(keys(&state), ["search", "shop"]);
        assert_eq!(state.latest.read().unwrap()["shop"].at, 220);
    }
}
