//! The Prometheus adapter against real local HTTP servers standing in for Prometheus-compatible
//! backends: auth and tenant headers reach the server, and unusable answers (HTTP errors,
//! garbage, NaN) become errors or no data, never numbers.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use burnguard::adapters::prometheus::{Prometheus, PrometheusConfig};
use burnguard::ports::{MetricsError, MetricsSource};
use secrecy::SecretString;

const JSON: [(axum::http::HeaderName, &str); 1] =
    [(axum::http::header::CONTENT_TYPE, "application/json")];
const EMPTY_VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
const NAN_VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1767484800,"NaN"]}]}}"#;

/// Serves a few fake backends under different path prefixes; records request headers.
async fn fake_backends() -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new()
        .route(
            "/ok/api/v1/query",
            post(move |headers: HeaderMap| {
                record.lock().unwrap().push(headers);
                async move { (JSON, EMPTY_VECTOR) }
            }),
        )
        .route(
            "/nan/api/v1/query",
            post(move || async move { (JSON, NAN_VECTOR) }),
        )
        .route(
            "/partial/api/v1/query",
            post(move || async move {
                (
                    JSON,
                    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.01"]}]},"warnings":["No StoreAPIs matched for this query"]}"#,
                )
            }),
        )
        .route(
            "/info/api/v1/query",
            post(move || async move {
                (
                    JSON,
                    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.01"]}]},"warnings":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"x\""]}"#,
                )
            }),
        )
        .route(
            "/garbage/api/v1/query",
            post(move || async move { (JSON, "{not json") }),
        )
        .route(
            "/broken/api/v1/query",
            post(|| async { (StatusCode::BAD_GATEWAY, "upstream exploded") }),
        )
        .route(
            "/refused/api/v1/query",
            post(move || async move {
                (
                    StatusCode::BAD_REQUEST,
                    JSON,
                    r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn tenant_header_and_bearer_token_reach_the_backend() {
    let (base, seen) = fake_backends().await;
    let mut config = PrometheusConfig::new(format!("{base}/ok"));
    config
        .headers
        .push(("X-Scope-OrgID".into(), "tenant-a".into()));
    config.bearer_token = Some(SecretString::from("t0ken"));
    let samples = Prometheus::new(&config)
        .unwrap()
        .instant("up", 1_767_484_800)
        .await
        .unwrap();
    assert!(samples.is_empty());
    let headers = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["x-scope-orgid"], "tenant-a");
    assert_eq!(headers["authorization"], "Bearer t0ken");
}

#[tokio::test]
async fn basic_auth_reaches_the_backend() {
    let (base, seen) = fake_backends().await;
    let mut config = PrometheusConfig::new(format!("{base}/ok"));
    config.basic_auth = Some(("grafana".into(), SecretString::from("pa:ss")));
    Prometheus::new(&config)
        .unwrap()
        .instant("up", 0)
        .await
        .unwrap();
    // base64("grafana:pa:ss")
    assert_eq!(
        seen.lock().unwrap()[0]["authorization"],
        "Basic Z3JhZmFuYTpwYTpzcw=="
    );
}

#[tokio::test]
async fn unusable_answers_are_errors_not_numbers() {
    let (base, _) = fake_backends().await;
    let client =
        |path: &str| Prometheus::new(&PrometheusConfig::new(format!("{base}/{path}"))).unwrap();

    // NaN comes back as a NaN sample; the evaluator turns it into no data (see eval tests).
    let nan = client("nan").instant("x", 0).await.unwrap();
    assert!(nan[0].value.is_nan());

    let garbage = client("garbage").instant("x", 0).await.unwrap_err();
    assert!(
        matches!(garbage, MetricsError::BadResponse(_)),
        "{garbage:?}"
    );

    let broken = client("broken").instant("x", 0).await.unwrap_err();
    assert!(
        matches!(
            broken,
            MetricsError::Rejected(_) | MetricsError::BadResponse(_)
        ),
        "{broken:?}"
    );

    let refused = client("refused").instant("x", 0).await.unwrap_err();
    assert_eq!(
        refused,
        MetricsError::Rejected("bad_data: parse error at char 3 (HTTP 400)".into())
    );

    // Thanos' and Mimir's partial responses (a real Prometheus cannot be made to send one):
    // the numbers may lack series, so the answer is not numbers.
    let partial = client("partial").instant("x", 0).await.unwrap_err();
    assert_eq!(
        partial,
        MetricsError::PartialResponse("No StoreAPIs matched for this query".into())
    );
    // An informational annotation is not a partial response.
    let info = client("info").instant("x", 0).await.unwrap();
    assert_eq!(info.len(), 1);
}

#[tokio::test]
async fn a_password_in_the_prometheus_url_never_reaches_an_error_or_a_log() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = PrometheusConfig::new(format!("http://reader:s3cret@127.0.0.1:{port}"));
    assert!(!format!("{config:?}").contains("s3cret"), "{config:?}");
    let error = Prometheus::new(&config)
        .unwrap()
        .instant("up", 0)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, MetricsError::Unreachable(_)), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
