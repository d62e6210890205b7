//! Every error answer is the documented JSON, `{"error": {"code", "message"}}`: ours and the
//! framework's own (404 on unknown routes, 405, 408 when a client stalls mid-body, 413, 415,
//! and the JSON, path and query extractors' rejections), through the real router on a server
//! on port 0, over SQLite and the REAL PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use burnguard::adapters::store::SqlStore;
use burnguard::http::auth::{ApiAuth, ApiToken};
use burnguard::http::state::ServiceState;
use common::db::TestDb;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "errors-t0ken";

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn burnguard(db: &TestDb, request_timeout: Duration) -> String {
    burnguard::adapters::prometheus::install_crypto_provider();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let mut state = ServiceState::new(store, "system:serviceaccount:burnguard:burnguard".into());
    state.api_auth = ApiAuth {
        tokens: vec![ApiToken::new("errors", TOKEN)],
        protect_reads: false,
    };
    state.webhook_auth.alertmanager_allow_unauthenticated = true;
    state.webhook_auth.pagerduty_secrets = vec![secrecy::SecretString::from("pd")];
    state.request_timeout = request_timeout;
    serve(burnguard::http::router(Arc::new(state))).await
}

/// Checks the documented shape and returns the code.
fn error_code(what: &str, content_type: Option<&str>, body: &[u8]) -> String {
    assert_eq!(content_type, Some("application/json"), "{what}");
    let answer: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(body)));
    let object = answer.as_object().unwrap();
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["error"],
        "{what}: {answer}"
    );
    let error = answer["error"].as_object().unwrap();
    assert_eq!(
        error.keys().collect::<Vec<_>>(),
        ["code", "message"],
        "{what}: {answer}"
    );
    assert!(
        !answer["error"]["message"].as_str().unwrap().is_empty(),
        "{what}: {answer}"
    );
    answer["error"]["code"].as_str().unwrap().to_string()
}

struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(
    what: &'static str,
    (method, path): (&'static str, &'static str),
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
    (status, code): (u16, &'static str),
) -> Case {
    Case {
        what,
        method,
        path,
        headers,
        body,
        status,
        code,
    }
}

const AUTH: &[(&str, &str)] = &[("authorization", "Bearer errors-t0ken")];

#[tokio::test]
async fn every_error_answer_is_the_documented_json_on_both_databases() {
    let cases = [
        case(
            "an unknown route",
            ("GET", "/nothing-here"),
            &[],
            vec![],
            (404, "not_found"),
        ),
        case(
            "an unknown API route",
            ("POST", "/api/v1/nothing"),
            AUTH,
            vec![],
            (404, "not_found"),
        ),
        case(
            "a method a route does not take",
            ("DELETE", "/metrics"),
            &[],
            vec![],
            (405, "method_not_allowed"),
        ),
        case(
            "GET on a webhook",
            ("GET", "/webhooks/alertmanager"),
            &[],
            vec![],
            (405, "method_not_allowed"),
        ),
        case(
            "POST on a read",
            ("POST", "/api/v1/slos"),
            AUTH,
            vec![],
            (405, "method_not_allowed"),
        ),
        case(
            "a 2 MiB API body",
            ("POST", "/api/v1/freezes"),
            AUTH,
            vec![b' '; 2 << 20],
            (413, "payload_too_large"),
        ),
        case(
            "a 5 MiB Alertmanager body",
            ("POST", "/webhooks/alertmanager"),
            &[],
            vec![b' '; 5 << 20],
            (413, "payload_too_large"),
        ),
        case(
            "a 2 MiB admission review",
            ("POST", "/admission/validate"),
            &[],
            vec![b' '; 2 << 20],
            (413, "payload_too_large"),
        ),
        case(
            "a path that is not UTF-8",
            ("GET", "/api/v1/incidents/%FF"),
            &[],
            vec![],
            (400, "bad_request"),
        ),
        case(
            "no token",
            ("POST", "/api/v1/incidents/1/ack"),
            &[],
            vec![],
            (401, "unauthorized"),
        ),
        case(
            "a wrong token",
            ("DELETE", "/api/v1/freezes/1"),
            &[("authorization", "bearer nope")],
            vec![],
            (401, "unauthorized"),
        ),
        case(
            "an unsigned PagerDuty event",
            ("POST", "/webhooks/pagerduty"),
            &[],
            b"{}".to_vec(),
            (401, "unauthorized"),
        ),
        case(
            "a body that is not JSON",
            ("POST", "/api/v1/freezes"),
            AUTH,
            b"{".to_vec(),
            (400, "invalid_body"),
        ),
        case(
            "not ready",
            ("GET", "/readyz"),
            &[],
            vec![],
            (503, "service_unavailable"),
        ),
    ];
    for db in TestDb::both().await {
        let addr = burnguard(&db, Duration::from_secs(30)).await;
        let client = reqwest::Client::new();
        for case in &cases {
            let mut request = client
                .request(
                    case.method.parse().unwrap(),
                    format!("http://{addr}{}", case.path),
                )
                .body(case.body.clone());
            for (name, value) in case.headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap();
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
            assert_eq!(status, case.status, "{}: {body:?}", case.what);
            assert_eq!(
                error_code(case.what, content_type, &body),
                case.code,
                "{}",
                case.what
            );
            if status == 405 {
                assert!(
                    headers.contains_key("allow"),
                    "{}: the Allow header stays",
                    case.what
                );
            }
            if status == 401 {
                assert!(
                    headers.contains_key("www-authenticate"),
                    "{}: 401 says how to authenticate",
                    case.what
                );
            }
        }
    }
}

/// Sends a request head announcing a 100-byte body, sends part of it and stalls; returns the
/// answer's status line, content type and body.
async fn stall_mid_body(addr: &str, path: &str, extra: &str) -> (String, String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n{extra}\r\n{{\"reason\": \"sl"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read the head, then as much body as it announces (the server may keep the socket open).
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed without an answer: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer).to_string();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length: usize = text[..end]
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .expect("the answer has a Content-Length");
        if answer.len() >= end + 4 + length {
            let head = &text[..end];
            let content_type = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-type")
                        .then(|| value.trim().to_string())
                })
                .unwrap_or_default();
            let status = head.lines().next().unwrap().to_string();
            return (
                status,
                content_type,
                answer[end + 4..end + 4 + length].to_vec(),
            );
        }
    }
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_a_json_408() {
    for db in TestDb::both().await {
        // A short timeout keeps the test short; nothing is asserted about time.
        let addr = burnguard(&db, Duration::from_millis(500)).await;
        for (path, extra) in [
            (
                "/api/v1/freezes",
                format!("Authorization: Bearer {TOKEN}\r\n"),
            ),
            ("/webhooks/alertmanager", String::new()),
            ("/admission/validate", String::new()),
        ] {
            let (status, content_type, body) = stall_mid_body(&addr, path, &extra).await;
            assert!(status.contains(" 408 "), "{path}: {status}");
            assert_eq!(
                error_code(path, Some(&content_type), &body),
                "request_timeout"
            );
            let message = serde_json::from_slice::<Value>(&body).unwrap()["error"]["message"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(message.contains("500ms"), "{path}: {message}");
        }
    }
}

/// What is sent, its content type, its body, and the expected status and code.
type ProbeCase = (
    &'static str,
    Option<&'static str>,
    &'static [u8],
    u16,
    &'static str,
);

#[derive(serde::Deserialize)]
struct Probe {
    #[allow(dead_code)]
    reason: String,
}

/// The JSON extractor is not used by our routes today; its rejections (415, 400, 422) get the
/// same shape through [`burnguard::http::harden`], which every router goes through.
#[tokio::test]
async fn the_json_extractors_rejections_are_the_documented_json_too() {
    let probe = axum::Router::new().route(
        "/probe",
        post(|axum::Json(_): axum::Json<Probe>| async { "ok" }),
    );
    let addr = serve(burnguard::http::harden(probe, Duration::from_secs(30))).await;
    let client = reqwest::Client::new();
    let cases: [ProbeCase; 4] = [
        (
            "no content type",
            None,
            br#"{"reason": "x"}"#,
            415,
            "unsupported_media_type",
        ),
        (
            "a text body",
            Some("text/plain"),
            br#"{"reason": "x"}"#,
            415,
            "unsupported_media_type",
        ),
        (
            "broken JSON",
            Some("application/json"),
            b"{",
            400,
            "bad_request",
        ),
        (
            "the wrong shape",
            Some("application/json"),
            br#"{"reason": 5}"#,
            422,
            "unprocessable_entity",
        ),
    ];
    for (what, content_type, body, status, code) in cases {
        let mut request = client
            .post(format!("http://{addr}/probe"))
            .body(body.to_vec());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{what}");
        let answer_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.bytes().await.unwrap();
        assert_eq!(
            error_code(what, answer_type.as_deref(), &body),
            code,
            "{what}"
        );
    }
    let ok = client
        .post(format!("http://{addr}/probe"))
        .header("content-type", "application/json")
        .body(r#"{"reason": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}
