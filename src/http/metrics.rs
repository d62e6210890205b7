//! burnguard's own metrics at `/metrics` (prometheus-client, OpenMetrics text).
//!
//! Per-SLO gauges are rendered at scrape time from the latest evaluations, so an SLO that is
//! removed or a window that loses its data disappears from the output instead of lingering
//! with a stale value. No-data windows are absent, never NaN. Counts that live in the store
//! (open incidents, active freezes, journaled steps, the outbox) are read after each cycle and
//! rendered from that reading; they are absent until the first reading succeeds.

use std::fmt;
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::domain::burn::Status;
use crate::engine::evaluate::{EvalStatus, SloEvaluation};
use crate::http::server::Refusal;
use crate::ports::StoreCounts;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The latest evaluation of every loaded SLO, by name.
pub type Latest = Arc<RwLock<std::collections::BTreeMap<String, SloEvaluation>>>;

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
        registry.register_collector(Box::new(SloCollector {
            latest,
            counts: counts.clone(),
        }));
        Self {
            registry,
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

    /// The exposition text.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Renders per-SLO gauges from the latest evaluations at scrape time.
#[derive(Debug)]
struct SloCollector {
    latest: Latest,
    counts: Counts,
}

type LabelPairs = Vec<(String, String)>;

/// `slo`, `service` and a grouped SLO's group labels.
fn slo_labels(e: &SloEvaluation) -> LabelPairs {
    let mut labels = vec![
        ("slo".into(), e.name.clone()),
        ("service".into(), e.service.clone()),
    ];
    labels.extend(e.group.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

fn with(mut labels: LabelPairs, extra: &[(&str, &str)]) -> LabelPairs {
    labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    labels
}

const STATUSES: [EvalStatus; 6] = [
    EvalStatus::Assessed(Status::Ok),
    EvalStatus::Assessed(Status::Ticket),
    EvalStatus::Assessed(Status::Page),
    EvalStatus::Assessed(Status::NoData),
    EvalStatus::Assessed(Status::Partial),
    EvalStatus::Error,
];

impl Collector for SloCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let latest = match self.latest.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let counts = match self.counts.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let gauge = |encoder: &mut DescriptorEncoder,
                     name: &str,
                     help: &str,
                     samples: &[(LabelPairs, f64)]|
         -> Result<(), fmt::Error> {
            if samples.is_empty() {
                return Ok(());
            }
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, value) in samples {
                let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
                g.set(*value);
                g.encode(metric.encode_family(labels)?)?;
            }
            Ok(())
        };

        let mut ratios = Vec::new();
        let mut burns = Vec::new();
        let mut budgets = Vec::new();
        let mut firing = Vec::new();
        let mut statuses = Vec::new();
        let mut objectives = Vec::new();
        let mut exhaustion = Vec::new();
        let mut thresholds = Vec::new();
        let mut incidents = Vec::new();
        let mut freezes = Vec::new();
        for e in latest.values() {
            let base = slo_labels(e);
            objectives.push((
                with(base.clone(), &[("window", &duration_label(e))]),
                e.objective,
            ));
            if let Some(seconds) = e.time_to_exhaustion_seconds.filter(|s| s.is_finite()) {
                exhaustion.push((base.clone(), seconds));
            }
            if let Some(counts) = &counts {
                let count = |by_slo: &std::collections::BTreeMap<String, u64>| {
                    by_slo.get(&e.key()).copied().unwrap_or(0) as f64
                };
                incidents.push((base.clone(), count(&counts.open_incidents)));
                freezes.push((base.clone(), count(&counts.active_freezes)));
            }
            for (window, value) in &e.error_ratio.0 {
                if let Some(v) = value {
                    ratios.push((with(base.clone(), &[("window", &window.to_string())]), *v));
                }
            }
            for (window, value) in &e.burn_rate.0 {
                if let Some(v) = value {
                    burns.push((with(base.clone(), &[("window", &window.to_string())]), *v));
                }
            }
            if let Some(b) = e.error_budget_remaining {
                budgets.push((base.clone(), b));
            }
            for alert in &e.alerts {
                let labels = with(
                    base.clone(),
                    &[
                        ("severity", alert.severity),
                        ("long_window", &alert.long_window),
                        ("short_window", &alert.short_window),
                    ],
                );
                if alert.has_data {
                    firing.push((labels.clone(), if alert.firing { 1.0 } else { 0.0 }));
                }
                thresholds.push((labels, alert.factor));
            }
            for status in STATUSES {
                let value = if status == e.status { 1.0 } else { 0.0 };
                statuses.push((with(base.clone(), &[("status", status.as_str())]), value));
            }
        }
        gauge(
            &mut encoder,
            "slo_error_ratio",
            "Error ratio over the window (absent: no data)",
            &ratios,
        )?;
        gauge(
            &mut encoder,
            "slo_burn_rate",
            "Error-budget burn rate over the window (1 = exactly sustainable)",
            &burns,
        )?;
        gauge(
            &mut encoder,
            "slo_error_budget_remaining",
            "Fraction of the SLO window's error budget left (negative: overspent)",
            &budgets,
        )?;
        gauge(
            &mut encoder,
            "slo_alert_firing",
            "1 when the alert row fires, 0 when quiet (absent when a window has no data)",
            &firing,
        )?;
        gauge(
            &mut encoder,
            "slo_status",
            "1 for the SLO's current status",
            &statuses,
        )?;
        gauge(
            &mut encoder,
            "slo_objective",
            "The SLO's objective as a ratio (0.999); `window` is its SLO window",
            &objectives,
        )?;
        gauge(
            &mut encoder,
            "slo_time_to_exhaustion_seconds",
            "Seconds until the budget is spent at the burn rate of the shortest long alert window (absent: no data or not burning)",
            &exhaustion,
        )?;
        gauge(
            &mut encoder,
            "slo_alert_threshold",
            "Burn-rate threshold of the alert row: it fires when both windows burn faster",
            &thresholds,
        )?;
        gauge(
            &mut encoder,
            "slo_open_incidents",
            "Unresolved incidents of the SLO in the store",
            &incidents,
        )?;
        gauge(
            &mut encoder,
            "slo_active_freezes",
            "Active deployment freezes the SLO's budget rules or playbooks made",
            &freezes,
        )?;
        if let Some(counts) = &counts {
            let actions: Vec<(LabelPairs, f64)> = counts
                .actions
                .iter()
                .map(|((slo, kind, status), n)| {
                    let labels = vec![
                        ("slo".to_string(), slo.clone()),
                        ("kind".to_string(), kind.clone()),
                        ("status".to_string(), status.clone()),
                    ];
                    (labels, *n as f64)
                })
                .collect();
            gauge(
                &mut encoder,
                "actions",
                "Remediation steps in the journal by SLO, kind and status (succeeded, failed, skipped, ...)",
                &actions,
            )?;
            gauge(
                &mut encoder,
                "notification_outbox_pending",
                "Notification deliveries not yet delivered",
                &[(Vec::new(), counts.outbox_pending as f64)],
            )?;
        }
        Ok(())
    }
}

/// The SLO window as a Prometheus duration (dashboards use it as a time range): a calendar
/// SLO's nominal length (30d for months, 7d for weeks).
fn duration_label(e: &SloEvaluation) -> String {
    e.budget_period
        .as_ref()
        .and_then(|p| crate::domain::calendar::CalendarPeriod::parse(p.calendar))
        .map(|p| crate::domain::policy::Window::from_secs(p.nominal_seconds()).to_string())
        .unwrap_or_else(|| e.window.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::Window;
    use crate::engine::evaluate::{AlertReport, WindowValues};

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
                long: Window::from_secs(3_600),
                severity: "page",
                long_window: "1h".into(),
                short_window: "5m".into(),
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
            .insert("a".into(), evaluation("a", Some(7_200.0)));
        latest
            .write()
            .unwrap()
            .insert("b".into(), evaluation("b", None));
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
}
