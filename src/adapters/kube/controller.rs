//! The Kubernetes controller behind `serve --kubernetes`: watches `ServiceLevelObjective` and
//! `Playbook` objects (kube-runtime `Controller`: a reflector cache, a watcher that backs off
//! and lists again after `410 Gone`, bookmarks), and for each SLO object
//! 1. reads its spec the way a policy file is read, and hands the valid ones to the service,
//!    beside the files' policies (a name a file or an older object holds is a `NameConflict`
//!    on the newer object, never a crash);
//! 2. server-side applies its `PrometheusRule` (owned by the SLO, so Kubernetes deletes it
//!    with the SLO), or says in a condition why not;
//! 3. writes its `status` by server-side apply when something changed (numbers at most once
//!    per status interval), and publishes Events for what the change tells;
//! 4. holds a finalizer, so that deleting the SLO lifts its freezes and resolves its incident
//!    before the object goes.
//!
//! An edit that makes an object invalid keeps the last valid version running (as a rejected
//! file reload keeps the old files) and says why in the status; the next valid edit replaces
//! it in place. Objects whose stored form does not even decode are reported the same way:
//! the controller watches them untyped, so one bad object never stops the list.
//!
//! Owns: the watch, the API calls and their bodies. Must not touch: what a status should say
//! (`domain::cluster` decides), what an SLO means (`domain::validate`), the service's state
//! (through `ports::ClusterHost`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as Finalizer, finalizer};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::FIELD_MANAGER;
use crate::domain::cluster::{
    self, Claim, EventType, ObjectEvent, ObjectPolicy, Owner, PlaybookStatus, RulesOutcome,
    SloStatus, StatusFacts, StatusWrite, Validity,
};
use crate::domain::problem::Problem;
use crate::ports::{ClusterHost, ClusterPolicies};

/// Which objects this controller reconciles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Empty: every namespace.
    pub namespaces: Vec<String>,
    /// A label selector (`team=checkout`), as `kubectl -l` takes it.
    pub selector: Option<String>,
}

/// How the controller behaves.
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// How often a number-only status change may be written per object.
    pub status_interval: Duration,
    /// How often each object is reconciled without a watch event, to carry the latest
    /// evaluation into its status.
    pub refresh: Duration,
    /// Server-side apply a `PrometheusRule` per SLO.
    pub prometheus_rules: bool,
    /// This replica's name in Events' `reportingInstance`.
    pub instance: String,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        Self {
            status_interval: Duration::from_secs(300),
            refresh: Duration::from_secs(30),
            prometheus_rules: true,
            instance: "burnguard".into(),
        }
    }
}

/// Why one reconcile failed. The object is retried with its own backoff; others go on.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<ControllerError>>),
    #[error("cleaning up after the SLO failed: {0}")]
    Cleanup(String),
    #[error("reading the SLO's facts failed: {0}")]
    Facts(String),
    #[error("the object has no namespace or name")]
    Unnamed,
}

impl ControllerError {
    /// A short label for `/metrics`.
    pub fn label(&self) -> &'static str {
        match self {
            ControllerError::Kube(_) => "kube_api",
            ControllerError::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.label(),
                _ => "finalizer",
            },
            ControllerError::Cleanup(_) => "cleanup",
            ControllerError::Facts(_) => "facts",
            ControllerError::Unnamed => "unnamed",
        }
    }
}

/// The `burnguard.dev/v1` kinds, as the untyped API addresses them.
pub fn slo_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(cluster::GROUP, cluster::VERSION, "ServiceLevelObjective"),
        "servicelevelobjectives",
    )
}

pub fn playbook_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(cluster::GROUP, cluster::VERSION, "Playbook"),
        "playbooks",
    )
}

fn prometheus_rule_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "PrometheusRule"),
        "prometheusrules",
    )
}

/// One object's last reading.
#[derive(Clone, Debug)]
struct Entry {
    claim: Claim,
    /// What the reading was made from: the object's uid, generation (which moves with its
    /// spec) and labels. The same again is not read again (a refresh costs no parsing).
    read_from: (Option<String>, Option<i64>, BTreeMap<String, String>),
    /// What that reading found.
    current: Result<(), Vec<Problem>>,
    /// The latest valid version: what is evaluated while a later edit is invalid.
    last_valid: Option<ObjectPolicy>,
}

/// The objects read so far, by `namespace/name`, with an index by the policy name they claim
/// (so who holds a name is found among its few claimants, not among thousands of objects).
#[derive(Default)]
struct Registry {
    entries: BTreeMap<String, Entry>,
    by_name: HashMap<String, std::collections::BTreeSet<String>>,
}

impl Registry {
    fn insert(&mut self, key: String, entry: Entry) {
        self.remove(&key);
        self.by_name
            .entry(entry.claim.name.clone())
            .or_default()
            .insert(key.clone());
        self.entries.insert(key, entry);
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if let Some(keys) = self.by_name.get_mut(&entry.claim.name) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_name.remove(&entry.claim.name);
            }
        }
        Some(entry)
    }

    fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keeps only the objects whose key `keep` accepts.
    fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self.entries.keys().filter(|k| !keep(k)).cloned().collect();
        for key in gone {
            self.remove(&key);
        }
    }

    /// The valid claims on `name`.
    fn claims_on(&self, name: &str) -> Vec<Claim> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|k| self.entries.get(k))
            .filter(|e| e.last_valid.is_some())
            .map(|e| e.claim.clone())
            .collect()
    }
}

/// Shared by every reconcile of one controller run.
pub struct Context<H> {
    client: Client,
    host: Arc<H>,
    settings: ControllerSettings,
    recorder: Recorder,
    now: fn() -> i64,
    slos: Mutex<Registry>,
    playbooks: Mutex<Registry>,
    published: Mutex<Option<ClusterPolicies>>,
    /// When each object's status was last written (unix seconds).
    last_write: Mutex<HashMap<String, i64>>,
    /// The SLO whose rules were last applied for each object (with the object's uid), so an
    /// unchanged SLO costs neither the API server nor rule generation on each refresh.
    applied_rules: Mutex<HashMap<String, (String, crate::domain::policy::Slo)>>,
    /// Until when the Prometheus Operator's CRD is taken to be missing.
    operator_missing_until: Mutex<Option<i64>>,
    /// Consecutive failures per object, for its backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// While the controllers run, hand-overs to the service are batched (a start lists
    /// thousands of objects; one hand-over each would copy the whole set thousands of times).
    batching: std::sync::atomic::AtomicBool,
    publish_wanted: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn wall_clock() -> i64 {
    chrono::Utc::now().timestamp()
}

impl<H: ClusterHost> Context<H> {
    pub fn new(client: Client, host: Arc<H>, settings: ControllerSettings) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "burnguard".into(),
                instance: Some(settings.instance.clone()),
            },
        );
        Self {
            client,
            host,
            settings,
            recorder,
            now: wall_clock,
            slos: Mutex::default(),
            playbooks: Mutex::default(),
            published: Mutex::default(),
            last_write: Mutex::default(),
            applied_rules: Mutex::default(),
            operator_missing_until: Mutex::default(),
            failures: Mutex::default(),
            batching: std::sync::atomic::AtomicBool::new(false),
            publish_wanted: tokio::sync::Notify::new(),
        }
    }

    /// Hands the accepted policies to the service: now, or within the batching delay while
    /// the controllers run.
    fn request_publish(&self) {
        if self.batching.load(std::sync::atomic::Ordering::SeqCst) {
            self.publish_wanted.notify_one();
        } else {
            self.publish();
        }
    }

    /// A fixed clock, for tests.
    pub fn with_clock(mut self, now: fn() -> i64) -> Self {
        self.now = now;
        self
    }

    /// Works out who holds each name and hands the service the policies that do, when that
    /// changed.
    fn publish(&self) {
        let files = self.host.file_names();
        let slos = accepted(&lock(&self.slos), &files.slos, |p| match p {
            ObjectPolicy::Slo(slo) => Some((slo.name.clone(), (**slo).clone())),
            ObjectPolicy::Playbook(_) => None,
        });
        let playbooks = accepted(&lock(&self.playbooks), &files.playbooks, |p| match p {
            ObjectPolicy::Playbook(book) => Some((book.name.clone(), (**book).clone())),
            ObjectPolicy::Slo(_) => None,
        });
        let policies = ClusterPolicies { slos, playbooks };
        let mut published = lock(&self.published);
        if published.as_ref() != Some(&policies) {
            info!(
                slos = policies.slos.len(),
                playbooks = policies.playbooks.len(),
                "cluster policies changed"
            );
            self.host.set_cluster_policies(policies.clone());
            *published = Some(policies);
        }
    }

    /// Who holds `key`'s name: `None` when the object itself does. Only the claims on that
    /// name are weighed, so this stays cheap with thousands of objects.
    fn holder(&self, is_slo: bool, key: &str) -> Option<String> {
        let files = self.host.file_names();
        let (entries, names) = if is_slo {
            (lock(&self.slos), files.slos)
        } else {
            (lock(&self.playbooks), files.playbooks)
        };
        let name = entries.get(key)?.claim.name.clone();
        let claims = entries.claims_on(&name);
        cluster::name_holders(&names, &claims).remove(key).flatten()
    }

    /// Forgets objects that are gone from every watched cache (deleted without the
    /// finalizer, or out of scope after a namespace or selector change).
    fn sweep(
        &self,
        present_slos: &std::collections::HashSet<String>,
        present_playbooks: &std::collections::HashSet<String>,
    ) {
        let before = (lock(&self.slos).len(), lock(&self.playbooks).len());
        lock(&self.slos).retain(|key| present_slos.contains(key));
        lock(&self.playbooks).retain(|key| present_playbooks.contains(key));
        if before != (lock(&self.slos).len(), lock(&self.playbooks).len()) {
            debug!("forgot objects no longer watched");
            self.publish();
        }
    }

    async fn publish_events(
        &self,
        object: &DynamicObject,
        resource: &ApiResource,
        events: Vec<ObjectEvent>,
    ) {
        let reference = object.object_ref(resource);
        for e in events {
            let event = KubeEvent {
                type_: match e.type_ {
                    EventType::Normal => KubeEventType::Normal,
                    EventType::Warning => KubeEventType::Warning,
                },
                reason: e.reason.clone(),
                note: Some(e.note.clone()),
                action: e.action.clone(),
                secondary: None,
            };
            if let Err(error) = self.recorder.publish(&event, &reference).await {
                // An Event is a courtesy: the status already says it.
                warn!(%error, reason = %e.reason, "publishing a Kubernetes Event failed");
            }
        }
    }
}

fn holders(
    entries: &Registry,
    file_names: &std::collections::BTreeSet<String>,
) -> BTreeMap<String, Option<String>> {
    let claims: Vec<Claim> = entries
        .entries
        .values()
        .filter(|e| e.last_valid.is_some())
        .map(|e| e.claim.clone())
        .collect();
    cluster::name_holders(file_names, &claims)
}

fn accepted<T>(
    entries: &Registry,
    file_names: &std::collections::BTreeSet<String>,
    pick: impl Fn(&ObjectPolicy) -> Option<(String, T)>,
) -> BTreeMap<String, T> {
    let holders = holders(entries, file_names);
    entries
        .entries
        .iter()
        .filter(|(key, _)| matches!(holders.get(*key), Some(None)))
        .filter_map(|(_, e)| e.last_valid.as_ref().and_then(&pick))
        .collect()
}

fn key_of(object: &DynamicObject) -> Result<(String, String, String), ControllerError> {
    let namespace = object.namespace().ok_or(ControllerError::Unnamed)?;
    let name = object
        .metadata
        .name
        .clone()
        .ok_or(ControllerError::Unnamed)?;
    Ok((format!("{namespace}/{name}"), namespace, name))
}

fn claim_of(object: &DynamicObject, key: &str, name: &str) -> Claim {
    Claim {
        created: object
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(i64::MAX),
        key: key.to_string(),
        name: name.to_string(),
    }
}

/// Reads the object's spec and records it; returns what the current generation says.
fn read_into(
    entries: &Mutex<Registry>,
    object: &DynamicObject,
    is_slo: bool,
) -> Result<(String, Result<(), Vec<Problem>>), ControllerError> {
    let (key, _, name) = key_of(object)?;
    let labels: BTreeMap<String, String> = object.labels().clone().into_iter().collect();
    let read_from = (
        object.metadata.uid.clone(),
        object.metadata.generation,
        labels.clone(),
    );
    let mut entries = lock(entries);
    if let Some(known) = entries.get(&key)
        && known.read_from == read_from
        && read_from.1.is_some()
    {
        return Ok((key, known.current.clone()));
    }
    let read = cluster::read_object(is_slo, &name, &labels, object.data.get("spec"));
    let previous = entries.remove(&key);
    let (current, last_valid) = match read {
        Ok(policy) => (Ok(()), Some(policy)),
        Err(problems) => (Err(problems), previous.and_then(|e| e.last_valid)),
    };
    entries.insert(
        key.clone(),
        Entry {
            claim: claim_of(object, &key, &name),
            read_from,
            current: current.clone(),
            last_valid,
        },
    );
    Ok((key, current))
}

/// Reconciles one SLO object (through the finalizer helper: add it first, clean up on
/// delete, remove it last).
pub async fn reconcile_slo<H: ClusterHost>(
    object: Arc<DynamicObject>,
    ctx: Arc<Context<H>>,
) -> Result<Action, ControllerError> {
    let started = Instant::now();
    let namespace = object.namespace().ok_or(ControllerError::Unnamed)?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &namespace, &slo_resource());
    let result = finalizer(&api, cluster::FINALIZER, object, |event| async {
        match event {
            Finalizer::Apply(object) => apply_slo(&object, &ctx).await,
            Finalizer::Cleanup(object) => cleanup_slo(&object, &ctx).await,
        }
    })
    .await
    .map_err(|e| ControllerError::Finalizer(Box::new(e)));
    finish(&ctx, "ServiceLevelObjective", started, result)
}

fn finish<H: ClusterHost, T>(
    ctx: &Context<H>,
    kind: &str,
    started: Instant,
    result: Result<T, ControllerError>,
) -> Result<T, ControllerError> {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    ctx.host
        .reconciled(kind, outcome, started.elapsed().as_secs_f64());
    result
}

async fn apply_slo<H: ClusterHost>(
    object: &DynamicObject,
    ctx: &Context<H>,
) -> Result<Action, ControllerError> {
    let (key, current) = read_into(&ctx.slos, object, true)?;
    let (_, namespace, object_name) = key_of(object)?;
    ctx.request_publish();
    let holder = ctx.holder(true, &key);
    let last_valid = lock(&ctx.slos).get(&key).and_then(|e| e.last_valid.clone());
    let slo = match (&holder, last_valid) {
        (None, Some(ObjectPolicy::Slo(slo))) => Some(*slo),
        _ => None,
    };
    let validity = match (&current, &holder) {
        (Err(problems), _) => Validity::Invalid(problems.clone()),
        (Ok(()), Some(holder)) => Validity::NameTaken {
            holder: holder.clone(),
        },
        (Ok(()), None) => Validity::Valid,
    };
    let now = (ctx.now)();
    let rules = match &slo {
        None => RulesOutcome::NotAttempted,
        Some(_) if !ctx.settings.prometheus_rules => RulesOutcome::Disabled,
        Some(slo) => {
            let owner = Owner {
                name: object_name.clone(),
                uid: object.metadata.uid.clone().unwrap_or_default(),
            };
            apply_rules(ctx, &key, &namespace, slo, &owner, now).await
        }
    };
    let facts = match &slo {
        Some(slo) => ctx
            .host
            .slo_facts(&slo.name)
            .await
            .map_err(ControllerError::Facts)?,
        None => Default::default(),
    };
    let facts = StatusFacts {
        generation: object.metadata.generation,
        validity,
        rules,
        evaluation: facts.evaluation,
        open_incident: facts.open_incident,
        freezes: facts.freezes,
        last_action: facts.last_action,
    };
    let current_status: Option<SloStatus> = object
        .data
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    let desired = cluster::desired_slo_status(&facts, current_status.as_ref(), now);
    let last_write = lock(&ctx.last_write).get(&key).copied();
    let interval = ctx.settings.status_interval.as_secs() as i64;
    let mut requeue = ctx.settings.refresh;
    match cluster::status_write(current_status.as_ref(), &desired, last_write, now, interval) {
        StatusWrite::Unchanged => {}
        StatusWrite::At(at) => {
            requeue = requeue.min(Duration::from_secs((at - now).max(1) as u64));
        }
        StatusWrite::Now => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), &namespace, &slo_resource());
            write_status(&api, &object_name, "ServiceLevelObjective", &desired).await?;
            lock(&ctx.last_write).insert(key.clone(), now);
            let events = cluster::status_events(current_status.as_ref(), &desired);
            ctx.publish_events(object, &slo_resource(), events).await;
        }
    }
    lock(&ctx.failures).remove(&key);
    Ok(Action::requeue(requeue))
}

/// The status subresource, by server-side apply under burnguard's field manager, forced
/// (burnguard alone writes these fields), with every field burnguard owns.
async fn write_status<T: serde::Serialize>(
    api: &Api<DynamicObject>,
    name: &str,
    kind: &str,
    status: &T,
) -> Result<(), ControllerError> {
    let body = json!({
        "apiVersion": format!("{}/{}", cluster::GROUP, cluster::VERSION),
        "kind": kind,
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await?;
    Ok(())
}

async fn apply_rules<H: ClusterHost>(
    ctx: &Context<H>,
    key: &str,
    namespace: &str,
    slo: &crate::domain::policy::Slo,
    owner: &Owner,
    now: i64,
) -> RulesOutcome {
    if lock(&ctx.operator_missing_until).is_some_and(|until| now < until) {
        return RulesOutcome::OperatorMissing;
    }
    let applied = (owner.uid.clone(), slo.clone());
    if lock(&ctx.applied_rules).get(key) == Some(&applied) {
        return RulesOutcome::Applied;
    }
    let body = cluster::prometheus_rule(slo, namespace, owner);
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), namespace, &prometheus_rule_resource());
    let name = cluster::prometheus_rule_name(&owner.name);
    match api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
    {
        Ok(_) => {
            lock(&ctx.applied_rules).insert(key.to_string(), applied);
            RulesOutcome::Applied
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {
            // The resource type itself is missing: look again in five minutes, in case
            // the operator is installed meanwhile.
            *lock(&ctx.operator_missing_until) = Some(now + 300);
            RulesOutcome::OperatorMissing
        }
        Err(error) => {
            warn!(object = key, %error, "applying the PrometheusRule failed");
            RulesOutcome::Failed(format!(
                "applying PrometheusRule {namespace}/{name} failed: {error}"
            ))
        }
    }
}

async fn cleanup_slo<H: ClusterHost>(
    object: &DynamicObject,
    ctx: &Context<H>,
) -> Result<Action, ControllerError> {
    let (key, _, name) = key_of(object)?;
    // The SLO's name is the object's name, valid spec or not; after a restart the object may
    // not have been read yet, so the claim is worked out from the object itself. Only the
    // object that holds the name speaks for the SLO: a duplicate's deletion must not resolve
    // the holder's incident, nor a file SLO's.
    let files = ctx.host.file_names();
    let mut claims: Vec<Claim> = lock(&ctx.slos)
        .claims_on(&name)
        .into_iter()
        .filter(|c| c.key != key)
        .collect();
    claims.push(claim_of(object, &key, &name));
    let holds = matches!(
        cluster::name_holders(&files.slos, &claims).get(&key),
        Some(None)
    );
    if holds {
        info!(object = %key, slo = %name, "SLO object deleted: lifting its freezes and resolving its incident");
        ctx.host
            .slo_deleted(&name)
            .await
            .map_err(ControllerError::Cleanup)?;
    }
    lock(&ctx.slos).remove(&key);
    lock(&ctx.last_write).remove(&key);
    lock(&ctx.applied_rules).remove(&key);
    ctx.request_publish();
    Ok(Action::await_change())
}

/// Reconciles one Playbook object: read, record, status.
pub async fn reconcile_playbook<H: ClusterHost>(
    object: Arc<DynamicObject>,
    ctx: Arc<Context<H>>,
) -> Result<Action, ControllerError> {
    let started = Instant::now();
    let result = apply_playbook(&object, &ctx).await;
    finish(&ctx, "Playbook", started, result)
}

async fn apply_playbook<H: ClusterHost>(
    object: &DynamicObject,
    ctx: &Context<H>,
) -> Result<Action, ControllerError> {
    let (key, current) = read_into(&ctx.playbooks, object, false)?;
    let (_, namespace, name) = key_of(object)?;
    ctx.request_publish();
    let holder = ctx.holder(false, &key);
    let validity = match (&current, holder) {
        (Err(problems), _) => Validity::Invalid(problems.clone()),
        (Ok(()), Some(holder)) => Validity::NameTaken { holder },
        (Ok(()), None) => Validity::Valid,
    };
    let current_status: Option<PlaybookStatus> = object
        .data
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    let desired = cluster::desired_playbook_status(
        object.metadata.generation,
        &validity,
        current_status.as_ref(),
        (ctx.now)(),
    );
    if current_status.as_ref() != Some(&desired) {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &namespace, &playbook_resource());
        write_status(&api, &name, "Playbook", &desired).await?;
        let was_valid = current_status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == cluster::VALID))
            .map(|c| (c.status.clone(), c.message.clone()));
        if let Some(valid) = desired
            .conditions
            .iter()
            .find(|c| c.type_ == cluster::VALID)
            && valid.status == "False"
            && was_valid != Some((valid.status.clone(), valid.message.clone()))
        {
            let event = ObjectEvent {
                type_: EventType::Warning,
                reason: valid.reason.clone(),
                action: "Validate".into(),
                note: valid.message.clone(),
            };
            ctx.publish_events(object, &playbook_resource(), vec![event])
                .await;
        }
    }
    lock(&ctx.failures).remove(&key);
    Ok(Action::requeue(ctx.settings.refresh))
}

/// Retries a failed object with its own exponential backoff (5 s doubling to 5 min), so
/// one broken object never slows the others.
pub fn error_policy<H: ClusterHost>(
    object: Arc<DynamicObject>,
    error: &ControllerError,
    ctx: Arc<Context<H>>,
) -> Action {
    let key = key_of(&object).map(|(k, _, _)| k).unwrap_or_default();
    let failures = {
        let mut all = lock(&ctx.failures);
        let n = all.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = retry_delay(failures);
    warn!(object = %key, failures, retry_in = ?delay, %error, "reconcile failed");
    Action::requeue(delay)
}

/// 5 s, 10 s, 20 s, ... at most 5 minutes.
pub fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_secs(5u64.saturating_mul(1 << exponent)).min(Duration::from_secs(300))
}

fn watcher_config(scope: &Scope) -> watcher::Config {
    let config = watcher::Config::default();
    match &scope.selector {
        Some(selector) if !selector.trim().is_empty() => config.labels(selector),
        _ => config,
    }
}

/// One `Api` per watched namespace, or one for the whole cluster.
fn apis(client: &Client, scope: &Scope, resource: &ApiResource) -> Vec<Api<DynamicObject>> {
    if scope.namespaces.is_empty() {
        vec![Api::all_with(client.clone(), resource)]
    } else {
        scope
            .namespaces
            .iter()
            .map(|ns| Api::namespaced_with(client.clone(), ns, resource))
            .collect()
    }
}

type Running = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// One kind's controller on one `Api`: its cache, and the run to poll until `stop`.
fn watch_kind<H, F, Fut>(
    ctx: &Arc<Context<H>>,
    api: Api<DynamicObject>,
    wc: &watcher::Config,
    resource: ApiResource,
    reconcile: F,
    stop: &CancellationToken,
) -> (Store<DynamicObject>, Running)
where
    H: ClusterHost,
    F: FnMut(Arc<DynamicObject>, Arc<Context<H>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Action, ControllerError>> + Send + 'static,
{
    let kind = resource.kind.clone();
    let controller = Controller::new_with(api, wc.clone(), resource);
    let store = controller.store();
    let stop = stop.clone();
    let run = controller
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, ctx.clone())
        .for_each(move |result| {
            let kind = kind.clone();
            async move {
                // Per-object failures are counted and retried by error_policy; this is the
                // runtime's own report of them (and of watch errors, which it retries).
                if let Err(error) = result {
                    debug!(%error, kind, "controller");
                }
            }
        });
    (store, Box::pin(run))
}

/// Runs the controllers for `scope` until `stop` is cancelled.
pub async fn run_scope<H: ClusterHost>(
    ctx: Arc<Context<H>>,
    scope: Scope,
    stop: CancellationToken,
) {
    info!(namespaces = ?scope.namespaces, selector = ?scope.selector, "watching ServiceLevelObjective and Playbook objects");
    let wc = watcher_config(&scope);
    let mut runs = Vec::new();
    let mut slo_stores: Vec<Store<DynamicObject>> = Vec::new();
    let mut playbook_stores: Vec<Store<DynamicObject>> = Vec::new();
    for api in apis(&ctx.client, &scope, &slo_resource()) {
        let (store, run) = watch_kind(&ctx, api, &wc, slo_resource(), reconcile_slo, &stop);
        slo_stores.push(store);
        runs.push(run);
    }
    for api in apis(&ctx.client, &scope, &playbook_resource()) {
        let (store, run) = watch_kind(
            &ctx,
            api,
            &wc,
            playbook_resource(),
            reconcile_playbook,
            &stop,
        );
        playbook_stores.push(store);
        runs.push(run);
    }
    ctx.batching
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let publisher = {
        let (ctx, stop) = (ctx.clone(), stop.clone());
        async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ctx.publish_wanted.notified() => {}
                }
                // Gather what else arrives meanwhile into the same hand-over.
                tokio::time::sleep(PUBLISH_BATCH).await;
                ctx.publish();
            }
        }
    };
    let sweeper = {
        let (ctx, stop) = (ctx.clone(), stop.clone());
        async move {
            for store in slo_stores.iter().chain(&playbook_stores) {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = store.wait_until_ready() => {}
                }
            }
            loop {
                let keys = |stores: &[Store<DynamicObject>]| -> std::collections::HashSet<String> {
                    stores
                        .iter()
                        .flat_map(|s| s.state())
                        .filter_map(|o| key_of(&o).ok().map(|(k, _, _)| k))
                        .collect()
                };
                ctx.sweep(&keys(&slo_stores), &keys(&playbook_stores));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(ctx.settings.refresh) => {}
                }
            }
        }
    };
    tokio::join!(futures_util::future::join_all(runs), sweeper, publisher);
    ctx.batching
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // What the last batch held is handed over before the controllers go.
    ctx.publish();
}

/// How long hand-overs to the service are gathered while the controllers run.
const PUBLISH_BATCH: Duration = Duration::from_millis(100);

/// Runs the controllers until `shutdown`, starting them again for a new scope whenever
/// `scope` changes (a namespace list or selector changed on reload).
pub async fn run<H: ClusterHost>(
    ctx: Arc<Context<H>>,
    mut scope: tokio::sync::watch::Receiver<Scope>,
    shutdown: CancellationToken,
) {
    loop {
        let current = scope.borrow_and_update().clone();
        let stop = shutdown.child_token();
        let running = run_scope(ctx.clone(), current, stop.clone());
        tokio::pin!(running);
        tokio::select! {
            _ = &mut running => {
                if shutdown.is_cancelled() {
                    return;
                }
            }
            changed = scope.changed() => {
                stop.cancel();
                running.await;
                if changed.is_err() || shutdown.is_cancelled() {
                    return;
                }
                info!("the controller's namespaces or selector changed; watching anew");
                continue;
            }
        }
        // The controllers ended on their own (shutdown): done.
        return;
    }
}

/// Connects to the cluster (in-cluster config or kubeconfig), checks that the
/// `burnguard.dev` CRDs are installed, and runs the controllers in the background.
pub async fn start<H: ClusterHost>(
    host: Arc<H>,
    settings: ControllerSettings,
    scope: tokio::sync::watch::Receiver<Scope>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let client = Client::try_default()
        .await
        .map_err(|e| format!("no Kubernetes configuration (in-cluster or kubeconfig): {e}"))?;
    // Probe where the controller will list: one namespace it watches, or the whole cluster.
    let first_namespace = scope.borrow().namespaces.first().cloned();
    let probe: Api<DynamicObject> = match &first_namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &slo_resource()),
        None => Api::all_with(client.clone(), &slo_resource()),
    };
    if let Err(error) = probe.list(&kube::api::ListParams::default().limit(1)).await {
        return Err(format!(
            "cannot list ServiceLevelObjective objects ({error}); install the CRDs with `burnguard crds | kubectl apply -f -` and check burnguard's RBAC"
        ));
    }
    let ctx = Arc::new(Context::new(client, host, settings));
    tokio::spawn(run(ctx, scope, shutdown));
    Ok(())
}
