//! The validating admission webhook and the freeze gate, through the real router over a real
//! SQLite store: a table of AdmissionReview v1 bodies shaped as the API server sends them,
//! with the expected allowed/denied answers, and malformed reviews answered with a clear 400.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use burnguard::adapters::store::SqlStore;
use burnguard::domain::playbook::FreezeTarget;
use burnguard::ports::{Freezes, IncidentFilter, NewFreeze, Store};
use burnguard::service::ServiceState;
use common::db::TestDb;
use serde_json::{Value, json};
use tower::ServiceExt;

const OUR_ACCOUNT: &str = "system:serviceaccount:burnguard:burnguard";

fn deployment(image: &str, replicas: u32, annotations: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "checkout", "namespace": "shop", "annotations": annotations},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "checkout"}},
                 "template": {"metadata": {"labels": {"app": "checkout"}},
                              "spec": {"containers": [{"name": "checkout", "image": image}]}}}
    })
}

fn review(operation: &str, name: &str, user: &str, object: Value, old: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": name, "namespace": "shop", "operation": operation,
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": object, "oldObject": old, "dryRun": false
        }
    })
}

async fn router_with_freeze() -> (axum::Router, Arc<SqlStore>, i64, TestDb) {
    let db = TestDb::sqlite();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    // An incident to attach the freeze (and a break-glass note) to.
    let evaluation = burnguard::ports::EvaluationRecord {
        slo: "checkout-availability".into(),
        service: "checkout".into(),
        evaluated_at: 1_000,
        status: "page".into(),
        error_budget_remaining: Some(0.1),
        snapshot: json!({}),
    };
    store
        .record(&evaluation, |_| {
            burnguard::domain::incident::Decision::Open {
                severity: burnguard::domain::policy::Severity::Page,
                peak_burn_rate: 20.0,
                budget_remaining: Some(0.1),
            }
        })
        .await
        .unwrap();
    let incident = store
        .list_incidents(&IncidentFilter::default())
        .await
        .unwrap()[0]
        .id;
    store
        .create_freeze(&NewFreeze {
            target: FreezeTarget {
                service: Some("checkout".into()),
                namespace: Some("shop".into()),
                deployments: vec!["checkout".into()],
                selector: None,
            },
            reason: "checkout-availability: page alert fired".into(),
            incident_id: Some(incident),
            slo: Some("checkout-availability".into()),
            source_key: "slo:checkout-availability/rule:0".into(),
            created_by: "burnguard".into(),
            lift_when: None,
            at: 1_000,
        })
        .await
        .unwrap();
    let state = Arc::new(ServiceState::new(store.clone(), OUR_ACCOUNT.into()));
    (burnguard::http::router(state), store, incident, db)
}

async fn post(router: &axum::Router, body: Vec<u8>) -> (StatusCode, Value) {
    let response = router
        .clone()
        .oneshot(
            Request::post("/admission/validate")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn admission_reviews_are_answered_as_the_freeze_says() {
    let (router, store, incident, _db) = router_with_freeze().await;
    let old = deployment("checkout:1", 3, json!({}));
    let cases = [
        (
            "a rollout of the frozen deployment",
            review(
                "UPDATE",
                "checkout",
                "alice",
                deployment("checkout:2", 3, json!({})),
                old.clone(),
            ),
            false,
        ),
        (
            "scaling the frozen deployment",
            review(
                "UPDATE",
                "checkout",
                "hpa",
                deployment("checkout:1", 6, json!({})),
                old.clone(),
            ),
            true,
        ),
        (
            "burnguard's own rollback",
            review(
                "UPDATE",
                "checkout",
                OUR_ACCOUNT,
                deployment("checkout:0", 3, json!({})),
                old.clone(),
            ),
            true,
        ),
        (
            "break glass",
            review(
                "UPDATE",
                "checkout",
                "bob",
                deployment(
                    "checkout:2",
                    3,
                    json!({"burnguard.dev/break-glass": "hotfix for the outage"}),
                ),
                old.clone(),
            ),
            true,
        ),
        (
            "an empty break-glass reason",
            review(
                "UPDATE",
                "checkout",
                "bob",
                deployment("checkout:2", 3, json!({"burnguard.dev/break-glass": " "})),
                old.clone(),
            ),
            false,
        ),
        (
            "a deployment that is not frozen",
            review(
                "UPDATE",
                "cart",
                "alice",
                deployment("cart:2", 3, json!({})),
                deployment("cart:1", 3, json!({})),
            ),
            true,
        ),
        (
            "creating a deployment",
            review(
                "CREATE",
                "checkout",
                "alice",
                deployment("checkout:2", 3, json!({})),
                Value::Null,
            ),
            true,
        ),
    ];
    for (name, body, allowed) in cases {
        let (status, answer) = post(&router, serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{name}");
        assert_eq!(answer["kind"], "AdmissionReview", "{name}");
        assert_eq!(
            answer["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002",
            "{name}"
        );
        assert_eq!(answer["response"]["allowed"], allowed, "{name}: {answer}");
        if !allowed {
            let message = answer["response"]["status"]["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("incident {incident}"))
                    && message.contains("break-glass"),
                "{name}: {message}"
            );
        }
    }
    // The break-glass deploy is on the incident's timeline, with who and why.
    let detail = store.incident(incident).await.unwrap().unwrap();
    let glass: Vec<_> = detail
        .timeline
        .iter()
        .filter(|e| e.kind == "break_glass")
        .collect();
    assert_eq!(glass.len(), 1);
    assert!(glass[0].message.contains("bob") && glass[0].message.contains("hotfix for the outage"));
}

#[tokio::test]
async fn malformed_reviews_get_a_clear_400() {
    let (router, _store, _incident, _db) = router_with_freeze().await;
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("not JSON", b"hello".to_vec()),
        ("invalid UTF-8", vec![0xff, 0xfe, 0x00]),
        ("no request", serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})).unwrap()),
        ("wrong types", serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 5}})).unwrap()),
    ];
    for (name, body) in bodies {
        let (status, answer) = post(&router, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        assert_eq!(
            answer["error"]["code"], "invalid_admission_review",
            "{name}: {answer}"
        );
    }
    let (status, _) = post(&router, vec![b' '; 2 * 1024 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_gate_answers_per_deployment_and_per_service() {
    let (router, _store, incident, _db) = router_with_freeze().await;
    let get = |uri: &'static str| {
        let router = router.clone();
        async move {
            let response = router
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let (status, body) = get("/api/v1/freeze-gate?namespace=shop&deployment=checkout").await;
    assert_eq!(status, StatusCode::LOCKED);
    assert_eq!(body["frozen"], true);
    assert_eq!(body["incident"], incident);
    assert_eq!(body["since"], "1970-01-01T00:16:40Z");
    let (status, body) = get("/api/v1/freeze-gate?namespace=shop&deployment=cart").await;
    assert_eq!(
        (status, body["frozen"].clone()),
        (StatusCode::OK, json!(false))
    );
    let (status, _) = get("/api/v1/freeze-gate?service=checkout").await;
    assert_eq!(status, StatusCode::LOCKED);
}
