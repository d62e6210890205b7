//! Remediation end to end, without Kubernetes: a REAL Prometheus whose history burns up to
//! now, `serve` on SQLite with a playbook of HTTP steps against a REAL local receiver. Each call
//! arrives exactly once, also across kill -9 and restart; the freeze gate answers 423; dry-run
//! and approve modes make no outgoing call.
//!
//! Crashes, replicas and shutdown, with `serve` as a real process: `BURNGUARD_CRASH_AT` aborts
//! it at a named point of a step (before its journal row, after it, after the call) or of a
//! freeze (after its record), and a restart on the same database does what the README
//! promises: a step found `started` is `unknown` and runs again only if it is safe to repeat.
//! Two replicas on one PostgreSQL never mark each other's running step unknown; SIGTERM waits
//! for a running step up to the shutdown grace, then journals it as interrupted.

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
    serve_on(&s.policy_dir, &s.prometheus_url, s.db.url(), extra, &[])
}

/// `serve` every second on these policies, Prometheus and database, with `extra` arguments
/// and `envs` on top of `FLAGS_TOKEN`.
fn serve_on(
    policy_dir: &std::path::Path,
    prometheus_url: &str,
    db: &str,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Serve {
    let policies = policy_dir.display().to_string();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--interval",
        "1s",
        "--prometheus",
        prometheus_url,
        "--db",
        db,
        "--policies",
        &policies,
    ];
    args.extend_from_slice(extra);
    let mut all_envs = vec![("FLAGS_TOKEN", "s3cret-flag-token")];
    all_envs.extend_from_slice(envs);
    Serve::start(&args, &all_envs)
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

// ---- Crashes, replicas and shutdown -------------------------------------------------------

/// An SLO burning on `recent_traffic("checkout", ..)` whose page runs playbook `remediate`
/// (auto, no cooldown) with `steps` (YAML list items, indented for `steps:`); no other rule.
fn playbook_policies(steps: &str) -> String {
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
      run: remediate
---
apiVersion: burnguard.dev/v1
kind: Playbook
metadata: {{name: remediate}}
spec:
  mode: auto
  steps:
{steps}"#
    )
}

/// One HTTP step, POST to `url`, as a `steps:` list item.
fn http_step(name: &str, url: &str, idempotent: bool) -> String {
    format!(
        "    - name: {name}\n      http: {{method: POST, url: \"{url}\", timeout: 60s}}\n      idempotent: {idempotent}\n"
    )
}

/// A policy directory of its own.
fn policy_dir(policies: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "remediate.yaml", policies);
    dir
}

/// The (only) incident, with its timeline and actions, as the running `serve` answers it.
fn incident_of(serve: &Serve) -> Option<serde_json::Value> {
    let (status, body) = serve.get("/api/v1/incidents");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = list["incidents"][0]["id"].as_i64()?;
    let (status, body) = serve.get(&format!("/api/v1/incidents/{id}"));
    assert_eq!(status, 200, "{body}");
    Some(serde_json::from_str(&body).unwrap())
}

fn timeline_kinds(detail: &serde_json::Value) -> Vec<String> {
    detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn action<'a>(detail: &'a serde_json::Value, step: &str) -> Option<&'a serde_json::Value> {
    detail["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["step"] == step)
}

/// Polls the incident until `done` holds for it; returns it.
fn incident_until(
    serve: &Serve,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let detail = incident_of(serve);
        if let Some(detail) = &detail
            && done(detail)
        {
            return detail.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the incident: {detail:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The playbook run is over: no step is `started` and the timeline says it finished or stopped
/// (a finished or stopped run stays so for its incident: nothing runs after this).
fn run_over(detail: &serde_json::Value) -> bool {
    let kinds = timeline_kinds(detail);
    detail["actions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["status"] != "started")
        && kinds
            .iter()
            .any(|k| k == "playbook_finished" || k == "playbook_stopped")
}

const SIGABRT: i32 = 6;

/// Waits for a `serve` started with `BURNGUARD_CRASH_AT=point` to abort there.
fn wait_for_crash(serve: &mut Serve, point: &str) {
    use std::os::unix::process::ExitStatusExt;
    let status = serve.wait_exit(Duration::from_secs(60));
    assert_eq!(
        status.signal(),
        Some(SIGABRT),
        "serve should have aborted at {point}, but it exited with {status:?}"
    );
    serve.wait_log(
        &format!("BURNGUARD_CRASH_AT={point}"),
        Duration::from_secs(5),
    );
}

/// Where in a step's life `serve` dies.
#[derive(Clone, Copy, Debug, PartialEq)]
enum CrashPoint {
    /// The guards passed; the step is not journaled yet.
    BeforeJournal,
    /// The step is journaled `started`; nothing is called yet.
    AfterJournal,
    /// The call returned; its outcome is not journaled yet.
    AfterCall,
}

impl CrashPoint {
    fn name(self) -> &'static str {
        match self {
            CrashPoint::BeforeJournal => "step-before-journal",
            CrashPoint::AfterJournal => "step-after-journal",
            CrashPoint::AfterCall => "step-after-call",
        }
    }

    /// Whether the step is journaled `started` when the process dies.
    fn journaled(self) -> bool {
        self != CrashPoint::BeforeJournal
    }

    /// Calls the step made before the process died.
    fn calls_before(self) -> usize {
        usize::from(self == CrashPoint::AfterCall)
    }
}

/// What the README's rule says happens after a restart, for the step the crash hit (the
/// playbook's first) and the step after it.
#[derive(Debug, PartialEq)]
struct AfterRestart {
    first_calls: usize,
    second_calls: usize,
    /// The first step's journal status.
    first_status: &'static str,
    /// Finished (the second step ran) or stopped at the first step.
    finished: bool,
}

/// "After a crash, a step found started is marked `unknown` and put on the timeline; it runs
/// again only when it is safe to repeat." A step never journaled was never started: it runs.
/// A run stops at an unknown step that is not safe to repeat.
fn after_restart(point: CrashPoint, first_safe_to_repeat: bool) -> AfterRestart {
    if !point.journaled() {
        AfterRestart {
            first_calls: 1,
            second_calls: 1,
            first_status: "succeeded",
            finished: true,
        }
    } else if first_safe_to_repeat {
        AfterRestart {
            first_calls: point.calls_before() + 1,
            second_calls: 1,
            first_status: "succeeded",
            finished: true,
        }
    } else {
        AfterRestart {
            first_calls: point.calls_before(),
            second_calls: 0,
            first_status: "unknown",
            finished: false,
        }
    }
}

/// One cell of the crash matrix, on SQLite: `serve` dies at `point` in the playbook's first
/// step (the first step to reach any point: steps are taken in order and the second is not
/// looked at before the first settled), then a restart on the same database finishes or stops
/// the run; the receiver's counts must be what [`after_restart`] says.
fn crash_and_restart(prometheus: &PrometheusServer, point: CrashPoint, first_idempotent: bool) {
    let receiver = Receiver::start_blocking();
    let once = ("charge the card", "/api/charge");
    let repeatable = ("turn off recommendations", "/api/flags/recs");
    let (first, second) = if first_idempotent {
        (repeatable, once)
    } else {
        (once, repeatable)
    };
    let steps = format!(
        "{}{}",
        http_step(
            first.0,
            &format!("{}{}", receiver.url, first.1),
            first_idempotent
        ),
        http_step(
            second.0,
            &format!("{}{}", receiver.url, second.1),
            !first_idempotent
        ),
    );
    let dir = policy_dir(&playbook_policies(&steps));
    let db = TestDb::sqlite();
    let case = format!(
        "crash at {} in a {} first step",
        point.name(),
        if first_idempotent {
            "idempotent"
        } else {
            "non-idempotent"
        }
    );
    let instance = ["--instance-name", "crash-matrix"];

    let mut crashing = serve_on(
        dir.path(),
        &prometheus.url,
        db.url(),
        &instance,
        &[("BURNGUARD_CRASH_AT", point.name())],
    );
    wait_for_crash(&mut crashing, point.name());
    drop(crashing);
    assert_eq!(
        (receiver.to(first.1).len(), receiver.to(second.1).len()),
        (point.calls_before(), 0),
        "{case}: calls before the crash"
    );

    let restarted = serve_on(dir.path(), &prometheus.url, db.url(), &instance, &[]);
    let detail = incident_until(&restarted, "the playbook run to end", run_over);
    drop(restarted);

    let expected = after_restart(point, first_idempotent);
    assert_eq!(
        (receiver.to(first.1).len(), receiver.to(second.1).len()),
        (expected.first_calls, expected.second_calls),
        "{case}: calls to `{}` then `{}`; the incident: {detail:#}",
        first.0,
        second.0
    );
    let first_action = action(&detail, first.0).expect("the first step is journaled");
    assert_eq!(
        first_action["status"], expected.first_status,
        "{case}: {detail:#}"
    );
    let kinds = timeline_kinds(&detail);
    let has = |kind: &str| kinds.iter().any(|k| k == kind);
    assert_eq!(
        has("action_unknown"),
        point.journaled(),
        "{case}: a step found started is put on the timeline as unknown: {kinds:?}"
    );
    assert_eq!(
        has("action_retry"),
        point.journaled() && first_idempotent,
        "{case}: {kinds:?}"
    );
    if expected.finished {
        assert!(has("playbook_finished"), "{case}: {kinds:?}");
        assert_eq!(
            action(&detail, second.0).map(|a| a["status"].clone()),
            Some(serde_json::json!("succeeded")),
            "{case}: {detail:#}"
        );
    } else {
        let stopped = detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "playbook_stopped")
            .unwrap_or_else(|| panic!("{case}: no playbook_stopped in {kinds:?}"));
        let message = stopped["message"].as_str().unwrap();
        assert!(
            message.contains(first.0) && message.contains("not safe to repeat"),
            "{case}: {message}"
        );
        assert!(
            action(&detail, second.0).is_none(),
            "{case}: the step after a stop is never journaled: {detail:#}"
        );
    }
}

#[test]
fn a_crash_before_a_step_is_journaled_runs_each_step_once_after_the_restart() {
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    for first_idempotent in [false, true] {
        crash_and_restart(&prometheus, CrashPoint::BeforeJournal, first_idempotent);
    }
}

#[test]
fn a_crash_after_a_step_is_journaled_leaves_it_unknown_and_repeats_it_only_if_idempotent() {
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    for first_idempotent in [false, true] {
        crash_and_restart(&prometheus, CrashPoint::AfterJournal, first_idempotent);
    }
}

#[test]
fn a_crash_after_a_step_called_out_leaves_it_unknown_and_repeats_it_only_if_idempotent() {
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    for first_idempotent in [false, true] {
        crash_and_restart(&prometheus, CrashPoint::AfterCall, first_idempotent);
    }
}

#[test]
fn the_crash_rule_matches_the_readme() {
    use CrashPoint::*;
    // Spelled out once, so that the rule the matrix computes is the one the README states.
    let expect = |first_calls, second_calls, first_status, finished| AfterRestart {
        first_calls,
        second_calls,
        first_status,
        finished,
    };
    assert_eq!(
        after_restart(BeforeJournal, false),
        expect(1, 1, "succeeded", true)
    );
    assert_eq!(
        after_restart(BeforeJournal, true),
        expect(1, 1, "succeeded", true)
    );
    assert_eq!(
        after_restart(AfterJournal, false),
        expect(0, 0, "unknown", false)
    );
    assert_eq!(
        after_restart(AfterJournal, true),
        expect(1, 1, "succeeded", true)
    );
    assert_eq!(
        after_restart(AfterCall, false),
        expect(1, 0, "unknown", false)
    );
    assert_eq!(
        after_restart(AfterCall, true),
        expect(2, 1, "succeeded", true)
    );
}

#[test]
fn a_crash_between_the_freeze_record_and_its_apply_leaves_one_freeze_and_the_gate_closed() {
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    let dir = policy_dir(&playbook_policies(
        "    - name: stop deploys\n      freeze: {service: checkout}\n",
    ));
    let db = TestDb::sqlite();
    let instance = ["--instance-name", "crash-matrix"];
    let mut crashing = serve_on(
        dir.path(),
        &prometheus.url,
        db.url(),
        &instance,
        &[("BURNGUARD_CRASH_AT", "freeze-after-record")],
    );
    wait_for_crash(&mut crashing, "freeze-after-record");
    drop(crashing);

    let restarted = serve_on(dir.path(), &prometheus.url, db.url(), &instance, &[]);
    let detail = incident_until(&restarted, "the playbook run to end", run_over);
    let kinds = timeline_kinds(&detail);
    // The freeze step was found started: unknown, then run again (a freeze is safe to repeat).
    for kind in ["action_unknown", "action_retry", "playbook_finished"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} missing: {kinds:?}");
    }
    assert_eq!(
        action(&detail, "stop deploys").unwrap()["status"],
        "succeeded",
        "{detail:#}"
    );
    let (status, body) = restarted.get("/api/v1/freezes");
    assert_eq!(status, 200, "{body}");
    let freezes: serde_json::Value = serde_json::from_str(&body).unwrap();
    let freezes = freezes["freezes"].as_array().unwrap();
    assert_eq!(
        freezes.len(),
        1,
        "the freeze recorded before the crash is the only one: {freezes:#?}"
    );
    assert_eq!(freezes[0]["service"], "checkout");
    let (status, body) = restarted.get("/api/v1/freeze-gate?service=checkout");
    assert_eq!(status, 423, "{body}");
}

#[test]
fn two_replicas_on_one_postgres_run_a_slow_step_once_and_never_mark_it_unknown() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(TestDb::postgres());
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    let receiver = Receiver::start_blocking();
    receiver.delay(5_000);
    let dir = policy_dir(&playbook_policies(&http_step(
        "turn off recommendations",
        &format!("{}/api/flags/recs", receiver.url),
        false,
    )));
    let replicas = ["replica-a", "replica-b"].map(|name| {
        serve_on(
            dir.path(),
            &prometheus.url,
            db.url(),
            &["--instance-name", name],
            &[],
        )
    });
    wait_until("the slow call", Duration::from_secs(60), || {
        !receiver.requests().is_empty()
    });
    // While the receiver holds the call, both replicas go on cycling: each cycle checks for
    // interrupted steps.
    for replica in &replicas {
        replica.skip_logs();
    }
    for replica in &replicas {
        replica.wait_logs("evaluation cycle done", 3, Duration::from_secs(10));
    }
    let during = incident_of(&replicas[0]).expect("an incident");
    assert_eq!(
        action(&during, "turn off recommendations").unwrap()["status"],
        "started",
        "both replicas cycled three times while the step ran: {during:#}"
    );
    let detail = incident_until(&replicas[1], "the step to settle", run_over);
    drop(replicas);
    assert_eq!(receiver.requests().len(), 1, "{:?}", receiver.requests());
    let actions = detail["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{detail:#}");
    assert_eq!(actions[0]["status"], "succeeded", "{detail:#}");
    let kinds = timeline_kinds(&detail);
    assert!(
        !kinds.iter().any(|k| k == "action_unknown"),
        "a live replica's step was marked unknown: {detail:#}"
    );
    assert!(kinds.iter().any(|k| k == "playbook_finished"), "{kinds:?}");
}

#[test]
fn sigterm_lets_a_running_step_finish_within_the_grace_period() {
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    let receiver = Receiver::start_blocking();
    receiver.delay(3_000);
    let steps = [
        http_step(
            "turn off recommendations",
            &format!("{}/api/flags/recs", receiver.url),
            false,
        ),
        http_step(
            "tell the team",
            &format!("{}/api/notify", receiver.url),
            false,
        ),
    ]
    .concat();
    let dir = policy_dir(&playbook_policies(&steps));
    let db = TestDb::sqlite();
    let mut serve = serve_on(dir.path(), &prometheus.url, db.url(), &[], &[]);
    wait_until("the slow call", Duration::from_secs(60), || {
        !receiver.requests().is_empty()
    });
    serve.signal("TERM");
    let status = serve.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    drop(serve);
    let detail = incident_json(db.url());
    assert_eq!(
        action(&detail, "turn off recommendations").unwrap()["status"],
        "succeeded",
        "the process exits only after the running step settled: {detail:#}"
    );
    // Shutting down, it starts no new step: the next one waits for the next process.
    assert!(action(&detail, "tell the team").is_none(), "{detail:#}");
    assert!(receiver.to("/api/notify").is_empty());
    let kinds = timeline_kinds(&detail);
    assert!(
        !kinds.iter().any(|k| k == "action_interrupted"),
        "{kinds:?}"
    );
    assert_eq!(receiver.requests().len(), 1);

    // The next process takes the run up where it stopped: the second step, once.
    let serve = serve_on(dir.path(), &prometheus.url, db.url(), &[], &[]);
    wait_until("the second step", Duration::from_secs(60), || {
        !receiver.to("/api/notify").is_empty()
    });
    wait_until("the run finished", Duration::from_secs(60), || {
        timeline_kinds(&incident_json(db.url()))
            .iter()
            .any(|k| k == "playbook_finished")
    });
    drop(serve);
    assert_eq!(receiver.to("/api/flags/recs").len(), 1);
    assert_eq!(receiver.to("/api/notify").len(), 1);
}

#[test]
fn sigterm_past_the_grace_period_journals_the_running_step_as_interrupted() {
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    let receiver = Receiver::start_blocking();
    receiver.delay(20_000);
    let steps = [
        http_step(
            "turn off recommendations",
            &format!("{}/api/flags/recs", receiver.url),
            false,
        ),
        http_step(
            "tell the team",
            &format!("{}/api/notify", receiver.url),
            false,
        ),
    ]
    .concat();
    let dir = policy_dir(&playbook_policies(&steps));
    let db = TestDb::sqlite();
    let grace = Duration::from_secs(1);
    let mut serve = serve_on(
        dir.path(),
        &prometheus.url,
        db.url(),
        &["--shutdown-grace", "1s"],
        &[],
    );
    wait_until("the slow call", Duration::from_secs(60), || {
        !receiver.requests().is_empty()
    });
    let sent = Instant::now();
    serve.signal("TERM");
    let status = serve.wait_exit(Duration::from_secs(15));
    let took = sent.elapsed();
    assert!(status.success(), "{status:?}");
    // It waited the grace period for the step, and not the 20s the receiver holds the call.
    assert!(
        took >= grace && took < grace + Duration::from_secs(5),
        "exited {took:?} after SIGTERM with a grace of {grace:?}"
    );
    drop(serve);
    let detail = incident_json(db.url());
    assert_eq!(
        action(&detail, "turn off recommendations").unwrap()["status"],
        "unknown",
        "{detail:#}"
    );
    let interrupted = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "action_interrupted")
        .unwrap_or_else(|| panic!("no action_interrupted: {detail:#}"));
    assert!(
        interrupted["message"]
            .as_str()
            .unwrap()
            .contains("turn off recommendations"),
        "{interrupted}"
    );
    // The abandoned call settles nothing afterwards, and no later step ran.
    let kinds = timeline_kinds(&detail);
    assert!(
        !kinds
            .iter()
            .any(|k| k == "action_succeeded" || k == "playbook_finished"),
        "{kinds:?}"
    );
    assert!(action(&detail, "tell the team").is_none(), "{detail:#}");
}
