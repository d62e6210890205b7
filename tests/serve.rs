//! `burnguard serve` as a process: a REAL Prometheus with history ending now, the service on
//! port 0, its /metrics checked against the scenario, policy reload on file change and
//! SIGHUP (invalid sets rejected, the old set kept), readiness, and graceful SIGTERM.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::prometheus::{PrometheusServer, free_port, recent_traffic};
use common::serve::{Serve, value};

const SPIKE: &str = r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: spike}
spec:
  service: spike
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{job="spike",code="500"}[{{.window}}]))
      total: sum(rate(http_requests_total{job="spike"}[{{.window}}]))
"#;

const GHOST: &str = r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: ghost}
spec:
  service: ghost
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(ghost_total{code="500"}[{{.window}}]))
      total: sum(rate(ghost_total[{{.window}}]))
"#;

/// `serve` on the policies in `policies`, a SQLite file in `data`, every second, with
/// `more` flags.
fn serve_every_second(
    policies: &std::path::Path,
    prometheus: &str,
    data: &std::path::Path,
    more: &[&str],
) -> Serve {
    let db = format!("sqlite://{}", data.join("burnguard.db").display());
    let policies = policies.display().to_string();
    let mut args = vec![
        "--db",
        &db,
        "--policies",
        &policies,
        "--prometheus",
        prometheus,
        "--listen",
        "127.0.0.1:0",
        "--interval",
        "1s",
    ];
    args.extend_from_slice(more);
    Serve::start(&args, &[])
}

/// The flag that adds each window's error ratio and burn rate to `/metrics`.
const PER_WINDOW: &[&str] = &["--metrics-per-window"];

#[test]
fn serve_exports_metrics_reloads_policies_and_stops_on_sigterm() {
    let prometheus = PrometheusServer::start(&recent_traffic("spike", 0.5));
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "spike.yaml", SPIKE);
    common::write(dir.path(), "ghost.yaml", GHOST);
    let data = tempfile::tempdir().unwrap();
    let serve = serve_every_second(dir.path(), &prometheus.url, data.path(), PER_WINDOW);

    assert_eq!(serve.get("/healthz").0, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while serve.get("/readyz").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "never ready: {:?}",
            serve.get("/readyz")
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let metrics = serve.metrics_until("the spike paging", |m| {
        m.contains(r#"burnguard_slo_status{slo="spike",service="spike",status="page"} 1"#)
    });
    assert!(!metrics.contains("NaN"), "{metrics}");
    // 5% errors: error ratio 0.05 and burn rate 50 over the short windows.
    let ratio = value(
        &metrics,
        r#"burnguard_slo_error_ratio{slo="spike",service="spike",window="5m"}"#,
    )
    .unwrap();
    assert!((ratio - 0.05).abs() < 1e-9, "{ratio}");
    let burn = value(
        &metrics,
        r#"burnguard_slo_burn_rate{slo="spike",service="spike",window="1h"}"#,
    )
    .unwrap();
    assert!((burn - 50.0).abs() < 1e-6, "{burn}");
    // The 30d ratio covers the two hours of history: all at 5%, so -49 of the budget is left.
    let budget = value(
        &metrics,
        r#"burnguard_slo_error_budget_remaining{slo="spike",service="spike"}"#,
    )
    .unwrap();
    assert!((budget - (1.0 - 0.05 / 0.001)).abs() < 1e-6, "{budget}");
    assert_eq!(
        value(
            &metrics,
            r#"burnguard_slo_alert_firing{slo="spike",service="spike",severity="page",long_window="1h",short_window="5m"}"#
        ),
        Some(1.0)
    );
    // The ghost has no data: its status says so and no ratio is exported for it.
    assert!(
        metrics.contains(r#"burnguard_slo_status{slo="ghost",service="ghost",status="no_data"} 1"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"burnguard_slo_error_ratio{slo="ghost""#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"burnguard_slo_alert_firing{slo="ghost""#),
        "{metrics}"
    );
    assert!(value(&metrics, "burnguard_evaluation_duration_seconds_count").unwrap() >= 1.0);
    assert!(
        value(
            &metrics,
            "burnguard_last_successful_evaluation_timestamp_seconds"
        )
        .unwrap()
            > 1.0e9
    );
    for reason in [
        "timeout",
        "unreachable",
        "rejected",
        "bad_response",
        "partial_response",
    ] {
        let series = format!("burnguard_query_errors_total{{reason=\"{reason}\"}}");
        assert_eq!(value(&metrics, &series), Some(0.0), "{series}");
    }

    // An invalid policy set is rejected on file change; the old set keeps being evaluated.
    common::write(
        dir.path(),
        "broken.yaml",
        &SPIKE
            .replace("objective: 99.9", "objective: 100")
            .replace("name: spike", "name: broken"),
    );
    serve.wait_log(
        "keeping the policies already loaded",
        Duration::from_secs(20),
    );
    let metrics = serve.metrics_until("a rejected reload", |m| {
        value(m, r#"burnguard_policy_reloads_total{result="rejected"}"#).is_some_and(|v| v >= 1.0)
    });
    assert!(metrics.contains(r#"slo="spike""#));
    assert_eq!(value(&metrics, "burnguard_slos_loaded"), Some(2.0));

    // Fixing the file applies the new set: the third SLO appears.
    common::write(
        dir.path(),
        "broken.yaml",
        &SPIKE.replace("name: spike", "name: fixed"),
    );
    serve.wait_log("policies reloaded", Duration::from_secs(20));
    serve.metrics_until("the new SLO", |m| {
        m.contains(r#"burnguard_slo_status{slo="fixed",service="spike",status="page"} 1"#)
    });
    // The web UI follows the reload: the new SLO's page shows its policy as loaded, and the
    // backtest form offers it.
    let (status, page) = serve.get("/ui/slos/fixed");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Policy as loaded") && page.contains("name: fixed"),
        "{page}"
    );
    let (_, form) = serve.get("/ui/backtest");
    assert!(form.contains(r#"<option value="fixed""#), "{form}");

    // Removing an SLO removes its series.
    std::fs::remove_file(dir.path().join("ghost.yaml")).unwrap();
    serve.metrics_until("the ghost gone", |m| {
        !m.contains(r#"slo="ghost""#) && m.contains(r#"slo="spike""#)
    });

    // SIGHUP reloads too.
    serve.signal("HUP");
    loop {
        let line = serve.wait_log("policies reloaded", Duration::from_secs(20));
        if line.contains(r#"cause="SIGHUP""#) {
            break;
        }
    }

    // SIGTERM: a clean exit.
    serve.signal("TERM");
    let mut serve = serve;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A reload reads and validates the files on a thread of its own: a policy file that takes
/// long to read (here a FIFO nobody writes to yet, as a hung network mount would be) holds
/// up neither the cycles of the SLOs already loaded nor the reload that follows it.
#[test]
fn cycles_go_on_while_a_reload_waits_on_a_slow_policy_file() {
    let prometheus = PrometheusServer::start(&recent_traffic("spike", 0.5));
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "spike.yaml", SPIKE);
    let data = tempfile::tempdir().unwrap();
    let serve = serve_every_second(dir.path(), &prometheus.url, data.path(), &[]);
    serve.wait_log("evaluation cycle done", Duration::from_secs(30));

    // A new policy file that blocks whoever reads it until someone writes to it.
    let late = dir.path().join("late.yaml");
    let (made, output) = common::run(Command::new("mkfifo").arg(&late));
    assert!(made, "{output}");
    serve.wait_log("policy reload started", Duration::from_secs(20));
    // The reload now waits on the FIFO, and the loaded SLO goes on being evaluated.
    serve.wait_logs("evaluation cycle done", 2, Duration::from_secs(20));
    let metrics = serve.metrics_until("spike still evaluated", |m| {
        m.contains(r#"burnguard_slo_status{slo="spike",service="spike",status="page"} 1"#)
    });
    assert_eq!(value(&metrics, "burnguard_slos_loaded"), Some(1.0));

    // Once the file can be read, the reload finishes and applies it.
    std::fs::write(&late, SPIKE.replace("name: spike", "name: late")).unwrap();
    let line = serve.wait_log("policies reloaded", Duration::from_secs(20));
    assert!(line.contains("slos=2"), "{line}");
    serve.metrics_until("the late SLO evaluated", |m| {
        m.contains(r#"burnguard_slo_status{slo="late",service="spike",status="page"} 1"#)
    });
}

#[test]
fn settings_come_from_a_config_file_and_env_and_readiness_needs_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "spike.yaml", SPIKE);
    // Nothing listens on this port: Prometheus is down.
    let down = format!("http://127.0.0.1:{}", free_port());
    let config = common::write(
        dir.path(),
        "burnguard.yaml",
        &format!(
            // The per-window families on, so their absence below says something.
            "policies: [{}]\nlisten: 127.0.0.1:0\ndb: sqlite://{}\nprometheus: {{url: {down}, timeout: 1s}}\nmetricsPerWindow: true\n",
            dir.path().join("spike.yaml").display(),
            dir.path().join("burnguard.db").display()
        ),
    );
    let serve = Serve::start(
        &["--config", &config.display().to_string()],
        &[
            ("BURNGUARD_INTERVAL", "1s"),
            ("BURNGUARD_LOG_FORMAT", "pretty"),
        ],
    );
    let metrics = serve.metrics_until("a failed query", |m| {
        value(m, "burnguard_query_errors_total{reason=\"unreachable\"}").is_some_and(|v| v >= 1.0)
    });
    // A failed evaluation is an error status, never a verdict, and exports no numbers.
    assert!(
        metrics.contains(r#"burnguard_slo_status{slo="spike",service="spike",status="error"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains("burnguard_slo_error_ratio{"), "{metrics}");
    let (status, body) = serve.get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("could not reach Prometheus"), "{body}");
}

#[test]
fn serve_refuses_to_start_with_invalid_policies() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "bad.yaml",
        &SPIKE.replace("objective: 99.9", "objective: 0"),
    );
    let (ok, output) = common::run(
        Command::new(env!("CARGO_BIN_EXE_burnguard"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--prometheus",
                "http://127.0.0.1:1",
                "--policies",
            ])
            .arg(dir.path()),
    );
    assert!(!ok);
    assert!(output.contains("spec.objective"), "{output}");
}

#[test]
fn serve_keeps_running_when_the_pipe_its_log_goes_to_closes() {
    // A log collector that goes away must not stop evaluation and remediation.
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "spike.yaml", SPIKE);
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_burnguard"))
        .args(["serve", "--policies"])
        .arg(dir.path())
        .args(["--prometheus", &format!("http://127.0.0.1:{}", free_port())])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--interval", "1s"])
        .arg("--db")
        .arg(format!("sqlite://{}", dir.path().join("b.db").display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening") {
        line.clear();
        assert!(log.read_line(&mut line).unwrap() > 0, "serve stopped");
    }
    drop(log);
    let addr = format!("127.0.0.1:{port}");
    let queries = |m: &str| value(m, "burnguard_queries_total").unwrap_or(0.0);
    let start = queries(&common::prometheus::http_get(&addr, "/metrics").unwrap().1);
    // Cycles that log their failed queries keep coming after the pipe closed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "serve exited when its log closed"
        );
        if let Some((_, m)) = common::prometheus::http_get(&addr, "/metrics")
            && queries(&m) >= start + 2.0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no evaluation cycle after the log closed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        common::prometheus::http_get(&addr, "/healthz").map(|(s, _)| s),
        Some(200)
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// `serve --kubernetes --namespaces shop` with `KUBECONFIG` at `kubeconfig` and no
/// in-cluster account: it must stop, and the line saying why is returned.
fn serve_kubernetes_fails(home: &std::path::Path, kubeconfig: &std::path::Path) -> String {
    let db = format!("sqlite://{}", home.join("burnguard.db").display());
    let down = format!("http://127.0.0.1:{}", free_port());
    let (home, kubeconfig) = (home.display().to_string(), kubeconfig.display().to_string());
    let mut serve = Serve::start(
        &[
            "--kubernetes",
            "--namespaces",
            "shop",
            "--listen",
            "127.0.0.1:0",
            "--db",
            &db,
            "--prometheus",
            &down,
        ],
        &[
            ("HOME", home.as_str()),
            ("KUBECONFIG", kubeconfig.as_str()),
            ("KUBERNETES_SERVICE_HOST", ""),
        ],
    );
    let line = serve.wait_log(
        "cannot start the Kubernetes controller",
        Duration::from_secs(60),
    );
    assert!(!serve.wait_exit(Duration::from_secs(30)).success());
    line
}

/// `--kubernetes` where no cluster is: serve says why and stops, instead of running without
/// the SLOs the operator expects from the cluster.
#[test]
fn serve_with_kubernetes_and_no_cluster_says_why_and_exits() {
    let home = tempfile::tempdir().unwrap();
    let line = serve_kubernetes_fails(home.path(), &home.path().join("no-such-kubeconfig"));
    assert!(line.contains("no Kubernetes configuration"), "{line}");

    // A kubeconfig whose API server does not answer: the same, naming what to check.
    let api = format!("http://127.0.0.1:{}", free_port());
    let config = common::write(
        home.path(),
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{api}'}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u, namespace: shop}}}}]\ncurrent-context: x\n"
        ),
    );
    let line = serve_kubernetes_fails(home.path(), &config);
    assert!(
        line.contains("cannot list ServiceLevelObjective objects"),
        "{line}"
    );
    assert!(line.contains("burnguard crds"), "the hint: {line}");
}

/// By default `/metrics` carries each SLO's summary (status, objective, budget, time to
/// exhaustion, alert rows, store counts), one status sample, and no per-window family: those
/// are the numbers the recording rules record, and would be 16 more series an SLO in
/// Prometheus's head.
#[test]
fn by_default_each_slo_exports_its_summary_and_not_its_windows() {
    let prometheus = PrometheusServer::start(&recent_traffic("spike", 0.5));
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "spike.yaml", SPIKE);
    let data = tempfile::tempdir().unwrap();
    let serve = serve_every_second(dir.path(), &prometheus.url, data.path(), &[]);
    // Paging, and the store's counts read after a cycle.
    let metrics = serve.metrics_until("the spike paging, with its store counts", |m| {
        m.contains(r#"burnguard_slo_status{slo="spike",service="spike",status="page"} 1"#)
            && m.contains(r#"burnguard_slo_open_incidents{slo="spike",service="spike"}"#)
    });
    let (loaded, problems) = burnguard::policies::parse_source("spike.yaml", SPIKE);
    assert!(problems.is_empty(), "{problems:?}");
    let rows = loaded[0].slo.alerting.windows.len();
    assert!(rows > 0);
    let mut families: std::collections::BTreeMap<&str, usize> = Default::default();
    for line in metrics.lines() {
        if line.contains(r#"slo="spike""#) && line.starts_with("burnguard_slo_") {
            *families.entry(line.split('{').next().unwrap()).or_default() += 1;
        }
    }
    // Time to exhaustion is absent while the SLO is not burning or lacks data: not pinned here.
    families.remove("burnguard_slo_time_to_exhaustion_seconds");
    let expected: std::collections::BTreeMap<&str, usize> = [
        ("burnguard_slo_status", 1),
        ("burnguard_slo_objective", 1),
        ("burnguard_slo_error_budget_remaining", 1),
        ("burnguard_slo_alert_firing", rows),
        ("burnguard_slo_alert_threshold", rows),
        ("burnguard_slo_open_incidents", 1),
        ("burnguard_slo_active_freezes", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(families, expected, "{metrics}");
    // The same numbers are still in the API.
    let (status, body) = serve.get("/api/v1/slos/spike");
    assert_eq!(status, 200, "{body}");
    let spike: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        (spike["error_ratio"]["5m"].as_f64().unwrap() - 0.05).abs() < 1e-9,
        "{spike}"
    );
}

/// At the default history resolution (5m) and a 1 s interval, the store keeps the SLO's first
/// evaluation (and would keep any change of status), not one per cycle, while the API answers
/// from this replica's latest evaluation of each cycle.
#[test]
fn at_the_default_resolution_the_history_keeps_one_row_per_slot_not_one_per_cycle() {
    let prometheus = PrometheusServer::start(&recent_traffic("spike", 0.5));
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "spike.yaml", SPIKE);
    let data = tempfile::tempdir().unwrap();
    let serve = serve_every_second(dir.path(), &prometheus.url, data.path(), &[]);
    let metrics = serve.metrics_until("six cycles", |m| {
        value(m, "burnguard_evaluation_duration_seconds_count").unwrap_or(0.0) >= 6.0
            && m.contains(r#"burnguard_slo_status{slo="spike",service="spike",status="page"} 1"#)
    });
    let cycles = value(&metrics, "burnguard_evaluation_duration_seconds_count").unwrap();
    let db = format!("sqlite://{}", data.path().join("burnguard.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let history = runtime.block_on(common::db::rows(&db, "evaluations"));
    // The first evaluation, and a second only if the SLO's 5m slot turned during the test.
    assert!(
        (1..=2).contains(&history) && (history as f64) < cycles,
        "{history} history rows after {cycles} cycles"
    );
    assert_eq!(
        runtime.block_on(common::db::rows(&db, "latest_evaluations")),
        1
    );
    let (status, body) = serve.get("/api/v1/slos/spike");
    assert_eq!(status, 200, "{body}");
    let spike: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(spike["status"], "page", "{spike}");
    assert!(
        (spike["burn_rate"]["1h"].as_f64().unwrap() - 50.0).abs() < 1e-6,
        "{spike}"
    );
}

/// Auto mode reads an SLO from its recorded series only while they carry the fingerprint of
/// its rules as they are now. Serve works each SLO's fingerprint out once per load of the
/// policies, not every cycle: so an edit that changes an SLO's rules (and not its objective)
/// must make the next load's cycles read it raw until its rules are recorded anew.
#[test]
fn after_an_edit_of_its_queries_an_slo_is_read_raw_not_from_the_rules_recorded_before() {
    // Raw: 5% errors. Recorded by the rules of the policy as it is first loaded: 0.01%.
    let mut series = recent_traffic("spike", 0.5);
    let (loaded, problems) = burnguard::policies::parse_source("spike.yaml", SPIKE);
    assert!(problems.is_empty(), "{problems:?}");
    let before = &loaded[0].slo;
    let now = chrono::Utc::now().timestamp();
    let times: Vec<i64> = (0..=15).map(|k| now - now % 60 - 900 + k * 60).collect();
    series.extend(common::fleet::recorded_by_rules(
        before, "spike", 0.0001, &times,
    ));
    let prometheus = PrometheusServer::start(&series);
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "spike.yaml", SPIKE);
    let data = tempfile::tempdir().unwrap();
    // The default mode: auto.
    let serve = serve_every_second(dir.path(), &prometheus.url, data.path(), PER_WINDOW);
    let five_minutes = r#"burnguard_slo_error_ratio{slo="spike",service="spike",window="5m"}"#;
    serve.metrics_until("spike read from its recorded rules", |m| {
        value(m, five_minutes).is_some_and(|v| (v - 0.0001).abs() < 1e-12)
    });

    // The same numbers asked another way: its rules are no longer the recorded ones.
    let edited = SPIKE.replace(r#"code="500""#, r#"code=~"500""#);
    assert_ne!(edited, SPIKE);
    common::write(dir.path(), "spike.yaml", &edited);
    serve.wait_log("policies reloaded", Duration::from_secs(20));
    let metrics = serve.metrics_until("spike read raw after the edit", |m| {
        value(m, five_minutes).is_some_and(|v| (v - 0.05).abs() < 1e-9)
    });
    assert!(
        metrics.contains(r#"burnguard_slo_status{slo="spike",service="spike",status="page"} 1"#),
        "{metrics}"
    );
}

/// An SLO on a schedule of its own is due in cycles of its own: such a cycle reads with the
/// plan of just the SLOs due (each its own rules fingerprint), never the whole set's. Here
/// `steady`, second in the files and on its own cron, is read from its recorded rules, and
/// `spike`, on the interval, raw (it has no recorded rules). (Serve here is a debug build,
/// which also checks each SLO's name against its plan.)
#[test]
fn an_slo_on_its_own_schedule_is_read_with_its_own_rules_fingerprint() {
    const STEADY: &str = r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: steady}
spec:
  service: steady
  objective: 99.9
  schedule: '*/3 * * * * *'
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{job="steady",code="500"}[{{.window}}]))
      total: sum(rate(http_requests_total{job="steady"}[{{.window}}]))
"#;
    let mut series = recent_traffic("spike", 0.5);
    let (loaded, problems) = burnguard::policies::parse_source("steady.yaml", STEADY);
    assert!(problems.is_empty(), "{problems:?}");
    let steady = &loaded[0].slo;
    assert!(steady.schedule.is_some());
    let now = chrono::Utc::now().timestamp();
    let times: Vec<i64> = (0..=15).map(|k| now - now % 60 - 900 + k * 60).collect();
    series.extend(common::fleet::recorded_by_rules(
        steady, "steady", 0.0001, &times,
    ));
    let prometheus = PrometheusServer::start(&series);
    let dir = tempfile::tempdir().unwrap();
    // Files load in name order: spike first, steady second.
    common::write(dir.path(), "a-spike.yaml", SPIKE);
    common::write(dir.path(), "b-steady.yaml", STEADY);
    let data = tempfile::tempdir().unwrap();
    let serve = serve_every_second(dir.path(), &prometheus.url, data.path(), PER_WINDOW);
    let metrics = serve.metrics_until("steady from its rules and spike raw", |m| {
        value(
            m,
            r#"burnguard_slo_error_ratio{slo="steady",service="steady",window="5m"}"#,
        )
        .is_some_and(|v| (v - 0.0001).abs() < 1e-12)
            && value(
                m,
                r#"burnguard_slo_error_ratio{slo="spike",service="spike",window="5m"}"#,
            )
            .is_some_and(|v| (v - 0.05).abs() < 1e-9)
    });
    assert!(
        metrics.contains(r#"burnguard_slo_status{slo="steady",service="steady",status="ok"} 1"#),
        "{metrics}"
    );
    // A cycle of one SLO only: the set's plan was cut down to the SLOs due.
    serve.wait_log("cycle{slos=1}", Duration::from_secs(10));
}
