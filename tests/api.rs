//! The REST API on a server spawned on port 0, over a fresh SQLite database and a fresh
//! database on the REAL PostgreSQL: auth (named tokens, the scheme in any case), incidents
//! (list, show, ack, resolve, approve) with the token's name as the actor, freezes, SLO
//! history, a table of malformed bodies for every POST route, and a table of names and texts
//! with control characters, refused alike on both databases.

mod common;

use std::sync::Arc;

use burnguard::adapters::store::SqlStore;
use burnguard::domain::incident::Decision;
use burnguard::domain::policy::Severity;
use burnguard::http::api::ApiAuth;
use burnguard::http::auth::ApiToken;
use burnguard::http::state::ServiceState;
use burnguard::ports::{
    ActionIntent, ActionStatus, EvaluationRecord, Instance, Journal, Started, Store,
};
use common::db::TestDb;
use serde_json::{Value, json};

const TOKEN: &str = "t0ken-for-tests";
/// The name of [`TOKEN`]: the actor of every call made with it.
const TOKEN_NAME: &str = "pager-bot";

struct Api {
    base: String,
    store: Arc<SqlStore>,
    /// The latest evaluations this replica holds in memory (what `serve`'s cycles fill).
    latest: burnguard::http::metrics::Latest,
    client: reqwest::Client,
    _db: TestDb,
}

impl Api {
    async fn start(db: TestDb, protect_reads: bool) -> Self {
        burnguard::adapters::prometheus::install_crypto_provider();
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let mut state = ServiceState::new(
            store.clone(),
            "system:serviceaccount:burnguard:burnguard".into(),
        );
        state.api_auth = ApiAuth {
            tokens: vec![
                ApiToken::new(TOKEN_NAME, TOKEN),
                ApiToken::new("token-2", "other"),
            ],
            protect_reads,
        };
        state.webhook_auth.alertmanager_allow_unauthenticated = true;
        let latest = state.latest.clone();
        let router = burnguard::http::router(Arc::new(state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            base,
            store,
            latest,
            client: reqwest::Client::new(),
            _db: db,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(
            "POST",
            path,
            Some(TOKEN),
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, None).await
    }

    async fn open_incident(&self, slo: &str, at: i64) -> i64 {
        let record = EvaluationRecord {
            slo: slo.into(),
            service: "checkout".into(),
            evaluated_at: at,
            status: "page".into(),
            error_budget_remaining: Some(0.4),
            snapshot: json!({"name": slo, "status": "page"}).to_string(),
        };
        self.store
            .record(&record, |_| Decision::Open {
                severity: Severity::Page,
                peak_burn_rate: 20.0,
                budget_remaining: Some(0.4),
            })
            .await
            .unwrap()
            .incident_id
            .unwrap()
    }
}

#[tokio::test]
async fn slos_come_from_this_replicas_latest_evaluations_and_the_store_for_the_rest() {
    for db in TestDb::both().await {
        let api = Api::start(db, false).await;
        // The store keeps latest states at the history's resolution: these are older.
        for slo in ["slo-0", "slo-1", "retired"] {
            let record = EvaluationRecord {
                slo: slo.into(),
                service: "svc-0".into(),
                evaluated_at: 100,
                status: "ok".into(),
                error_budget_remaining: Some(0.9),
                snapshot: json!({"name": slo, "status": "ok", "stored": true}).to_string(),
            };
            api.store
                .record(&record, |_| Decision::Nothing)
                .await
                .unwrap();
        }
        // This replica's own cycle at 200 evaluated slo-0: it pages now.
        let slos = common::fleet::slos(2);
        let cycle = common::fleet::evaluation(&slos, 200);
        api.latest.write().unwrap().insert(
            "slo-0".into(),
            burnguard::http::metrics::LatestEvaluation {
                at: 200,
                evaluation: cycle.slos[0].clone(),
            },
        );

        let (status, body) = api.get("/api/v1/slos").await;
        assert_eq!(status, 200, "{body}");
        let listed: Vec<(&str, &str, bool)> = body["slos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap(),
                    s["status"].as_str().unwrap(),
                    s.get("stored").is_some(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            vec![
                ("retired", "ok", true),
                ("slo-0", "page", false),
                ("slo-1", "ok", true)
            ]
        );
        let (status, one) = api.get("/api/v1/slos/slo-0").await;
        assert_eq!(status, 200, "{one}");
        assert_eq!(one["status"], "page");
        assert!(one["burn_rate"]["1h"].as_f64().unwrap() > 14.4, "{one}");
    }
}

#[tokio::test]
async fn mutating_calls_need_a_configured_token_and_reads_are_open_unless_protected() {
    for db in TestDb::both().await {
        let api = Api::start(db, false).await;
        let id = api.open_incident("checkout-availability", 1_000).await;
        let path = format!("/api/v1/incidents/{id}/ack");
        let (status, body) = api.call("POST", &path, None, None).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(api.call("POST", &path, Some("wrong"), None).await.0, 401);
        assert_eq!(
            api.call("POST", &path, Some("t0ken-for-test"), None)
                .await
                .0,
            401,
            "a prefix of a token is not the token"
        );
        // The second configured token works too.
        assert_eq!(api.call("POST", &path, Some("other"), None).await.0, 200);
        assert_eq!(api.get("/api/v1/incidents").await.0, 200);
        // The gate and health stay open.
        assert_eq!(api.get("/api/v1/freeze-gate?service=x").await.0, 200);
    }
    let api = Api::start(TestDb::sqlite(), true).await;
    assert_eq!(api.get("/api/v1/incidents").await.0, 401);
    assert_eq!(
        api.call("GET", "/api/v1/incidents", Some(TOKEN), None)
            .await
            .0,
        200
    );
    assert_eq!(api.get("/api/v1/freeze-gate?service=x").await.0, 200);
}

#[tokio::test]
async fn incidents_are_listed_shown_acknowledged_and_resolved_by_people() {
    for db in TestDb::both().await {
        let api = Api::start(db, false).await;
        let id = api.open_incident("checkout-availability", 1_000).await;
        let (status, list) = api.get("/api/v1/incidents?status=open").await;
        assert_eq!(status, 200);
        assert_eq!(list["incidents"][0]["id"], id);
        assert_eq!(
            api.get("/api/v1/incidents?status=resolved").await.1["incidents"],
            json!([])
        );
        assert_eq!(
            api.get("/api/v1/incidents?slo=nope").await.1["incidents"],
            json!([])
        );

        let (status, acked) = api
            .post(
                &format!("/api/v1/incidents/{id}/ack"),
                json!({"by": "alice", "note": "looking"}),
            )
            .await;
        assert_eq!(status, 200, "{acked}");
        assert_eq!(acked["status"], "acknowledged");
        assert!(acked["acknowledged_at"].as_i64().is_some());
        let event = acked["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "acknowledged")
            .unwrap();
        assert_eq!(
            event["actor"], TOKEN_NAME,
            "the actor is the token's name, not the body's `by`"
        );
        assert_eq!(event["detail"]["note"], "on behalf of alice: looking");
        // Acknowledging twice is a conflict, not a silent success.
        let (status, body) = api
            .post(&format!("/api/v1/incidents/{id}/ack"), json!({}))
            .await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (409, json!("conflict"))
        );

        let (status, resolved) = api
            .post(
                &format!("/api/v1/incidents/{id}/resolve"),
                json!({"by": "bob"}),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(resolved["status"], "resolved");
        assert_eq!(
            api.post(&format!("/api/v1/incidents/{id}/resolve"), json!({}))
                .await
                .0,
            409
        );

        assert_eq!(
            api.get(&format!("/api/v1/incidents/{id}")).await.1["status"],
            "resolved"
        );
        assert_eq!(api.get("/api/v1/incidents/424242").await.0, 404);
        assert_eq!(
            api.post("/api/v1/incidents/424242/ack", json!({})).await.0,
            404
        );
        let (status, body) = api.get("/api/v1/incidents/abc").await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (400, json!("invalid_id"))
        );
        assert_eq!(api.get("/api/v1/incidents?status=sleeping").await.0, 400);
        assert_eq!(api.get("/api/v1/nothing-here").await.0, 404);
    }
}

#[tokio::test]
async fn approving_releases_the_waiting_steps_once() {
    for db in TestDb::both().await {
        let api = Api::start(db, false).await;
        let id = api.open_incident("checkout-availability", 1_000).await;
        assert_eq!(
            api.post(&format!("/api/v1/incidents/{id}/approve"), json!({}))
                .await
                .0,
            409,
            "nothing waits yet"
        );
        let waiting = ActionIntent {
            key: format!("incident:{id}/rule:0/step:0"),
            incident_id: Some(id),
            slo: "checkout-availability".into(),
            playbook: Some("degrade".into()),
            step: "turn off recommendations".into(),
            kind: "http".into(),
            intent: json!({}),
            status: ActionStatus::AwaitingApproval,
            dry_run: false,
            at: 1_000,
        };
        api.store.journal(&waiting).await.unwrap();
        let (status, detail) = api
            .post(
                &format!("/api/v1/incidents/{id}/approve"),
                json!({"by": "carol", "note": "go"}),
            )
            .await;
        assert_eq!(status, 200, "{detail}");
        assert_eq!(detail["actions"][0]["status"], "approved");
        assert!(
            detail["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "approved"
                    && e["actor"] == TOKEN_NAME
                    && e["detail"]["note"] == "on behalf of carol: go")
        );
        // Exactly one worker can claim it.
        let action = detail["actions"][0]["id"].as_i64().unwrap();
        let worker = Instance {
            name: "w".into(),
            id: "w/1".into(),
        };
        let claim = || {
            api.store
                .claim(action, ActionStatus::Approved, &worker, None, 1_100)
        };
        assert_eq!(claim().await.unwrap(), Started::Run { id: action });
        assert_eq!(claim().await.unwrap(), Started::Lost);
    }
}

#[tokio::test]
async fn freezes_are_created_listed_and_lifted_by_hand() {
    for db in TestDb::both().await {
        let api = Api::start(db, false).await;
        let (status, created) = api
            .post("/api/v1/freezes", json!({"service": "checkout", "namespace": "shop", "deployments": ["checkout"], "reason": "game day", "by": "dave"}))
            .await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_i64().unwrap();
        assert_eq!(created["created_by"], TOKEN_NAME);
        assert_eq!(created["reason"], "game day (on behalf of dave)");
        assert_eq!(api.get("/api/v1/freezes").await.1["freezes"][0]["id"], id);
        assert_eq!(
            api.get("/api/v1/freeze-gate?namespace=shop&deployment=checkout")
                .await
                .0,
            423
        );
        assert_eq!(api.get("/api/v1/freeze-gate?service=checkout").await.0, 423);
        let (status, _) = api
            .call(
                "DELETE",
                &format!("/api/v1/freezes/{id}"),
                Some(TOKEN),
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(api.get("/api/v1/freeze-gate?service=checkout").await.0, 200);
        assert_eq!(
            api.call(
                "DELETE",
                &format!("/api/v1/freezes/{id}"),
                Some(TOKEN),
                None
            )
            .await
            .0,
            404
        );
        assert_eq!(
            api.call("DELETE", "/api/v1/freezes/x", Some(TOKEN), None)
                .await
                .0,
            400
        );
    }
}

#[tokio::test]
async fn slos_and_their_history_come_from_stored_evaluations() {
    for db in TestDb::both().await {
        let api = Api::start(db, false).await;
        for (at, status) in [(1_000, "ok"), (1_030, "ticket"), (1_060, "page")] {
            let record = EvaluationRecord {
                slo: "checkout-availability".into(),
                service: "checkout".into(),
                evaluated_at: at,
                status: status.into(),
                error_budget_remaining: Some(0.5),
                snapshot: json!({"name": "checkout-availability", "status": status}).to_string(),
            };
            api.store
                .record(&record, |_| Decision::Nothing)
                .await
                .unwrap();
        }
        assert_eq!(api.get("/api/v1/slos").await.1["slos"][0]["status"], "page");
        assert_eq!(
            api.get("/api/v1/slos/checkout-availability").await.1["status"],
            "page"
        );
        assert_eq!(api.get("/api/v1/slos/nope").await.0, 404);
        let (status, history) = api
            .get("/api/v1/slos/checkout-availability/history?from=1000&to=1030")
            .await;
        assert_eq!(status, 200);
        let statuses: Vec<&str> = history["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["ok", "ticket"]);
        assert_eq!(
            api.get("/api/v1/slos/checkout-availability/history?from=yesterday")
                .await
                .0,
            400
        );
        assert_eq!(
            api.get("/api/v1/slos/checkout-availability/history?from=2000&to=1000")
                .await
                .0,
            400
        );
    }
}

#[tokio::test]
async fn malformed_bodies_on_every_post_route_get_a_json_4xx() {
    let api = Api::start(TestDb::sqlite(), false).await;
    let id = api.open_incident("checkout-availability", 1_000).await;
    let routes = [
        format!("/api/v1/incidents/{id}/ack"),
        format!("/api/v1/incidents/{id}/resolve"),
        format!("/api/v1/incidents/{id}/approve"),
        format!("/api/v1/incidents/{id}/notes"),
        "/api/v1/freezes".to_string(),
        "/admission/validate".to_string(),
        "/webhooks/alertmanager".to_string(),
        "/webhooks/pagerduty".to_string(),
        "/webhooks/opsgenie".to_string(),
    ];
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"{by: alice".to_vec()),
        (
            "wrong types",
            br#"{"by": 5, "note": [], "reason": 3, "service": {}}"#.to_vec(),
        ),
        (
            "unknown fields",
            br#"{"by": "x", "reason": "y", "service": "s", "sneaky": true}"#.to_vec(),
        ),
        ("invalid UTF-8", vec![b'"', 0xff, 0xfe, b'"']),
        ("5 MiB", vec![b' '; 5 * 1024 * 1024]),
        ("missing fields", b"{}".to_vec()),
    ];
    for route in &routes {
        for (name, body) in &bodies {
            let (status, answer) = api
                .call("POST", route, Some(TOKEN), Some(body.clone()))
                .await;
            // `{}` is a valid command body (by and note are optional), not a note's.
            if *name == "missing fields"
                && route.starts_with("/api/v1/incidents")
                && !route.ends_with("/notes")
            {
                continue;
            }
            assert!(
                (400..500).contains(&status),
                "{route} with {name}: {status} {answer}"
            );
            assert!(
                answer["error"]["code"].is_string(),
                "{route} with {name}: {answer}"
            );
            if *name == "5 MiB" {
                assert_eq!(status, 413);
            }
        }
    }
    // An empty body is fine for commands, and not for a freeze (it needs a reason).
    let fresh = api.open_incident("search-latency", 2_000).await;
    let ack = format!("/api/v1/incidents/{fresh}/ack");
    assert_eq!(
        api.call("POST", &ack, Some(TOKEN), Some(vec![])).await.0,
        200
    );
    let (status, answer) = api
        .call("POST", "/api/v1/freezes", Some(TOKEN), Some(vec![]))
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = api
        .post(
            "/api/v1/freezes",
            json!({"reason": "x", "namespace": "shop", "selector": "a b c"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("invalid_selector"))
    );
    let (status, _) = api.post("/api/v1/freezes", json!({"reason": "x"})).await;
    assert_eq!(status, 400, "a freeze of nothing");
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let api = Api::start(TestDb::sqlite(), false).await;
    let (status, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, methods) in paths {
        for (method, op) in methods.as_object().unwrap() {
            operations.push((
                method.to_uppercase(),
                path.clone(),
                op.get("security").is_some(),
            ));
        }
    }
    operations.sort();
    let expected = [
        ("DELETE", "/api/v1/freezes/{id}", true),
        ("GET", "/api/v1/freeze-gate", false),
        ("GET", "/api/v1/freezes", false),
        ("GET", "/api/v1/incidents", false),
        ("GET", "/api/v1/incidents/{id}", false),
        ("GET", "/api/v1/slos", false),
        ("GET", "/api/v1/slos/{name}", false),
        ("GET", "/api/v1/slos/{name}/history", false),
        ("POST", "/api/v1/freezes", true),
        ("POST", "/api/v1/incidents/{id}/ack", true),
        ("POST", "/api/v1/incidents/{id}/approve", true),
        ("POST", "/api/v1/incidents/{id}/notes", true),
        ("POST", "/api/v1/incidents/{id}/resolve", true),
    ];
    let expected: Vec<(String, String, bool)> = expected
        .iter()
        .map(|(m, p, s)| (m.to_string(), p.to_string(), *s))
        .collect();
    assert_eq!(operations, expected);
    // Every documented operation is routed: it never answers 404/405 for the route itself.
    for (method, path, _) in &operations {
        let concrete = path.replace("{id}", "1").replace("{name}", "checkout");
        let (status, body) = api
            .call(method, &concrete, Some(TOKEN), Some(b"{}".to_vec()))
            .await;
        assert_ne!(status, 405, "{method} {path}: {body}");
        if status == 404 {
            assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
            assert_ne!(
                body["error"]["message"], "no such route",
                "{method} {path} is documented but not routed"
            );
        }
    }
    // An undocumented route is not served.
    let (status, body) = api.call("POST", "/api/v1/slos", Some(TOKEN), None).await;
    assert_eq!(status, 405, "{body}");
}

#[tokio::test]
async fn the_bearer_scheme_is_read_in_any_case_and_the_actor_is_the_token_name() {
    for db in TestDb::both().await {
        let api = Api::start(db, false).await;
        let id = api.open_incident("checkout-availability", 1_000).await;
        for (scheme, path) in [
            ("bearer", format!("/api/v1/incidents/{id}/ack")),
            ("BEARER", format!("/api/v1/incidents/{id}/resolve")),
        ] {
            let response = api
                .client
                .post(format!("{}{path}", api.base))
                .header("Authorization", format!("{scheme}  other"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "{scheme}");
        }
        let (_, detail) = api.get(&format!("/api/v1/incidents/{id}")).await;
        let actors: Vec<(&str, &str)> = detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "acknowledged" || e["kind"] == "resolved")
            .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
            .collect();
        assert_eq!(
            actors,
            [("acknowledged", "token-2"), ("resolved", "token-2")],
            "a bare token's actor is its `token-N` name"
        );
        // Another scheme is no bearer token.
        let response = api
            .client
            .post(format!("{}/api/v1/freezes", api.base))
            .header("Authorization", format!("Token {TOKEN}"))
            .body(r#"{"reason": "x", "service": "checkout"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
        // A freeze and its lifting carry the token's name too.
        let (status, created) = api
            .post(
                "/api/v1/freezes",
                json!({"service": "checkout", "reason": "release train paused"}),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["created_by"], TOKEN_NAME);
        assert_eq!(created["reason"], "release train paused");
        let freeze = created["id"].as_i64().unwrap();
        let (status, _) = api
            .call(
                "DELETE",
                &format!("/api/v1/freezes/{freeze}"),
                Some("other"),
                None,
            )
            .await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn names_and_reasons_with_control_characters_are_refused_alike_on_both_databases() {
    for db in TestDb::both().await {
        let backend = db.url().split(':').next().unwrap().to_string();
        let api = Api::start(db, false).await;
        let id = api.open_incident("checkout-availability", 1_000).await;
        let ack = format!("/api/v1/incidents/{id}/ack");
        let freeze = |field: &str, value: Value| {
            let mut body = json!({"service": "checkout", "namespace": "shop", "deployments": ["checkout"], "reason": "game day"});
            body[field] = value;
            body
        };
        let refused: Vec<(&str, String, Value)> = vec![
            (
                "NUL in a note",
                ack.clone(),
                json!({"note": "looking\u{0}"}),
            ),
            (
                "escape in a note",
                ack.clone(),
                json!({"note": "\u{1b}[31mred"}),
            ),
            ("NUL in by", ack.clone(), json!({"by": "al\u{0}ice"})),
            ("newline in by", ack.clone(), json!({"by": "alice\nbob"})),
            (
                "NUL in a reason",
                "/api/v1/freezes".into(),
                freeze("reason", json!("stop\u{0}")),
            ),
            (
                "bell in a reason",
                "/api/v1/freezes".into(),
                freeze("reason", json!("stop\u{7}")),
            ),
            (
                "NUL in a service",
                "/api/v1/freezes".into(),
                freeze("service", json!("check\u{0}out")),
            ),
            (
                "tab in a namespace",
                "/api/v1/freezes".into(),
                freeze("namespace", json!("sh\top")),
            ),
            (
                "NUL in a deployment",
                "/api/v1/freezes".into(),
                freeze("deployments", json!(["ok", "bad\u{0}"])),
            ),
            (
                "DEL in a selector",
                "/api/v1/freezes".into(),
                freeze("selector", json!("app=web\u{7f}")),
            ),
            (
                "NUL in by (freeze)",
                "/api/v1/freezes".into(),
                freeze("by", json!("\u{0}")),
            ),
            (
                "C1 control in a service",
                "/api/v1/freezes".into(),
                freeze("service", json!("a\u{85}b")),
            ),
        ];
        for (name, path, body) in refused {
            let (status, answer) = api.post(&path, body).await;
            assert_eq!(status, 400, "{backend}: {name}: {answer}");
            assert_eq!(
                answer["error"]["code"], "control_character",
                "{backend}: {name}: {answer}"
            );
        }
        // Nothing of them was stored.
        assert_eq!(api.get("/api/v1/freezes").await.1["freezes"], json!([]));
        let (_, detail) = api.get(&format!("/api/v1/incidents/{id}")).await;
        assert_eq!(detail["status"], "open", "{backend}");
        // Ordinary whitespace in free text is fine.
        let (status, answer) = api
            .post(&ack, json!({"note": "line one\n\tline two\r\n"}))
            .await;
        assert_eq!(status, 200, "{backend}: {answer}");
        let (status, answer) = api
            .post(
                "/api/v1/freezes",
                freeze("reason", json!("game day:\n\tno deploys")),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {answer}");
    }
}

/// A value the schema accepts, built from the schema alone (enum, example, type).
fn example_of(schema: &Value) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    if let Some(example) = schema.get("example") {
        return example.clone();
    }
    if let Some(all) = schema["allOf"].as_array() {
        return example_of(&all[0]);
    }
    match schema["type"].as_str() {
        Some("integer") => json!(1),
        Some("array") => json!([example_of(&schema["items"])]),
        Some("object") => Value::Object(
            schema["properties"]
                .as_object()
                .map(|props| {
                    props
                        .iter()
                        .map(|(k, v)| (k.clone(), example_of(v)))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => json!("checkout"),
    }
}

#[tokio::test]
async fn what_the_openapi_document_describes_the_server_accepts() {
    // Every documented body field and query parameter, filled from its schema, is accepted:
    // the answer is never a 400 about the input (a 404/409 about the incident is fine).
    let api = Api::start(TestDb::sqlite(), false).await;
    let incident = api.open_incident("checkout", 1_000).await;
    let (_, doc) = api.get("/api/v1/openapi.json").await;
    let mut checked = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            let mut query = Vec::new();
            let mut concrete = path.clone();
            for param in op["parameters"].as_array().unwrap() {
                let value = example_of(&param["schema"]);
                let text = value
                    .as_str()
                    .map(String::from)
                    .unwrap_or(value.to_string());
                match param["in"].as_str().unwrap() {
                    "path" if param["name"] == "id" => {
                        concrete = concrete.replace("{id}", &incident.to_string())
                    }
                    "path" => {
                        concrete = concrete
                            .replace(&format!("{{{}}}", param["name"].as_str().unwrap()), &text)
                    }
                    _ => query.push(format!("{}={}", param["name"].as_str().unwrap(), text)),
                }
            }
            // The gate takes one target at a time: service alone, or namespace and deployment.
            if path.ends_with("/freeze-gate") {
                query.retain(|q| !q.starts_with("service="));
            }
            if !query.is_empty() {
                concrete = format!("{concrete}?{}", query.join("&"));
            }
            let body = op["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|_| {
                    serde_json::to_vec(&example_of(
                        &op["requestBody"]["content"]["application/json"]["schema"],
                    ))
                    .unwrap()
                });
            let (status, answer) = api
                .call(&method.to_uppercase(), &concrete, Some(TOKEN), body)
                .await;
            assert!(
                status < 400 || status == 404 || status == 409 || status == 423,
                "{method} {concrete}: {status} {answer}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked}");
}

#[tokio::test]
async fn a_note_goes_on_the_timeline_under_the_token_name_at_any_status() {
    for db in TestDb::both().await {
        let api = Api::start(db, false).await;
        let id = api.open_incident("checkout-availability", 1_000).await;
        let notes = format!("/api/v1/incidents/{id}/notes");
        // A note needs its text, a token and an incident.
        for body in [json!({}), json!({"note": "   "})] {
            let (status, answer) = api.post(&notes, body.clone()).await;
            assert_eq!(status, 400, "{body}: {answer}");
        }
        let unauthenticated = api
            .call("POST", &notes, None, Some(br#"{"note": "x"}"#.to_vec()))
            .await;
        assert_eq!(unauthenticated.0, 401);
        assert_eq!(
            api.post("/api/v1/incidents/999999/notes", json!({"note": "x"}))
                .await
                .0,
            404
        );
        // Open, then resolved: a note lands either way.
        for (note, resolve_after) in [("rolled back web-7", true), ("postmortem in DOC-12", false)]
        {
            let (status, detail) = api.post(&notes, json!({"note": note, "by": "bob"})).await;
            assert_eq!(status, 200, "{detail}");
            let event = detail["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|e| e["kind"] == "note")
                .unwrap();
            assert_eq!(event["actor"], TOKEN_NAME);
            let message = event["message"].as_str().unwrap();
            assert!(
                message.contains(note) && message.contains("bob"),
                "{message}"
            );
            if resolve_after {
                let (status, _) = api
                    .post(&format!("/api/v1/incidents/{id}/resolve"), json!({}))
                    .await;
                assert_eq!(status, 200);
            }
        }
    }
}

#[tokio::test]
async fn the_ui_answers_html_and_follows_protect_reads() {
    let page = |api: &Api, path: &str, token: Option<&str>| {
        let mut request = api.client.get(format!("{}{path}", api.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let kind = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, kind, response.text().await.unwrap())
        }
    };
    let open = Api::start(TestDb::sqlite(), false).await;
    // `/` lands on the list (the redirect is followed).
    let (status, kind, body) = page(&open, "/", None).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(body.contains("id=\"slo-table\""), "{body}");
    // Not found is a page, with the asked-for name escaped, not JSON.
    let (status, kind, body) =
        page(&open, "/ui/slos/%3Cscript%3Ealert(1)%3C%2Fscript%3E", None).await;
    assert_eq!(status, 404);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(
        body.contains("&lt;script&gt;") && !body.contains("<script>alert"),
        "{body}"
    );
    assert_eq!(page(&open, "/ui/incidents/abc", None).await.0, 404);
    assert_eq!(page(&open, "/ui/incidents/424242", None).await.0, 404);
    // Unknown ranges and filters are harmless.
    assert_eq!(page(&open, "/ui/?status=%00&q=%3C", None).await.0, 200);

    // The backtest form takes hostile input as a page with the problem, never a 5xx.
    let post = |form: Vec<(&'static str, String)>| {
        let request = open
            .client
            .post(format!("{}/ui/backtest", open.base))
            .form(&form);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let (status, body) = post(vec![("policy", "kind: [unclosed".into())]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("pasted policy"),
        "a problem naming where: {body}"
    );
    let (status, body) = post(vec![(
        "policy",
        "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {name: x}\nspec: {service: s, objective: 150}\n"
            .into(),
    )])
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("objective"), "{body}");
    let (status, _) = post(vec![("slo", "<no-such-slo>".into())]).await;
    assert_eq!(status, 404);
    // A body far past the request limit is refused before it is parsed.
    let (status, _) = post(vec![("policy", "x".repeat(8 << 20))]).await;
    assert!((400..500).contains(&status), "{status}");
    let (status, _, _) = page(&open, "/ui/backtest?range=%00&step=-1", None).await;
    assert!(status < 500, "{status}");

    let protected = Api::start(TestDb::sqlite(), true).await;
    for path in [
        "/ui/",
        "/ui/rows",
        "/ui/freezes",
        "/ui/incidents",
        "/ui/slos/checkout",
    ] {
        let (status, kind, body) = page(&protected, path, None).await;
        assert_eq!(status, 401, "{path}");
        assert!(kind.starts_with("text/html"), "{path}: {kind}");
        assert!(body.contains("A token is needed"), "{path}: {body}");
        assert_eq!(page(&protected, path, Some("wrong")).await.0, 401, "{path}");
    }
    let (status, _, body) = page(&protected, "/ui/", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"slo-table\""));
    // The page's own script and style carry no data: served to anyone, so the token page works.
    for asset in ["/ui/assets/app.js", "/ui/assets/app.css"] {
        assert_eq!(page(&protected, asset, None).await.0, 200, "{asset}");
    }
}

/// The HTTP side keeps the evaluation loop's list of SLOs itself, not a copy of each SLO (a copy
/// is tens of megabytes at 100,000 SLOs), and still finds each by name.
#[tokio::test]
async fn the_loaded_slos_are_shared_with_the_evaluation_loop_not_copied() {
    burnguard::adapters::prometheus::install_crypto_provider();
    let db = TestDb::sqlite();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let state = ServiceState::new(store, "burnguard".into());
    let loaded = Arc::new(common::fleet::slos(3));
    state.set_slos(loaded.clone());
    assert_eq!(Arc::strong_count(&loaded), 2, "one list, held twice");
    assert_eq!(state.slo("slo-2").as_ref(), Some(&loaded[2]));
    assert_eq!(state.slo("slo-3"), None);
    let names = state.slo_names();
    assert_eq!(names.len(), 3);
    assert_eq!(names["slo-1"], Vec::<String>::new());
    assert_eq!(state.slo_labels()["slo-1"]["team"], "team-1");
    // A new set replaces the old one, which is then held by the loop alone.
    state.set_slos(Arc::new(common::fleet::slos(1)));
    assert_eq!(Arc::strong_count(&loaded), 1);
    assert_eq!(state.slo("slo-2"), None);
}
