//! The HTTP face of `serve` (axum): `/metrics`, `/healthz`, `/readyz`. Later areas (API,
//! webhooks, admission) add their own routers here.
//!
//! Owns: routes and status codes. Must not touch: evaluation, policy loading.

pub mod metrics;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::service::ServiceState;

/// All routes, over the shared service state.
pub fn router(state: Arc<ServiceState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
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
