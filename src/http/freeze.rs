//! Making the freeze real: the CI/CD freeze gate and the validating admission webhook.
//!
//! - `GET /api/v1/freeze-gate?namespace=N&deployment=D[&labels=k=v,k2=v2]` (or `?service=S`):
//!   200 `{"frozen": false}` or 423 `{"frozen": true, "reason", "incident", "since",
//!   "freeze_id"}`. `labels` are the Deployment's labels as CI knows them; with them, freezes
//!   by selector apply too.
//! - `POST /admission/validate`: AdmissionReview v1 in, AdmissionReview v1 out; a freeze by
//!   selector is matched against the Deployment's own labels (before and after the change).
//!   Malformed reviews get a 400 with a JSON error; it never fails closed by crashing. So do
//!   reviews it does not understand: an `apiVersion` other than `admission.k8s.io/v1`, or a
//!   request about anything but an `apps` Deployment (the webhook is registered for those
//!   only; answering "allowed" about something else would be a guess), and names, users or a
//!   break-glass reason with control characters.
//!
//! Owns: reading the facts out of requests. Which freeze covers what is decided in
//! `domain::admission`.

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

use super::{ApiError, input};
use crate::adapters::kube::BREAK_GLASS;
use crate::domain::admission::{ActiveFreeze, Admission, ChangeFacts, FreezeScope, admit};
use crate::domain::selector::{Labels, parse_labels};
use crate::http::state::ServiceState;
use crate::ports::{FreezeRecord, Freezes, Journal};

/// Whether `freeze` covers Deployment `namespace/name`: named, applied to it, or matching its
/// selector with one of `label_sets` (none when the labels are unknown).
fn covers(freeze: &FreezeRecord, namespace: &str, name: &str, label_sets: &[&Labels]) -> bool {
    let applied = freeze
        .applied
        .as_ref()
        .and_then(|a| a["deployments"].as_array())
        .map(|names| names.iter().filter_map(|d| d.as_str()).collect::<Vec<_>>())
        .unwrap_or_default();
    let scope = FreezeScope {
        namespace: freeze.namespace.as_deref(),
        deployments: freeze
            .deployments
            .iter()
            .map(String::as_str)
            .chain(applied)
            .collect(),
        selector: freeze.selector.as_deref(),
    };
    crate::domain::admission::covers(&scope, namespace, name, label_sets)
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
    let labels = q
        .get("labels")
        .map(|text| parse_labels(text))
        .transpose()
        .map_err(|why| {
            ApiError::bad_request(
                "invalid_labels",
                &format!("labels must be key=value pairs joined by commas, such as app=web,tier=front: {why}"),
            )
        })?;
    let label_sets: Vec<&Labels> = labels.iter().collect();
    let found = match (q.get("namespace"), q.get("deployment"), q.get("service")) {
        (Some(ns), Some(d), _) => freezes.iter().find(|f| covers(f, ns, d, &label_sets)),
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
    if review.types.api_version != ADMISSION_V1 || review.types.kind != "AdmissionReview" {
        return Err(ApiError::bad_request(
            "unsupported_admission_review",
            &format!(
                "a review of apiVersion `{}`, kind `{}` is not understood; expected {ADMISSION_V1} AdmissionReview \
                 (set admissionReviewVersions: [\"v1\"] in the ValidatingWebhookConfiguration)",
                review.types.api_version.escape_debug(),
                review.types.kind.escape_debug()
            ),
        ));
    }
    let request: AdmissionRequest<DynamicObject> = review.try_into().map_err(|e| {
        ApiError::bad_request(
            "invalid_admission_review",
            &format!("the AdmissionReview has no request: {e}"),
        )
    })?;
    if request.kind.group != "apps" || request.kind.kind != "Deployment" {
        return Err(ApiError::bad_request(
            "unsupported_admission_review",
            &format!(
                "a review of `{}/{}` is not understood; this webhook judges apps Deployments only \
                 (scope the ValidatingWebhookConfiguration's rules to deployments)",
                request.kind.group.escape_debug(),
                request.kind.kind.escape_debug()
            ),
        ));
    }
    check_review(&request)?;
    let facts = facts_of(&request, &state.service_account);
    let namespace = request.namespace.clone().unwrap_or_default();
    let freezes = state
        .store
        .active_freezes()
        .await
        .map_err(ApiError::internal)?;
    let label_sets = label_sets(&request);
    let label_sets: Vec<&Labels> = label_sets.iter().collect();
    let freeze = freezes
        .iter()
        .find(|f| facts.deployment_update && covers(f, &namespace, &request.name, &label_sets))
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

const ADMISSION_V1: &str = "admission.k8s.io/v1";

/// Refuses a review whose stored fields (names, the user, a break-glass reason) hold control
/// characters: they would go on an incident's timeline.
fn check_review(request: &AdmissionRequest<DynamicObject>) -> Result<(), ApiError> {
    input::name("request.name", &request.name)?;
    if let Some(namespace) = &request.namespace {
        input::name("request.namespace", namespace)?;
    }
    if let Some(user) = &request.user_info.username {
        input::name("request.userInfo.username", user)?;
    }
    let glass = request
        .object
        .as_ref()
        .and_then(|o| o.metadata.annotations.as_ref())
        .and_then(|a| a.get(BREAK_GLASS));
    if let Some(reason) = glass {
        input::text(&format!("the {BREAK_GLASS} annotation"), reason)?;
    }
    Ok(())
}

/// The Deployment's labels after and before the change: a change that also drops the labels
/// a freeze selects by is still covered.
fn label_sets(request: &AdmissionRequest<DynamicObject>) -> Vec<Labels> {
    [&request.object, &request.old_object]
        .into_iter()
        .flatten()
        .map(|o| o.metadata.labels.clone().unwrap_or_default())
        .collect()
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
