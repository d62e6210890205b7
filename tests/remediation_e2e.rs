//! Remediation end to end, without Kubernetes: a REAL Prometheus whose history burns up to
//! now, `serve` on SQLite with a playbook of HTTP steps against a REAL local receiver. Each call
//! arrives exactly once, also across kill -9 and restart; the freeze gate answers 423; dry-run
//! and approve modes make no outgoing call.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::db::TestDb;
use common::prometheus::{PrometheusServer, recent_traffic};
use common::receiver::Receiver;
use common::serve::Serve;

fn policies(receiver: &str, mode: &str) -> String {
    format!(
        r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {{name: checkout-availability}}
spec:
  service: checkout
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{{job="checkout",code="500"}}[{{{{.window}}}}]))
      total: sum(rate(http_requests_total{{job="checkout"}}[{{{{.window}}}}]))
  budgetPolicy:
    - when: {{alert: page}}
      run: checkout-degrade
    - when: {{budgetRemainingBelow: 15}}
      freeze: {{service: checkout}}
---
apiVersion: burnguard.dev/v1
kind: Playbook
metadata: {{name: checkout-degrade}}
spec:
  mode: {mode}
  cooldown: 30m
  steps:
    - name: turn off recommendations
      http:
        method: PUT
        url: "{receiver}/api/flags/recs"
        headers: {{Authorization: "Bearer ${{FLAGS_TOKEN}}", Content-Type: application/json}}
        body: '{{"enabled": false}}'
        expectStatus: [200, 204]
        timeout: 5s
    - name: tell the team
      http: {{method: POST, url: "{receiver}/api/notify", body: 'checkout degraded'}}
"#
    )
}

struct Setup {
    _prometheus: PrometheusServer,
    _dir: tempfile::TempDir,
    policy_dir: std::path::PathBuf,
    prometheus_url: String,
    db: TestDb,
}

fn setup(receiver: &Receiver, mode: &str) -> Setup {
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    let dir = tempfile::tempdir().unwrap();
    let policy_dir = dir.path().join("policies");
    std::fs::create_dir(&policy_dir).unwrap();
    common::write(&policy_dir, "checkout.yaml", &policies(&receiver.url, mode));
    Setup {
        prometheus_url: prometheus.url.clone(),
        _prometheus: prometheus,
        _dir: dir,
        policy_dir,
        db: TestDb::sqlite(),
    }
}

fn serve(s: &Setup, extra: &[&str]) -> Serve {
    let policies = s.policy_dir.display().to_string();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--interval",
        "1s",
        "--prometheus",
        &s.prometheus_url,
        "--db",
        s.db.url(),
        "--policies",
        &policies,
    ];
    args.extend_from_slice(extra);
    Serve::start(&args, &[("FLAGS_TOKEN", "s3cret-flag-token")])
}

fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn incident_json(db: &str) -> serde_json::Value {
    let (ok, out) = common::run(Command::new(env!("CARGO_BIN_EXE_burnguard")).args([
        "incidents",
        "list",
        "--status",
        "all",
        "--output",
        "json",
        "--db",
        db,
    ]));
    assert!(ok, "{out}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = list[0]["id"].as_i64().expect("an incident").to_string();
    let (ok, out) = common::run(Command::new(env!("CARGO_BIN_EXE_burnguard")).args([
        "incidents",
        "show",
        &id,
        "--output",
        "json",
        "--db",
        db,
    ]));
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_page_runs_the_playbook_once_freezes_the_gate_and_a_restart_runs_nothing_twice() {
    let receiver = Receiver::start_blocking();
    let s = setup(&receiver, "auto");
    let first = serve(&s, &[]);
    wait_until("both playbook calls", Duration::from_secs(60), || {
        !receiver.to("/api/flags/recs").is_empty() && !receiver.to("/api/notify").is_empty()
    });
    // The flag call carried the secret from the environment, its headers and body.
    let flag = &receiver.to("/api/flags/recs")[0];
    assert_eq!(flag.method, "PUT");
    assert_eq!(flag.headers["authorization"], "Bearer s3cret-flag-token");
    assert_eq!(flag.headers["content-type"], "application/json");
    assert_eq!(flag.body, r#"{"enabled": false}"#);
    assert_eq!(receiver.to("/api/notify")[0].body, "checkout degraded");

    // The budget is overspent: the gate-only freeze answers 423 for the service.
    let (status, body) = first.get("/api/v1/freeze-gate?service=checkout");
    assert_eq!(status, 423, "{body}");
    let gate: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(gate["frozen"], true);
    assert!(
        gate["reason"]
            .as_str()
            .unwrap()
            .contains("error budget below 15%"),
        "{gate}"
    );
    let (status, body) = first.get("/api/v1/freeze-gate?service=search");
    assert_eq!(
        (status, body.contains("\"frozen\":false")),
        (200, true),
        "{body}"
    );
    let (status, body) = first.get("/api/v1/freeze-gate");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("missing_target"), "{body}");

    // More cycles run; nothing is called again.
    std::thread::sleep(Duration::from_secs(3));
    let mut first = first;
    let _ = first.child.kill(); // kill -9
    let _ = first.child.wait();
    let second = serve(&s, &[]);
    second.metrics_until("a few cycles after the restart", |m| {
        common::serve::value(m, "burnguard_evaluation_duration_seconds_count")
            .is_some_and(|n| n >= 3.0)
    });
    drop(second);
    assert_eq!(
        receiver.to("/api/flags/recs").len(),
        1,
        "the flag call must happen exactly once"
    );
    assert_eq!(
        receiver.to("/api/notify").len(),
        1,
        "the notification must happen exactly once"
    );

    let detail = incident_json(s.db.url());
    let actions = detail["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "{detail:#}");
    assert!(
        actions.iter().all(|a| a["status"] == "succeeded"),
        "{detail:#}"
    );
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in ["opened", "playbook_started", "action_succeeded", "frozen"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // The secret never reaches the database.
    let path = s.db.url().trim_start_matches("sqlite://").to_string();
    for file in [path.clone(), format!("{path}-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains("s3cret-flag-token"),
                "secret stored in {file}"
            );
        }
    }
}

#[test]
fn dry_run_calls_nothing_and_says_what_it_would_have_done() {
    let receiver = Receiver::start_blocking();
    let s = setup(&receiver, "auto");
    let serve = serve(&s, &["--dry-run"]);
    serve.metrics_until("a few cycles", |m| {
        common::serve::value(m, "burnguard_evaluation_duration_seconds_count")
            .is_some_and(|n| n >= 3.0)
    });
    let (status, _) = serve.get("/api/v1/freeze-gate?service=checkout");
    drop(serve);
    assert!(receiver.requests().is_empty(), "{:?}", receiver.requests());
    assert_eq!(status, 200, "a dry run must not freeze");
    let detail = incident_json(s.db.url());
    let actions = detail["actions"].as_array().unwrap();
    assert!(!actions.is_empty());
    assert!(
        actions
            .iter()
            .all(|a| a["status"] == "dry_run" && a["dry_run"] == true),
        "{detail:#}"
    );
    let timeline = detail["timeline"].to_string();
    assert!(
        timeline.contains("dry run: would run step `turn off recommendations`"),
        "{timeline}"
    );
}

#[test]
fn approve_mode_waits_for_a_person_and_calls_nothing() {
    let receiver = Receiver::start_blocking();
    let s = setup(&receiver, "approve");
    let serve = serve(&s, &[]);
    serve.metrics_until("a few cycles", |m| {
        common::serve::value(m, "burnguard_evaluation_duration_seconds_count")
            .is_some_and(|n| n >= 3.0)
    });
    drop(serve);
    assert!(receiver.requests().is_empty(), "{:?}", receiver.requests());
    let detail = incident_json(s.db.url());
    let actions = detail["actions"].as_array().unwrap();
    assert_eq!(
        actions.len(),
        1,
        "the first step waits; later steps are not journaled yet: {detail:#}"
    );
    assert_eq!(actions[0]["status"], "awaiting_approval");
    assert!(
        detail["timeline"]
            .to_string()
            .contains("waits for approval")
    );
}
