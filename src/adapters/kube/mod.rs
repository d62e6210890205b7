//! Kubernetes actions through kube-rs, all under one field manager (`burnguard`):
//! - freeze: server-side apply of `burnguard.dev/*` annotations on the target Deployments;
//! - unfreeze: apply again without them, which removes exactly the fields burnguard owns;
//! - rollback, in two steps so the engine can journal what it rolls away from in between
//!   (apps/v1 has no rollback API; this is what `kubectl rollout undo` does, with a safer
//!   choice): `plan_rollback` reads the Deployment and its ReplicaSets and picks the target
//!   with `domain::rollback` (never the current template nor one burnguard rolled away from;
//!   a paused Deployment or a garbage-collected target is refused); `apply_rollback` writes
//!   that ReplicaSet's pod template with a JSON patch that first tests the Deployment is still
//!   at the planned revision, and writes nothing when it already asks for that template;
//! - scale: absolute replicas through the scale subresource.
//!
//! Owns: the API calls and their bodies. Must not touch: when to act (the engine decides).

pub mod controller;
pub mod resources;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::domain::playbook::FreezeTarget;
use crate::domain::rollback::{CurrentRevision, ReplicaSetRevision, choose_target};
use crate::ports::{ActionError, FreezeMarks, PartialFreeze, RollbackPlan, RollbackWrite};

pub const FIELD_MANAGER: &str = "burnguard";
pub const FROZEN: &str = "burnguard.dev/frozen";
pub const FROZEN_REASON: &str = "burnguard.dev/frozen-reason";
pub const FROZEN_INCIDENT: &str = "burnguard.dev/incident";
pub const FROZEN_AT: &str = "burnguard.dev/frozen-at";
pub const BREAK_GLASS: &str = "burnguard.dev/break-glass";
const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// [`REVISION`] as a JSON pointer ('/' is escaped as `~1`).
const REVISION_POINTER: &str = "/metadata/annotations/deployment.kubernetes.io~1revision";
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Acts on one cluster.
#[derive(Clone)]
pub struct KubeActuator {
    client: kube::Client,
    /// Tells each Deployment what burnguard did to it (`kubectl describe deployment`).
    events: Option<kube::runtime::events::Recorder>,
}

fn kube_error(what: &str, error: kube::Error) -> ActionError {
    match &error {
        kube::Error::Api(status) if status.code == 404 => {
            ActionError::Refused(format!("{what}: not found"))
        }
        kube::Error::Api(status) if status.code == 403 => ActionError::Refused(format!(
            "{what}: forbidden (check burnguard's RBAC): {}",
            status.message
        )),
        _ => ActionError::Failed(format!("{what}: {error}")),
    }
}

impl KubeActuator {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            events: None,
        }
    }

    /// Also publish a Kubernetes Event on each Deployment acted on, as `instance`.
    pub fn with_events(mut self, instance: &str) -> Self {
        self.events = Some(kube::runtime::events::Recorder::new(
            self.client.clone(),
            kube::runtime::events::Reporter {
                controller: "burnguard".into(),
                instance: Some(instance.to_string()),
            },
        ));
        self
    }

    /// An Event on `namespace/name`: a courtesy, so a failure is only logged.
    async fn tell(&self, namespace: &str, name: &str, reason: &str, action: &str, note: String) {
        use kube::runtime::events::{Event, EventType};
        let Some(recorder) = &self.events else {
            return;
        };
        let reference = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, &reference).await {
            tracing::warn!(%error, deployment = %format!("{namespace}/{name}"), reason, "publishing a Kubernetes Event failed");
        }
    }

    /// In-cluster config or KUBECONFIG, the usual kube-rs way; `None` when neither is there.
    pub async fn from_environment() -> Option<Self> {
        match kube::Client::try_default().await {
            Ok(client) => Some(Self::new(client).with_events(&instance_name())),
            Err(error) => {
                tracing::info!(%error, "no Kubernetes cluster configured; Kubernetes steps will fail as not configured");
                None
            }
        }
    }

    fn deployments(&self, namespace: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The Deployments a freeze targets: the named ones plus those matching the selector.
    async fn targets(&self, target: &FreezeTarget) -> Result<(String, Vec<String>), ActionError> {
        let namespace = target
            .namespace
            .clone()
            .ok_or_else(|| ActionError::NotConfigured("the freeze has no namespace".into()))?;
        let mut names = target.deployments.clone();
        if let Some(selector) = &target.selector {
            let listed = self
                .deployments(&namespace)
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(|e| {
                    kube_error(
                        &format!("listing deployments in {namespace} matching {selector}"),
                        e,
                    )
                })?;
            names.extend(listed.items.into_iter().filter_map(|d| d.metadata.name));
        }
        names.sort();
        names.dedup();
        Ok((namespace, names))
    }

    /// Applies the freeze annotations; returns `{"namespace", "deployments"}` for `unfreeze`.
    pub async fn freeze(
        &self,
        target: &FreezeTarget,
        marks: &FreezeMarks,
    ) -> Result<serde_json::Value, PartialFreeze> {
        let (namespace, names) = self.targets(target).await?;
        let api = self.deployments(&namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for (i, name) in names.iter().enumerate() {
            let mut annotations = BTreeMap::from([
                (FROZEN.to_string(), "true".to_string()),
                (FROZEN_REASON.to_string(), marks.reason.clone()),
                (FROZEN_AT.to_string(), marks.at.clone()),
            ]);
            if let Some(incident) = marks.incident {
                annotations.insert(FROZEN_INCIDENT.to_string(), incident.to_string());
            }
            let body = json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "annotations": annotations},
            });
            let applied = api.patch(name, &params, &Patch::Apply(&body)).await;
            if applied.is_ok() {
                self.tell(
                    &namespace,
                    name,
                    "Frozen",
                    "Freeze",
                    format!("burnguard froze this deployment: {}", marks.reason),
                )
                .await;
            }
            if let Err(e) = applied {
                // The failed one too: an error does not prove the API server did not apply it,
                // and removing marks that are not there is harmless.
                return Err(PartialFreeze {
                    error: kube_error(&format!("freezing deployment {namespace}/{name}"), e),
                    applied: Some(json!({
                        "namespace": namespace,
                        "deployments": names[..=i],
                        "complete": false,
                    })),
                });
            }
        }
        Ok(json!({"namespace": namespace, "deployments": names, "complete": true}))
    }

    /// Applies an empty set of annotations under burnguard's field manager: server-side apply
    /// then drops exactly the annotations burnguard set, and nothing anyone else set.
    pub async fn unfreeze(&self, applied: &serde_json::Value) -> Result<String, ActionError> {
        let namespace = applied["namespace"].as_str().ok_or_else(|| {
            ActionError::NotConfigured("the freeze record has no namespace".into())
        })?;
        let names: Vec<String> =
            serde_json::from_value(applied["deployments"].clone()).unwrap_or_default();
        let api = self.deployments(namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for name in &names {
            let body = json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name},
            });
            api.patch(name, &params, &Patch::Apply(&body))
                .await
                .map_err(|e| kube_error(&format!("unfreezing deployment {namespace}/{name}"), e))?;
            self.tell(
                namespace,
                name,
                "Unfrozen",
                "Unfreeze",
                "burnguard lifted its freeze on this deployment".into(),
            )
            .await;
        }
        Ok(format!(
            "removed burnguard's freeze annotations from {} deployment(s) in {namespace}",
            names.len()
        ))
    }

    pub async fn scale(
        &self,
        namespace: &str,
        name: &str,
        replicas: u32,
    ) -> Result<String, ActionError> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let body = json!({"spec": {"replicas": replicas}});
        self.deployments(namespace)
            .patch_scale(name, &params, &Patch::Merge(&body))
            .await
            .map_err(|e| kube_error(&format!("scaling deployment {namespace}/{name}"), e))?;
        self.tell(
            namespace,
            name,
            "Scaled",
            "Scale",
            format!("burnguard scaled this deployment to {replicas} replicas"),
        )
        .await;
        Ok(format!("scaled {namespace}/{name} to {replicas} replicas"))
    }

    /// Works out a rollback (see [`crate::domain::rollback`] for the rule) from the Deployment
    /// and the ReplicaSets it owns; writes nothing.
    pub async fn plan_rollback(
        &self,
        namespace: &str,
        name: &str,
        avoid: &[String],
    ) -> Result<RollbackPlan, ActionError> {
        let api = self.deployments(namespace);
        let what = format!("rolling back deployment {namespace}/{name}");
        let refused = |why: String| ActionError::Refused(format!("{what}: {why}"));
        let deployment = api.get(name).await.map_err(|e| kube_error(&what, e))?;
        let spec = &deployment.spec;
        if spec.paused == Some(true) {
            return Err(refused(
                "it is paused; resume it first (kubectl refuses too)".into(),
            ));
        }
        let revision = annotation(&deployment.metadata, REVISION)
            .and_then(|r| r.parse::<u64>().ok())
            .ok_or_else(|| {
                refused("it has no revision yet (the Deployment controller has not seen it)".into())
            })?;
        let owned = self.replica_sets_of(namespace, &deployment, &what).await?;
        let candidates: Vec<ReplicaSetRevision> = owned
            .iter()
            .filter_map(|rs| {
                Some(ReplicaSetRevision {
                    revision: annotation(&rs.metadata, REVISION)?.parse().ok()?,
                    history: annotation(&rs.metadata, REVISION_HISTORY)
                        .map(|h| h.split(',').filter_map(|r| r.trim().parse().ok()).collect())
                        .unwrap_or_default(),
                    template_hash: template_hash(rs)?,
                    has_template: rs.spec.template.is_some()
                        && rs.metadata.deletion_timestamp.is_none(),
                })
            })
            .collect();
        let wanted = without_hash(&spec.template);
        let spec_hash = owned
            .iter()
            .find(|rs| rs.spec.template.as_ref().map(without_hash).as_ref() == Some(&wanted))
            .and_then(template_hash);
        let current = CurrentRevision {
            revision,
            spec_hash,
        };
        let choice =
            choose_target(&current, &candidates, avoid).map_err(|r| refused(r.to_string()))?;
        let write = if choice.already_requested {
            RollbackWrite::NothingToDo
        } else {
            let template = owned
                .iter()
                .find(|rs| template_hash(rs).as_ref() == Some(&choice.to.template_hash))
                .and_then(|rs| rs.spec.template.as_ref())
                .map(without_hash)
                .ok_or_else(|| {
                    refused(format!(
                        "revision {} has no pod template",
                        choice.to.revision
                    ))
                })?;
            RollbackWrite::Template(
                serde_json::to_value(&template).map_err(|e| ActionError::Failed(e.to_string()))?,
            )
        };
        Ok(RollbackPlan {
            namespace: namespace.into(),
            deployment: name.into(),
            from: choice.from,
            to: choice.to,
            write,
        })
    }

    /// Writes a planned rollback: one JSON patch that first tests that the Deployment is still
    /// at the planned revision (else the API server refuses it whole), then replaces its pod
    /// template.
    pub async fn apply_rollback(&self, plan: &RollbackPlan) -> Result<String, ActionError> {
        let (namespace, name) = (&plan.namespace, &plan.deployment);
        let (from, to) = (&plan.from, &plan.to);
        let template = match &plan.write {
            RollbackWrite::NothingToDo => {
                return Ok(format!(
                    "{namespace}/{name} already asks for the template of revision {} ({}); nothing to do",
                    to.revision, to.template_hash
                ));
            }
            RollbackWrite::Template(template) => template,
        };
        let what = format!("rolling back deployment {namespace}/{name}");
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": REVISION_POINTER, "value": from.revision.to_string()},
            {"op": "replace", "path": "/spec/template", "value": template},
        ]))
        .map_err(|e| ActionError::Failed(e.to_string()))?;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        self.deployments(namespace)
            .patch(name, &params, &Patch::<()>::Json(patch))
            .await
            .map_err(|e| match &e {
                kube::Error::Api(status) if status.code == 422 => ActionError::Refused(format!(
                    "{what}: the API server refused the patch; the Deployment is probably no longer at revision {} (it changed since the rollback was planned): {}",
                    from.revision, status.message
                )),
                _ => kube_error(&what, e),
            })?;
        self.tell(
            namespace,
            name,
            "RolledBack",
            "Rollback",
            format!(
                "burnguard rolled this deployment back from revision {} ({}) to the template of revision {} ({})",
                from.revision, from.template_hash, to.revision, to.template_hash
            ),
        )
        .await;
        Ok(format!(
            "rolled {namespace}/{name} back from revision {} ({}) to the template of revision {} ({})",
            from.revision, from.template_hash, to.revision, to.template_hash
        ))
    }

    /// The ReplicaSets the Deployment owns (by owner uid; its selector only narrows the list).
    async fn replica_sets_of(
        &self,
        namespace: &str,
        deployment: &Deployment,
        what: &str,
    ) -> Result<Vec<ReplicaSet>, ActionError> {
        let uid = deployment.metadata.uid.clone().unwrap_or_default();
        let selector = deployment
            .spec
            .selector
            .match_labels
            .as_ref()
            .map(|labels| {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let mut params = ListParams::default();
        if !selector.is_empty() {
            params = params.labels(&selector);
        }
        let replica_sets: Api<ReplicaSet> = Api::namespaced(self.client.clone(), namespace);
        Ok(replica_sets
            .list(&params)
            .await
            .map_err(|e| kube_error(what, e))?
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|refs| refs.iter().any(|o| o.uid == uid))
            })
            .collect())
    }
}

fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// A ReplicaSet's `pod-template-hash` label (on the object, else on its template).
fn template_hash(rs: &ReplicaSet) -> Option<String> {
    let from_meta = |meta: Option<&kube::api::ObjectMeta>| {
        meta?.labels.as_ref()?.get(POD_TEMPLATE_HASH).cloned()
    };
    from_meta(Some(&rs.metadata))
        .or_else(|| from_meta(rs.spec.template.as_ref().and_then(|t| t.metadata.as_ref())))
}

/// A pod template without the `pod-template-hash` label the controller adds to its ReplicaSet.
fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    template
}

/// This replica's name for Events: the pod name Kubernetes sets as `HOSTNAME`.
fn instance_name() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "burnguard".into())
}
