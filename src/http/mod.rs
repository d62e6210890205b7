//! The HTTP face of `serve` (axum): `/metrics`, `/healthz`, `/readyz`, the API, webhooks in,
//! the admission webhook and the web UI (`ui`, under `/ui/`); `server` serves them on a
//! listener and `tls` keeps its certificate.
//!
//! Every error answer, ours and the framework's (404 on unknown routes, 405, 408 timeouts,
//! 413, 415, extractor rejections), is `{"error": {"code", "message"}}`: [`harden`] puts the
//! body limit, the timeout and the JSON error rewriting around any router.
//!
//! Owns: routes and status codes. Must not touch: evaluation, policy loading.

pub mod api;
pub mod auth;
pub mod exposition;
pub mod freeze;
pub mod input;
pub mod metrics;
pub mod openapi;
pub mod server;
pub mod state;
pub mod tls;
pub mod ui;
pub mod webhooks;

use std::sync::Arc;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::http::state::ServiceState;

/// All routes, over the shared service state.
pub fn router(state: Arc<ServiceState>) -> Router {
    let api = openapi::router(state.clone());
    let timeout = state.request_timeout;
    let routes = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/admission/validate", post(freeze::admission))
        .merge(
            Router::new()
                .route(
                    "/webhooks/alertmanager",
                    post(webhooks::alertmanager)
                        .layer(DefaultBodyLimit::max(ALERTMANAGER_MAX_BODY_BYTES))
                        // Credentials are checked before a byte of the body is read.
                        .layer(axum::middleware::from_fn_with_state(
                            state.clone(),
                            webhooks::require_alertmanager_credentials,
                        )),
                )
                .route("/webhooks/pagerduty", post(webhooks::pagerduty))
                .route("/webhooks/opsgenie", post(webhooks::opsgenie))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    count_webhook,
                )),
        )
        .nest("/api/v1", api)
        .merge(ui::router(state.clone()))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route".into())
        })
        .with_state(state);
    harden(routes, timeout)
}

/// The body limit ([`MAX_BODY_BYTES`], 413), the whole-request `timeout` (408) and JSON errors
/// around `routes`. The JSON rewriting is outermost, so it sees the timeout's answer too.
pub fn harden(routes: Router, timeout: Duration) -> Router {
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::map_response(move |response| {
            json_errors(response, timeout)
        }))
}

/// Errors produced outside our handlers (413 from the body limit, 404, 405, 408, 415,
/// extractor rejections) come as plain text or empty; give them the same JSON shape as ours,
/// keeping their other headers (`Allow` on a 405).
async fn json_errors(response: Response, timeout: Duration) -> Response {
    let status = response.status();
    // Our own answers: JSON from the API, HTML pages from the UI.
    let is_ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_ours {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace([' ', '-'], "_");
    let allowed = parts
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => match allowed {
            Some(allowed) => format!("this route does not take that method; it takes {allowed}"),
            None => "this route does not take that method".into(),
        },
        StatusCode::REQUEST_TIMEOUT => format!(
            "the request took longer than {} (reading the body included)",
            humantime::format_duration(timeout)
        ),
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the body is larger than this route takes: {} MiB ({} MiB for /webhooks/alertmanager; \
             set max_alerts in Alertmanager's webhook_config to stay under it)",
            MAX_BODY_BYTES / (1024 * 1024),
            ALERTMANAGER_MAX_BODY_BYTES / (1024 * 1024)
        ),
        _ if text.is_empty() => status.to_string(),
        _ => text,
    };
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Counts every webhook request by source and status code, refused ones included.
async fn count_webhook(
    State(state): State<Arc<ServiceState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let source = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let response = next.run(request).await;
    state
        .metrics
        .webhook_requests
        .get_or_create(&vec![
            ("source".to_string(), source),
            ("code".to_string(), response.status().as_u16().to_string()),
        ])
        .inc();
    response
}

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Alertmanager sends a whole alert group in one delivery, and a 4xx makes it drop the group:
/// its route takes more (about 16,000 alerts of 250 bytes). It needs credentials, and the body
/// is stored once, so this bounds what one delivery can write to a small multiple of it.
pub const ALERTMANAGER_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How long a whole request (its body included) may take by default: then 408.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every HTTP error: `{"error": {"code": "...", "message": "..."}}` with its status. A 5xx
/// never shows internals; the cause is logged.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `WWW-Authenticate` for a 401.
    challenge: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        Self {
            status,
            code,
            message,
            challenge: None,
        }
    }

    pub fn bad_request(code: &'static str, message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message.to_string())
    }

    /// 401 `unauthorized`, naming the scheme(s) expected in `WWW-Authenticate`.
    pub fn unauthorized(challenge: &'static str, message: &str) -> Self {
        Self {
            challenge: Some(challenge),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                message.to_string(),
            )
        }
    }

    /// A failure on our side: logged with its cause, reported without it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "request failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "burnguard cannot answer right now; try again".into(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

async fn metrics_handler(State(state): State<Arc<ServiceState>>) -> impl IntoResponse {
    match state.metrics.exposition() {
        // Written piece by piece as the client reads: a scrape never holds the whole text.
        Ok(pieces) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
            axum::body::Body::from_stream(futures_util::stream::iter(
                pieces
                    // The pieces (tens of megabytes at 100,000 SLOs) are freed as they are
                    // sent: give those pages back once the last one is asked for.
                    .chain(std::iter::from_fn(|| {
                        crate::allocator::release_free_memory();
                        None
                    }))
                    .map(Ok::<_, std::convert::Infallible>),
            )),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics could not be encoded\n",
            )
                .into_response()
        }
    }
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Policies are loaded and the last evaluation cycle reached Prometheus.
async fn readyz(State(state): State<Arc<ServiceState>>) -> (StatusCode, String) {
    let readiness = state.readiness();
    match readiness {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}
