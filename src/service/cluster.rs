//! The service's side of `serve --kubernetes`: what the controller asks of the running
//! service ([`ClusterHost`]), answered from the latest evaluations, the store and the
//! remediator; and how the cluster's policies join the files' ([`merge`]).
//!
//! Owns: that glue. Must not touch: the watch and the API calls (`adapters::kube::controller`)
//! or what a status says (`domain::cluster`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use tokio::sync::watch;
use tracing::info;

use crate::adapters::actuator::Actuators;
use crate::adapters::prometheus::Prometheus;
use crate::adapters::store::SqlStore;
use crate::domain::cluster::{EvaluationFacts, HeldFreeze, LastAction};
use crate::domain::playbook::Playbook;
use crate::domain::policy::Slo;
use crate::engine::remediate::Remediator;
use crate::http::state::ServiceState;
use crate::ports::{ClusterHost, ClusterPolicies, FileNames, Freezes, Operations, SloFacts, Store};

/// How long the freezes and incidents read for statuses are reused: every SLO object's refresh
/// asks for its own, and thousands of objects must not mean thousands of reads.
const FACTS_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Who lifts and resolves when an SLO object is deleted, on timelines.
const ACTOR: &str = "burnguard";

pub struct ServiceHost {
    pub state: Arc<ServiceState>,
    pub store: Arc<SqlStore>,
    pub remediator: Arc<Remediator<SqlStore, Actuators, Prometheus>>,
    file_names: RwLock<FileNames>,
    evaluated_at: RwLock<BTreeMap<String, i64>>,
    /// The accepted objects' policies, shared: the merge reads them on its own thread without
    /// copying them under the channel's lock.
    cluster: watch::Sender<Arc<ClusterPolicies>>,
    /// The active freezes, read at most once per [`FACTS_TTL`].
    freezes: Recent<Vec<crate::ports::FreezeRecord>>,
    /// The unresolved incidents by SLO, read the same way.
    unresolved: Recent<Unresolved>,
}

/// A value read from the store, reused for [`FACTS_TTL`].
struct Recent<T>(tokio::sync::Mutex<Option<(std::time::Instant, T)>>);

impl<T: Clone> Recent<T> {
    fn new() -> Self {
        Self(tokio::sync::Mutex::new(None))
    }

    /// The value read less than [`FACTS_TTL`] ago, or `load`'s.
    async fn get<Fut>(&self, load: impl FnOnce() -> Fut) -> Result<T, String>
    where
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let mut cached = self.0.lock().await;
        if let Some((at, value)) = cached.as_ref()
            && at.elapsed() < FACTS_TTL
        {
            return Ok(value.clone());
        }
        let value = load().await?;
        *cached = Some((std::time::Instant::now(), value.clone()));
        Ok(value)
    }

    /// The next `get` reads again.
    async fn forget(&self) {
        *self.0.lock().await = None;
    }
}

type Unresolved = BTreeMap<String, crate::ports::IncidentRecord>;

/// The keys of `slo`'s records: its name, then `name{...}` for each group of a grouped SLO
/// (contiguous in a map ordered by key).
fn keys_of<'a, V>(
    map: &'a BTreeMap<String, V>,
    slo: &'a str,
) -> impl Iterator<Item = (&'a String, &'a V)> + 'a {
    let group_prefix = format!("{slo}{{");
    map.get_key_value(slo).into_iter().chain(
        map.range(group_prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&group_prefix)),
    )
}

/// The unresolved incidents of `slo` (one per group of a grouped SLO).
fn of_slo(unresolved: Unresolved, slo: &str) -> impl Iterator<Item = crate::ports::IncidentRecord> {
    let keys: Vec<String> = keys_of(&unresolved, slo).map(|(k, _)| k.clone()).collect();
    let mut unresolved = unresolved;
    keys.into_iter().filter_map(move |k| unresolved.remove(&k))
}

/// An SLO's latest evaluation; for a grouped SLO its worst group (a page before a ticket,
/// then the least budget left), which is what its status shows.
fn latest_of<'a>(
    latest: &'a BTreeMap<String, crate::http::metrics::LatestEvaluation>,
    slo: &'a str,
) -> Option<&'a crate::engine::SloEvaluation> {
    use crate::domain::burn::Status;
    use crate::engine::evaluate::EvalStatus;
    let rank = |e: &crate::engine::SloEvaluation| match e.status {
        EvalStatus::Assessed(Status::Page) => 0,
        EvalStatus::Assessed(Status::Ticket) => 1,
        EvalStatus::Error => 2,
        _ => 3,
    };
    keys_of(latest, slo)
        .map(|(_, e)| e.evaluation.as_ref())
        .min_by(|a, b| {
            rank(a).cmp(&rank(b)).then(
                a.error_budget_remaining
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.error_budget_remaining.unwrap_or(f64::INFINITY)),
            )
        })
}

impl ServiceHost {
    pub fn new(
        state: Arc<ServiceState>,
        store: Arc<SqlStore>,
        remediator: Arc<Remediator<SqlStore, Actuators, Prometheus>>,
    ) -> (Self, watch::Receiver<Arc<ClusterPolicies>>) {
        let (cluster, changes) = watch::channel(Arc::default());
        let host = Self {
            state,
            store,
            remediator,
            file_names: RwLock::default(),
            evaluated_at: RwLock::default(),
            cluster,
            freezes: Recent::new(),
            unresolved: Recent::new(),
        };
        (host, changes)
    }

    /// The files' policies changed (at start or on reload).
    pub fn set_file_names(&self, slos: &[Slo], playbooks: &BTreeMap<String, Playbook>) {
        if let Ok(mut names) = self.file_names.write() {
            *names = FileNames {
                slos: slos.iter().map(|s| s.name.clone()).collect(),
                playbooks: playbooks.keys().cloned().collect(),
            };
        }
    }

    async fn active_freezes(&self) -> Result<Vec<crate::ports::FreezeRecord>, String> {
        self.freezes
            .get(|| async { self.store.active_freezes().await.map_err(|e| e.to_string()) })
            .await
    }

    /// Every unresolved incident (open or acknowledged), by SLO: two reads per
    /// [`FACTS_TTL`] whatever the number of objects asking.
    async fn unresolved(&self) -> Result<Unresolved, String> {
        self.unresolved
            .get(|| async {
                let found = self
                    .store
                    .unresolved_incidents()
                    .await
                    .map_err(|e| e.to_string())?;
                let incidents: Unresolved = found
                    .into_iter()
                    .map(|incident| (incident.slo.clone(), incident))
                    .collect();
                Ok(incidents)
            })
            .await
    }

    /// A cycle evaluated these SLOs at `at`.
    pub fn evaluated(&self, slos: &[Slo], at: i64) {
        if let Ok(mut times) = self.evaluated_at.write() {
            for slo in slos {
                times.insert(slo.name.clone(), at);
            }
        }
    }
}

impl ClusterHost for ServiceHost {
    fn file_names(&self) -> FileNames {
        self.file_names
            .read()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    fn set_cluster_policies(&self, policies: ClusterPolicies) {
        self.cluster.send_replace(Arc::new(policies));
    }

    async fn slo_facts(&self, slo: &str) -> Result<SloFacts, String> {
        let at = self
            .evaluated_at
            .read()
            .ok()
            .and_then(|t| t.get(slo).copied());
        let evaluation = match (self.state.latest.read(), at) {
            (Ok(latest), Some(at)) => latest_of(&latest, slo).map(|e| EvaluationFacts {
                status: e.status.as_str().to_string(),
                budget_remaining: e.error_budget_remaining,
                burn_rates: e
                    .burn_rate
                    .0
                    .iter()
                    .filter_map(|(window, rate)| rate.map(|r| (window.to_string(), r)))
                    .collect(),
                at,
            }),
            _ => None,
        };
        let incident = of_slo(self.unresolved().await?, slo).next();
        let last_action = match &incident {
            Some(incident) => self
                .store
                .incident(incident.id)
                .await
                .map_err(|e| e.to_string())?
                .and_then(|detail| detail.actions.into_iter().max_by_key(|a| a.id))
                .map(|a| LastAction {
                    id: a.id,
                    target: target_of(&a.intent),
                    kind: a.kind,
                    step: a.step,
                    status: a.status,
                }),
            None => None,
        };
        let freezes = self
            .active_freezes()
            .await?
            .into_iter()
            .filter(|f| f.slo.as_deref() == Some(slo))
            .flat_map(|f| {
                let namespace = f.namespace.clone().unwrap_or_default();
                f.deployments
                    .iter()
                    .map(|d| HeldFreeze {
                        namespace: namespace.clone(),
                        deployment: d.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(SloFacts {
            evaluation,
            open_incident: incident.map(|i| i.id),
            freezes,
            last_action,
        })
    }

    async fn slo_deleted(&self, slo: &str) -> Result<(), String> {
        let now = Utc::now().timestamp();
        let freezes = self
            .store
            .active_freezes()
            .await
            .map_err(|e| e.to_string())?;
        for freeze in freezes.iter().filter(|f| f.slo.as_deref() == Some(slo)) {
            self.store
                .lift_freeze(freeze.id, "burnguard (SLO deleted)", now)
                .await
                .map_err(|e| e.to_string())?;
            info!(
                slo,
                freeze = freeze.id,
                "freeze lifted: its SLO was deleted"
            );
        }
        self.freezes.forget().await;
        self.unresolved.forget().await;
        // Takes the marks off the Deployments now rather than on the next cycle.
        self.remediator.reconcile_freezes().await;
        // One SLO has at most one unresolved incident (open or acknowledged).
        // Its incident, or every group's incident of a grouped SLO.
        for incident in of_slo(self.unresolved().await?, slo) {
            self.store
                .resolve_by_hand(incident.id, ACTOR, Some("SLO deleted"), now)
                .await
                .map_err(|e| e.to_string())?;
            info!(
                slo = %incident.slo,
                incident = incident.id,
                "incident resolved: its SLO was deleted"
            );
        }
        self.unresolved.forget().await;
        Ok(())
    }

    fn reconciled(&self, kind: &str, outcome: &str, seconds: f64) {
        self.state.metrics.reconciled(kind, outcome, seconds);
    }
}

/// `namespace/deployment` of a Kubernetes action's intent, when it has one.
fn target_of(intent: &serde_json::Value) -> Option<String> {
    let namespace = intent.get("namespace")?.as_str()?;
    let deployment = intent.get("deployment")?.as_str()?;
    Some(format!("{namespace}/{deployment}"))
}

/// The files' SLOs and playbooks, then the cluster's: a name a file holds stays the file's
/// (the controller has already marked the object `NameConflict`). Linear in both sets: each
/// cluster SLO's name is looked up among the files' by hash, not by a scan of them.
pub fn merge(
    files: (&[Slo], &BTreeMap<String, Playbook>),
    cluster: &ClusterPolicies,
) -> (Vec<Slo>, BTreeMap<String, Playbook>) {
    let file_names: foldhash::HashSet<&str> = files.0.iter().map(|s| s.name.as_str()).collect();
    let mut slos = Vec::with_capacity(files.0.len() + cluster.slos.len());
    slos.extend_from_slice(files.0);
    slos.extend(
        cluster
            .slos
            .iter()
            .filter(|(name, _)| !file_names.contains(name.as_str()))
            .map(|(_, slo)| slo.clone()),
    );
    let mut playbooks = files.1.clone();
    for (name, book) in &cluster.playbooks {
        playbooks
            .entry(name.clone())
            .or_insert_with(|| book.clone());
    }
    (slos, playbooks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo(name: &str, service: &str) -> Slo {
        let yaml = format!(
            "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {{name: {name}}}\nspec:\n  service: {service}\n  objective: 99.9\n  indicator:\n    ratio:\n      errors: sum(rate(e[{{{{.window}}}}]))\n      total: sum(rate(t[{{{{.window}}}}]))\n"
        );
        let (loaded, problems) = crate::policies::parse_source("x.yaml", &yaml);
        assert!(problems.is_empty(), "{problems:?}");
        loaded.into_iter().next().unwrap().slo
    }

    #[test]
    fn the_files_slos_come_first_and_keep_their_names_then_the_clusters_by_name() {
        let files = vec![slo("b", "from-file"), slo("a", "from-file")];
        let cluster = ClusterPolicies {
            slos: [
                ("a".to_string(), slo("a", "from-cluster")),
                ("d".to_string(), slo("d", "from-cluster")),
                ("c".to_string(), slo("c", "from-cluster")),
            ]
            .into_iter()
            .collect(),
            playbooks: BTreeMap::new(),
        };
        let (merged, _) = merge((&files, &BTreeMap::new()), &cluster);
        let names: Vec<(&str, &str)> = merged
            .iter()
            .map(|s| (s.name.as_str(), s.service.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("b", "from-file"),
                ("a", "from-file"),
                ("c", "from-cluster"),
                ("d", "from-cluster"),
            ]
        );
        // Nothing from the cluster alone, nothing from the files alone.
        let (only_files, _) = merge((&files, &BTreeMap::new()), &ClusterPolicies::default());
        assert_eq!(only_files, files);
        let (only_cluster, _) = merge((&[], &BTreeMap::new()), &cluster);
        let names: Vec<&str> = only_cluster.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "c", "d"]);
    }

    #[test]
    fn ten_thousand_cluster_slos_join_ten_thousand_file_slos_each_name_once() {
        let template = slo("t", "from-file");
        let named = |name: String, service: &str| Slo {
            name,
            service: service.into(),
            ..template.clone()
        };
        let files: Vec<Slo> = (0..10_000)
            .map(|i| named(format!("slo-{i}"), "from-file"))
            .collect();
        // Every tenth cluster object takes a file's name; the others are their own.
        let cluster_name = |i: usize| {
            if i.is_multiple_of(10) {
                format!("slo-{i}")
            } else {
                format!("obj-{i}")
            }
        };
        let cluster = ClusterPolicies {
            slos: (0..10_000)
                .map(|i| (cluster_name(i), named(cluster_name(i), "from-cluster")))
                .collect(),
            playbooks: BTreeMap::new(),
        };
        let (merged, _) = merge((&files, &BTreeMap::new()), &cluster);
        assert_eq!(merged.len(), 10_000 + 9_000);
        assert_eq!(&merged[..10_000], &files[..]);
        let mut expected: Vec<String> = (0..10_000)
            .filter(|i: &usize| !i.is_multiple_of(10))
            .map(|i| format!("obj-{i}"))
            .collect();
        expected.sort();
        let joined: Vec<&str> = merged[10_000..].iter().map(|s| s.name.as_str()).collect();
        assert_eq!(joined, expected);
        assert!(merged[10_000..].iter().all(|s| s.service == "from-cluster"));
    }

    #[test]
    fn a_kubernetes_action_names_its_target() {
        let intent = serde_json::json!({"namespace": "shop", "deployment": "checkout"});
        assert_eq!(target_of(&intent).as_deref(), Some("shop/checkout"));
        assert_eq!(target_of(&serde_json::json!({"url": "http://x"})), None);
    }
}
