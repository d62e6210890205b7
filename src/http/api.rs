//! The REST API under `/api/v1`: SLOs with their latest evaluation and history, incidents
//! (list, show, acknowledge, resolve, approve waiting playbook steps), and freezes (list,
//! create by hand, lift by hand).
//!
//! Mutating calls need a bearer token from the configured set (compared in constant time, the
//! scheme in any case); reads are open unless `protectReads` is set. The timeline's actor for
//! a call is the name of the token that made it, never text from the body: a body's `by` is
//! kept only as "on behalf of <by>" in the note (commands) or the reason (freezes). Names and
//! texts with control characters are refused. Every error is JSON with a 4xx, or a 503 that
//! hides its cause (logged).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, auth, input};
use crate::domain::incident::IncidentStatus;
use crate::domain::playbook::FreezeTarget;
use crate::http::state::ServiceState;
use crate::ports::{CommandOutcome, Freezes, IncidentFilter, NewFreeze, Operations, Store};

pub use crate::http::auth::ApiAuth;

fn unauthorized(message: &str) -> Response {
    let body = json!({"error": {"code": "unauthorized", "message": message}});
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(body),
    )
        .into_response()
}

/// The name of the API token a call came with: the actor on the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller(pub String);

/// Checks the bearer token on calls that need one, and hands its name to the handler.
pub async fn require_token(
    State(state): State<Arc<ServiceState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let mutating = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !mutating && !state.api_auth.protect_reads {
        return next.run(request).await;
    }
    let presented = auth::credentials(request.headers(), "Bearer");
    let caller = presented
        .and_then(|token| state.api_auth.accepts(token))
        .map(|name| Caller(name.to_string()));
    match (presented, caller) {
        _ if state.api_auth.tokens.is_empty() => unauthorized(
            "no API tokens are configured; set BURNGUARD_API_TOKENS or --api-token-file (`name:token` entries)",
        ),
        (None, _) => unauthorized("send Authorization: Bearer <token>"),
        (Some(_), Some(caller)) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        (Some(_), None) => unauthorized("the token is not one of the configured API tokens"),
    }
}

/// `on behalf of <by>`, put before `text` when the body named someone.
fn on_behalf(by: Option<&str>, text: Option<&str>) -> Option<String> {
    match (by, text) {
        (Some(by), Some(text)) => Some(format!("on behalf of {by}: {text}")),
        (Some(by), None) => Some(format!("on behalf of {by}")),
        (None, text) => text.map(str::to_string),
    }
}

/// `{"by": "...", "note": "..."}`, all optional; an empty body is fine. `by` is not the actor
/// (the token's name is): it is folded into the note.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    by: Option<String>,
    note: Option<String>,
}

fn parse_body<T: for<'de> Deserialize<'de> + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            &format!("the body is not valid JSON for this call: {e}"),
        )
    })
}

fn incident_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_id",
            &format!("`{raw}` is not an incident id (a whole number)"),
        )
    })
}

fn not_found(what: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub async fn list_slos(State(state): State<Arc<ServiceState>>) -> Result<Response, ApiError> {
    let latest = state.latest_points().await.map_err(ApiError::internal)?;
    let slos: Vec<_> = latest.into_iter().map(|p| p.snapshot).collect();
    Ok(Json(json!({"slos": slos})).into_response())
}

pub async fn get_slo(
    State(state): State<Arc<ServiceState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let latest = state.latest_points().await.map_err(ApiError::internal)?;
    // A grouped SLO has one evaluation per group: all of them, under `groups`.
    let mut found: Vec<serde_json::Value> = latest
        .into_iter()
        .filter(|p| p.snapshot["name"] == name.as_str())
        .map(|p| p.snapshot)
        .collect();
    match found.len() {
        0 => Err(not_found(format!(
            "no SLO named `{name}` has been evaluated"
        ))),
        1 if found[0].get("group").is_none() => Ok(Json(found.remove(0)).into_response()),
        _ => Ok(Json(json!({"name": name, "groups": found})).into_response()),
    }
}

pub async fn slo_history(
    State(state): State<Arc<ServiceState>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let time = |key: &str, default: i64| -> Result<i64, ApiError> {
        match q.get(key) {
            None => Ok(default),
            Some(text) => crate::timefmt::parse_time(text)
                .map_err(|e| ApiError::bad_request("invalid_time", &format!("{key}: {e}"))),
        }
    };
    let to = time("to", now())?;
    let from = time("from", to - 86_400)?;
    if from > to {
        return Err(ApiError::bad_request("invalid_time", "from is after to"));
    }
    let points = state
        .store
        .evaluation_history(&name, from, to, 10_000)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"slo": name, "from": from, "to": to, "evaluations": points})).into_response())
}

pub async fn list_incidents(
    State(state): State<Arc<ServiceState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let status = match q.get("status").map(String::as_str) {
        None | Some("all") => None,
        Some(text) => Some(IncidentStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_status",
                &format!("`{text}` is not a status; expected open, acknowledged, resolved or all"),
            )
        })?),
    };
    let filter = IncidentFilter {
        status,
        slo: q.get("slo").cloned(),
        limit: Some(1_000),
    };
    let incidents = state
        .store
        .list_incidents(&filter)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"incidents": incidents})).into_response())
}

pub async fn get_incident(
    State(state): State<Arc<ServiceState>>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = incident_id(&raw)?;
    match state.store.incident(id).await.map_err(ApiError::internal)? {
        Some(detail) => Ok(Json(detail).into_response()),
        None => Err(not_found(format!("no incident {id}"))),
    }
}

async fn command(
    state: &ServiceState,
    caller: &Caller,
    raw: &str,
    body: &Bytes,
    which: &str,
) -> Result<Response, ApiError> {
    let id = incident_id(raw)?;
    let body: CommandBody = parse_body(body)?;
    if let Some(by) = &body.by {
        input::name("by", by)?;
    }
    if let Some(note) = &body.note {
        input::text("note", note)?;
    }
    let named = body.by.as_deref().map(str::trim).filter(|b| !b.is_empty());
    let named = named.filter(|b| *b != caller.0);
    let note = on_behalf(named, body.note.as_deref());
    let (by, note) = (caller.0.as_str(), note.as_deref());
    let store = &state.store;
    if which == "note" {
        return add_note(state, id, by, note).await;
    }
    let outcome = match which {
        "ack" => store.acknowledge(id, by, note, now()).await,
        "resolve" => store.resolve_by_hand(id, by, note, now()).await,
        _ => store.approve(id, by, note, now()).await,
    }
    .map_err(ApiError::internal)?;
    match outcome {
        CommandOutcome::Done(_) => {
            let detail = store.incident(id).await.map_err(ApiError::internal)?;
            Ok(Json(detail).into_response())
        }
        CommandOutcome::NotFound => Err(not_found(format!("no incident {id}"))),
        CommandOutcome::Conflict(message) => {
            Err(ApiError::new(StatusCode::CONFLICT, "conflict", message))
        }
    }
}

pub async fn acknowledge(
    State(state): State<Arc<ServiceState>>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    command(&state, &caller, &raw, &body, "ack").await
}

pub async fn resolve(
    State(state): State<Arc<ServiceState>>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    command(&state, &caller, &raw, &body, "resolve").await
}

pub async fn approve(
    State(state): State<Arc<ServiceState>>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    command(&state, &caller, &raw, &body, "approve").await
}

pub async fn note(
    State(state): State<Arc<ServiceState>>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    command(&state, &caller, &raw, &body, "note").await
}

/// Puts a person's note on an incident's timeline, whatever its status.
async fn add_note(
    state: &ServiceState,
    id: i64,
    by: &str,
    note: Option<&str>,
) -> Result<Response, ApiError> {
    use crate::ports::Journal;
    let Some(note) = note.map(str::trim).filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "a note needs its text: {\"note\": \"...\"}",
        ));
    };
    let store = &state.store;
    if store
        .incident(id)
        .await
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(not_found(format!("no incident {id}")));
    }
    store
        .add_event(id, now(), "note", &format!("{by} noted: {note}"), by, None)
        .await
        .map_err(ApiError::internal)?;
    let detail = store.incident(id).await.map_err(ApiError::internal)?;
    Ok(Json(detail).into_response())
}

pub async fn list_freezes(State(state): State<Arc<ServiceState>>) -> Result<Response, ApiError> {
    let freezes = state
        .store
        .active_freezes()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"freezes": freezes})).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeBody {
    service: Option<String>,
    namespace: Option<String>,
    deployments: Option<Vec<String>>,
    selector: Option<String>,
    reason: Option<String>,
    by: Option<String>,
}

/// Refuses a freeze body whose names or reason hold control characters.
fn check_freeze(body: &FreezeBody) -> Result<(), ApiError> {
    let names = [
        ("service", &body.service),
        ("namespace", &body.namespace),
        ("selector", &body.selector),
        ("by", &body.by),
    ];
    for (field, value) in names {
        if let Some(value) = value {
            input::name(field, value)?;
        }
    }
    for (i, deployment) in body.deployments.iter().flatten().enumerate() {
        input::name(&format!("deployments[{i}]"), deployment)?;
    }
    if let Some(reason) = &body.reason {
        input::text("reason", reason)?;
    }
    Ok(())
}

pub async fn create_freeze(
    State(state): State<Arc<ServiceState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: FreezeBody = parse_body(&body)?;
    check_freeze(&body)?;
    let Some(reason) = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "reason is required: say why deploys stop",
        ));
    };
    if let Some(selector) = &body.selector {
        crate::domain::validate::check_label_selector(selector)
            .map_err(|e| ApiError::bad_request("invalid_selector", &e))?;
    }
    let target = FreezeTarget {
        service: body.service.filter(|s| !s.trim().is_empty()),
        namespace: body.namespace,
        deployments: body.deployments.unwrap_or_default(),
        selector: body.selector,
    };
    let names_objects = !target.deployments.is_empty() || target.selector.is_some();
    if target.service.is_none() && !(target.namespace.is_some() && names_objects) {
        return Err(ApiError::bad_request(
            "invalid_body",
            "a freeze needs service, or namespace with deployments or selector",
        ));
    }
    let named = body.by.as_deref().map(str::trim).filter(|b| !b.is_empty());
    let named = named.filter(|b| *b != caller.0);
    let reason = match named {
        Some(by) => format!("{reason} (on behalf of {by})"),
        None => reason.to_string(),
    };
    let at = now();
    let source_key = format!(
        "manual/{at}/{}",
        chrono::Utc::now().timestamp_subsec_nanos()
    );
    let id = state
        .store
        .create_freeze(&NewFreeze {
            target,
            reason,
            incident_id: None,
            slo: None,
            source_key,
            created_by: caller.0.clone(),
            lift_when: None,
            at,
        })
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "an identical freeze was just created".into(),
            )
        })?;
    let freeze = state
        .store
        .active_freezes()
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|f| f.id == id);
    Ok((StatusCode::CREATED, Json(freeze)).into_response())
}

pub async fn lift_freeze(
    State(state): State<Arc<ServiceState>>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = raw
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_id", &format!("`{raw}` is not a freeze id")))?;
    let freeze = state
        .store
        .active_freezes()
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|f| f.id == id);
    let Some(freeze) = freeze else {
        return Err(not_found(format!("no active freeze {id}")));
    };
    // The store is the truth: the reconcile pass removes the marks from Kubernetes.
    state
        .store
        .lift_freeze(id, &caller.0, now())
        .await
        .map_err(ApiError::internal)?;
    if let Some(incident) = freeze.incident_id {
        use crate::ports::Journal;
        let _ = state
            .store
            .add_event(
                incident,
                now(),
                "unfrozen",
                &format!("freeze {id} lifted by hand by {}", caller.0),
                &caller.0,
                None,
            )
            .await;
    }
    Ok(Json(json!({"lifted": id})).into_response())
}
