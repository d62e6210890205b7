//! Webhooks in: a REAL Alertmanager (Debian's prometheus-alertmanager) with burnguard as its
//! webhook receiver; PagerDuty V3 signatures (valid, wrong secret, rotated secrets, missing
//! header, tampered body, non-v1 scheme); Opsgenie's shared secret.

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
    burnguard::adapters::prometheus::install_crypto_provider();
    let db = TestDb::sqlite();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let mut state = ServiceState::new(
        store.clone(),
        "system:serviceaccount:burnguard:burnguard".into(),
    );
    state.webhook_auth = auth;
    state.set_slo_names(["checkout-availability".to_string()]);
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
        snapshot: json!({}),
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
    let bg = burnguard(WebhookAuth::default()).await;
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
    let pd = |event_type: &str, event_id: &str| {
        json!({"event": {"id": event_id, "event_type": event_type, "resource_type": "incident", "occurred_at": "2026-11-27T03:00:00Z",
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
