//! burnguard's own metrics at `/metrics` (prometheus-client, OpenMetrics text).
//!
//! Per-SLO gauges are rendered at scrape time from the latest evaluations (in pieces, by
//! [`crate::http::exposition`]), so an SLO that is removed or a window that loses its data
//! disappears from the output instead of lingering with a stale value. No-data windows are absent, never NaN. Counts that live in the store
//! (open incidents, active freezes, journaled steps, the outbox) are read after each cycle and
//! rendered from that reading; they are absent until the first reading succeeds.

use std::fmt;
use std::sync::{Arc, RwLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::engine::evaluate::SloEvaluation;
use crate::http::exposition;
use crate::http::server::Refusal;
use crate::ports::StoreCounts;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The latest evaluation of every loaded SLO this replica evaluated, by key (the SLO's name,
/// with its group's labels for a grouped SLO).
pub type Latest = Arc<RwLock<std::collections::BTreeMap<String, LatestEvaluation>>>;

/// One SLO's latest evaluation and when it was made. Cloning shares the evaluation.
#[derive(Clone, Debug)]
pub struct LatestEvaluation {
    pub at: crate::ports::UnixSeconds,
    pub evaluation: Arc<SloEvaluation>,
}

/// The latest successful reading of the store's counts (`None` before the first).
type Counts = Arc<RwLock<Option<StoreCounts>>>;

/// Process-level metrics plus the per-SLO collector.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub evaluation_duration: Histogram,
    pub queries: Counter,
    /// By `reason` (see [`crate::ports::MetricsError::reason`]).
    pub query_errors: Family<Vec<(String, String)>, Counter>,
    pub last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub policy_reloads: Family<Vec<(String, String)>, Counter>,
    pub slos_loaded: Gauge,
    pub store_errors: Counter,
    pub listener: ListenerMetrics,
    /// Notifications dead-lettered (retries ended), by `channel`.
    pub notifications_dead: Family<Vec<(String, String)>, Counter>,
    /// Webhook requests by `source` (alertmanager, pagerduty, opsgenie) and HTTP `code`.
    pub webhook_requests: Family<Vec<(String, String)>, Counter>,
    /// Kubernetes controller reconciles by `kind` and `outcome` (`ok` or an error label).
    pub reconciles: Family<Vec<(String, String)>, Counter>,
    /// How long reconciles took, by `kind`.
    pub reconcile_duration: Family<Vec<(String, String)>, Histogram>,
    /// Which per-SLO series a scrape carries.
    pub slo_series: exposition::SloSeries,
    latest: Latest,
    counts: Counts,
}

/// What the HTTP listener counts: connections open and refused, certificate reloads. Clones
/// share the same series, so the server and the certificate watcher each hold one.
#[derive(Debug, Clone, Default)]
pub struct ListenerMetrics {
    /// By `reason` (see [`Refusal`]).
    pub connections_refused: Family<Vec<(String, String)>, Counter>,
    pub connections_open: Gauge,
    /// By `result`: `applied` or `rejected`.
    pub tls_reloads: Family<Vec<(String, String)>, Counter>,
}

impl ListenerMetrics {
    pub fn refused(&self, reason: Refusal) {
        self.connections_refused
            .get_or_create(&vec![("reason".into(), reason.as_str().into())])
            .inc();
    }

    /// Counts a connection as open until the guard is dropped.
    pub fn open_connection(&self) -> OpenConnection {
        self.connections_open.inc();
        OpenConnection(self.connections_open.clone())
    }

    /// A certificate reload: `applied` when the new pair is served, else `rejected`.
    pub fn tls_reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.tls_reloads
            .get_or_create(&vec![("result".into(), result.into())])
            .inc();
    }

    fn register(&self, registry: &mut Registry) {
        for reason in Refusal::ALL {
            // Every label from the start, so a rate() over them never begins with a gap.
            let _ = self
                .connections_refused
                .get_or_create(&vec![("reason".into(), reason.as_str().into())]);
        }
        for result in ["applied", "rejected"] {
            let _ = self
                .tls_reloads
                .get_or_create(&vec![("result".into(), result.into())]);
        }
        registry.register(
            "connections_refused",
            "Connections closed without an answer, by reason (limit, handshake_timeout, handshake_failed, header_timeout)",
            self.connections_refused.clone(),
        );
        registry.register(
            "connections_open",
            "HTTP connections open (handshaking, waiting for a request or being answered)",
            self.connections_open.clone(),
        );
        registry.register(
            "tls_reloads",
            "TLS certificate reloads after the files changed, by result (applied, rejected)",
            self.tls_reloads.clone(),
        );
    }
}

/// Holds one `burnguard_connections_open`.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn new(latest: Latest) -> Self {
        let mut registry = Registry::with_prefix("burnguard");
        let evaluation_duration =
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        registry.register(
            "evaluation_duration_seconds",
            "Time one evaluation cycle took",
            evaluation_duration.clone(),
        );
        let queries = Counter::default();
        registry.register("queries", "Queries sent to Prometheus", queries.clone());
        let query_errors = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "query_errors",
            "Queries to Prometheus that failed or answered only partially, by reason (timeout, unreachable, rejected, bad_response, partial_response)",
            query_errors.clone(),
        );
        for reason in crate::ports::MetricsError::REASONS {
            // Every reason from the start, so a rate() over them never begins with a gap.
            let _ = query_errors.get_or_create(&vec![("reason".to_string(), reason.to_string())]);
        }
        let last_success = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "last_successful_evaluation_timestamp_seconds",
            "Unix time of the last cycle in which every query succeeded",
            last_success.clone(),
        );
        let policy_reloads = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy reloads by result (applied, rejected)",
            policy_reloads.clone(),
        );
        for result in ["applied", "rejected"] {
            let _ = policy_reloads.get_or_create(&vec![("result".to_string(), result.to_string())]);
        }
        let slos_loaded = Gauge::default();
        registry.register(
            "slos_loaded",
            "SLO policies currently loaded",
            slos_loaded.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Evaluations or incident changes that could not be written to the database",
            store_errors.clone(),
        );
        let listener = ListenerMetrics::default();
        listener.register(&mut registry);
        let notifications_dead = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "notifications_dead",
            "Notifications whose retries ended (maximum attempts or age reached) without delivery, by channel",
            notifications_dead.clone(),
        );
        let webhook_requests = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "webhook_requests",
            "Webhook requests received, by source and HTTP status code",
            webhook_requests.clone(),
        );
        let reconciles = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "controller_reconciles",
            "Kubernetes controller reconciles, by kind (ServiceLevelObjective, Playbook) and outcome (ok, or what failed)",
            reconciles.clone(),
        );
        let reconcile_duration =
            Family::<Vec<(String, String)>, Histogram>::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            });
        registry.register(
            "controller_reconcile_duration_seconds",
            "How long Kubernetes controller reconciles took, by kind",
            reconcile_duration.clone(),
        );
        let counts = Counts::default();
        Self {
            registry,
            slo_series: exposition::SloSeries::default(),
            latest,
            evaluation_duration,
            queries,
            query_errors,
            last_success,
            policy_reloads,
            slos_loaded,
            store_errors,
            listener,
            notifications_dead,
            webhook_requests,
            reconciles,
            reconcile_duration,
            counts,
        }
    }

    /// Counts one controller reconcile.
    pub fn reconciled(&self, kind: &str, outcome: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&vec![
                ("kind".to_string(), kind.to_string()),
                ("outcome".to_string(), outcome.to_string()),
            ])
            .inc();
        self.reconcile_duration
            .get_or_create(&vec![("kind".to_string(), kind.to_string())])
            .observe(seconds);
    }

    /// Replaces the store's counts rendered at scrape time.
    pub fn set_store_counts(&self, counts: StoreCounts) {
        match self.counts.write() {
            Ok(mut guard) => *guard = Some(counts),
            Err(poisoned) => *poisoned.into_inner() = Some(counts),
        }
    }

    /// Counts a dead-lettered notification on `channel`.
    pub fn notification_dead(&self, channel: &str) {
        self.notifications_dead
            .get_or_create(&vec![("channel".to_string(), channel.to_string())])
            .inc();
    }

    /// The exposition text, whole.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        self.exposition().map(|pieces| pieces.collect())
    }

    /// The exposition text in pieces: the process's metrics, then the per-SLO families a few
    /// hundred SLOs at a time (see [`exposition`]). The latest evaluations are read once, up
    /// front, as shared handles: later cycles do not change what a scrape in progress writes.
    pub fn exposition(&self) -> Result<impl Iterator<Item = String> + Send + 'static, fmt::Error> {
        let mut head = String::new();
        prometheus_client::encoding::text::encode_registry(&mut head, &self.registry)?;
        let evaluations: Vec<Arc<SloEvaluation>> = match self.latest.read() {
            Ok(guard) => guard.values().map(|l| l.evaluation.clone()).collect(),
            Err(poisoned) => poisoned
                .into_inner()
                .values()
                .map(|l| l.evaluation.clone())
                .collect(),
        };
        let counts = match self.counts.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        Ok(std::iter::once(head).chain(exposition::SloFamilies::new(
            evaluations,
            counts,
            self.slo_series,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::burn::Status;
    use crate::domain::policy::Window;
    use crate::engine::evaluate::{AlertReport, EvalStatus, WindowValues};

    #[test]
    fn controller_reconciles_are_counted_by_kind_and_outcome_and_timed_by_kind() {
        let metrics = Metrics::new(Arc::new(RwLock::new(std::collections::BTreeMap::new())));
        metrics.reconciled("ServiceLevelObjective", "ok", 0.02);
        metrics.reconciled("ServiceLevelObjective", "kube_api", 0.3);
        metrics.reconciled("Playbook", "ok", 0.001);
        let text = metrics.encode().unwrap();
        for line in [
            "burnguard_controller_reconciles_total{kind=\"ServiceLevelObjective\",outcome=\"ok\"} 1",
            "burnguard_controller_reconciles_total{kind=\"ServiceLevelObjective\",outcome=\"kube_api\"} 1",
            "burnguard_controller_reconciles_total{kind=\"Playbook\",outcome=\"ok\"} 1",
            "burnguard_controller_reconcile_duration_seconds_count{kind=\"ServiceLevelObjective\"} 2",
            "burnguard_controller_reconcile_duration_seconds_bucket{le=\"0.025\",kind=\"ServiceLevelObjective\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

    fn latest_at_zero(evaluation: SloEvaluation) -> LatestEvaluation {
        LatestEvaluation {
            at: 0,
            evaluation: Arc::new(evaluation),
        }
    }

    fn evaluation(name: &str, exhaustion: Option<f64>) -> SloEvaluation {
        SloEvaluation {
            name: name.into(),
            service: "shop".into(),
            objective: 0.999,
            window: "30d".to_string(),
            budget_period: None,
            group: Default::default(),
            status: EvalStatus::Assessed(Status::Page),
            source: None,
            error_ratio: WindowValues(Vec::new()),
            burn_rate: WindowValues(Vec::new()),
            error_budget_remaining: Some(0.5),
            time_to_exhaustion_seconds: exhaustion,
            alerts: vec![AlertReport {
                severity: "page",
                long: Window::from_secs(3_600),
                short: Window::from_secs(300),
                factor: 14.4,
                firing: false,
                has_data: false,
            }],
            error: None,
        }
    }

    #[test]
    fn the_dashboard_series_carry_the_window_thresholds_and_store_counts() {
        let latest: Latest = Default::default();
        latest
            .write()
            .unwrap()
            .insert("a".into(), latest_at_zero(evaluation("a", Some(7_200.0))));
        latest
            .write()
            .unwrap()
            .insert("b".into(), latest_at_zero(evaluation("b", None)));
        let metrics = Metrics::new(latest);
        let before = metrics.encode().unwrap();
        for line in [
            r#"burnguard_slo_objective{slo="a",service="shop",window="30d"} 0.999"#,
            r#"burnguard_slo_time_to_exhaustion_seconds{slo="a",service="shop"} 7200.0"#,
            // A row without data has a threshold but no firing state.
            r#"burnguard_slo_alert_threshold{slo="a",service="shop",severity="page",long_window="1h",short_window="5m"} 14.4"#,
            r#"burnguard_policy_reloads_total{result="rejected"} 0"#,
        ] {
            assert!(before.contains(line), "{line} missing:\n{before}");
        }
        for absent in [
            r#"burnguard_slo_time_to_exhaustion_seconds{slo="b""#,
            "burnguard_slo_alert_firing{",
            // Store counts are unknown until the first reading.
            "burnguard_slo_open_incidents",
            "burnguard_notification_outbox_pending",
        ] {
            assert!(!before.contains(absent), "{absent} present:\n{before}");
        }

        let mut counts = StoreCounts {
            outbox_pending: 3,
            ..Default::default()
        };
        counts.open_incidents.insert("a".into(), 1);
        counts.active_freezes.insert("a".into(), 2);
        counts
            .actions
            .insert(("a".into(), "http".into(), "failed".into()), 4);
        metrics.set_store_counts(counts);
        let after = metrics.encode().unwrap();
        for line in [
            r#"burnguard_slo_open_incidents{slo="a",service="shop"} 1"#,
            r#"burnguard_slo_open_incidents{slo="b",service="shop"} 0"#,
            r#"burnguard_slo_active_freezes{slo="a",service="shop"} 2"#,
            r#"burnguard_slo_active_freezes{slo="b",service="shop"} 0"#,
            r#"burnguard_actions{slo="a",kind="http",status="failed"} 4"#,
            "burnguard_notification_outbox_pending 3",
        ] {
            assert!(after.contains(line), "{line} missing:\n{after}");
        }
    }

    #[test]
    fn many_slos_come_in_pieces_that_join_into_one_family_each() {
        let latest: Latest = Default::default();
        let n = 2 * exposition::PIECE + 1;
        for i in 0..n {
            let name = format!("s{i:04}");
            let e = evaluation(&name, Some(60.0));
            latest.write().unwrap().insert(name, latest_at_zero(e));
        }
        let metrics = Metrics::new(latest);
        metrics.set_store_counts(StoreCounts::default());
        let pieces: Vec<String> = metrics.exposition().unwrap().collect();
        // The process's metrics, three pieces for each of the 7 families these SLOs have
        // samples in (no ratios, burn rates or firing states), the store-wide ones with the
        // end.
        assert_eq!(pieces.len(), 1 + 7 * 3 + 1);
        let text = pieces.concat();
        assert_eq!(text, metrics.encode().unwrap());
        assert!(text.ends_with("# EOF\n") && text.matches("# EOF").count() == 1);
        for family in [
            "burnguard_slo_status",
            "burnguard_slo_objective",
            "burnguard_slo_open_incidents",
        ] {
            assert_eq!(
                text.matches(&format!("# TYPE {family} gauge\n")).count(),
                1,
                "{family}"
            );
        }
        let samples = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(samples("burnguard_slo_status{"), n);
        assert_eq!(samples("burnguard_slo_objective{"), n);
        assert_eq!(samples("burnguard_slo_alert_firing"), 0);
        // Each family's samples are contiguous: no family starts again after another one.
        let mut seen = std::collections::BTreeSet::new();
        let mut current = "";
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            if name != current {
                assert!(seen.insert(name.to_string()), "{name} starts twice");
                current = name;
            }
        }
    }
}
