//! `burnguard demo workload`: the demo's checkout service.
//!
//! - `GET /checkout` is one checkout: a few milliseconds of work, plus a call to the
//!   recommendations backend while the `recommendations` flag is on. One request in 500 fails
//!   whatever happens (a healthy service is never perfect); while the recommendations backend
//!   is failing, one call to it in three fails, and so does its checkout (a 5xx).
//! - `GET /flags/recommendations` and `PUT /flags/recommendations` with `{"enabled": false}`:
//!   the feature flag burnguard's playbook turns off. A PUT needs `Authorization: Bearer
//!   <token>` when a token is set (`DEMO_FLAGS_TOKEN`).
//! - `PUT /faults/recommendations` with `{"failing": true}`: breaks the recommendations
//!   backend (the demo's story does this).
//! - `GET /metrics`: `http_requests_total{code}` and the latency histogram
//!   `http_request_duration_seconds`, plus `demo_feature_flag_enabled{flag}` and
//!   `demo_fault_active{backend}`, in OpenMetrics text.
//!
//! Which requests fail is decided by a request counter, not at random, so the error ratio is
//! the same on every run: 0.2% healthy, about a third while the backend fails and the flag is
//! on, and back to 0.2% once the flag is off.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::LogFormat;

/// Latency buckets in seconds; the demo's latency SLO uses 0.25.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// One request in this many fails even when all is well.
const BASELINE_FAILURE_EVERY: u64 = 500;
/// While the backend fails, one call to it in this many fails.
const BACKEND_FAILURE_EVERY: u64 = 3;
const FLAG: &str = "recommendations";

#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is logged).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Bearer token required to change flags.
    #[arg(long, env = "DEMO_FLAGS_TOKEN", hide_env_values = true)]
    flags_token: Option<String>,
}

type Labels = Vec<(String, String)>;

struct Workload {
    recommendations: AtomicBool,
    backend_failing: AtomicBool,
    served: AtomicU64,
    flags_token: Option<String>,
    requests: Family<Labels, Counter>,
    duration: Histogram,
    flag: Family<Labels, Gauge>,
    fault: Family<Labels, Gauge>,
    registry: Registry,
}

impl Workload {
    fn new(flags_token: Option<String>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let duration = Histogram::new(BUCKETS);
        let flag = Family::<Labels, Gauge>::default();
        let fault = Family::<Labels, Gauge>::default();
        registry.register(
            "http_requests",
            "Checkout requests answered, by status code",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a checkout request",
            duration.clone(),
        );
        registry.register(
            "demo_feature_flag_enabled",
            "1 while the feature flag is on",
            flag.clone(),
        );
        registry.register(
            "demo_fault_active",
            "1 while the backend is made to fail",
            fault.clone(),
        );
        // Both codes from the start, so rate() over the errors never begins with a gap.
        for code in ["200", "500"] {
            let _ = requests.get_or_create(&code_label(code));
        }
        let workload = Self {
            recommendations: AtomicBool::new(true),
            backend_failing: AtomicBool::new(false),
            served: AtomicU64::new(0),
            flags_token,
            requests,
            duration,
            flag,
            fault,
            registry,
        };
        workload.publish_switches();
        workload
    }

    fn publish_switches(&self) {
        let on = |b: &AtomicBool| i64::from(b.load(Ordering::SeqCst));
        self.flag
            .get_or_create(&vec![("flag".into(), FLAG.into())])
            .set(on(&self.recommendations));
        self.fault
            .get_or_create(&vec![("backend".into(), FLAG.into())])
            .set(on(&self.backend_failing));
    }
}

fn code_label(code: &str) -> Labels {
    vec![("code".into(), code.into())]
}

pub fn run(args: WorkloadArgs) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(LogFormat::Pretty);
    super::runtime()?.block_on(async move {
        let state = Arc::new(Workload::new(args.flags_token));
        let app = Router::new()
            .route("/", get(index))
            .route("/checkout", get(checkout))
            .route("/metrics", get(metrics))
            .route("/flags/recommendations", get(get_flag).put(put_flag))
            .route("/faults/recommendations", get(get_fault).put(put_fault))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let addr = listener.local_addr()?;
        info!(%addr, "workload listening");
        let shutdown = CancellationToken::new();
        crate::service::cancel_on_signals(shutdown.clone());
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        info!("workload stopped");
        Ok(ExitCode::SUCCESS)
    })
}

async fn index() -> &'static str {
    "burnguard demo workload\n\
     GET /checkout                  one checkout (fails while the recommendations backend fails and the flag is on)\n\
     GET|PUT /flags/recommendations {\"enabled\": true|false} (PUT needs the bearer token)\n\
     GET|PUT /faults/recommendations {\"failing\": true|false}\n\
     GET /metrics                   request counters and latency histogram\n"
}

/// How long request number `n` takes and whether it fails, given the flag and the backend.
fn outcome(n: u64, recommendations: bool, backend_failing: bool) -> (Duration, bool) {
    // 4 to 14 ms of our own work, spread evenly but the same on every run.
    let mut work = Duration::from_millis(4 + (n * 7) % 11);
    let mut failed = n % BASELINE_FAILURE_EVERY == BASELINE_FAILURE_EVERY - 1;
    if recommendations {
        work += Duration::from_millis(6);
        if backend_failing && n.is_multiple_of(BACKEND_FAILURE_EVERY) {
            // The broken backend answers an error after a while.
            work += Duration::from_millis(40);
            failed = true;
        }
    }
    (work, failed)
}

async fn checkout(State(w): State<Arc<Workload>>) -> Response {
    let started = Instant::now();
    let n = w.served.fetch_add(1, Ordering::SeqCst);
    let (work, failed) = outcome(
        n,
        w.recommendations.load(Ordering::SeqCst),
        w.backend_failing.load(Ordering::SeqCst),
    );
    tokio::time::sleep(work).await;
    let code = if failed { "500" } else { "200" };
    w.requests.get_or_create(&code_label(code)).inc();
    w.duration.observe(started.elapsed().as_secs_f64());
    if failed {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "checkout failed: recommendations backend error\n",
        )
            .into_response()
    } else {
        "checkout ok\n".into_response()
    }
}

async fn metrics(State(w): State<Arc<Workload>>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &w.registry) {
        Ok(()) => (
            [(header::CONTENT_TYPE, crate::http::metrics::CONTENT_TYPE)],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

/// Reads `{"<field>": true|false}`, or says what is wrong with the body.
fn switch(body: &Bytes, field: &str) -> Result<bool, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    value[field]
        .as_bool()
        .ok_or_else(|| format!("expected {{\"{field}\": true|false}}"))
}

async fn get_flag(State(w): State<Arc<Workload>>) -> Response {
    let enabled = w.recommendations.load(Ordering::SeqCst);
    axum::Json(json!({"flag": FLAG, "enabled": enabled})).into_response()
}

async fn put_flag(State(w): State<Arc<Workload>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(token) = &w.flags_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
            return (StatusCode::UNAUTHORIZED, "a bearer token is needed\n").into_response();
        }
    }
    let enabled = match switch(&body, "enabled") {
        Ok(enabled) => enabled,
        Err(why) => return bad_request(&why),
    };
    w.recommendations.store(enabled, Ordering::SeqCst);
    w.publish_switches();
    info!(flag = FLAG, enabled, "feature flag changed");
    axum::Json(json!({"flag": FLAG, "enabled": enabled})).into_response()
}

async fn get_fault(State(w): State<Arc<Workload>>) -> Response {
    let failing = w.backend_failing.load(Ordering::SeqCst);
    axum::Json(json!({"backend": FLAG, "failing": failing})).into_response()
}

async fn put_fault(State(w): State<Arc<Workload>>, body: Bytes) -> Response {
    let failing = match switch(&body, "failing") {
        Ok(failing) => failing,
        Err(why) => return bad_request(&why),
    };
    w.backend_failing.store(failing, Ordering::SeqCst);
    w.publish_switches();
    info!(backend = FLAG, failing, "fault switched");
    axum::Json(json!({"backend": FLAG, "failing": failing})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(from: u64, flag: bool, failing: bool) -> usize {
        (from..from + 1_500)
            .filter(|n| outcome(*n, flag, failing).1)
            .count()
    }

    #[test]
    fn turning_the_flag_off_really_lowers_the_error_rate() {
        assert_eq!(failures(0, true, false), 3, "healthy: one in 500");
        // One in three while the backend fails (request 2499 would have failed anyway).
        assert_eq!(failures(1_500, true, true), 500 + 3 - 1);
        assert_eq!(failures(3_000, false, true), 3, "flag off: healthy again");
    }

    #[test]
    fn every_answer_stays_well_under_the_latency_threshold() {
        for n in 0..1_000 {
            let (work, _) = outcome(n, true, true);
            assert!(work < Duration::from_millis(100), "{work:?}");
        }
    }

    #[tokio::test]
    async fn the_flag_needs_the_token_when_one_is_set() {
        let w = Arc::new(Workload::new(Some("t0ken".into())));
        let body = Bytes::from_static(br#"{"enabled": false}"#);
        let response = put_flag(State(w.clone()), HeaderMap::new(), body.clone()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(w.recommendations.load(Ordering::SeqCst));
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer t0ken".parse().unwrap());
        let response = put_flag(State(w.clone()), headers, body).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(!w.recommendations.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn metrics_carry_both_codes_from_the_start_and_the_histogram() {
        let w = Arc::new(Workload::new(None));
        let response = metrics(State(w)).await;
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains("http_requests_total{code=\"500\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("http_requests_total{code=\"200\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("http_request_duration_seconds_bucket{le=\"0.25\"}"),
            "{text}"
        );
        assert!(
            text.contains("demo_feature_flag_enabled{flag=\"recommendations\"} 1"),
            "{text}"
        );
    }
}
