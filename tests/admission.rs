//! The validating admission webhook and the freeze gate, through the real router over a real
//! SQLite store: a table of AdmissionReview v1 bodies shaped as the API server sends them,
//! with the expected allowed/denied answers, and malformed reviews answered with a clear 400,
//! as are reviews it does not understand (another apiVersion, another kind) and names, users
//! or break-glass reasons with control characters (on SQLite and PostgreSQL alike).
//! Freezes by name and by label selector, the latter matched against the Deployment's own
//! labels (in the review) or the labels CI gives the gate.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use burnguard::adapters::store::SqlStore;
use burnguard::domain::playbook::FreezeTarget;
use burnguard::http::state::ServiceState;
use burnguard::ports::{Freezes, IncidentFilter, NewFreeze, Store};
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
    router_with_freeze_on(TestDb::sqlite()).await
}

async fn router_with_freeze_on(db: TestDb) -> (axum::Router, Arc<SqlStore>, i64, TestDb) {
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    // An incident to attach the freeze (and a break-glass note) to.
    let evaluation = burnguard::ports::EvaluationRecord {
        slo: "checkout-availability".into(),
        service: "checkout".into(),
        evaluated_at: 1_000,
        status: "page".into(),
        error_budget_remaining: Some(0.1),
        snapshot: json!({}).to_string(),
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

/// A router whose only freeze is by label selector: the shop's Deployments except canaries.
async fn router_with_selector_freeze() -> (axum::Router, i64, TestDb) {
    let db = TestDb::sqlite();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let id = store
        .create_freeze(&NewFreeze {
            target: FreezeTarget {
                service: None,
                namespace: Some("shop".into()),
                deployments: vec![],
                selector: Some("app.kubernetes.io/part-of=shop,!canary".into()),
            },
            reason: "shop-availability: page alert fired".into(),
            incident_id: None,
            slo: Some("shop-availability".into()),
            source_key: "slo:shop-availability/rule:0".into(),
            created_by: "burnguard".into(),
            lift_when: None,
            at: 1_000,
        })
        .await
        .unwrap()
        .expect("a new freeze");
    let state = Arc::new(ServiceState::new(store, OUR_ACCOUNT.into()));
    (burnguard::http::router(state), id, db)
}

/// A Deployment named `name` with these labels on the object (the pod template keeps its own).
fn labelled(name: &str, image: &str, replicas: u32, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "uid": "3f5a2d0e-1b7c-4e0a-9d1e-5c2b8f7a6e41",
                     "generation": 4, "labels": labels,
                     "annotations": {"deployment.kubernetes.io/revision": "3"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name, "image": image}]}}}
    })
}

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
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
async fn reviews_it_does_not_understand_get_a_400() {
    let (router, _store, _incident, _db) = router_with_freeze().await;
    let rollout = || {
        review(
            "UPDATE",
            "checkout",
            "alice",
            deployment("checkout:2", 3, json!({})),
            deployment("checkout:1", 3, json!({})),
        )
    };
    let mut v1beta1 = rollout();
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut other_kind = rollout();
    other_kind["kind"] = json!("AdmissionResponse");
    let mut pod = rollout();
    pod["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    let mut stateful = rollout();
    stateful["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "StatefulSet"});
    let mut other_group = rollout();
    other_group["request"]["kind"] =
        json!({"group": "example.com", "version": "v1", "kind": "Deployment"});
    for (name, body, says) in [
        (
            "admission.k8s.io/v1beta1",
            v1beta1,
            "admission.k8s.io/v1beta1",
        ),
        ("another kind of review", other_kind, "AdmissionResponse"),
        ("a Pod", pod, "Pod"),
        ("a StatefulSet", stateful, "StatefulSet"),
        ("a Deployment of another group", other_group, "example.com"),
    ] {
        let (status, answer) = post(&router, serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        assert_eq!(
            answer["error"]["code"], "unsupported_admission_review",
            "{name}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{name}: {message}");
    }
    // The review it does understand still gets its answer.
    let (status, answer) = post(&router, serde_json::to_vec(&rollout()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["response"]["allowed"], false);
}

#[tokio::test]
async fn control_characters_in_reviews_are_refused_on_both_databases() {
    for db in TestDb::both().await {
        let (router, store, incident, _db) = router_with_freeze_on(db).await;
        let glass = |reason: &str| {
            review(
                "UPDATE",
                "checkout",
                "bob",
                deployment(
                    "checkout:2",
                    3,
                    json!({"burnguard.dev/break-glass": reason}),
                ),
                deployment("checkout:1", 3, json!({})),
            )
        };
        let mut user = glass("hotfix");
        user["request"]["userInfo"]["username"] = json!("bo\u{0}b");
        let mut name = glass("hotfix");
        name["request"]["name"] = json!("check\nout");
        for (case, body) in [
            ("NUL in the break-glass reason", glass("hotfix\u{0}")),
            ("escape in the break-glass reason", glass("\u{1b}[2Jhotfix")),
            ("NUL in the user", user),
            ("newline in the name", name),
        ] {
            let (status, answer) = post(&router, serde_json::to_vec(&body).unwrap()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {answer}");
            assert_eq!(answer["error"]["code"], "control_character", "{case}");
        }
        // A reason over several lines is fine, and goes on the timeline.
        let (status, answer) = post(
            &router,
            serde_json::to_vec(&glass("hotfix:\n\tthe outage")).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["response"]["allowed"], true);
        let detail = store.incident(incident).await.unwrap().unwrap();
        let glass: Vec<_> = detail
            .timeline
            .iter()
            .filter(|e| e.kind == "break_glass")
            .collect();
        assert_eq!(glass.len(), 1, "only the accepted review is recorded");
    }
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

#[tokio::test]
async fn a_selector_freeze_denies_pod_template_changes_of_the_deployments_it_selects() {
    let (router, _id, _db) = router_with_selector_freeze().await;
    let shop = json!({"app": "cart", "app.kubernetes.io/part-of": "shop"});
    let blog = json!({"app": "cart", "app.kubernetes.io/part-of": "blog"});
    let canary = json!({"app": "cart", "app.kubernetes.io/part-of": "shop", "canary": "true"});
    let in_namespace = |mut review: Value, namespace: &str| {
        review["request"]["namespace"] = json!(namespace);
        review["request"]["object"]["metadata"]["namespace"] = json!(namespace);
        review["request"]["oldObject"]["metadata"]["namespace"] = json!(namespace);
        review
    };
    let rollout = |labels: &Value, old_labels: &Value| {
        review(
            "UPDATE",
            "cart",
            "alice",
            labelled("cart", "cart:2", 3, labels.clone()),
            labelled("cart", "cart:1", 3, old_labels.clone()),
        )
    };
    let cases = [
        (
            "a rollout of a deployment whose labels the selector matches",
            rollout(&shop, &shop),
            false,
        ),
        (
            "a rollout of a deployment with other labels",
            rollout(&blog, &blog),
            true,
        ),
        (
            "a rollout of a deployment the selector excludes",
            rollout(&canary, &canary),
            true,
        ),
        (
            "a rollout that also drops the selected label",
            rollout(&json!({"app": "cart"}), &shop),
            false,
        ),
        (
            "a rollout of a deployment without labels",
            rollout(&Value::Null, &Value::Null),
            true,
        ),
        (
            "scaling a selected deployment",
            review(
                "UPDATE",
                "cart",
                "hpa",
                labelled("cart", "cart:1", 6, shop.clone()),
                labelled("cart", "cart:1", 3, shop.clone()),
            ),
            true,
        ),
        (
            "a rollout of a deployment with the same labels in another namespace",
            in_namespace(rollout(&shop, &shop), "blog"),
            true,
        ),
        (
            "burnguard's own rollback of a selected deployment",
            review(
                "UPDATE",
                "cart",
                OUR_ACCOUNT,
                labelled("cart", "cart:0", 3, shop.clone()),
                labelled("cart", "cart:1", 3, shop.clone()),
            ),
            true,
        ),
    ];
    for (name, body, allowed) in cases {
        let (status, answer) = post(&router, serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        assert_eq!(
            answer["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002",
            "{name}"
        );
        assert_eq!(answer["response"]["allowed"], allowed, "{name}: {answer}");
        if !allowed {
            let message = answer["response"]["status"]["message"].as_str().unwrap();
            assert!(
                message.contains("shop-availability: page alert fired")
                    && message.contains("break-glass"),
                "{name}: {message}"
            );
        }
    }
}

#[tokio::test]
async fn the_gate_applies_a_selector_freeze_to_the_labels_ci_gives() {
    let (router, id, _db) = router_with_selector_freeze().await;
    let cases = [
        (
            "labels the selector matches",
            "/api/v1/freeze-gate?namespace=shop&deployment=cart&labels=app=cart,app.kubernetes.io/part-of=shop",
            StatusCode::LOCKED,
        ),
        (
            "the same labels, URL-encoded",
            "/api/v1/freeze-gate?namespace=shop&deployment=cart&labels=app%3Dcart%2Capp.kubernetes.io%2Fpart-of%3Dshop",
            StatusCode::LOCKED,
        ),
        (
            "other labels",
            "/api/v1/freeze-gate?namespace=shop&deployment=cart&labels=app.kubernetes.io/part-of=blog",
            StatusCode::OK,
        ),
        (
            "labels the selector excludes",
            "/api/v1/freeze-gate?namespace=shop&deployment=cart&labels=app.kubernetes.io/part-of=shop,canary=true",
            StatusCode::OK,
        ),
        (
            "matching labels in another namespace",
            "/api/v1/freeze-gate?namespace=blog&deployment=cart&labels=app.kubernetes.io/part-of=shop",
            StatusCode::OK,
        ),
        (
            "no labels at all",
            "/api/v1/freeze-gate?namespace=shop&deployment=cart&labels=",
            StatusCode::OK,
        ),
        (
            "labels not given (only names count then)",
            "/api/v1/freeze-gate?namespace=shop&deployment=cart",
            StatusCode::OK,
        ),
    ];
    for (name, uri, want) in cases {
        let (status, body) = get(&router, uri).await;
        assert_eq!(status, want, "{name}: {body}");
        assert_eq!(body["frozen"], want == StatusCode::LOCKED, "{name}: {body}");
        if want == StatusCode::LOCKED {
            assert_eq!(body["freeze_id"], id, "{name}");
            assert_eq!(
                body["reason"], "shop-availability: page alert fired",
                "{name}"
            );
        }
    }
    for bad in ["app", "app=a,app=b", "b%40d=1", "app=w%20b"] {
        let (status, body) = get(
            &router,
            &format!("/api/v1/freeze-gate?namespace=shop&deployment=cart&labels={bad}"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_labels", "{bad}: {body}");
    }
}

#[tokio::test]
async fn labels_do_not_change_the_answer_for_a_freeze_by_name() {
    let (router, _store, _incident, _db) = router_with_freeze().await;
    let (status, _) = get(
        &router,
        "/api/v1/freeze-gate?namespace=shop&deployment=checkout&labels=app=checkout",
    )
    .await;
    assert_eq!(status, StatusCode::LOCKED);
    let (status, _) = get(
        &router,
        "/api/v1/freeze-gate?namespace=shop&deployment=cart&labels=app=checkout",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
