//! The remediation ENGINE against Kubernetes, over the REAL SQLite and the REAL PostgreSQL:
//! a [`Remediator`] built as `serve` builds it, its Kubernetes client talking to the API server
//! stand-in of `common::kube` (request by request: method, path, fieldManager, content type,
//! body; anything else fails the test).
//!
//! - Freezes are desired state: what the store says reaches Kubernetes whoever recorded it and
//!   whatever happened in between (a crash between record and apply, a freeze made by hand, a
//!   lifted freeze, an API error), and once Kubernetes matches, a pass sends nothing.
//! - Rollback through a playbook: the template rolled away from is in the store before the
//!   PATCH, and a later incident never rolls back to it, even after a restart.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;
use tower::ServiceExt;

use burnguard::adapters::actuator::Actuators;
use burnguard::adapters::http_action::HttpActuator;
use burnguard::adapters::kube::KubeActuator;
use burnguard::adapters::prometheus::{Prometheus, PrometheusConfig};
use burnguard::adapters::store::SqlStore;
use burnguard::domain::burn::Status;
use burnguard::domain::incident::Decision;
use burnguard::domain::playbook::{FreezeTarget, Playbook};
use burnguard::domain::policy::{Severity, Slo};
use burnguard::engine::evaluate::{EvalStatus, Evaluation, SloEvaluation, WindowValues};
use burnguard::engine::remediate::{RemediationSettings, Remediator};
use burnguard::ports::{
    EvaluationRecord, FreezeRecord, Freezes, IncidentDetail, Instance, Journal, NewFreeze, Store,
};
use burnguard::service::ServiceState;
use common::db::TestDb;
use common::kube::{
    ApiServer, Expect, Release, V1, V2, V3, checkout_at, deployment, expect, list, reads,
    replica_set_of, rollback_patch, status, watched_api_server,
};
use common::prometheus::free_port;

/// When the freezes of these tests were recorded: 2026-01-04T00:00:00Z.
const AT: i64 = 1_767_484_800;
const AT_TEXT: &str = "2026-01-04T00:00:00Z";

type Engine = Remediator<SqlStore, Actuators, Prometheus>;

/// A Remediator as `serve` builds it, with `kube` as its cluster; Prometheus is not needed.
fn new_engine(store: Arc<SqlStore>, kube: KubeActuator) -> Arc<Engine> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let prometheus = Prometheus::new(&PrometheusConfig::new(format!(
        "http://127.0.0.1:{}",
        free_port()
    )))
    .unwrap();
    Remediator::new(
        store,
        Arc::new(Actuators {
            http: HttpActuator::new().unwrap(),
            kube: Some(kube),
        }),
        Arc::new(prometheus),
        RemediationSettings::default(),
        Instance {
            name: "test-host".into(),
            id: format!("test-host/{n}"),
        },
    )
}

fn load(text: &str) -> (Vec<Slo>, BTreeMap<String, Playbook>) {
    let (slos, books, problems) = burnguard::policies::parse_policies("t.yaml", text);
    assert!(problems.is_empty(), "{problems:?}");
    (
        slos.into_iter().map(|l| l.slo).collect(),
        books
            .into_iter()
            .map(|b| (b.playbook.name.clone(), b.playbook))
            .collect(),
    )
}

/// The checkout SLO, whose page runs the `degrade` playbook with `steps`.
fn policy_running(steps: &str) -> String {
    format!(
        "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {{name: checkout}}\nspec:\n  service: checkout\n  objective: 99.9\n  indicator:\n    ratio:\n      errors: sum(rate(http_requests_total{{job=\"checkout\",code=\"500\"}}[{{{{.window}}}}]))\n      total: sum(rate(http_requests_total{{job=\"checkout\"}}[{{{{.window}}}}]))\n  budgetPolicy:\n    - {{when: {{alert: page}}, run: degrade}}\n---\napiVersion: burnguard.dev/v1\nkind: Playbook\nmetadata: {{name: degrade}}\nspec:\n  steps:\n{steps}\n"
    )
}

const ROLLBACK_STEP: &str =
    "    - name: roll back checkout\n      rollback: {namespace: shop, deployment: checkout}\n";

fn page_evaluation(slo: &Slo, at: i64) -> Evaluation {
    Evaluation {
        at,
        slos: vec![std::sync::Arc::new(SloEvaluation {
            name: slo.name.clone(),
            service: slo.service.clone(),
            objective: slo.objective.ratio(),
            window: slo.window_name(),
            budget_period: None,
            group: Default::default(),
            status: EvalStatus::Assessed(Status::Page),
            source: None,
            error_ratio: WindowValues::default(),
            burn_rate: WindowValues::default(),
            error_budget_remaining: Some(0.5),
            time_to_exhaustion_seconds: None,
            alerts: Vec::new(),
            error: None,
        })],
        queries: 0,
        failed_queries: 0,
        answered_after: std::time::Duration::ZERO,
        query_errors: Default::default(),
    }
}

fn record(at: i64, status: &str) -> EvaluationRecord<'_> {
    EvaluationRecord {
        slo: "checkout".into(),
        service: "checkout".into(),
        evaluated_at: at,
        status: status.into(),
        error_budget_remaining: Some(0.5),
        snapshot: json!({}).to_string(),
    }
}

async fn open_page_incident(store: &SqlStore, at: i64) -> i64 {
    store
        .record(&record(at, "page"), |_| Decision::Open {
            severity: Severity::Page,
            peak_burn_rate: 20.0,
            budget_remaining: Some(0.5),
        })
        .await
        .unwrap()
        .incident_id
        .unwrap()
}

async fn resolve_incident(store: &SqlStore, at: i64) {
    store
        .record(&record(at, "ok"), |_| Decision::Resolve {
            budget_remaining: Some(0.5),
        })
        .await
        .unwrap();
}

async fn detail(store: &SqlStore, incident: i64) -> IncidentDetail {
    store.incident(incident).await.unwrap().unwrap()
}

fn events<'a>(d: &'a IncidentDetail, kind: &str) -> Vec<&'a str> {
    d.timeline
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.message.as_str())
        .collect()
}

// Freezes.

/// A freeze exactly as the engine records it for a budget rule (`created_by` burnguard) or as
/// `POST /api/v1/freezes` records one (`created_by` api, no incident, no SLO).
fn new_freeze(
    created_by: &str,
    incident: Option<i64>,
    deployments: &[&str],
    selector: Option<&str>,
    reason: &str,
) -> NewFreeze {
    let by_burnguard = created_by == "burnguard";
    NewFreeze {
        target: FreezeTarget {
            service: by_burnguard.then(|| "checkout".into()),
            namespace: Some("shop".into()),
            deployments: deployments.iter().map(|d| d.to_string()).collect(),
            selector: selector.map(String::from),
        },
        reason: reason.into(),
        incident_id: incident,
        slo: by_burnguard.then(|| "checkout".into()),
        source_key: if by_burnguard {
            format!("slo:checkout/rule:{reason}")
        } else {
            format!("manual/{AT}/{reason}")
        },
        created_by: created_by.into(),
        lift_when: by_burnguard.then(|| json!({"budgetRemainingBelow": 0.15})),
        at: AT,
    }
}

fn deployment_path(name: &str) -> &'static str {
    Box::leak(format!("/apis/apps/v1/namespaces/shop/deployments/{name}").into_boxed_str())
}

/// The server-side apply of a freeze's marks on `name`: exactly burnguard's annotations under
/// field manager burnguard, forced, and nothing of the spec.
fn apply_marks(name: &str, reason: &str, incident: Option<i64>) -> Expect {
    let mut annotations = json!({
        "burnguard.dev/frozen": "true",
        "burnguard.dev/frozen-reason": reason,
        "burnguard.dev/frozen-at": AT_TEXT,
    });
    if let Some(incident) = incident {
        annotations["burnguard.dev/incident"] = json!(incident.to_string());
    }
    let wanted = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations},
    });
    Expect {
        content_type: Some("application/apply-patch+yaml"),
        body: Some(Box::new(move |body: &Value| assert_eq!(body, &wanted))),
        ..expect(
            "PATCH",
            deployment_path(name),
            &["fieldManager=burnguard", "force=true"],
            deployment(name, 3, false, &format!("{name}:3")),
        )
    }
}

/// The apply that takes burnguard's marks off `name`: the same object without annotations.
fn remove_marks(name: &str) -> Expect {
    let wanted = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}});
    Expect {
        content_type: Some("application/apply-patch+yaml"),
        body: Some(Box::new(move |body: &Value| assert_eq!(body, &wanted))),
        ..expect(
            "PATCH",
            deployment_path(name),
            &["fieldManager=burnguard", "force=true"],
            deployment(name, 3, false, &format!("{name}:3")),
        )
    }
}

async fn freeze(store: &SqlStore, id: i64) -> FreezeRecord {
    store
        .active_freezes()
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("freeze {id} is not active"))
}

/// The freeze's `removed_at` column, read with SQL of our own.
async fn removed_at(db: &TestDb, id: i64) -> Option<i64> {
    let raw = sqlx::AnyPool::connect(db.url()).await.unwrap();
    let row = sqlx::query("SELECT removed_at FROM freezes WHERE id = $1")
        .bind(id)
        .fetch_one(&raw)
        .await
        .unwrap();
    let at = row.try_get("removed_at").unwrap();
    raw.close().await;
    at
}

/// What the freeze gate answers CI/CD for `shop/<deployment>`.
async fn gate(store: &Arc<SqlStore>, deployment: &str) -> (StatusCode, Value) {
    let router = burnguard::http::router(Arc::new(ServiceState::new(
        store.clone(),
        "system:serviceaccount:burnguard:burnguard".into(),
    )));
    let response = router
        .oneshot(
            Request::get(format!(
                "/api/v1/freeze-gate?namespace=shop&deployment={deployment}"
            ))
            .body(Body::empty())
            .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Every request of the script was made, and nothing after it.
async fn nothing_but_the_script(server: &mut ApiServer, db: &TestDb) {
    server.script_done().await;
    assert_eq!(
        server.unexpected(),
        Vec::<String>::new(),
        "requests past the script on {}",
        db.url()
    );
}

#[tokio::test]
async fn a_freeze_recorded_before_a_crash_reaches_kubernetes_in_the_next_pass_and_only_once() {
    for db in TestDb::both().await {
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let incident = open_page_incident(&store, AT).await;
        // What a process killed between record and apply leaves: the record, nothing applied.
        let reason = "checkout: error budget below 15%";
        let id = store
            .create_freeze(&new_freeze(
                "burnguard",
                Some(incident),
                &["checkout"],
                None,
                reason,
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(freeze(&store, id).await.applied, None);

        // A new process: its first pass applies the marks and records them.
        let (kube, mut server) =
            watched_api_server(vec![apply_marks("checkout", reason, Some(incident))]);
        let engine = new_engine(store.clone(), kube);
        engine.reconcile_freezes().await;
        server.script_done().await;
        assert_eq!(
            freeze(&store, id).await.applied,
            Some(json!({"namespace": "shop", "deployments": ["checkout"], "complete": true})),
            "{}",
            db.url()
        );

        // Kubernetes matches the store: the next pass calls nothing.
        engine.reconcile_freezes().await;
        nothing_but_the_script(&mut server, &db).await;
        assert!(events(&detail(&store, incident).await, "freeze_not_applied").is_empty());
    }
}

#[tokio::test]
async fn a_freeze_made_by_hand_reaches_kubernetes_the_same_way_selector_included() {
    for db in TestDb::both().await {
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let reason = "release train paused for the sale";
        let id = store
            .create_freeze(&new_freeze(
                "api",
                None,
                &["checkout"],
                Some("app.kubernetes.io/part-of=shop"),
                reason,
            ))
            .await
            .unwrap()
            .unwrap();
        let script = vec![
            expect(
                "GET",
                "/apis/apps/v1/namespaces/shop/deployments",
                &["labelSelector=app.kubernetes.io%2Fpart-of%3Dshop"],
                list(
                    "DeploymentList",
                    vec![
                        deployment("cart", 1, false, "cart:1"),
                        deployment("checkout", 3, false, "checkout:3"),
                    ],
                ),
            ),
            // No incident: no incident annotation.
            apply_marks("cart", reason, None),
            apply_marks("checkout", reason, None),
        ];
        let (kube, mut server) = watched_api_server(script);
        let engine = new_engine(store.clone(), kube);
        engine.reconcile_freezes().await;
        server.script_done().await;
        assert_eq!(
            freeze(&store, id).await.applied,
            Some(
                json!({"namespace": "shop", "deployments": ["cart", "checkout"], "complete": true})
            ),
            "{}",
            db.url()
        );
        engine.reconcile_freezes().await;
        nothing_but_the_script(&mut server, &db).await;
    }
}

#[tokio::test]
async fn a_lifted_freeze_loses_its_marks_except_where_another_active_freeze_keeps_them() {
    for db in TestDb::both().await {
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let incident = open_page_incident(&store, AT).await;
        let (budget, by_hand) = ("checkout: error budget below 15%", "cart migration");
        let lifted = store
            .create_freeze(&new_freeze(
                "burnguard",
                Some(incident),
                &["checkout", "cart"],
                None,
                budget,
            ))
            .await
            .unwrap()
            .unwrap();
        let staying = store
            .create_freeze(&new_freeze("api", None, &["cart"], None, by_hand))
            .await
            .unwrap()
            .unwrap();
        let script = vec![
            // First pass: both freezes reach Kubernetes (the names sorted).
            apply_marks("cart", budget, Some(incident)),
            apply_marks("checkout", budget, Some(incident)),
            apply_marks("cart", by_hand, None),
            // Second pass, after the first freeze is lifted: cart is still frozen by hand, so
            // it keeps marks, and they name the freeze that holds it; checkout's marks go.
            remove_marks("checkout"),
            apply_marks("cart", by_hand, None),
        ];
        let (kube, mut server) = watched_api_server(script);
        let engine = new_engine(store.clone(), kube);
        engine.reconcile_freezes().await;
        assert!(store.lift_freeze(lifted, "api", AT + 600).await.unwrap());
        assert_eq!(removed_at(&db, lifted).await, None);
        engine.reconcile_freezes().await;
        server.script_done().await;
        let removed = removed_at(&db, lifted).await;
        assert!(
            removed.is_some_and(|at| at >= AT + 600),
            "removed_at {removed:?} on {}",
            db.url()
        );
        assert!(store.lifted_not_removed().await.unwrap().is_empty());
        assert_eq!(
            freeze(&store, staying).await.applied,
            Some(json!({"namespace": "shop", "deployments": ["cart"], "complete": true}))
        );
        // The gate agrees: cart is frozen by hand, checkout is free.
        let (status, body) = gate(&store, "cart").await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (StatusCode::LOCKED, Some(by_hand))
        );
        assert_eq!(gate(&store, "checkout").await.0, StatusCode::OK);
        engine.reconcile_freezes().await;
        nothing_but_the_script(&mut server, &db).await;
    }
}

#[tokio::test]
async fn a_freeze_not_yet_applied_keeps_its_marks_on_a_deployment_a_lifted_freeze_unmarks() {
    // One field manager: on each Deployment, the last apply of the pass is what stays. A
    // freeze made by hand (not applied yet) on checkout, and in the same pass a lifted freeze's
    // marks coming off checkout: whatever the order of the two applies, checkout must end with
    // the active freeze's marks.
    for db in TestDb::both().await {
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let incident = open_page_incident(&store, AT).await;
        let (budget, by_hand) = ("checkout: error budget below 15%", "hotfix only");
        let lifted = store
            .create_freeze(&new_freeze(
                "burnguard",
                Some(incident),
                &["checkout"],
                None,
                budget,
            ))
            .await
            .unwrap()
            .unwrap();
        let applies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let recorded = |seen: &Arc<Mutex<Vec<Value>>>| {
            let seen = seen.clone();
            Expect {
                content_type: Some("application/apply-patch+yaml"),
                body: Some(Box::new(move |body: &Value| {
                    seen.lock().unwrap().push(body.clone())
                })),
                ..expect(
                    "PATCH",
                    deployment_path("checkout"),
                    &["fieldManager=burnguard", "force=true"],
                    deployment("checkout", 3, false, "checkout:3"),
                )
            }
        };
        let script = vec![
            apply_marks("checkout", budget, Some(incident)),
            recorded(&applies),
            recorded(&applies),
        ];
        let (kube, mut server) = watched_api_server(script);
        let engine = new_engine(store.clone(), kube);
        engine.reconcile_freezes().await;
        let staying = store
            .create_freeze(&new_freeze("api", None, &["checkout"], None, by_hand))
            .await
            .unwrap()
            .unwrap();
        assert!(store.lift_freeze(lifted, "api", AT + 600).await.unwrap());
        engine.reconcile_freezes().await;
        nothing_but_the_script(&mut server, &db).await;
        let applies = applies.lock().unwrap().clone();
        let last = &applies.last().unwrap()["metadata"]["annotations"];
        assert_eq!(
            last["burnguard.dev/frozen-reason"],
            by_hand,
            "checkout is frozen by hand, yet the pass left it without marks (applies in order: {applies:?}) on {}",
            db.url()
        );
        assert!(removed_at(&db, lifted).await.is_some());
        assert_eq!(
            freeze(&store, staying).await.applied,
            Some(json!({"namespace": "shop", "deployments": ["checkout"], "complete": true}))
        );
    }
}

#[tokio::test]
async fn an_api_error_on_apply_keeps_the_freeze_at_the_gate_says_so_once_and_is_retried() {
    for db in TestDb::both().await {
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let incident = open_page_incident(&store, AT).await;
        let reason = "checkout: error budget below 15%";
        let id = store
            .create_freeze(&new_freeze(
                "burnguard",
                Some(incident),
                &["checkout"],
                None,
                reason,
            ))
            .await
            .unwrap()
            .unwrap();
        let failing = |code: u16, why: &str, message: &str| Expect {
            status: code,
            reply: status(code, why, message),
            ..apply_marks("checkout", reason, Some(incident))
        };
        let script = vec![
            failing(
                403,
                "Forbidden",
                "deployments.apps \"checkout\" is forbidden: User \"system:serviceaccount:burnguard:burnguard\" cannot patch resource \"deployments\"",
            ),
            failing(500, "InternalError", "etcdserver: request timed out"),
            apply_marks("checkout", reason, Some(incident)),
        ];
        let (kube, mut server) = watched_api_server(script);
        let engine = new_engine(store.clone(), kube);
        for pass in 1..=2 {
            engine.reconcile_freezes().await;
            // Not applied whole: recorded as partial (the failed Deployment included, since an
            // error does not prove nothing was applied), so the next pass applies it again.
            let record = freeze(&store, id).await;
            assert_eq!(
                record.applied,
                Some(json!({"namespace": "shop", "deployments": ["checkout"], "complete": false})),
                "pass {pass} on {}",
                db.url()
            );
            let (status, body) = gate(&store, "checkout").await;
            assert_eq!(
                (status, body["freeze_id"].as_i64()),
                (StatusCode::LOCKED, Some(id)),
                "the freeze holds at the gate after failed pass {pass}: {body}"
            );
        }
        let d = detail(&store, incident).await;
        let noted = events(&d, "freeze_not_applied");
        assert_eq!(noted.len(), 1, "{noted:?} on {}", db.url());
        assert!(
            noted[0].contains("RBAC") && noted[0].contains("holds at the freeze gate"),
            "{}",
            noted[0]
        );
        // The third pass gets through: applied, and the timeline still says it once.
        engine.reconcile_freezes().await;
        nothing_but_the_script(&mut server, &db).await;
        assert_eq!(
            freeze(&store, id).await.applied,
            Some(json!({"namespace": "shop", "deployments": ["checkout"], "complete": true}))
        );
        assert_eq!(
            events(&detail(&store, incident).await, "freeze_not_applied").len(),
            1
        );
    }
}

#[tokio::test]
async fn a_freeze_applied_partway_then_lifted_leaves_no_marks_behind() {
    // cart takes the marks, checkout's apply fails; the freeze is lifted before a retry gets
    // through. Both Deployments must end without burnguard's marks.
    for db in TestDb::both().await {
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let reason = "release train paused";
        let id = store
            .create_freeze(&new_freeze(
                "api",
                None,
                &["cart", "checkout"],
                None,
                reason,
            ))
            .await
            .unwrap()
            .unwrap();
        let failing = Expect {
            status: 500,
            reply: status(500, "InternalError", "etcdserver: request timed out"),
            ..apply_marks("checkout", reason, None)
        };
        let script = vec![
            apply_marks("cart", reason, None),
            failing,
            remove_marks("cart"),
            remove_marks("checkout"),
        ];
        let (kube, mut server) = watched_api_server(script);
        let engine = new_engine(store.clone(), kube);
        engine.reconcile_freezes().await;
        assert_eq!(
            freeze(&store, id).await.applied,
            Some(
                json!({"namespace": "shop", "deployments": ["cart", "checkout"], "complete": false})
            ),
            "{}",
            db.url()
        );
        assert!(store.lift_freeze(id, "api", AT + 60).await.unwrap());
        engine.reconcile_freezes().await;
        nothing_but_the_script(&mut server, &db).await;
        assert!(
            store.lifted_not_removed().await.unwrap().is_empty(),
            "the lifted freeze's marks are recorded as removed on {}",
            db.url()
        );
    }
}

#[tokio::test]
async fn the_stand_in_catches_a_call_the_engine_makes_after_the_script() {
    // What makes "nothing more was sent" above a real check: with the record cleared, the
    // pass calls again, and that call is caught (and answered 500, so it is not applied whole).
    let db = TestDb::sqlite();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let reason = "release train paused";
    let id = store
        .create_freeze(&new_freeze("api", None, &["checkout"], None, reason))
        .await
        .unwrap()
        .unwrap();
    let (kube, mut server) = watched_api_server(vec![apply_marks("checkout", reason, None)]);
    let engine = new_engine(store.clone(), kube);
    engine.reconcile_freezes().await;
    server.script_done().await;
    store.set_freeze_applied(id, None).await.unwrap();
    engine.reconcile_freezes().await;
    let unexpected = server.unexpected();
    assert_eq!(unexpected.len(), 1, "{unexpected:?}");
    assert!(
        unexpected[0].starts_with("PATCH /apis/apps/v1/namespaces/shop/deployments/checkout?")
            && unexpected[0].contains("fieldManager=burnguard"),
        "{unexpected:?}"
    );
    // Answered 500: recorded as not applied whole, so a later pass tries again.
    assert_eq!(
        freeze(&store, id).await.applied,
        Some(json!({"namespace": "shop", "deployments": ["checkout"], "complete": false}))
    );
}

// Rollback through a playbook.

/// The rollback PATCH from revision `from` to `to`'s template. While the engine waits for the
/// answer, the store must already hold every template in `avoided_then` (the one this PATCH
/// rolls away from included) and say that this incident rolls to `to`.
fn rollback_patch_after_record(
    store: &Arc<SqlStore>,
    incident: i64,
    from: u64,
    to: Release,
    avoided_then: &[Release],
) -> Expect {
    let store = store.clone();
    let mut wanted: Vec<String> = avoided_then.iter().map(|r| r.hash.to_string()).collect();
    wanted.sort();
    Expect {
        before_reply: Some(Box::new(move || {
            Box::pin(async move {
                let mut avoided = store.rolled_away_from("shop", "checkout").await.unwrap();
                avoided.sort();
                assert_eq!(
                    avoided, wanted,
                    "the template rolled away from must be in the store before the PATCH"
                );
                assert_eq!(
                    store
                        .rolled_to("shop", "checkout", incident)
                        .await
                        .unwrap()
                        .as_deref(),
                    Some(to.hash)
                );
            })
        })),
        // The API server answers with the Deployment now asking for `to`'s template.
        ..rollback_patch(from, to, checkout_at(from, to, false))
    }
}

#[tokio::test]
async fn the_engine_rolls_back_to_the_second_release_then_never_back_to_the_bad_third() {
    let (slos, books) = load(&policy_running(ROLLBACK_STEP));
    for db in TestDb::both().await {
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let now = chrono::Utc::now().timestamp();

        // v3 is bad: the page's playbook rolls back to v2.
        let first = open_page_incident(&store, now).await;
        let mut script = reads(
            checkout_at(3, V3, false),
            vec![
                replica_set_of(V1, 1, &[], 0),
                replica_set_of(V2, 2, &[], 0),
                replica_set_of(V3, 3, &[], 3),
            ],
        );
        script.push(rollback_patch_after_record(&store, first, 3, V2, &[V3]));
        let (kube, mut server) = watched_api_server(script);
        let engine = new_engine(store.clone(), kube);
        engine
            .after_cycle(&slos, &books, &page_evaluation(&slos[0], now))
            .await;
        engine.wait_idle().await;
        nothing_but_the_script(&mut server, &db).await;
        let d = detail(&store, first).await;
        assert_eq!(d.actions.len(), 1);
        assert_eq!(d.actions[0].status, "succeeded", "{:?}", d.actions[0]);
        assert_eq!(
            events(&d, "action_succeeded"),
            [format!(
                "step `roll back checkout` succeeded: rolled shop/checkout back from revision 3 ({}) to the template of revision 2 ({})",
                V3.hash, V2.hash
            )]
        );

        // The controller renumbered: v2 is revision 4 (history "2"), and the revision just
        // before it is the bad v3. A new incident, handled by a new process: the avoid list
        // comes from the store, and the rollback goes to v1.
        resolve_incident(&store, now + 60).await;
        let second = open_page_incident(&store, now + 120).await;
        assert_ne!(first, second);
        let mut script = reads(
            checkout_at(4, V2, false),
            vec![
                replica_set_of(V1, 1, &[], 0),
                replica_set_of(V2, 4, &[2], 3),
                replica_set_of(V3, 3, &[], 0),
            ],
        );
        script.push(rollback_patch_after_record(
            &store,
            second,
            4,
            V1,
            &[V3, V2],
        ));
        let (kube, mut server) = watched_api_server(script);
        let restarted = new_engine(store.clone(), kube);
        restarted
            .after_cycle(&slos, &books, &page_evaluation(&slos[0], now + 120))
            .await;
        restarted.wait_idle().await;
        nothing_but_the_script(&mut server, &db).await;
        let d = detail(&store, second).await;
        assert_eq!(d.actions[0].status, "succeeded", "{:?}", d.actions[0]);
        assert_eq!(
            events(&d, "action_succeeded"),
            [format!(
                "step `roll back checkout` succeeded: rolled shop/checkout back from revision 4 ({}) to the template of revision 1 ({})",
                V2.hash, V1.hash
            )]
        );
    }
}

#[tokio::test]
async fn the_engine_refuses_to_roll_back_a_paused_deployment_and_says_why() {
    let (slos, books) = load(&policy_running(ROLLBACK_STEP));
    for db in TestDb::both().await {
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let now = chrono::Utc::now().timestamp();
        let incident = open_page_incident(&store, now).await;
        // One GET, then nothing: no ReplicaSet list, no PATCH.
        let (kube, mut server) = watched_api_server(vec![expect(
            "GET",
            deployment_path("checkout"),
            &[],
            checkout_at(3, V3, true),
        )]);
        let engine = new_engine(store.clone(), kube);
        engine
            .after_cycle(&slos, &books, &page_evaluation(&slos[0], now))
            .await;
        engine.wait_idle().await;
        nothing_but_the_script(&mut server, &db).await;
        let d = detail(&store, incident).await;
        assert_eq!(d.actions[0].status, "failed");
        let failed = events(&d, "action_failed");
        assert_eq!(failed.len(), 1, "{:?}", d.timeline);
        assert!(
            failed[0].contains("refused: rolling back deployment shop/checkout: it is paused"),
            "{}",
            failed[0]
        );
        assert_eq!(events(&d, "playbook_stopped").len(), 1);
        assert!(
            store
                .rolled_away_from("shop", "checkout")
                .await
                .unwrap()
                .is_empty(),
            "a refused rollback records nothing to avoid"
        );
    }
}

/// `serve --kubernetes` as built: the controller's clean-up goes through the service's
/// [`ServiceHost`] to this store and this cluster.
#[tokio::test]
async fn deleting_an_slo_object_lifts_its_freeze_and_resolves_its_incident_before_the_finalizer_goes()
 {
    use burnguard::adapters::kube::controller::{Context, ControllerSettings, reconcile_slo};
    use burnguard::service::cluster::ServiceHost;
    for db in TestDb::both().await {
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let incident = open_page_incident(&store, AT).await;
        let budget = "checkout: error budget below 15%";
        let freeze_id = store
            .create_freeze(&new_freeze(
                "burnguard",
                Some(incident),
                &["checkout"],
                None,
                budget,
            ))
            .await
            .unwrap()
            .unwrap();
        let checked = store.clone();
        let slo_path = "/apis/burnguard.dev/v1/namespaces/shop/servicelevelobjectives/checkout";
        let object = json!({
            "apiVersion": "burnguard.dev/v1", "kind": "ServiceLevelObjective",
            "metadata": {"name": "checkout", "namespace": "shop", "uid": "uid-1", "generation": 1,
                         "resourceVersion": "9", "creationTimestamp": "2026-01-01T00:00:00Z",
                         "deletionTimestamp": "2026-01-04T00:00:00Z",
                         "finalizers": ["burnguard.dev/cleanup"]},
            "spec": {"service": "checkout", "objective": 99.9,
                     "indicator": {"raw": {"errorRatio": "vector(0)"}}},
        });
        let script = vec![
            // The freeze reached Kubernetes while the SLO was burning.
            apply_marks("checkout", budget, Some(incident)),
            // The SLO object is deleted: the marks come off first...
            remove_marks("checkout"),
            // ...and only then does the finalizer go, with the incident already resolved.
            Expect {
                content_type: Some("application/json-patch+json"),
                body: Some(Box::new(|body: &Value| {
                    assert_eq!(
                        body[1],
                        json!({"op": "remove", "path": "/metadata/finalizers/0"})
                    )
                })),
                before_reply: Some(Box::new(move || {
                    Box::pin(async move {
                        let d = checked.incident(incident).await.unwrap().unwrap();
                        assert_eq!(
                            d.incident.status, "resolved",
                            "resolved before the finalizer goes"
                        );
                        assert!(checked.active_freezes().await.unwrap().is_empty());
                    })
                })),
                ..expect("PATCH", slo_path, &[], object.clone())
            },
        ];
        let (client, mut server) = common::kube::scripted_client(script);
        let engine = new_engine(store.clone(), KubeActuator::new(client.clone()));
        engine.reconcile_freezes().await;
        let state = Arc::new(ServiceState::new(
            store.clone(),
            "system:serviceaccount:burnguard:burnguard".into(),
        ));
        let (host, _policies) = ServiceHost::new(state, store.clone(), engine.clone());
        // What the object's status is made from, read from this store.
        use burnguard::ports::ClusterHost as _;
        let facts = host.slo_facts("checkout").await.unwrap();
        assert_eq!(facts.open_incident, Some(incident), "on {}", db.url());
        assert_eq!(
            facts.freezes,
            vec![burnguard::domain::cluster::HeldFreeze {
                namespace: "shop".into(),
                deployment: "checkout".into()
            }]
        );
        assert_eq!(
            facts.evaluation, None,
            "not evaluated yet: no numbers made up"
        );
        let host = Arc::new(host);
        let ctx = Arc::new(Context::new(
            client,
            host.clone(),
            ControllerSettings::default(),
        ));
        let deleted: kube::api::DynamicObject = serde_json::from_value(object).unwrap();
        reconcile_slo(Arc::new(deleted), ctx).await.unwrap();
        // A second replica cleans up after the same deletion (both saw it): nothing is lifted,
        // resolved or unmarked twice.
        host.slo_deleted("checkout").await.unwrap();
        nothing_but_the_script(&mut server, &db).await;
        let d = detail(&store, incident).await;
        assert_eq!(
            events(&d, "resolved").len(),
            1,
            "one resolution on {}: {:?}",
            db.url(),
            d.timeline
        );
        assert!(
            events(&d, "resolved")
                .iter()
                .any(|m| m.contains("SLO deleted")),
            "the timeline says why: {:?} on {}",
            d.timeline,
            db.url()
        );
        assert!(
            removed_at(&db, freeze_id).await.is_some(),
            "the freeze's marks are recorded as removed on {}",
            db.url()
        );
    }
}

#[tokio::test]
async fn deleting_a_grouped_slo_resolves_the_incident_of_every_group_and_no_other_slos() {
    use burnguard::ports::ClusterHost as _;
    use burnguard::service::cluster::ServiceHost;
    for db in TestDb::both().await {
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        // Incidents are kept by the evaluation's key: `name{group}` for a grouped SLO.
        let open = |key: &'static str| {
            let store = store.clone();
            async move {
                let mut r = record(AT, "page");
                r.slo = key.into();
                store
                    .record(&r, |_| Decision::Open {
                        severity: Severity::Page,
                        peak_burn_rate: 20.0,
                        budget_remaining: Some(0.5),
                    })
                    .await
                    .unwrap()
                    .incident_id
                    .unwrap()
            }
        };
        let pay = open("checkout{route=\"/pay\"}").await;
        let cart = open("checkout{route=\"/cart\"}").await;
        let other = open("checkout-api").await;
        let other_group = open("checkout-api{route=\"/pay\"}").await;
        let (client, mut server) = common::kube::scripted_client(vec![]);
        let engine = new_engine(store.clone(), KubeActuator::new(client));
        let state = Arc::new(ServiceState::new(
            store.clone(),
            "system:serviceaccount:burnguard:burnguard".into(),
        ));
        let (host, _policies) = ServiceHost::new(state, store.clone(), engine);
        // The status shows a group's incident.
        let facts = host.slo_facts("checkout").await.unwrap();
        assert!(
            [Some(pay), Some(cart)].contains(&facts.open_incident),
            "{facts:?}"
        );
        host.slo_deleted("checkout").await.unwrap();
        for (id, status) in [
            (pay, "resolved"),
            (cart, "resolved"),
            (other, "open"),
            (other_group, "open"),
        ] {
            assert_eq!(
                detail(&store, id).await.incident.status,
                status,
                "incident {id} on {}",
                db.url()
            );
        }
        assert!(
            events(&detail(&store, pay).await, "resolved")
                .iter()
                .any(|m| m.contains("SLO deleted"))
        );
        nothing_but_the_script(&mut server, &db).await;
    }
}
