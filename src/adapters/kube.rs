//! Kubernetes actions through kube-rs, all under one field manager (`burnguard`):
//! - freeze: server-side apply of `burnguard.dev/*` annotations on the target Deployments;
//! - unfreeze: apply again without them, which removes exactly the fields burnguard owns;
//! - rollback: what `kubectl rollout undo` does (apps/v1 has no rollback API): the previous
//!   revision's pod template from the Deployment's ReplicaSets, refusing a paused Deployment
//!   and doing nothing when it already runs that template;
//! - scale: absolute replicas through the scale subresource.
//!
//! Owns: the API calls and their bodies. Must not touch: when to act (the engine decides).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::domain::playbook::FreezeTarget;
use crate::ports::{ActionError, FreezeMarks};

pub const FIELD_MANAGER: &str = "burnguard";
pub const FROZEN: &str = "burnguard.dev/frozen";
pub const FROZEN_REASON: &str = "burnguard.dev/frozen-reason";
pub const FROZEN_INCIDENT: &str = "burnguard.dev/incident";
pub const FROZEN_AT: &str = "burnguard.dev/frozen-at";
pub const BREAK_GLASS: &str = "burnguard.dev/break-glass";
const REVISION: &str = "deployment.kubernetes.io/revision";
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Acts on one cluster.
#[derive(Clone)]
pub struct KubeActuator {
    client: kube::Client,
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
        Self { client }
    }

    /// In-cluster config or KUBECONFIG, the usual kube-rs way; `None` when neither is there.
    pub async fn from_environment() -> Option<Self> {
        match kube::Client::try_default().await {
            Ok(client) => Some(Self::new(client)),
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
    ) -> Result<serde_json::Value, ActionError> {
        let (namespace, names) = self.targets(target).await?;
        let api = self.deployments(&namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for name in &names {
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
            api.patch(name, &params, &Patch::Apply(&body))
                .await
                .map_err(|e| kube_error(&format!("freezing deployment {namespace}/{name}"), e))?;
        }
        Ok(json!({"namespace": namespace, "deployments": names}))
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
        Ok(format!("scaled {namespace}/{name} to {replicas} replicas"))
    }

    pub async fn rollback(&self, namespace: &str, name: &str) -> Result<String, ActionError> {
        let api = self.deployments(namespace);
        let what = format!("rolling back deployment {namespace}/{name}");
        let deployment = api.get(name).await.map_err(|e| kube_error(&what, e))?;
        let spec = &deployment.spec;
        if spec.paused == Some(true) {
            return Err(ActionError::Refused(format!(
                "{what}: it is paused; resume it first (kubectl refuses too)"
            )));
        }
        let uid = deployment.metadata.uid.clone().unwrap_or_default();
        let selector = spec
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
        let replica_sets: Api<ReplicaSet> = Api::namespaced(self.client.clone(), namespace);
        let owned: Vec<ReplicaSet> = replica_sets
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| kube_error(&what, e))?
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|refs| refs.iter().any(|o| o.uid == uid))
            })
            .collect();
        let revision_of = |meta: &kube::api::ObjectMeta| -> Option<u64> {
            meta.annotations.as_ref()?.get(REVISION)?.parse().ok()
        };
        let current = revision_of(&deployment.metadata)
            .or_else(|| {
                owned
                    .iter()
                    .filter_map(|rs| revision_of(&rs.metadata))
                    .max()
            })
            .ok_or_else(|| ActionError::Refused(format!("{what}: it has no revision history")))?;
        let previous = owned
            .iter()
            .filter_map(|rs| Some((revision_of(&rs.metadata)?, rs)))
            .filter(|(revision, _)| *revision < current)
            .max_by_key(|(revision, _)| *revision)
            .ok_or_else(|| {
                ActionError::Refused(format!(
                    "{what}: no revision before {current} to go back to"
                ))
            })?;
        let (revision, rs) = previous;
        let mut template = rs.spec.template.clone().ok_or_else(|| {
            ActionError::Refused(format!("{what}: revision {revision} has no pod template"))
        })?;
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH);
        }
        let mut current_template = spec.template.clone();
        if let Some(labels) = current_template
            .metadata
            .as_mut()
            .and_then(|m| m.labels.as_mut())
        {
            labels.remove(POD_TEMPLATE_HASH);
        }
        if current_template == template {
            return Ok(format!(
                "{namespace}/{name} already runs the template of revision {revision}; nothing to do"
            ));
        }
        let template_json =
            serde_json::to_value(&template).map_err(|e| ActionError::Failed(e.to_string()))?;
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "replace", "path": "/spec/template", "value": template_json}
        ]))
        .map_err(|e| ActionError::Failed(e.to_string()))?;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        api.patch(name, &params, &Patch::<()>::Json(patch))
            .await
            .map_err(|e| kube_error(&what, e))?;
        Ok(format!(
            "rolled {namespace}/{name} back from revision {current} to the template of revision {revision}"
        ))
    }
}
