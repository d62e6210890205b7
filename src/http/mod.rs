//! The HTTP face of `serve` (axum): `/metrics`, `/healthz`, `/readyz`. Later areas (API,
//! webhooks, admission) add their own routers here; `server` serves them on a listener and
//! `tls` keeps its certificate.
//!
//! Owns: routes and status codes. Must not touch: evaluation, policy loading.

pub mod api;
pub mod freeze;
pub mod metrics;
pub mod openapi;
pub mod server;
pub mod state;
pub mod tls;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::http::state::ServiceState;

/// All routes, over the shared service state.
pub fn router(state: Arc<ServiceState>) -> Router {
    let api = openapi::router(state.clone());
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/admission/validate", post(freeze::admission))
        .merge(
            Router::new()
                .route("/webhooks/alertmanager", post(webhooks::alertmanager))
                .route("/webhooks/pagerduty", post(webhooks::pagerduty))
                .route("/webhooks/opsgenie", post(webhooks::opsgenie))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    count_webhook,
                )),
        )
        .nest("/api/v1", api)
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route".into())
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(json_errors))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(30),
        ))
        .with_state(state)
}

/// Errors produced outside our handlers (413 from the body limit, 405, 408, extractor
/// rejections) come as plain text; give them the same JSON shape as ours.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "_");
    let message = if text.is_empty() {
        status.to_string()
    } else {
        text
    };
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (status, Json(body)).into_response()
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

/// Every HTTP error: `{"error": {"code": "...", "message": "..."}}` with its status. A 5xx
/// never shows internals; the cause is logged.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        Self {
            status,
            code,
            message,
        }
    }

    pub fn bad_request(code: &'static str, message: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.to_string(),
        }
    }

    /// A failure on our side: logged with its cause, reported without it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "request failed");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: "burnguard cannot answer right now; try again".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

async fn metrics_handler(State(state): State<Arc<ServiceState>>) -> impl IntoResponse {
    match state.metrics.encode() {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
            body,
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
