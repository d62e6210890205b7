//! Webhooks in: Alertmanager (v4), PagerDuty (V3, HMAC-signed), Opsgenie (shared secret).
//!
//! Each delivery's body is stored once for audit (kept for the webhook retention), and the
//! events it carries are deduplicated. An Alertmanager delivery is recorded in one transaction,
//! whatever its number of alerts. An alert with an `slo` label naming a loaded SLO goes on that
//! SLO's open incident; other alerts open "external" incidents keyed by fingerprint and resolve
//! with them. PagerDuty and Opsgenie acknowledgements and resolutions of incidents burnguard
//! paged update those incidents.
//!
//! Hostile input: Alertmanager needs its configured credentials (bearer or basic auth, the
//! scheme in any case) unless it was explicitly opened; signed PagerDuty events and Opsgenie
//! events are refused when their time is further from now than the replay tolerance; names
//! and texts with control characters are refused before anything is stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{ApiError, auth, input};
use crate::domain::policy::Severity;
use crate::http::state::ServiceState;
use crate::ports::{AlertTarget, CommandOutcome, IncomingAlert, Operations, Webhooks};

pub use crate::http::auth::WebhookAuth;

pub use crate::domain::incident::{incident_dedup_key, incident_of_key};

fn equal(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Labels whose values become names (incident keys, services, severities).
const NAME_LABELS: [&str; 4] = ["alertname", "service", "severity", "slo"];

fn check_alertmanager(auth: &WebhookAuth, headers: &HeaderMap) -> Result<(), ApiError> {
    let (token, basic) = (&auth.alertmanager_token, &auth.alertmanager_basic);
    if token.is_none() && basic.is_none() {
        if auth.alertmanager_allow_unauthenticated {
            return Ok(());
        }
        // A 503, which Alertmanager retries: alerts sent before the credentials are set
        // arrive once they are, instead of being dropped as a 4xx would have them.
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "the Alertmanager webhook takes no delivery until it has credentials: set \
             --alertmanager-token (BURNGUARD_ALERTMANAGER_TOKEN) or --alertmanager-basic-auth \
             (BURNGUARD_ALERTMANAGER_BASIC_AUTH) and the same in the receiver's http_config, or \
             run open with --alertmanager-allow-unauthenticated"
                .into(),
        ));
    }
    let bearer_ok = token.as_ref().is_some_and(|token| {
        auth::credentials(headers, "Bearer")
            .is_some_and(|given| equal(given.as_bytes(), token.expose_secret().as_bytes()))
    });
    let basic_ok = basic.as_ref().is_some_and(|(user, password)| {
        let expected = format!("{user}:{}", password.expose_secret());
        auth::basic(headers).is_some_and(|given| equal(&given, expected.as_bytes()))
    });
    if bearer_ok || basic_ok {
        Ok(())
    } else {
        let challenge = if token.is_some() { "Bearer" } else { "Basic" };
        Err(ApiError::unauthorized(
            challenge,
            "Alertmanager credentials do not match",
        ))
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

/// Refuses an alert whose stored fields hold control characters, naming the field.
fn check_alert(i: usize, alert: &AlertmanagerAlert) -> Result<(), ApiError> {
    let at = |field: &str| format!("alerts[{i}].{field}");
    input::name(&at("status"), &alert.status)?;
    input::name(&at("fingerprint"), &alert.fingerprint)?;
    input::name(&at("startsAt"), &alert.starts_at)?;
    for (key, value) in &alert.labels {
        input::name(&at("labels (a name)"), key)?;
        let field = at(&format!("labels.{key}"));
        if NAME_LABELS.contains(&key.as_str()) {
            input::name(&field, value)?;
        } else {
            input::text(&field, value)?;
        }
    }
    for (key, value) in &alert.annotations {
        input::name(&at("annotations (a name)"), key)?;
        input::text(&at(&format!("annotations.{key}")), value)?;
    }
    Ok(())
}

/// What the store needs of one alert: its key, its incident, its timeline line.
/// An Alertmanager alert as the store takes it. burnguard's own alerts carry `slo` (and a
/// grouped SLO's group labels): they go to that SLO's (or group's) incident.
fn incoming(
    alert: &AlertmanagerAlert,
    slos: &std::collections::HashMap<String, Vec<String>>,
) -> IncomingAlert {
    let name = alert
        .labels
        .get("alertname")
        .map(String::as_str)
        .unwrap_or("unnamed alert");
    let summary = alert
        .annotations
        .get("summary")
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    let slo = alert
        .labels
        .get("slo")
        .and_then(|name| slos.get(name).map(|by| (name, by)))
        .and_then(|(name, by)| {
            // A grouped SLO's alert names its group; without the labels it is not ours.
            let group: Option<std::collections::BTreeMap<String, String>> = by
                .iter()
                .map(|label| alert.labels.get(label).map(|v| (label.clone(), v.clone())))
                .collect();
            group.map(|g| crate::domain::policy::group_key(name, &g))
        });
    let target = match slo {
        Some(key) => AlertTarget::Slo(key),
        None => AlertTarget::External {
            key: format!("external/{name}/{}", alert.fingerprint),
            service: alert
                .labels
                .get("service")
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
            severity: match alert.labels.get("severity").map(String::as_str) {
                Some("page" | "critical") => Severity::Page,
                _ => Severity::Ticket,
            },
            firing: alert.status == "firing",
        },
    };
    IncomingAlert {
        dedup_key: format!("{}/{}/{}", alert.fingerprint, alert.starts_at, alert.status),
        target,
        message: format!("Alertmanager: {name} {}{summary}", alert.status),
        detail: json!({"labels": alert.labels, "annotations": alert.annotations, "startsAt": alert.starts_at, "fingerprint": alert.fingerprint}),
    }
}

/// Lets an Alertmanager delivery through only with the configured credentials (or when the
/// route was explicitly opened), before its body is read.
pub async fn require_alertmanager_credentials(
    State(state): State<Arc<ServiceState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match check_alertmanager(&state.webhook_auth, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

pub async fn alertmanager(
    State(state): State<Arc<ServiceState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
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
    for (i, alert) in payload.alerts.iter().enumerate() {
        if !matches!(alert.status.as_str(), "firing" | "resolved") {
            return Err(ApiError::bad_request(
                "invalid_body",
                &format!(
                    "alerts[{i}].status `{}` is neither firing nor resolved",
                    alert.status.escape_debug()
                ),
            ));
        }
        check_alert(i, alert)?;
    }
    let slos = state.slo_names();
    let alerts: Vec<IncomingAlert> = payload.alerts.iter().map(|a| incoming(a, &slos)).collect();
    let new = state
        .store
        .record_alerts(raw, &alerts, now())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"received": payload.alerts.len(), "new": new})).into_response())
}

/// Refuses an event whose time is further from `now` than `tolerance` (a replay, or a clock
/// far off), saying by how much.
fn check_fresh(
    source: &str,
    field: &str,
    at: i64,
    now: i64,
    tolerance: std::time::Duration,
) -> Result<(), ApiError> {
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    let off = now.saturating_sub(at);
    if off.abs() <= tolerance {
        return Ok(());
    }
    let when = if off > 0 { "ago" } else { "ahead" };
    Err(ApiError::bad_request(
        "stale_event",
        &format!(
            "the {source} event's {field} is {}s {when}, beyond the replay tolerance of {tolerance}s \
             (--webhook-replay-tolerance); an old event sent again is refused",
            off.abs()
        ),
    ))
}

/// Opsgenie's times are epoch numbers in nanoseconds (`updatedAt`) or milliseconds
/// (`createdAt`); read either as seconds by its size.
fn epoch_seconds(value: i64) -> i64 {
    match value.unsigned_abs() {
        v if v >= 100_000_000_000_000_000 => value / 1_000_000_000,
        v if v >= 100_000_000_000_000 => value / 1_000_000,
        v if v >= 100_000_000_000 => value / 1_000,
        _ => value,
    }
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
    /// RFC 3339; a signed event older than the replay tolerance is refused.
    occurred_at: String,
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
        return Err(ApiError::unauthorized(
            "X-PagerDuty-Signature",
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
    let occurred_at = chrono::DateTime::parse_from_rfc3339(&event.occurred_at).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            &format!(
                "event.occurred_at `{}` is not an RFC 3339 time: {e}",
                event.occurred_at.escape_debug()
            ),
        )
    })?;
    check_fresh(
        "PagerDuty",
        "occurred_at",
        occurred_at.timestamp(),
        now(),
        state.webhook_auth.replay_tolerance,
    )?;
    input::name("event.id", &event.id)?;
    input::name("event.event_type", &event.event_type)?;
    let agent = event
        .agent
        .as_ref()
        .and_then(|a| a.get("summary"))
        .and_then(|s| s.as_str());
    if let Some(agent) = agent {
        input::name("event.agent.summary", agent)?;
    }
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
    let who = agent
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
    /// When the alert last changed (the action's time), epoch nanoseconds.
    #[serde(default)]
    updated_at: Option<i64>,
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
        return Err(ApiError::unauthorized(
            "X-Burnguard-Token",
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
    if let Some(updated_at) = parsed.alert.updated_at {
        check_fresh(
            "Opsgenie",
            "alert.updatedAt",
            epoch_seconds(updated_at),
            now(),
            state.webhook_auth.replay_tolerance,
        )?;
    }
    input::name("action", &parsed.action)?;
    if let Some(alias) = &parsed.alert.alias {
        input::name("alert.alias", alias)?;
    }
    if let Some(username) = &parsed.alert.username {
        input::name("alert.username", username)?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opsgenie_times_are_read_as_seconds_whatever_their_unit() {
        let seconds = 1_420_452_224;
        for value in [
            1_420_452_224_i64,
            1_420_452_224_764,
            1_420_452_224_764_002,
            1_420_452_224_764_002_246,
        ] {
            assert_eq!(epoch_seconds(value), seconds, "{value}");
        }
    }

    #[test]
    fn events_within_the_tolerance_pass_and_others_are_refused() {
        let tolerance = std::time::Duration::from_secs(300);
        let now = 10_000;
        for (at, fresh) in [
            (now, true),
            (now - 300, true),
            (now + 300, true),
            (now - 301, false),
            (now + 301, false),
            (0, false),
        ] {
            assert_eq!(
                check_fresh("PagerDuty", "occurred_at", at, now, tolerance).is_ok(),
                fresh,
                "{at}"
            );
        }
    }
}
