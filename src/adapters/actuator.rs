//! The [`Actuator`] burnguard runs playbooks with: outbound HTTP always, Kubernetes when a
//! cluster is configured (steps that need one fail with "not configured" otherwise).

use crate::adapters::http_action::HttpActuator;
use crate::adapters::kube::KubeActuator;
use crate::domain::playbook::{FreezeTarget, HttpStep};
use crate::ports::{ActionError, Actuator, FreezeMarks, PartialFreeze, RollbackPlan};

#[derive(Clone)]
pub struct Actuators {
    pub http: HttpActuator,
    pub kube: Option<KubeActuator>,
}

impl Actuators {
    fn kube(&self) -> Result<&KubeActuator, ActionError> {
        self.kube.as_ref().ok_or_else(|| {
            ActionError::NotConfigured(
                "no Kubernetes cluster is configured (in-cluster config or KUBECONFIG)".into(),
            )
        })
    }
}

impl Actuator for Actuators {
    async fn call_http(&self, step: &HttpStep) -> Result<String, ActionError> {
        self.http.call(step).await
    }

    async fn plan_rollback(
        &self,
        namespace: &str,
        deployment: &str,
        avoid: &[String],
    ) -> Result<RollbackPlan, ActionError> {
        self.kube()?
            .plan_rollback(namespace, deployment, avoid)
            .await
    }

    async fn apply_rollback(&self, plan: &RollbackPlan) -> Result<String, ActionError> {
        self.kube()?.apply_rollback(plan).await
    }

    async fn scale(
        &self,
        namespace: &str,
        deployment: &str,
        replicas: u32,
    ) -> Result<String, ActionError> {
        self.kube()?.scale(namespace, deployment, replicas).await
    }

    async fn freeze(
        &self,
        target: &FreezeTarget,
        marks: &FreezeMarks,
    ) -> Result<serde_json::Value, PartialFreeze> {
        self.kube()?.freeze(target, marks).await
    }

    async fn unfreeze(&self, applied: &serde_json::Value) -> Result<String, ActionError> {
        self.kube()?.unfreeze(applied).await
    }
}
