//! `serve` with a store, end to end: a REAL Prometheus whose history burns up to now, the
//! service on SQLite opening a page incident that `incidents list` shows; the same incident
//! continued across kill -9 and restarts (transactions keep the database consistent); a cycle
//! of 1,500 evaluations killed the moment its first write shows, stored whole or not at all; and two
//! replicas on the REAL PostgreSQL keeping exactly one open incident.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burnguard::adapters::store::SqlStore;
use burnguard::ports::{IncidentFilter, Store};
use common::db::TestDb;
use common::prometheus::{PrometheusServer, recent_traffic};

const SPIKE: &str = r#"apiVersion: burnguard.dev/v1
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

/// Starts serve; its log goes to `serve-<n>.log` beside the policies, which
/// [`wait_for_incidents`] prints when nothing appears.
fn spawn_serve(policies: &std::path::Path, prometheus: &str, db: &str) -> Child {
    let dir = policies.parent().unwrap();
    let n = std::fs::read_dir(dir).unwrap().count();
    let log = std::fs::File::create(dir.join(format!("serve-{n}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_burnguard"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "1s",
            "--prometheus",
            prometheus,
            "--db",
            db,
            "--policies",
        ])
        .arg(policies)
        .env("RUST_LOG", "info")
        // Every evaluation in the history: the kill test counts a cycle's rows there.
        .env("BURNGUARD_HISTORY_RESOLUTION", "0s")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("serve starts")
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `incidents list` until it shows something, returning the parsed JSON array; on
/// timeout, fails with the logs of the serve processes started beside `policies`.
fn wait_for_incidents(db: &str, policies: &std::path::Path) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, output) = common::run(Command::new(env!("CARGO_BIN_EXE_burnguard")).args([
            "incidents",
            "list",
            "--status",
            "all",
            "--output",
            "json",
            "--db",
            db,
        ]));
        if ok
            && let Ok(serde_json::Value::Array(items)) = serde_json::from_str(&output)
            && !items.is_empty()
        {
            return items;
        }
        if Instant::now() >= deadline {
            let mut logs = String::new();
            for entry in std::fs::read_dir(policies.parent().unwrap()).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "log") {
                    logs += &format!(
                        "--- {}\n{}\n",
                        path.display(),
                        std::fs::read_to_string(&path).unwrap_or_default()
                    );
                }
            }
            panic!("no incident appeared: {output}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_burning_slo_opens_a_page_incident_that_the_cli_lists_and_shows() {
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    let dir = tempfile::tempdir().unwrap();
    let policies = common::write(dir.path(), "slo.yaml", SPIKE);
    let db = TestDb::sqlite();
    let serve = spawn_serve(&policies, &prometheus.url, db.url());
    let incidents = wait_for_incidents(db.url(), &policies);
    stop(serve);

    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let incident = &incidents[0];
    assert_eq!(incident["slo"], "checkout-availability");
    assert_eq!(incident["service"], "checkout");
    assert_eq!(incident["severity"], "page");
    assert_eq!(incident["status"], "open");
    assert!(incident["resolved_at"].is_null());
    // 5% errors against a 0.1% budget: burn rate 50 over the firing rows' long windows.
    let peak = incident["peak_burn_rate"].as_f64().unwrap();
    assert!((peak - 50.0).abs() < 1e-6, "{peak}");
    assert!(incident["opened_at"].as_i64().unwrap() > 1_700_000_000);

    let id = incident["id"].as_i64().unwrap().to_string();
    let (ok, shown) = common::run(Command::new(env!("CARGO_BIN_EXE_burnguard")).args([
        "incidents",
        "show",
        &id,
        "--output",
        "json",
        "--db",
        db.url(),
    ]));
    assert!(ok, "{shown}");
    let detail: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(detail["timeline"][0]["kind"], "opened");
    assert_eq!(detail["timeline"][0]["detail"]["status"], "page");
    let (ok, table) = common::run(Command::new(env!("CARGO_BIN_EXE_burnguard")).args([
        "incidents",
        "list",
        "--db",
        db.url(),
    ]));
    assert!(ok);
    assert!(
        table.lines().nth(1).unwrap().contains("open") && table.contains("page"),
        "{table}"
    );
}

#[tokio::test]
async fn kill_9_mid_cycle_leaves_a_consistent_database_and_the_same_incident_continues() {
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    let dir = tempfile::tempdir().unwrap();
    let policies = common::write(dir.path(), "slo.yaml", SPIKE);
    let db = TestDb::sqlite();
    let first = wait_for_first_incident(&policies, &prometheus.url, db.url());
    // Kill it at odd moments, mid-cycle or not, and start it again.
    for pause in [150u64, 420, 730, 1_090, 260] {
        let serve = spawn_serve(&policies, &prometheus.url, db.url());
        std::thread::sleep(Duration::from_millis(pause));
        let mut serve = serve;
        let _ = serve.kill(); // SIGKILL: no chance to clean up.
        let _ = serve.wait();
    }
    let serve = spawn_serve(&policies, &prometheus.url, db.url());
    std::thread::sleep(Duration::from_secs(3));
    stop(serve);

    let store = SqlStore::open(db.url()).await.unwrap();
    let all = store
        .list_incidents(&IncidentFilter::default())
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        1,
        "restarts must continue the incident, not open new ones: {all:?}"
    );
    assert_eq!(all[0].id, first);
    assert_eq!(all[0].status, "open");
    let detail = store.incident(first).await.unwrap().unwrap();
    assert_eq!(
        detail
            .timeline
            .iter()
            .filter(|e| e.kind == "opened")
            .count(),
        1
    );
    store.close().await;

    let raw = sqlx::AnyPool::connect(db.url()).await.unwrap();
    use sqlx::Row;
    let check: String = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&raw)
        .await
        .unwrap()
        .get(0);
    assert_eq!(check, "ok");
    // Every stored evaluation has its latest row, and evaluations kept being recorded.
    let evaluations: i64 = sqlx::query("SELECT COUNT(*) FROM evaluations")
        .fetch_one(&raw)
        .await
        .unwrap()
        .get(0);
    assert!(evaluations >= 3, "{evaluations}");
    raw.close().await;
    // No kill left a history row without its latest state pointing at it, or the reverse.
    assert_eq!(common::db::stale_latest_states(db.url()).await, 0);
}

fn wait_for_first_incident(policies: &std::path::Path, prometheus: &str, db: &str) -> i64 {
    let serve = spawn_serve(policies, prometheus, db);
    let incidents = wait_for_incidents(db, policies);
    stop(serve);
    incidents[0]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn two_replicas_on_one_postgres_keep_exactly_one_open_incident() {
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    let dir = tempfile::tempdir().unwrap();
    let policies = common::write(dir.path(), "slo.yaml", SPIKE);
    let db = TestDb::postgres().await;
    // Create the schema first so both replicas race on incidents, not on migrations.
    SqlStore::open(db.url()).await.unwrap().close().await;
    let a = spawn_serve(&policies, &prometheus.url, db.url());
    let b = spawn_serve(&policies, &prometheus.url, db.url());
    wait_for_incidents(db.url(), &policies);
    // Let both run several cycles against the open incident.
    std::thread::sleep(Duration::from_secs(4));
    stop(a);
    stop(b);

    let store = SqlStore::open(db.url()).await.unwrap();
    let all = store
        .list_incidents(&IncidentFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].status, "open");
    let detail = store.incident(all[0].id).await.unwrap().unwrap();
    assert_eq!(
        detail
            .timeline
            .iter()
            .filter(|e| e.kind == "opened")
            .count(),
        1
    );
    store.close().await;
    // Both replicas wrote history; each latest state is the last row written.
    assert_eq!(common::db::stale_latest_states(db.url()).await, 0);
}

/// Routes of the grouped SLO below: one cycle records this many evaluations in one batch.
const ROUTES: usize = 1_500;

fn routes_policy() -> String {
    format!(
        r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {{name: shop-routes}}
spec:
  service: shop
  objective: 99.9
  groupBy: [route]
  maxGroups: {}
  indicator:
    ratio:
      errors: 'sum by (route) (rate(http_requests_total{{job="shop",code="500"}}[{{{{.window}}}}]))'
      total: 'sum by (route) (rate(http_requests_total{{job="shop"}}[{{{{.window}}}}]))'
"#,
        ROUTES * 2
    )
}

/// Half an hour of traffic on every route, a tenth of the routes burning.
fn routes_history() -> Vec<common::prometheus::Series> {
    use common::prometheus::{counter, labels};
    let now = chrono::Utc::now().timestamp();
    let end = now - now % 60;
    let start = end - 1_800;
    let mut series = Vec::new();
    for r in 0..ROUTES {
        let route = format!("/r{r}");
        let errors = if r % 10 == 0 { 0.5 } else { 0.001 };
        for (code, rate) in [("500", errors), ("200", 10.0 - errors)] {
            series.push(counter(
                "http_requests_total",
                labels(&[("job", "shop"), ("route", &route), ("code", code)]),
                start,
                end,
                60,
                0.0,
                move |_| rate,
            ));
        }
    }
    series
}

#[tokio::test]
async fn kill_9_while_a_cycle_batch_is_written_leaves_each_cycle_whole_or_absent() {
    let prometheus = PrometheusServer::start(&routes_history());
    let dir = tempfile::tempdir().unwrap();
    let policies = common::write(dir.path(), "slo.yaml", &routes_policy());
    let db = TestDb::sqlite();
    let count = |sql: &'static str| {
        let url = db.url().to_string();
        async move {
            use sqlx::Row;
            let pool = sqlx::AnyPool::connect(&url).await.unwrap();
            let rows: Vec<(i64, i64)> = sqlx::query(sql)
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<i64, _>(0), r.get::<i64, _>(1)))
                .collect();
            pool.close().await;
            rows
        }
    };
    sqlx::any::install_default_drivers();
    // Kill serve the moment its first write of a cycle is visible: if a cycle were written in
    // parts, the kill would land between them.
    let written = || {
        let url = db.url().to_string();
        async move {
            use sqlx::Row;
            // Before serve created the database or its tables: nothing written.
            let Ok(pool) = sqlx::AnyPool::connect(&url).await else {
                return 0;
            };
            let n = sqlx::query("SELECT COUNT(*) FROM evaluations")
                .fetch_one(&pool)
                .await
                .map_or(0, |r| r.get::<i64, _>(0));
            pool.close().await;
            n
        }
    };
    let mut killed = 0;
    for _ in 0..6 {
        let before = written().await;
        let mut serve = spawn_serve(&policies, &prometheus.url, db.url());
        let deadline = Instant::now() + Duration::from_secs(60);
        while written().await == before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let _ = serve.kill(); // SIGKILL, whatever it is doing.
        let _ = serve.wait();
        killed += 1;
    }
    // Then one run that ends normally, and the cycles it recorded.
    let serve = spawn_serve(&policies, &prometheus.url, db.url());
    let deadline = Instant::now() + Duration::from_secs(60);
    let cycles = loop {
        let cycles = count(
            "SELECT evaluated_at, COUNT(*) FROM evaluations GROUP BY evaluated_at ORDER BY evaluated_at",
        )
        .await;
        if cycles.len() >= 3 || Instant::now() > deadline {
            break cycles;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop(serve);
    assert!(
        cycles.len() >= 3,
        "serve recorded cycles after {killed} kills: {cycles:?}"
    );
    // Every cycle is all of its evaluations or none: never a part of one.
    // (Two runs may record a cycle in the same second: a multiple of ROUTES.)
    let partial: Vec<&(i64, i64)> = cycles
        .iter()
        .filter(|(_, n)| !(*n as usize).is_multiple_of(ROUTES))
        .collect();
    assert!(partial.is_empty(), "cycles stored in part: {partial:?}");
    // One unresolved incident per burning route, whatever the kills interrupted.
    let per_slo =
        count("SELECT COUNT(*), COUNT(DISTINCT slo) FROM incidents WHERE status <> 'resolved'")
            .await;
    assert_eq!(per_slo, [(ROUTES as i64 / 10, ROUTES as i64 / 10)]);
}
