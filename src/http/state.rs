//! The state the HTTP side serves from: latest evaluations, readiness, metrics, the store,
//! and who may call. The service fills it; the routes only read it (and the store).
//!
//! Owns: [`ServiceState`]. Must not touch: the evaluation loop (the service drives it).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::adapters::store::SqlStore;
use crate::domain::policy::Slo;
use crate::http::auth::{ApiAuth, WebhookAuth};
use crate::http::metrics::{Latest, LatestEvaluation, Metrics};
use crate::ports::{EvaluationPoint, Operations, StoreError};

/// What the HTTP side reads: latest evaluations, readiness, metrics, the store.
pub struct ServiceState {
    pub latest: Latest,
    pub metrics: Metrics,
    pub store: Arc<SqlStore>,
    /// burnguard's own Kubernetes user, whose changes the admission webhook always allows.
    pub service_account: String,
    pub api_auth: ApiAuth,
    pub webhook_auth: WebhookAuth,
    /// How long a whole request may take before it is answered 408.
    pub request_timeout: std::time::Duration,
    /// The Prometheus the UI's backtests read (the one `serve` evaluates against).
    pub prometheus: Option<crate::adapters::prometheus::Prometheus>,
    /// Names of the loaded SLOs (alerts naming one attach to its incident).
    /// SLO name -> its groupBy labels.
    slo_names: RwLock<Arc<SloNames>>,
    /// The loaded SLOs, as the UI shows their policy, rules and labels.
    slos: RwLock<Arc<LoadedSlos>>,
    readiness: RwLock<Readiness>,
}

/// The loaded SLOs' names, each with its `groupBy` labels (none for an ungrouped SLO).
pub type SloNames = std::collections::HashMap<String, Vec<String>>;

/// The loaded SLOs: the evaluation loop's own list (shared, not copied: at 100,000 SLOs a
/// copy is tens of megabytes), and where each name is in it.
#[derive(Default)]
struct LoadedSlos {
    slos: Arc<Vec<Slo>>,
    by_name: std::collections::HashMap<String, usize>,
}

impl LoadedSlos {
    fn get(&self, name: &str) -> Option<&Slo> {
        self.by_name.get(name).map(|&i| &self.slos[i])
    }
}

#[derive(Debug, Default, Clone)]
pub struct Readiness {
    pub policies_loaded: bool,
    /// `None` until the first cycle with queries; then whether any query got an answer.
    pub reached_prometheus: Option<bool>,
}

impl ServiceState {
    pub fn new(store: Arc<SqlStore>, service_account: String) -> Self {
        let latest: Latest = Arc::new(RwLock::new(BTreeMap::new()));
        Self {
            metrics: Metrics::new(latest.clone()),
            latest,
            store,
            service_account,
            api_auth: ApiAuth::default(),
            webhook_auth: WebhookAuth::default(),
            request_timeout: crate::http::DEFAULT_REQUEST_TIMEOUT,
            prometheus: None,
            slo_names: RwLock::default(),
            slos: RwLock::new(Arc::default()),
            readiness: RwLock::new(Readiness::default()),
        }
    }

    /// The loaded SLOs' names, each with its `groupBy` labels (none for an ungrouped SLO).
    pub fn slo_names(&self) -> Arc<SloNames> {
        self.slo_names.read().map(|n| n.clone()).unwrap_or_default()
    }

    pub fn set_slo_names(&self, names: impl IntoIterator<Item = (String, Vec<String>)>) {
        if let Ok(mut current) = self.slo_names.write() {
            *current = Arc::new(names.into_iter().collect());
        }
    }

    /// Keeps the loaded SLOs (and their names) for the pages that show them: the list itself,
    /// shared with whoever else holds it.
    pub fn set_slos(&self, slos: Arc<Vec<Slo>>) {
        self.set_slo_names(slos.iter().map(|s| (s.name.clone(), s.group_by.clone())));
        let by_name = slos
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        if let Ok(mut current) = self.slos.write() {
            *current = Arc::new(LoadedSlos { slos, by_name });
        }
    }

    /// A loaded SLO.
    pub fn slo(&self, name: &str) -> Option<Slo> {
        let loaded = self.slos.read().ok()?.clone();
        loaded.get(name).cloned()
    }

    /// Every loaded SLO's `metadata.labels`, by name.
    pub fn slo_labels(&self) -> std::collections::HashMap<String, BTreeMap<String, String>> {
        let Some(loaded) = self.slos.read().ok().map(|s| s.clone()) else {
            return Default::default();
        };
        loaded
            .slos
            .iter()
            .map(|slo| (slo.name.clone(), slo.labels.to_map()))
            .collect()
    }

    /// Every SLO's latest evaluation, by key: this replica's own where it has one (the store
    /// keeps the latest state only at the history's resolution and on each change of status,
    /// so this replica's memory is fresher), the store's for the SLOs this replica has not
    /// evaluated since it started (or that another replica evaluates).
    pub async fn latest_points(&self) -> Result<Vec<EvaluationPoint>, StoreError> {
        let stored = self.store.latest_evaluations().await?;
        let mut points: BTreeMap<String, EvaluationPoint> =
            stored.into_iter().map(|p| (p.slo.clone(), p)).collect();
        let own: Vec<(String, LatestEvaluation)> = match self.latest.read() {
            Ok(guard) => guard.iter().map(|(k, l)| (k.clone(), l.clone())).collect(),
            Err(poisoned) => poisoned
                .into_inner()
                .iter()
                .map(|(k, l)| (k.clone(), l.clone()))
                .collect(),
        };
        for (key, latest) in own {
            let e = &latest.evaluation;
            points.insert(
                key.clone(),
                EvaluationPoint {
                    slo: key,
                    evaluated_at: latest.at,
                    status: e.status.as_str().to_string(),
                    error_budget_remaining: e.error_budget_remaining,
                    // A derived Serialize of plain data does not fail.
                    snapshot: serde_json::to_value(e.as_ref()).unwrap_or_default(),
                },
            );
        }
        Ok(points.into_values().collect())
    }

    /// `Ok` when policies are loaded and the last cycle reached Prometheus.
    pub fn readiness(&self) -> Result<(), String> {
        let r = self.readiness.read().map(|r| r.clone()).unwrap_or_default();
        match (r.policies_loaded, r.reached_prometheus) {
            (false, _) => Err("policies not loaded".into()),
            (true, None) => Err("no evaluation cycle has run yet".into()),
            (true, Some(false)) => {
                Err("the last evaluation cycle could not reach Prometheus".into())
            }
            (true, Some(true)) => Ok(()),
        }
    }

    pub fn set_readiness(&self, update: impl FnOnce(&mut Readiness)) {
        if let Ok(mut r) = self.readiness.write() {
            update(&mut r);
        }
    }
}
