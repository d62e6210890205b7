//! Notifications out, end to end: `serve` on SQLite with a REAL Prometheus burning up to now
//! notifies a real local receiver (generic signed webhook and a PagerDuty Events v2 stand-in)
//! and a REAL Alertmanager. The receiver fails at first and across a restart of burnguard; each
//! notification still arrives exactly once, and every attempt is on the incident's timeline.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::db::TestDb;
use common::prometheus::{PrometheusServer, free_port, http_get, recent_traffic};
use common::receiver::Receiver;
use common::serve::Serve;
use hmac::{KeyInit, Mac};

const SLO: &str = r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: checkout-availability}
spec:
  service: checkout
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{job="checkout",code="500"}[{{.window}}]))
      total: sum(rate(http_requests_total{job="checkout"}[{{.window}}]))
"#;

fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_alertmanager(dir: &std::path::Path) -> (std::process::Child, String) {
    let config = common::write(
        dir,
        "am.yml",
        "route: {receiver: nowhere}\nreceivers:\n- name: nowhere\n",
    );
    let port = free_port();
    let child = Command::new(common::tool("prometheus-alertmanager"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    wait_until("alertmanager", Duration::from_secs(20), || {
        http_get(&addr, "/-/ready").is_some_and(|(s, _)| s == 200)
    });
    (child, format!("http://{addr}"))
}

#[test]
fn notifications_arrive_once_after_failures_and_a_restart() {
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    let receiver = Receiver::start_blocking();
    receiver.answer_with(500);
    let dir = tempfile::tempdir().unwrap();
    let policies = common::write(dir.path(), "slo.yaml", SLO);
    let (mut am, am_url) = start_alertmanager(dir.path());
    let db = TestDb::sqlite();
    let webhook = format!("{}/hooks/burnguard", receiver.url);
    let pagerduty = format!("{}/v2/enqueue", receiver.url);
    let args = |db: &str| -> Vec<String> {
        [
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "1s",
            "--prometheus",
            &prometheus.url,
            "--db",
            db,
            "--policies",
            &policies.display().to_string(),
            "--notify-webhook",
            &webhook,
            "--notify-webhook-secret",
            "hook-secret",
            "--notify-pagerduty-routing-key",
            "R0UTING",
            "--notify-pagerduty-url",
            &pagerduty,
            "--notify-alertmanager",
            &am_url,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |db: &str| {
        let owned = args(db);
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        Serve::start(&refs, &[])
    };

    // The receiver fails: burnguard keeps trying (and the real Alertmanager takes it at once).
    let first = run(db.url());
    wait_until("three failed attempts", Duration::from_secs(30), || {
        receiver.to("/hooks/burnguard").len() >= 3
    });
    drop(first); // killed while the webhook is still undelivered
    receiver.answer_with(200);
    let before_restart = receiver.to("/hooks/burnguard").len();
    let pd_before_restart = receiver.to("/v2/enqueue").len();
    let second = run(db.url());
    wait_until("the webhook delivery", Duration::from_secs(30), || {
        receiver.to("/hooks/burnguard").len() > before_restart
    });
    wait_until("the pagerduty delivery", Duration::from_secs(30), || {
        receiver.to("/v2/enqueue").len() > pd_before_restart
    });
    std::thread::sleep(Duration::from_secs(4)); // more delivery ticks: nothing new may arrive
    drop(second);

    // Exactly one successful webhook delivery: the last request, after the receiver recovered.
    let hooks = receiver.to("/hooks/burnguard");
    assert_eq!(
        hooks.len(),
        before_restart + 1,
        "one more request after recovery, no duplicates"
    );
    let delivered = hooks.last().unwrap();
    let body: serde_json::Value = serde_json::from_str(&delivered.body).unwrap();
    assert_eq!(body["event"], "opened");
    assert_eq!(body["details"]["slo"], "checkout-availability");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
    mac.update(delivered.body.as_bytes());
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        delivered.headers["x-burnguard-signature"],
        expected.as_str()
    );

    // PagerDuty Events v2: it failed with 500s too, then arrived exactly once.
    let pd = receiver.to("/v2/enqueue");
    assert_eq!(pd.len(), pd_before_restart + 1);
    let last: serde_json::Value = serde_json::from_str(&pd.last().unwrap().body).unwrap();
    assert_eq!(last["routing_key"], "R0UTING");
    assert_eq!(last["event_action"], "trigger");
    assert!(
        last["dedup_key"]
            .as_str()
            .unwrap()
            .starts_with("burnguard-incident-")
    );
    assert_eq!(last["payload"]["severity"], "critical");

    // The real Alertmanager has the alert.
    let (_, alerts) = http_get(am_url.trim_start_matches("http://"), "/api/v2/alerts").unwrap();
    assert!(
        alerts.contains("BurnguardIncident") && alerts.contains("checkout-availability"),
        "{alerts}"
    );
    let _ = am.kill();
    let _ = am.wait();

    // Every attempt is on the timeline.
    let (ok, out) = common::run(Command::new(env!("CARGO_BIN_EXE_burnguard")).args([
        "incidents",
        "show",
        "1",
        "--output",
        "json",
        "--db",
        db.url(),
    ]));
    assert!(ok, "{out}");
    let detail: serde_json::Value = serde_json::from_str(&out).unwrap();
    let timeline = detail["timeline"].as_array().unwrap();
    let failed = timeline
        .iter()
        .filter(|e| {
            e["kind"] == "notification_failed" && e["message"].as_str().unwrap().contains("webhook")
        })
        .count();
    let delivered = timeline
        .iter()
        .filter(|e| {
            e["kind"] == "notification_delivered"
                && e["message"].as_str().unwrap().contains("webhook")
        })
        .count();
    assert_eq!(failed, before_restart, "{timeline:#?}");
    assert_eq!(delivered, 1);
}
