//! The HTTP face of `serve` (axum): `/metrics`, `/healthz`, `/readyz`. Later areas (API,
//! webhooks, admission) add their own routers here.
//!
//! Owns: routes and status codes. Must not touch: evaluation, policy loading.

pub mod freeze;
pub mod metrics;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::service::ServiceState;

/// All routes, over the shared service state.
pub fn router(state: Arc<ServiceState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/freeze-gate", get(freeze::gate))
        .route("/admission/validate", post(freeze::admission))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
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
