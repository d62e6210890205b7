//! Webhooks in: Alertmanager (v4), PagerDuty (V3, HMAC-signed), Opsgenie (shared secret).
//!
//! Every event is stored with its raw body for audit, deduplicated. An Alertmanager alert
//! with an `slo` label naming a loaded SLO goes on that SLO's open incident; other alerts open
//! "external" incidents keyed by fingerprint and resolve with them. PagerDuty and Opsgenie
//! acknowledgements and resolutions of incidents burnguard paged update those incidents.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::domain::policy::Severity;
use crate::http::state::ServiceState;
use crate::ports::{CommandOutcome, Journal, Operations, Webhooks};

pub use crate::config::WebhookAuth;

pub use crate::domain::incident::{incident_dedup_key, incident_of_key};

fn equal(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message.into())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn check_alertmanager(auth: &WebhookAuth, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match (&auth.alertmanager_token, &auth.alertmanager_basic) {
        (None, None) => Ok(()),
        (Some(token), _)
            if presented
                .strip_prefix("Bearer ")
                .is_some_and(|t| equal(t.as_bytes(), token.expose_secret().as_bytes())) =>
        {
            Ok(())
        }
        (_, Some((user, password))) => {
            let expected = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", password.expose_secret()));
            match presented.strip_prefix("Basic ") {
                Some(given) if equal(given.as_bytes(), expected.as_bytes()) => Ok(()),
                _ => Err(unauthorized("Alertmanager credentials do not match")),
            }
        }
        _ => Err(unauthorized("Alertmanager credentials do not match")),
    }
}

#[derive(Debug, Deserialize)]
struct AlertmanagerPayload {
    version: String,
    alerts: Vec<AlertmanagerAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertmanagerAlert {
    status: String,
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: String,
    fingerprint: String,
}

pub async fn alertmanager(
    State(state): State<Arc<ServiceState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_alertmanager(&state.webhook_auth, &headers)?;
    let raw = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("invalid_body", "the body is not UTF-8"))?;
    let payload: AlertmanagerPayload = serde_json::from_str(raw).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            &format!("not an Alertmanager webhook (v4) body: {e}"),
        )
    })?;
    if payload.version != "4" {
        return Err(ApiError::bad_request(
            "unsupported_version",
            &format!(
                "webhook version {} is not supported; expected 4",
                payload.version
            ),
        ));
    }
    let slos = state.slo_names();
    let at = now();
    let store = &state.store;
    let mut new = 0;
    for alert in &payload.alerts {
        if !matches!(alert.status.as_str(), "firing" | "resolved") {
            return Err(ApiError::bad_request(
                "invalid_body",
                &format!(
                    "alert status `{}` is neither firing nor resolved",
                    alert.status
                ),
            ));
        }
        let name = alert
            .labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("unnamed alert");
        let key = format!("{}/{}/{}", alert.fingerprint, alert.starts_at, alert.status);
        let summary = alert
            .annotations
            .get("summary")
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        let message = format!("Alertmanager: {name} {}{summary}", alert.status);
        let incident = match alert
            .labels
            .get("slo")
            .filter(|s| slos.contains(s.as_str()))
        {
            Some(slo) => store
                .unresolved_incident(slo)
                .await
                .map_err(ApiError::internal)?
                .map(|i| i.id),
            None => {
                let external = format!("external/{name}/{}", alert.fingerprint);
                if alert.status == "firing" {
                    let service = alert
                        .labels
                        .get("service")
                        .map(String::as_str)
                        .unwrap_or("unknown");
                    let severity = match alert.labels.get("severity").map(String::as_str) {
                        Some("page" | "critical") => Severity::Page,
                        _ => Severity::Ticket,
                    };
                    Some(
                        store
                            .open_external(&external, service, severity, &message, at)
                            .await
                            .map_err(ApiError::internal)?,
                    )
                } else {
                    store
                        .resolve_external(&external, &message, at)
                        .await
                        .map_err(ApiError::internal)?
                }
            }
        };
        let stored = store
            .record_webhook("alertmanager", &key, raw, incident, at)
            .await
            .map_err(ApiError::internal)?;
        if stored.is_some() {
            new += 1;
            if let Some(id) = incident {
                let detail = json!({"labels": alert.labels, "annotations": alert.annotations, "startsAt": alert.starts_at, "fingerprint": alert.fingerprint});
                store
                    .add_event(
                        id,
                        at,
                        "alert_received",
                        &message,
                        "alertmanager",
                        Some(detail),
                    )
                    .await
                    .map_err(ApiError::internal)?;
            }
        }
    }
    Ok(Json(json!({"received": payload.alerts.len(), "new": new})).into_response())
}

/// Checks `X-PagerDuty-Signature` (`v1=<hex>` entries, any configured secret) over the raw body.
pub fn pagerduty_signature_ok(secrets: &[SecretString], header: Option<&str>, body: &[u8]) -> bool {
    let Some(header) = header else { return false };
    let signatures: Vec<Vec<u8>> = header
        .split(',')
        .filter_map(|s| s.trim().strip_prefix("v1="))
        .filter_map(|hex_sig| hex::decode(hex_sig).ok())
        .collect();
    let mut ok = subtle::Choice::from(0u8);
    for secret in secrets {
        let Ok(mut mac) =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        else {
            continue;
        };
        mac.update(body);
        let expected = mac.finalize().into_bytes();
        for sig in &signatures {
            ok |= expected.as_slice().ct_eq(sig.as_slice());
        }
    }
    bool::from(ok)
}

#[derive(Debug, Deserialize)]
struct PagerDutyEnvelope {
    event: PagerDutyEvent,
}

#[derive(Debug, Deserialize)]
struct PagerDutyEvent {
    id: String,
    event_type: String,
    #[serde(default)]
    agent: Option<serde_json::Value>,
    #[serde(default)]
    data: serde_json::Value,
}

pub async fn pagerduty(
    State(state): State<Arc<ServiceState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let signature = headers
        .get("x-pagerduty-signature")
        .and_then(|v| v.to_str().ok());
    if !pagerduty_signature_ok(&state.webhook_auth.pagerduty_secrets, signature, &body) {
        return Err(unauthorized(
            "X-PagerDuty-Signature does not match any configured secret",
        ));
    }
    let raw = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("invalid_body", "the body is not UTF-8"))?;
    let envelope: PagerDutyEnvelope = serde_json::from_str(raw).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            &format!("not a PagerDuty V3 webhook body: {e}"),
        )
    })?;
    let event = envelope.event;
    let incident = event
        .data
        .get("incident_key")
        .and_then(|k| k.as_str())
        .and_then(incident_of_key);
    let stored = state
        .store
        .record_webhook("pagerduty", &event.id, raw, incident, now())
        .await
        .map_err(ApiError::internal)?;
    if stored.is_none() {
        return Ok(Json(json!({"duplicate": true})).into_response());
    }
    let who = event
        .agent
        .as_ref()
        .and_then(|a| a.get("summary"))
        .and_then(|s| s.as_str())
        .map(|s| format!("pagerduty: {s}"))
        .unwrap_or_else(|| "pagerduty".into());
    let applied = apply_pager_command(
        &state,
        incident,
        &event.event_type,
        "incident.acknowledged",
        "incident.resolved",
        &who,
    )
    .await?;
    Ok(Json(json!({"applied": applied})).into_response())
}

#[derive(Debug, Deserialize)]
struct OpsgenieBody {
    action: String,
    alert: OpsgenieAlert,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpsgenieAlert {
    #[serde(default)]
    alias: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

pub async fn opsgenie(
    State(state): State<Arc<ServiceState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let presented = headers
        .get("x-burnguard-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = state
        .webhook_auth
        .opsgenie_secret
        .as_ref()
        .is_some_and(|s| equal(presented.as_bytes(), s.expose_secret().as_bytes()));
    if !ok {
        return Err(unauthorized(
            "X-Burnguard-Token does not match the configured Opsgenie secret",
        ));
    }
    let raw = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("invalid_body", "the body is not UTF-8"))?;
    let parsed: OpsgenieBody = serde_json::from_str(raw).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            &format!("not an Opsgenie webhook body: {e}"),
        )
    })?;
    let incident = parsed.alert.alias.as_deref().and_then(incident_of_key);
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(raw.as_bytes()));
    let stored = state
        .store
        .record_webhook("opsgenie", &digest, raw, incident, now())
        .await
        .map_err(ApiError::internal)?;
    if stored.is_none() {
        return Ok(Json(json!({"duplicate": true})).into_response());
    }
    let who = format!(
        "opsgenie: {}",
        parsed.alert.username.as_deref().unwrap_or("someone")
    );
    let applied = apply_pager_command(
        &state,
        incident,
        &parsed.action,
        "Acknowledge",
        "Close",
        &who,
    )
    .await?;
    Ok(Json(json!({"applied": applied})).into_response())
}

/// Acknowledges or resolves the linked incident; `false` when the event is about something else.
async fn apply_pager_command(
    state: &ServiceState,
    incident: Option<i64>,
    action: &str,
    ack: &str,
    resolve: &str,
    who: &str,
) -> Result<bool, ApiError> {
    let Some(id) = incident else { return Ok(false) };
    let outcome = if action == ack {
        state.store.acknowledge(id, who, None, now()).await
    } else if action == resolve {
        state.store.resolve_by_hand(id, who, None, now()).await
    } else {
        return Ok(false);
    }
    .map_err(ApiError::internal)?;
    Ok(matches!(outcome, CommandOutcome::Done(_)))
}
