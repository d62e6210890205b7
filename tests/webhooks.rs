//! Webhooks in: a REAL Alertmanager (Debian's prometheus-alertmanager) with burnguard as its
//! webhook receiver; PagerDuty V3 signatures (valid, wrong secret, rotated secrets, missing
//! header, tampered body, non-v1 scheme) and replays; Opsgenie's shared secret.
//!
//! Hostile input, on SQLite and the REAL PostgreSQL: the Alertmanager route's credentials
//! (required by default, the scheme in any case), large deliveries stored once (growth and rows
//! asserted as ratios of the body and the alerts, never as times), retention, the migration of
//! bodies stored before, stale events, and control characters.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burnguard::adapters::store::SqlStore;
use burnguard::domain::incident::Decision;
use burnguard::domain::policy::Severity;
use burnguard::http::state::ServiceState;
use burnguard::http::webhooks::{WebhookAuth, incident_dedup_key, pagerduty_signature_ok};
use burnguard::ports::{EvaluationRecord, IncidentFilter, Store};
use common::db::TestDb;
use common::prometheus::free_port;
use hmac::{KeyInit, Mac};
use secrecy::SecretString;
use serde_json::{Value, json};

struct Burnguard {
    url: String,
    store: Arc<SqlStore>,
    _db: TestDb,
}

async fn burnguard(auth: WebhookAuth) -> Burnguard {
    burnguard_on(TestDb::sqlite(), auth).await
}

/// Alertmanager deliveries taken without credentials (the explicit opt-in).
fn open_alertmanager() -> WebhookAuth {
    WebhookAuth {
        alertmanager_allow_unauthenticated: true,
        ..WebhookAuth::default()
    }
}

async fn burnguard_on(db: TestDb, auth: WebhookAuth) -> Burnguard {
    burnguard::adapters::prometheus::install_crypto_provider();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let mut state = ServiceState::new(
        store.clone(),
        "system:serviceaccount:burnguard:burnguard".into(),
    );
    state.webhook_auth = auth;
    state.set_slo_names([
        ("checkout-availability".to_string(), Vec::new()),
        ("checkout-routes".to_string(), vec!["route".to_string()]),
    ]);
    let router = burnguard::http::router(Arc::new(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Burnguard {
        url,
        store,
        _db: db,
    }
}

async fn open_incident(store: &SqlStore, slo: &str) -> i64 {
    let record = EvaluationRecord {
        slo: slo.into(),
        service: "checkout".into(),
        evaluated_at: 1_000,
        status: "page".into(),
        error_budget_remaining: Some(0.4),
        snapshot: json!({}).to_string(),
    };
    store
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

struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alertmanager(webhook: &str, token: &str) -> Alertmanager {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write(
        dir.path(),
        "alertmanager.yml",
        &format!(
            "route: {{receiver: burnguard, group_by: ['...'], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\n\
             receivers:\n- name: burnguard\n  webhook_configs:\n  - url: {webhook}\n    send_resolved: true\n    http_config: {{authorization: {{credentials: {token}}}}}\n"
        ),
    );
    let port = free_port();
    let child = Command::new(common::tool("prometheus-alertmanager"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("alertmanager starts");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::prometheus::http_get(&format!("127.0.0.1:{port}"), "/-/ready")
        .is_none_or(|(s, _)| s != 200)
    {
        assert!(
            Instant::now() < deadline,
            "alertmanager did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Alertmanager {
        child,
        url,
        _dir: dir,
    }
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_real_alertmanager_opens_attaches_and_resolves() {
    let token = "am-s3cret";
    let bg = burnguard(WebhookAuth {
        alertmanager_token: Some(SecretString::from(token)),
        ..WebhookAuth::default()
    })
    .await;
    let slo_incident = open_incident(&bg.store, "checkout-availability").await;
    let am = alertmanager(&format!("{}/webhooks/alertmanager", bg.url), token);
    let client = reqwest::Client::new();
    let fire = |labels: Value, ends: Option<&str>| {
        let mut alert = json!({"labels": labels, "annotations": {"summary": "error ratio 5%"}});
        if let Some(ends) = ends {
            alert["endsAt"] = json!(ends);
        }
        client
            .post(format!("{}/api/v2/alerts", am.url))
            .json(&json!([alert]))
            .send()
    };
    // An alert about one of our SLOs, and one from elsewhere.
    fire(
        json!({"alertname": "ErrorBudgetBurn", "slo": "checkout-availability", "severity": "page"}),
        None,
    )
    .await
    .unwrap();
    fire(
        json!({"alertname": "DiskFull", "service": "db", "severity": "critical"}),
        None,
    )
    .await
    .unwrap();

    let store = bg.store.clone();
    wait_for("the external incident", async || {
        store
            .list_incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .iter()
            .any(|i| i.slo.starts_with("external/DiskFull/"))
    })
    .await;
    wait_for("the SLO alert on the incident", async || {
        store
            .incident(slo_incident)
            .await
            .unwrap()
            .unwrap()
            .timeline
            .iter()
            .any(|e| e.kind == "alert_received")
    })
    .await;
    let external = store
        .list_incidents(&IncidentFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.slo.starts_with("external/"))
        .unwrap();
    assert_eq!(external.service, "db");
    assert_eq!(external.severity, "page");
    assert_eq!(external.status, "open");
    let detail = store.incident(slo_incident).await.unwrap().unwrap();
    let event = detail
        .timeline
        .iter()
        .find(|e| e.kind == "alert_received")
        .unwrap();
    assert!(
        event.message.contains("ErrorBudgetBurn firing"),
        "{}",
        event.message
    );
    assert_eq!(
        event.detail.as_ref().unwrap()["labels"]["slo"],
        "checkout-availability"
    );

    // Alertmanager sends the resolution; the external incident resolves.
    fire(
        json!({"alertname": "DiskFull", "service": "db", "severity": "critical"}),
        Some("2000-01-01T00:00:00Z"),
    )
    .await
    .unwrap();
    wait_for("the external incident to resolve", async || {
        store
            .incident(external.id)
            .await
            .unwrap()
            .unwrap()
            .incident
            .status
            == "resolved"
    })
    .await;

    // Wrong credentials are refused before anything is stored.
    let response = client
        .post(format!("{}/webhooks/alertmanager", bg.url))
        .bearer_auth("nope")
        .body(r#"{"version":"4","alerts":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test]
async fn the_captured_alertmanager_body_is_stored_once() {
    let bg = burnguard(open_alertmanager()).await;
    // The shape Alertmanager 0.25 sends (a captured body).
    let body = r#"{"receiver":"hook","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"HighErrorRatio","service":"checkout","severity":"page"},"annotations":{"summary":"checkout error ratio 5%"},"startsAt":"2026-11-27T02:55:10.282773121Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"aecd3b48d73b8734"}],"groupLabels":{"alertname":"HighErrorRatio","service":"checkout"},"commonLabels":{"alertname":"HighErrorRatio","service":"checkout","severity":"page"},"commonAnnotations":{"summary":"checkout error ratio 5%"},"externalURL":"http://vm:9095","version":"4","groupKey":"{}:{alertname=\"HighErrorRatio\", service=\"checkout\"}","truncatedAlerts":0}"#;
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let r = client
            .post(format!("{}/webhooks/alertmanager", bg.url))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        answers.push(r.json::<Value>().await.unwrap());
    }
    assert_eq!(answers[0]["new"], 1);
    assert_eq!(
        answers[1]["new"], 0,
        "the same alert (fingerprint, startsAt, status) is stored once"
    );
    let incidents = bg
        .store
        .list_incidents(&IncidentFilter::default())
        .await
        .unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].slo, "external/HighErrorRatio/aecd3b48d73b8734");
    // Malformed bodies: 400 with a JSON error.
    for bad in [
        "",
        "{",
        r#"{"version":"3","alerts":[]}"#,
        r#"{"version":"4","alerts":[{"status":"weird","labels":{},"startsAt":"x","fingerprint":"f"}]}"#,
        r#"{"version":"4"}"#,
    ] {
        let r = client
            .post(format!("{}/webhooks/alertmanager", bg.url))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
        assert!(r.json::<Value>().await.unwrap()["error"]["code"].is_string());
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn pagerduty_signatures_table() {
    let body = br#"{"event":{"id":"01","event_type":"incident.acknowledged","data":{}}}"#;
    let secrets = vec![
        SecretString::from("old-secret"),
        SecretString::from("new-secret"),
    ];
    let valid = format!("v1={}", sign("old-secret", body));
    let rotated = format!(
        "v1={},v1={}",
        sign("retired", body),
        sign("new-secret", body)
    );
    let cases: Vec<(&str, Option<String>, &[u8], bool)> = vec![
        ("valid", Some(valid.clone()), body, true),
        ("second of two secrets matches", Some(rotated), body, true),
        (
            "wrong secret",
            Some(format!("v1={}", sign("guess", body))),
            body,
            false,
        ),
        ("missing header", None, body, false),
        (
            "tampered body",
            Some(valid.clone()),
            br#"{"event":{"id":"01","event_type":"incident.resolved","data":{}}}"#,
            false,
        ),
        (
            "non-v1 scheme",
            Some(format!("v2={}", sign("old-secret", body))),
            body,
            false,
        ),
        ("not hex", Some("v1=zz".into()), body, false),
    ];
    for (name, header, payload, ok) in cases {
        assert_eq!(
            pagerduty_signature_ok(&secrets, header.as_deref(), payload),
            ok,
            "{name}"
        );
    }
    assert!(
        !pagerduty_signature_ok(&[], Some(&valid), body),
        "no secrets configured verifies nothing"
    );
}

#[tokio::test]
async fn pagerduty_and_opsgenie_acknowledge_and_resolve_the_incident_burnguard_paged() {
    let bg = burnguard(WebhookAuth {
        pagerduty_secrets: vec![SecretString::from("pd-secret")],
        opsgenie_secret: Some(SecretString::from("og-secret")),
        ..WebhookAuth::default()
    })
    .await;
    let id = open_incident(&bg.store, "checkout-availability").await;
    let client = reqwest::Client::new();
    let occurred_at = burnguard::timefmt::rfc3339(chrono::Utc::now().timestamp());
    let pd = |event_type: &str, event_id: &str| {
        json!({"event": {"id": event_id, "event_type": event_type, "resource_type": "incident", "occurred_at": occurred_at,
                          "agent": {"summary": "Alice"}, "data": {"id": "PXYZ", "incident_key": incident_dedup_key(id), "status": "acknowledged"}}})
        .to_string()
    };
    let ack = pd("incident.acknowledged", "evt-1");
    // Unsigned: refused, nothing changes.
    let r = client
        .post(format!("{}/webhooks/pagerduty", bg.url))
        .body(ack.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        bg.store
            .incident(id)
            .await
            .unwrap()
            .unwrap()
            .incident
            .status,
        "open"
    );
    let r = client
        .post(format!("{}/webhooks/pagerduty", bg.url))
        .header(
            "X-PagerDuty-Signature",
            format!("v1={}", sign("pd-secret", ack.as_bytes())),
        )
        .body(ack)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let detail = bg.store.incident(id).await.unwrap().unwrap();
    assert_eq!(detail.incident.status, "acknowledged");
    assert!(
        detail
            .timeline
            .iter()
            .any(|e| e.kind == "acknowledged" && e.actor.as_deref() == Some("pagerduty: Alice"))
    );

    // Opsgenie closes it.
    let close = json!({"action": "Close", "alert": {"alertId": "a1", "alias": incident_dedup_key(id), "username": "bob@example.com"}}).to_string();
    let r = client
        .post(format!("{}/webhooks/opsgenie", bg.url))
        .header("X-Burnguard-Token", "wrong")
        .body(close.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .post(format!("{}/webhooks/opsgenie", bg.url))
        .header("X-Burnguard-Token", "og-secret")
        .body(close)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        bg.store
            .incident(id)
            .await
            .unwrap()
            .unwrap()
            .incident
            .status,
        "resolved"
    );

    // Signed garbage is a 400, not a 5xx.
    let garbage = b"not json".to_vec();
    let r = client
        .post(format!("{}/webhooks/pagerduty", bg.url))
        .header(
            "X-PagerDuty-Signature",
            format!("v1={}", sign("pd-secret", &garbage)),
        )
        .body(garbage)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

async fn post_alertmanager(
    bg: &Burnguard,
    authorization: Option<&str>,
    body: String,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/webhooks/alertmanager", bg.url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_alertmanager_route_needs_credentials_unless_opened_explicitly() {
    let body = || common::alerts::body(1, 1);
    // Nothing configured: every delivery is refused, saying how to configure it.
    let bg = burnguard(WebhookAuth::default()).await;
    for authorization in [None, Some("Bearer anything")] {
        let (status, answer) = post_alertmanager(&bg, authorization, body()).await;
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["error"]["code"], "not_configured");
        let message = answer["error"]["message"].as_str().unwrap();
        for flag in [
            "--alertmanager-token",
            "--alertmanager-basic-auth",
            "--alertmanager-allow-unauthenticated",
        ] {
            assert!(message.contains(flag), "{message}");
        }
    }
    assert!(
        bg.store
            .list_incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .is_empty()
    );

    // A bearer token: the scheme in any case, the token exactly.
    let bg = burnguard(WebhookAuth {
        alertmanager_token: Some(SecretString::from("am-s3cret")),
        ..WebhookAuth::default()
    })
    .await;
    let cases = [
        (None, 401),
        (Some("Bearer wrong"), 401),
        (Some("Bearer am-s3cre"), 401),
        (Some("Basic YW0tczNjcmV0"), 401),
        (Some("Bearer am-s3cret"), 200),
        (Some("bearer am-s3cret"), 200),
        (Some("BEARER  am-s3cret"), 200),
    ];
    for (n, (authorization, expected)) in cases.into_iter().enumerate() {
        let (status, answer) =
            post_alertmanager(&bg, authorization, common::alerts::body(1, n as u32)).await;
        assert_eq!(status, expected, "{authorization:?}: {answer}");
        if expected == 401 {
            assert_eq!(answer["error"]["code"], "unauthorized", "{authorization:?}");
        }
    }

    // Basic auth, likewise.
    let bg = burnguard(WebhookAuth {
        alertmanager_basic: Some(("am".into(), SecretString::from("pw"))),
        ..WebhookAuth::default()
    })
    .await;
    // base64("am:pw") = YW06cHc=, base64("am:px") = YW06cHg=
    for (authorization, expected) in [
        (Some("Basic YW06cHg="), 401),
        (Some("Bearer YW06cHc="), 401),
        (Some("basic YW06cHc="), 200),
        (Some("BASIC YW06cHc="), 200),
    ] {
        let (status, answer) = post_alertmanager(&bg, authorization, body()).await;
        assert_eq!(status, expected, "{authorization:?}: {answer}");
    }

    // Opened on purpose: no credentials needed.
    let bg = burnguard(open_alertmanager()).await;
    assert_eq!(post_alertmanager(&bg, None, body()).await.0, 200);
}

/// Bytes the database grew by, per byte of the body that made it grow.
async fn growth_per_body_byte(bg: &Burnguard, body: String) -> (f64, Value) {
    let before = bg.store.size_bytes().await.unwrap();
    let size = body.len() as f64;
    let (status, answer) = post_alertmanager(bg, None, body).await;
    assert_eq!(status, 200, "{answer}");
    let after = bg.store.size_bytes().await.unwrap();
    (after.saturating_sub(before) as f64 / size, answer)
}

#[tokio::test]
async fn a_thousand_alerts_store_their_body_once_and_grow_the_database_linearly() {
    for db in TestDb::both().await {
        let url = db.url().to_string();
        let backend = url.split(':').next().unwrap().to_string();
        let bg = burnguard_on(db, open_alertmanager()).await;
        // Warm the tables up, so the first page allocations do not count as growth.
        post_alertmanager(&bg, None, common::alerts::body(50, 0)).await;
        let base = |table: &'static str| {
            let url = url.clone();
            async move { common::db::rows(&url, table).await }
        };
        let rows_before = [
            base("webhook_bodies").await,
            base("webhook_events").await,
            base("incidents").await,
            base("incident_events").await,
        ];

        let body = common::alerts::body(1_000, 1);
        assert!(body.len() > 200_000, "{}", body.len());
        let (per_byte, answer) = growth_per_body_byte(&bg, body.clone()).await;
        assert_eq!(answer, json!({"received": 1000, "new": 1000}));
        // Before, each alert kept the whole body: 1,000 bytes per byte of body.
        assert!(
            per_byte < 6.0,
            "{backend}: the database grew by {per_byte:.2} bytes per byte of a 1,000-alert body"
        );
        let rows_after = [
            base("webhook_bodies").await,
            base("webhook_events").await,
            base("incidents").await,
            base("incident_events").await,
        ];
        let added: Vec<i64> = rows_after
            .iter()
            .zip(rows_before)
            .map(|(a, b)| a - b)
            .collect();
        // One body; per alert an event, an external incident, and its two timeline entries.
        assert_eq!(added, [1, 1_000, 1_000, 2_000], "{backend}");

        // Five times the alerts cost about five times as much: per byte, the same.
        let (per_byte_5k, answer) = growth_per_body_byte(&bg, common::alerts::body(5_000, 2)).await;
        assert_eq!(answer["new"], 5_000);
        assert!(
            per_byte_5k < per_byte * 1.5 + 0.5,
            "{backend}: {per_byte_5k:.2} bytes per body byte at 5,000 alerts, {per_byte:.2} at 1,000"
        );

        // Sent again: nothing new, nothing stored, not even the body.
        let bodies = base("webhook_bodies").await;
        let (status, answer) = post_alertmanager(&bg, None, body).await;
        assert_eq!((status, answer["new"].clone()), (200, json!(0)));
        assert_eq!(base("webhook_bodies").await, bodies, "{backend}");
    }
}

#[tokio::test]
async fn one_delivery_fires_attaches_and_resolves_in_order() {
    for db in TestDb::both().await {
        let bg = burnguard_on(db, open_alertmanager()).await;
        let slo_incident = open_incident(&bg.store, "checkout-availability").await;
        let firing = common::alerts::alert(7, 9);
        let mut resolved = firing.clone();
        resolved["status"] = json!("resolved");
        let mut ours = common::alerts::alert(8, 9);
        ours["labels"]["slo"] = json!("checkout-availability");
        // The same alert twice in one delivery counts once.
        let body = common::alerts::delivery(vec![firing.clone(), firing.clone(), ours, resolved]);
        let (status, answer) = post_alertmanager(&bg, None, body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer, json!({"received": 4, "new": 3}));
        let incidents = bg
            .store
            .list_incidents(&IncidentFilter::default())
            .await
            .unwrap();
        let external = incidents
            .iter()
            .find(|i| i.slo.starts_with("external/"))
            .unwrap();
        assert_eq!(external.status, "resolved");
        let detail = bg.store.incident(external.id).await.unwrap().unwrap();
        let kinds: Vec<&str> = detail.timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["opened", "alert_received", "resolved", "alert_received"]
        );
        let slo = bg.store.incident(slo_incident).await.unwrap().unwrap();
        assert_eq!(
            slo.timeline
                .iter()
                .filter(|e| e.kind == "alert_received")
                .count(),
            1
        );

        // Fired, resolved and fired again in one delivery: the second firing is a new incident.
        let first = common::alerts::alert(20, 9);
        let mut resolved = first.clone();
        resolved["status"] = json!("resolved");
        let mut again = first.clone();
        again["startsAt"] = json!("2026-11-27T03:10:00Z");
        let body = common::alerts::delivery(vec![first, resolved, again]);
        let (status, answer) = post_alertmanager(&bg, None, body).await;
        assert_eq!((status, answer["new"].clone()), (200, json!(3)), "{answer}");
        let mut statuses: Vec<String> = bg
            .store
            .list_incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.slo.starts_with("external/DiskFull20/"))
            .map(|i| i.status)
            .collect();
        statuses.sort();
        assert_eq!(statuses, ["open", "resolved"]);
    }
}

#[tokio::test]
async fn two_alertmanagers_sending_the_same_delivery_at_once_record_it_once() {
    for db in TestDb::both().await {
        let url = db.url().to_string();
        let backend = url.split(':').next().unwrap().to_string();
        let bg = burnguard_on(db, open_alertmanager()).await;
        let body = common::alerts::body(300, 4);
        let (a, b) = tokio::join!(
            post_alertmanager(&bg, None, body.clone()),
            post_alertmanager(&bg, None, body.clone())
        );
        assert_eq!((a.0, b.0), (200, 200), "{backend}: {a:?} {b:?}");
        let new = a.1["new"].as_i64().unwrap() + b.1["new"].as_i64().unwrap();
        assert_eq!(new, 300, "{backend}: each alert is new exactly once");
        assert_eq!(
            common::db::rows(&url, "webhook_events").await,
            300,
            "{backend}"
        );
        assert_eq!(common::db::rows(&url, "incidents").await, 300, "{backend}");
        assert_eq!(
            common::db::rows(&url, "incident_events").await,
            600,
            "{backend}: one opened and one alert_received per alert"
        );
    }
}

#[tokio::test]
async fn retention_removes_old_bodies_with_their_events_and_keeps_the_newest() {
    use burnguard::ports::{AlertTarget, IncomingAlert, Webhooks};
    for db in TestDb::both().await {
        let url = db.url().to_string();
        let store = SqlStore::open(&url).await.unwrap();
        let alert = |key: &str| IncomingAlert {
            dedup_key: key.into(),
            target: AlertTarget::Slo("nothing-open".into()),
            message: "Alertmanager: x firing".into(),
            detail: json!({}),
        };
        for (at, key) in [(1_000, "a"), (2_000, "b"), (3_000, "c"), (4_000, "d")] {
            assert_eq!(
                store
                    .record_alerts("{\"alerts\": []}", &[alert(key)], at)
                    .await
                    .unwrap(),
                1
            );
        }
        store
            .record_webhook("pagerduty", "evt-1", "{}", None, 4_500)
            .await
            .unwrap()
            .unwrap();
        // By age: what came before 2,500 goes.
        assert_eq!(store.prune_webhooks(2_500, 100).await.unwrap(), 2);
        assert_eq!(common::db::rows(&url, "webhook_bodies").await, 3);
        assert_eq!(common::db::rows(&url, "webhook_events").await, 3);
        // By count: the newest two stay.
        assert_eq!(store.prune_webhooks(0, 2).await.unwrap(), 1);
        assert_eq!(common::db::rows(&url, "webhook_bodies").await, 2);
        assert_eq!(common::db::rows(&url, "webhook_events").await, 2);
        assert_eq!(store.prune_webhooks(0, 2).await.unwrap(), 0);
        // A pruned alert is forgotten: sent again, it is new; a kept one is not.
        assert_eq!(
            store
                .record_alerts("{}", &[alert("a")], 5_000)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .record_alerts("{}", &[alert("d")], 5_000)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .record_webhook("pagerduty", "evt-1", "{}", None, 5_000)
                .await
                .unwrap(),
            None
        );
        store.close().await;
    }
}

#[tokio::test]
async fn bodies_stored_before_the_upgrade_move_to_their_own_table() {
    use burnguard::ports::Webhooks;
    for db in TestDb::both().await {
        let url = db.url().to_string();
        let backend = if url.starts_with("sqlite") {
            "sqlite"
        } else {
            "postgres"
        };
        // The schema as the previous release left it: migrations 0001 and 0002 only.
        let dir = tempfile::tempdir().unwrap();
        for name in ["0001_initial.sql", "0002_safe_automation.sql"] {
            std::fs::copy(
                common::repo_root()
                    .join("migrations")
                    .join(backend)
                    .join(name),
                dir.path().join(name),
            )
            .unwrap();
        }
        sqlx::any::install_default_drivers();
        let connect = if backend == "sqlite" {
            format!("{url}?mode=rwc")
        } else {
            url.clone()
        };
        let pool = sqlx::AnyPool::connect(&connect).await.unwrap();
        sqlx::migrate::Migrator::new(dir.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        for (key, body) in [("k1", "{\"old\": 1}"), ("k2", "{\"old\": 2}")] {
            sqlx::query(
                "INSERT INTO webhook_events (source, dedup_key, received_at, incident_id, body) VALUES ('alertmanager', $1, 100, NULL, $2)",
            )
            .bind(key)
            .bind(body)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = SqlStore::open(&url).await.unwrap();
        assert_eq!(
            common::db::rows(&url, "webhook_bodies").await,
            2,
            "{backend}"
        );
        assert_eq!(
            common::db::rows(&url, "webhook_events").await,
            2,
            "{backend}"
        );
        // Old events still deduplicate, new ones get fresh ids.
        assert_eq!(
            store
                .record_webhook("alertmanager", "k1", "{}", None, 200)
                .await
                .unwrap(),
            None
        );
        let id = store
            .record_webhook("alertmanager", "k3", "{}", None, 200)
            .await
            .unwrap()
            .expect("a new event");
        assert!(id > 2, "{backend}: {id}");
        // Retention removes the old bodies like any other.
        assert_eq!(store.prune_webhooks(150, 100).await.unwrap(), 2);
        assert_eq!(
            common::db::rows(&url, "webhook_events").await,
            1,
            "{backend}"
        );
        store.close().await;
    }
}

fn signed_pagerduty(event_id: &str, occurred_at: &str, agent: &str) -> (String, String) {
    let body = json!({"event": {"id": event_id, "event_type": "incident.acknowledged", "resource_type": "incident",
                                 "occurred_at": occurred_at, "agent": {"summary": agent}, "data": {"id": "PXYZ"}}})
    .to_string();
    let signature = format!("v1={}", sign("pd-secret", body.as_bytes()));
    (body, signature)
}

#[tokio::test]
async fn stale_or_replayed_events_are_refused() {
    let bg = burnguard(WebhookAuth {
        pagerduty_secrets: vec![SecretString::from("pd-secret")],
        opsgenie_secret: Some(SecretString::from("og-secret")),
        ..WebhookAuth::default()
    })
    .await;
    let client = reqwest::Client::new();
    let now = chrono::Utc::now().timestamp();
    let time = burnguard::timefmt::rfc3339;
    let pagerduty = |(body, signature): (String, String)| {
        client
            .post(format!("{}/webhooks/pagerduty", bg.url))
            .header("X-PagerDuty-Signature", signature)
            .body(body)
            .send()
    };
    let cases = [
        ("an hour old", time(now - 3_600), 400),
        ("ten minutes ahead", time(now + 600), 400),
        ("not a time", "yesterday".to_string(), 400),
        ("just now", time(now), 200),
    ];
    for (n, (name, occurred_at, expected)) in cases.into_iter().enumerate() {
        let response = pagerduty(signed_pagerduty(&format!("evt-{n}"), &occurred_at, "Alice"))
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{name}");
        let answer: Value = response.json().await.unwrap();
        if expected == 400 && name != "not a time" {
            assert_eq!(answer["error"]["code"], "stale_event", "{name}: {answer}");
        }
    }
    // The same fresh event again is a duplicate, changing nothing.
    let again = pagerduty(signed_pagerduty("evt-3", &time(now), "Alice"))
        .await
        .unwrap();
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        json!({"duplicate": true})
    );

    // Opsgenie's updatedAt (nanoseconds), where present.
    let opsgenie = |updated_at: Option<i64>| {
        let mut alert = json!({"alertId": "a1", "alias": "elsewhere", "username": "bob"});
        if let Some(at) = updated_at {
            alert["updatedAt"] = json!(at);
        }
        client
            .post(format!("{}/webhooks/opsgenie", bg.url))
            .header("X-Burnguard-Token", "og-secret")
            .body(json!({"action": "Acknowledge", "alert": alert}).to_string())
            .send()
    };
    let stale = opsgenie(Some((now - 3_600) * 1_000_000_000)).await.unwrap();
    assert_eq!(stale.status().as_u16(), 400);
    assert_eq!(
        stale.json::<Value>().await.unwrap()["error"]["code"],
        "stale_event"
    );
    assert_eq!(
        opsgenie(Some(now * 1_000_000_000))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(opsgenie(None).await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn control_characters_in_webhook_fields_are_refused_alike_on_both_databases() {
    for db in TestDb::both().await {
        let backend = db.url().split(':').next().unwrap().to_string();
        let bg = burnguard_on(
            db,
            WebhookAuth {
                pagerduty_secrets: vec![SecretString::from("pd-secret")],
                opsgenie_secret: Some(SecretString::from("og-secret")),
                alertmanager_allow_unauthenticated: true,
                ..WebhookAuth::default()
            },
        )
        .await;
        let with = |path: &[&str], value: &str| {
            let mut alert = common::alerts::alert(1, 1);
            let mut at = &mut alert;
            for key in &path[..path.len() - 1] {
                at = &mut at[*key];
            }
            at[path[path.len() - 1]] = json!(value);
            common::alerts::delivery(vec![common::alerts::alert(2, 1), alert])
        };
        let refused = [
            (
                "NUL in alertname",
                with(&["labels", "alertname"], "Disk\u{0}Full"),
            ),
            ("newline in service", with(&["labels", "service"], "db\nx")),
            ("NUL in a label", with(&["labels", "instance"], "n\u{0}1")),
            (
                "escape in the summary",
                with(&["annotations", "summary"], "\u{1b}[2J"),
            ),
            ("NUL in the fingerprint", with(&["fingerprint"], "ab\u{0}")),
        ];
        for (name, body) in refused {
            let (status, answer) = post_alertmanager(&bg, None, body).await;
            assert_eq!(status, 400, "{backend}: {name}: {answer}");
            assert_eq!(answer["error"]["code"], "control_character", "{name}");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("alerts[1]"),
                "{name}: {answer}"
            );
        }
        assert!(
            bg.store
                .list_incidents(&IncidentFilter::default())
                .await
                .unwrap()
                .is_empty(),
            "{backend}: nothing of a refused delivery is stored"
        );
        // Line breaks in free text are fine.
        let (status, answer) = post_alertmanager(
            &bg,
            None,
            with(&["annotations", "summary"], "disk full\n\tnode 1"),
        )
        .await;
        assert_eq!(status, 200, "{backend}: {answer}");

        let client = reqwest::Client::new();
        let now = burnguard::timefmt::rfc3339(chrono::Utc::now().timestamp());
        let (body, signature) = signed_pagerduty("evt-nul", &now, "Al\u{0}ice");
        let response = client
            .post(format!("{}/webhooks/pagerduty", bg.url))
            .header("X-PagerDuty-Signature", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{backend}");
        let response = client
            .post(format!("{}/webhooks/opsgenie", bg.url))
            .header("X-Burnguard-Token", "og-secret")
            .body(
                json!({"action": "Close", "alert": {"alias": "x", "username": "b\u{0}b"}})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{backend}");
    }
}

#[test]
fn serve_warns_when_alertmanager_is_opened_and_refuses_it_otherwise() {
    burnguard::adapters::prometheus::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("bg.db").display());
    let policies = common::repo_root().join("policies");
    let policies = policies.to_str().unwrap();
    let args = |open: bool| {
        let mut args = vec![
            "--policies",
            policies,
            "--prometheus",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--db",
            &db,
        ];
        if open {
            args.push("--alertmanager-allow-unauthenticated");
        }
        args
    };
    let post = |addr: &str| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let response = reqwest::Client::new()
                .post(format!("http://{addr}/webhooks/alertmanager"))
                .body(common::alerts::body(1, 1))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        })
    };
    {
        let serve = common::serve::Serve::start(&args(false), &[]);
        let (status, answer) = post(&serve.addr);
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["error"]["code"], "not_configured");
    }
    let serve = common::serve::Serve::start(&args(true), &[]);
    serve.wait_log("WITHOUT authentication", Duration::from_secs(30));
    let (status, answer) = post(&serve.addr);
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_grouped_slos_alert_joins_its_groups_incident() {
    for db in TestDb::both().await {
        let bg = burnguard_on(db, open_alertmanager()).await;
        let pay = open_incident(&bg.store, "checkout-routes{route=\"/pay\"}").await;
        let cart = open_incident(&bg.store, "checkout-routes{route=\"/cart\"}").await;
        let mut ours = common::alerts::alert(8, 9);
        ours["labels"]["slo"] = json!("checkout-routes");
        ours["labels"]["route"] = json!("/pay");
        // Without its group label the alert is not the grouped SLO's: it stands on its own.
        let mut bare = common::alerts::alert(9, 9);
        bare["labels"]["slo"] = json!("checkout-routes");
        let body = common::alerts::delivery(vec![ours, bare]);
        let (status, answer) = post_alertmanager(&bg, None, body).await;
        assert_eq!(status, 200, "{answer}");
        let received = |id: i64| {
            let store = bg.store.clone();
            async move {
                store
                    .incident(id)
                    .await
                    .unwrap()
                    .unwrap()
                    .timeline
                    .iter()
                    .filter(|e| e.kind == "alert_received")
                    .count()
            }
        };
        assert_eq!(received(pay).await, 1);
        assert_eq!(received(cart).await, 0);
        let incidents = bg
            .store
            .list_incidents(&IncidentFilter::default())
            .await
            .unwrap();
        assert!(
            incidents.iter().any(|i| i.slo.starts_with("external/")),
            "{incidents:?}"
        );
    }
}
