//! Making the freeze real: the CI/CD freeze gate and the validating admission webhook.
//!
//! - `GET /api/v1/freeze-gate?namespace=N&deployment=D` (or `?service=S`): 200
//!   `{"frozen": false}` or 423 `{"frozen": true, "reason", "incident", "since", "freeze_id"}`.
//! - `POST /admission/validate`: AdmissionReview v1 in, AdmissionReview v1 out. Malformed
//!   reviews get a 400 with a JSON error; it never fails closed by crashing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::json;

use crate::timefmt::rfc3339;

use super::ApiError;
use crate::adapters::kube::BREAK_GLASS;
use crate::domain::admission::{ActiveFreeze, Admission, ChangeFacts, admit};
use crate::ports::{FreezeRecord, Freezes, Journal};
use crate::service::ServiceState;

/// Whether `freeze` covers Deployment `namespace/name` (named, or found by its selector).
fn covers(freeze: &FreezeRecord, namespace: &str, name: &str) -> bool {
    if freeze.namespace.as_deref() != Some(namespace) {
        return false;
    }
    let applied = freeze
        .applied
        .as_ref()
        .and_then(|a| a["deployments"].as_array().cloned())
        .unwrap_or_default();
    freeze.deployments.iter().any(|d| d == name) || applied.iter().any(|d| d.as_str() == Some(name))
}

fn active(freeze: &FreezeRecord) -> ActiveFreeze {
    ActiveFreeze {
        id: freeze.id,
        reason: freeze.reason.clone(),
        incident: freeze.incident_id,
        since: rfc3339(freeze.created_at),
    }
}

pub async fn gate(
    State(state): State<Arc<ServiceState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let freezes = state
        .store
        .active_freezes()
        .await
        .map_err(ApiError::internal)?;
    let found = match (q.get("namespace"), q.get("deployment"), q.get("service")) {
        (Some(ns), Some(d), _) => freezes.iter().find(|f| covers(f, ns, d)),
        (_, _, Some(service)) => freezes
            .iter()
            .find(|f| f.service.as_deref() == Some(service.as_str())),
        _ => {
            return Err(ApiError::bad_request(
                "missing_target",
                "ask with ?namespace=N&deployment=D or ?service=S",
            ));
        }
    };
    Ok(match found {
        None => (StatusCode::OK, Json(json!({"frozen": false}))).into_response(),
        Some(f) => (
            StatusCode::LOCKED,
            Json(json!({
                "frozen": true,
                "reason": f.reason,
                "incident": f.incident_id,
                "since": rfc3339(f.created_at),
                "freeze_id": f.id,
            })),
        )
            .into_response(),
    })
}

pub async fn admission(
    State(state): State<Arc<ServiceState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_admission_review",
            &format!("the body is not an AdmissionReview: {e}"),
        )
    })?;
    let request: AdmissionRequest<DynamicObject> = review.try_into().map_err(|e| {
        ApiError::bad_request(
            "invalid_admission_review",
            &format!("the AdmissionReview has no request: {e}"),
        )
    })?;
    let facts = facts_of(&request, &state.service_account);
    let namespace = request.namespace.clone().unwrap_or_default();
    let freezes = state
        .store
        .active_freezes()
        .await
        .map_err(ApiError::internal)?;
    let freeze = freezes
        .iter()
        .find(|f| facts.deployment_update && covers(f, &namespace, &request.name))
        .map(active);
    let response = AdmissionResponse::from(&request);
    let response = match admit(&facts, freeze.as_ref()) {
        Admission::Allow => response,
        Admission::AllowBreakGlass { reason } => {
            let user = request
                .user_info
                .username
                .clone()
                .unwrap_or_else(|| "someone".into());
            tracing::warn!(deployment = %request.name, %namespace, %user, %reason, "break glass: deploying through a freeze");
            if let Some(incident) = freeze.as_ref().and_then(|f| f.incident) {
                let message = format!(
                    "{user} broke the glass to change {namespace}/{}: {reason}",
                    request.name
                );
                let _ = state
                    .store
                    .add_event(
                        incident,
                        chrono::Utc::now().timestamp(),
                        "break_glass",
                        &message,
                        &user,
                        None,
                    )
                    .await;
            }
            response
        }
        Admission::Deny { message } => response.deny(message),
    };
    Ok(Json(response.into_review()).into_response())
}

fn facts_of(request: &AdmissionRequest<DynamicObject>, service_account: &str) -> ChangeFacts {
    let is_deployment = request.kind.group == "apps" && request.kind.kind == "Deployment";
    let template =
        |o: &Option<DynamicObject>| o.as_ref().map(|o| o.data["spec"]["template"].clone());
    let break_glass = request
        .object
        .as_ref()
        .and_then(|o| o.metadata.annotations.as_ref())
        .and_then(|a| a.get(BREAK_GLASS))
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    ChangeFacts {
        deployment_update: is_deployment && request.operation == Operation::Update,
        template_changed: template(&request.object) != template(&request.old_object),
        by_burnguard: request.user_info.username.as_deref() == Some(service_account),
        break_glass,
    }
}
