//! Hostile bodies, generated: every POST route of the service, in-process on a REAL SQLite
//! store, gets bodies proptest makes (arbitrary bytes, and well-formed examples with leaves
//! replaced by hostile values: control characters, huge and negative numbers, deep nesting,
//! wrong types). Authentication is configured and passed, so the parsers, not the auth checks,
//! are what is attacked. The answer is never a 5xx, and every error has the documented JSON
//! shape `{"error": {"code", "message"}}`.
//!
//! The same bodies are fuzzed without bound by `scripts/fuzz` (cargo fuzz, `fuzz/`); this is
//! the bounded run that keeps it so in every test run.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use burnguard::adapters::store::SqlStore;
use burnguard::http::auth::{ApiAuth, WebhookAuth};
use burnguard::http::state::ServiceState;
use hmac::{KeyInit, Mac};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::db::TestDb;

const TOKEN: &str = "hostile-tests-token";
const ALERTMANAGER: &str = "alertmanager-token";
const PAGERDUTY: &str = "pagerduty-secret";
const OPSGENIE: &str = "opsgenie-secret";

struct Service {
    router: axum::Router,
    _db: TestDb,
}

async fn service() -> Service {
    let db = TestDb::sqlite();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let mut state = ServiceState::new(store, "system:serviceaccount:burnguard:burnguard".into());
    state.api_auth = ApiAuth {
        tokens: vec![burnguard::http::auth::ApiToken::new("hostile", TOKEN)],
        protect_reads: false,
    };
    state.webhook_auth = WebhookAuth {
        alertmanager_token: Some(secrecy::SecretString::from(ALERTMANAGER)),
        alertmanager_basic: None,
        pagerduty_secrets: vec![secrecy::SecretString::from(PAGERDUTY)],
        opsgenie_secret: Some(secrecy::SecretString::from(OPSGENIE)),
        alertmanager_allow_unauthenticated: false,
        // Generated bodies carry any time; the replay check is not what is attacked here.
        replay_tolerance: std::time::Duration::from_secs(100 * 365 * 86_400),
    };
    state.set_slo_names([("checkout".to_string(), Vec::new())]);
    Service {
        router: burnguard::http::router(Arc::new(state)),
        _db: db,
    }
}

/// A POST route with what it needs to get past authentication, and a valid body to mutate.
struct Route {
    path: &'static str,
    example: Value,
}

fn routes() -> Vec<Route> {
    let alert = json!({
        "status": "firing",
        "labels": {"alertname": "HighLatency", "slo": "checkout", "severity": "page"},
        "annotations": {"summary": "slow"},
        "startsAt": "2026-01-04T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "c0ffee"
    });
    vec![
        Route {
            path: "/webhooks/alertmanager",
            example: json!({
                "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
                "receiver": "burnguard", "groupLabels": {}, "commonLabels": {},
                "commonAnnotations": {}, "externalURL": "http://am", "alerts": [alert]
            }),
        },
        Route {
            path: "/webhooks/pagerduty",
            example: json!({"event": {
                "id": "01", "event_type": "incident.acknowledged",
                "occurred_at": "2026-01-04T00:00:00Z",
                "agent": {"summary": "Ann"},
                "data": {"id": "P1", "incident_key": "burnguard-incident-1"}
            }}),
        },
        Route {
            path: "/webhooks/opsgenie",
            example: json!({"action": "Acknowledge", "alert": {
                "alertId": "a1", "alias": "burnguard-incident-1", "username": "ann"
            }}),
        },
        Route {
            path: "/admission/validate",
            example: json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                    "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                    "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                    "name": "checkout", "namespace": "shop", "operation": "UPDATE",
                    "userInfo": {"username": "ci"},
                    "object": {"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "checkout", "namespace": "shop", "labels": {"app": "checkout"}},
                        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}},
                    "oldObject": {"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "checkout", "namespace": "shop"},
                        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v1"}]}}}},
                    "dryRun": false
                }
            }),
        },
        Route {
            path: "/api/v1/freezes",
            example: json!({"service": "checkout", "namespace": "shop",
                "deployments": ["checkout"], "selector": "app=checkout",
                "reason": "game day", "by": "dave"}),
        },
        Route {
            path: "/api/v1/incidents/1/ack",
            example: json!({"by": "ann", "note": "looking"}),
        },
        Route {
            path: "/api/v1/incidents/1/resolve",
            example: json!({"by": "ann", "note": "fixed"}),
        },
        Route {
            path: "/api/v1/incidents/1/approve",
            example: json!({"by": "ann"}),
        },
    ]
}

/// Sends `body` to `route` with every credential it needs; returns status and body.
async fn post(router: &axum::Router, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(PAGERDUTY.as_bytes()).unwrap();
    mac.update(&body);
    let signature = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    let bearer = if path.starts_with("/webhooks/alertmanager") {
        ALERTMANAGER
    } else {
        TOKEN
    };
    let request = Request::post(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {bearer}"))
        .header("x-pagerduty-signature", signature)
        .header("x-burnguard-token", OPSGENIE)
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 4 << 20)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

/// No 5xx; an error has the documented shape.
fn check(path: &str, body: &[u8], status: u16, answer: &[u8]) -> Result<(), TestCaseError> {
    let shown = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    prop_assert!(
        status < 500,
        "{path} answered {status} to {shown:?}: {}",
        String::from_utf8_lossy(answer)
    );
    if status >= 400 {
        let error: Value = serde_json::from_slice(answer).map_err(|e| {
            TestCaseError::fail(format!("{path} {status}: not JSON ({e}) for {shown:?}"))
        })?;
        prop_assert!(
            error["error"]["code"].is_string() && error["error"]["message"].is_string(),
            "{path} {status}: {error}"
        );
    }
    Ok(())
}

/// Values that break careless code: control characters, huge and odd numbers, deep nesting.
fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        Just(json!("")),
        Just(json!("\u{0}")),
        Just(json!("a\u{0}b\u{7}c\u{1b}[31m")),
        Just(json!("x".repeat(10_000))),
        Just(json!(-1)),
        Just(json!(i64::MAX)),
        Just(json!(u64::MAX)),
        Just(json!(1e308)),
        Just(json!(-0.0)),
        Just(json!(true)),
        Just(json!("0001-01-01T00:00:00Z")),
        Just(json!("9999-99-99T99:99:99Z")),
        Just(json!("../../etc/passwd")),
        Just(json!("'; DROP TABLE incidents; --")),
        any::<String>().prop_map(Value::String),
        any::<i64>().prop_map(|n| json!(n)),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the `pick`-th leaf (in document order, wrapping) of `value` by `with`.
fn replace_leaf(value: &mut Value, pick: usize, with: Value) {
    fn count(value: &Value) -> usize {
        match value {
            Value::Object(map) => map.values().map(count).sum(),
            Value::Array(items) => items.iter().map(count).sum(),
            _ => 1,
        }
    }
    fn walk(value: &mut Value, index: &mut usize, with: &mut Option<Value>) -> bool {
        match value {
            Value::Object(map) => map.values_mut().any(|v| walk(v, index, with)),
            Value::Array(items) => items.iter_mut().any(|v| walk(v, index, with)),
            leaf if *index == 0 => {
                if let Some(with) = with.take() {
                    *leaf = with;
                }
                true
            }
            _ => {
                *index -= 1;
                false
            }
        }
    }
    let leaves = count(value);
    if leaves > 0 {
        walk(value, &mut (pick % leaves), &mut Some(with));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[test]
fn arbitrary_bytes_on_every_post_route_never_get_a_5xx() {
    let rt = runtime();
    let service = rt.block_on(service());
    for route in routes() {
        proptest!(config(64), |(body in prop::collection::vec(any::<u8>(), 0..2048))| {
            let (status, answer) = rt.block_on(post(&service.router, route.path, body.clone()));
            check(route.path, &body, status, &answer)?;
        });
    }
}

#[test]
fn well_formed_bodies_with_hostile_leaves_never_get_a_5xx() {
    let rt = runtime();
    let service = rt.block_on(service());
    for route in routes() {
        proptest!(config(96), |(pick in 0usize..64, with in hostile_value(), twice in any::<bool>(), pick2 in 0usize..64, with2 in hostile_value())| {
            let mut body = route.example.clone();
            replace_leaf(&mut body, pick, with);
            if twice {
                replace_leaf(&mut body, pick2, with2);
            }
            let bytes = serde_json::to_vec(&body).unwrap();
            let (status, answer) = rt.block_on(post(&service.router, route.path, bytes.clone()));
            check(route.path, &bytes, status, &answer)?;
        });
    }
}

#[test]
fn the_examples_themselves_are_accepted() {
    // What makes the two tests above attack the parsers: unmodified, every example gets
    // through authentication and parsing (2xx, or a 404/409 about the incident it names).
    let rt = runtime();
    let service = rt.block_on(service());
    for route in routes() {
        let body = serde_json::to_vec(&route.example).unwrap();
        let (status, answer) = rt.block_on(post(&service.router, route.path, body));
        assert!(
            status < 300 || status == 404 || status == 409,
            "{} answered {status}: {}",
            route.path,
            String::from_utf8_lossy(&answer)
        );
    }
}
