//! The fault matrix: nothing resolves, lifts or runs on missing or untrustworthy data.
//!
//! Rows are faults; for each, one full cycle (the evaluator over a real HTTP source, the
//! incident lifecycle on a REAL SQLite store, then remediation) starts from the same state:
//! a page incident whose last firing is two hours old (quiet data would resolve it), a budget
//! freeze that quiet data with budget left would lift, and an approved playbook step that a
//! decisive evaluation would run. Two control rows (healthy, burning) show that the same state
//! does resolve, lift and run on good data, so the fault rows cannot pass by accident. A second
//! column runs a `verify` step while the fault lasts: it must never pass.
//!
//! A REAL Prometheus serves the faults it can produce (series that vanished, no series at all,
//! NaN from 0/0, +Inf from x/0, more errors than requests); Prometheus down is a closed port. A small fake speaks the
//! query API only for what a real Prometheus cannot be made to answer: an HTTP 502 from a
//! proxy, an answer slower than the timeout, and Thanos/Mimir partial responses (`warnings`).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use burnguard::adapters::actuator::Actuators;
use burnguard::adapters::http_action::HttpActuator;
use burnguard::adapters::prometheus::{Prometheus, PrometheusConfig};
use burnguard::adapters::store::SqlStore;
use burnguard::domain::burn::Status;
use burnguard::domain::incident::Decision;
use burnguard::domain::playbook::Playbook;
use burnguard::domain::policy::{Severity, Slo};
use burnguard::engine::evaluate::{
    EvalStatus, Evaluation, Evaluator, ReadMode, SloEvaluation, WindowValues,
};
use burnguard::engine::record::{HistoryCadence, record_cycle};
use burnguard::engine::remediate::{RemediationSettings, Remediator, step_key};
use burnguard::ports::{
    ActionIntent, ActionStatus, EvaluationRecord, Freezes, IncidentDetail, Instance, Journal,
    NewFreeze, Store,
};
use common::db::TestDb;
use common::prometheus::{PrometheusServer, Series, counter, free_port, labels, recent_traffic};
use common::receiver::Receiver;
use serde_json::json;

/// The last whole minute: where every history ends and every cycle evaluates.
fn end() -> i64 {
    let now = chrono::Utc::now().timestamp();
    now - now % 60
}

fn ratio(job: &str) -> String {
    format!(
        "    ratio:\n      errors: sum(rate(http_requests_total{{job=\"{job}\",code=\"500\"}}[{{{{.window}}}}]))\n      total: sum(rate(http_requests_total{{job=\"{job}\"}}[{{{{.window}}}}]))\n"
    )
}

fn raw(bad: &str, total: &str, job: &str) -> String {
    format!(
        "    raw:\n      errorRatio: sum(rate({bad}{{job=\"{job}\"}}[{{{{.window}}}}])) / sum(rate({total}{{job=\"{job}\"}}[{{{{.window}}}}]))\n"
    )
}

/// The SLO with a page rule running `degrade` and a budget freeze rule.
fn policy(indicator: &str, mode: &str, steps: &str) -> String {
    format!(
        "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {{name: checkout}}\nspec:\n  service: checkout\n  objective: 99.9\n  indicator:\n{indicator}  budgetPolicy:\n    - {{when: {{alert: page}}, run: degrade}}\n    - {{when: {{budgetRemainingBelow: 50}}, freeze: {{service: checkout}}}}\n---\napiVersion: burnguard.dev/v1\nkind: Playbook\nmetadata: {{name: degrade}}\nspec:\n  mode: {mode}\n  steps:\n{steps}"
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

fn source(url: &str) -> Prometheus {
    let mut config = PrometheusConfig::new(url);
    config.timeout = Duration::from_secs(1);
    Prometheus::new(&config).unwrap()
}

type Engine = Remediator<SqlStore, Actuators, Prometheus>;

fn engine(store: Arc<SqlStore>, url: &str) -> Arc<Engine> {
    let actuators = Actuators {
        http: HttpActuator::new().unwrap(),
        kube: None,
    };
    Remediator::new(
        store,
        Arc::new(actuators),
        Arc::new(source(url)),
        RemediationSettings::default(),
        Instance {
            name: "matrix".into(),
            id: format!("matrix/{}", free_port()),
        },
    )
}

/// A fake query API for the answers a real Prometheus cannot give.
async fn fake_query_api() -> String {
    let vector = |value: f64, warnings: &str| {
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{value}"]}}]}},"warnings":[{warnings}]}}"#
        )
    };
    let app = Router::new()
        .route(
            "/bad-gateway/api/v1/query",
            post(|| async { (StatusCode::BAD_GATEWAY, "<html>502 Bad Gateway</html>") }),
        )
        .route(
            "/slow/api/v1/query",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "too late"
            }),
        )
        .route(
            "/partial/api/v1/query",
            post(move |body: Bytes| async move {
                // The short windows come from a store that did not answer; the long ones are
                // complete and quiet.
                let text = String::from_utf8_lossy(&body);
                let short = ["%5B5m%5D", "%5B30m%5D"].iter().any(|w| text.contains(w));
                let answer = if short {
                    vector(0.00001, r#""No StoreAPIs matched for this query""#)
                } else {
                    vector(0.00001, "")
                };
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    answer,
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// History for the rows a real Prometheus can serve.
fn history() -> Vec<Series> {
    let end = end();
    let start = end - 2 * 3_600;
    let flat = |name: &str, job: &str, per_second: f64| {
        counter(
            name,
            labels(&[("job", job)]),
            start,
            end,
            60,
            1e6,
            move |_| per_second,
        )
    };
    let mut series = recent_traffic("healthy", 0.0001);
    series.extend(recent_traffic("burning", 0.5));
    // Traffic that stopped 20 minutes ago: the short windows have nothing, the long ones do.
    series.extend(recent_traffic("vanished", 0.0001).into_iter().map(|mut s| {
        s.samples.retain(|(t, _)| *t <= end - 20 * 60);
        s
    }));
    // 0/0 and x/0 for raw SLIs.
    series.push(flat("idle_errors_total", "nan", 0.0));
    series.push(flat("idle_requests_total", "nan", 0.0));
    series.push(flat("busy_errors_total", "inf", 1.0));
    series.push(flat("idle_requests_total", "inf", 0.0));
    // Twice as many errors as requests: impossible, a broken exporter or a wrong query.
    series.push(flat("busy_errors_total", "impossible", 1.0));
    series.push(flat("half_requests_total", "impossible", 0.5));
    series
}

/// What a row expects of one cycle.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Good quiet data: the incident resolves and the freeze lifts.
    Recovers,
    /// Good burning data: the approved step runs, nothing lifts.
    Runs,
    /// Missing or untrustworthy data: nothing changes; the timeline says why.
    Holds {
        status: &'static str,
        why: &'static str,
    },
}

struct Row {
    name: &'static str,
    url: String,
    indicator: String,
    expect: Expect,
    /// What the `verify` step's failure must say (`None`: it passes).
    verify_fails_with: Option<&'static str>,
}

/// The state every row starts from.
async fn prepare(store: &SqlStore, slos: &[Slo], at: i64) -> i64 {
    let opened = at - 2 * 3_600;
    let record = EvaluationRecord {
        slo: "checkout".into(),
        service: "checkout".into(),
        evaluated_at: opened,
        status: "page".into(),
        error_budget_remaining: Some(0.4),
        snapshot: json!({}).to_string(),
    };
    let incident = store
        .record(&record, |_| Decision::Open {
            severity: Severity::Page,
            peak_burn_rate: 20.0,
            budget_remaining: Some(0.4),
        })
        .await
        .unwrap()
        .incident_id
        .unwrap();
    let freeze_rule = &slos[0].budget_policy[1];
    store
        .create_freeze(&NewFreeze {
            target: burnguard::domain::playbook::FreezeTarget {
                service: Some("checkout".into()),
                ..Default::default()
            },
            reason: "checkout: error budget below 50%".into(),
            incident_id: Some(incident),
            slo: Some("checkout".into()),
            source_key: format!("slo:checkout/rule:{}", freeze_rule.id),
            created_by: "burnguard".into(),
            lift_when: Some(json!({"budgetRemainingBelow": 0.5})),
            at: opened,
        })
        .await
        .unwrap();
    // A person approved the playbook's step; it runs on the next decisive cycle.
    store
        .journal(&ActionIntent {
            key: step_key(
                incident,
                &slos[0].budget_policy[0].id,
                "degrade",
                "call",
                false,
            ),
            incident_id: Some(incident),
            slo: "checkout".into(),
            playbook: Some("degrade".into()),
            step: "call".into(),
            kind: "http".into(),
            intent: json!({}),
            status: ActionStatus::Approved,
            dry_run: false,
            at: opened,
        })
        .await
        .unwrap();
    incident
}

async fn detail(store: &SqlStore, incident: i64) -> IncidentDetail {
    store.incident(incident).await.unwrap().unwrap()
}

/// One full cycle: evaluate, record, remediate.
async fn cycle(
    store: &Arc<SqlStore>,
    url: &str,
    slos: &[Slo],
    books: &BTreeMap<String, Playbook>,
    at: i64,
) -> Evaluation {
    let evaluation = Evaluator::new(source(url), ReadMode::Raw, 8)
        .evaluate(slos, at)
        .await;
    record_cycle(
        store.as_ref(),
        slos,
        &evaluation,
        &mut HistoryCadence::default(),
    )
    .await;
    let engine = engine(store.clone(), url);
    engine.after_cycle(slos, books, &evaluation).await;
    engine.wait_idle().await;
    evaluation
}

fn rows(prometheus: &str, fake: &str) -> Vec<Row> {
    let row = |name, url: &str, indicator: String, expect, verify_fails_with| Row {
        name,
        url: url.to_string(),
        indicator,
        expect,
        verify_fails_with,
    };
    let down = format!("http://127.0.0.1:{}", free_port());
    vec![
        row(
            "healthy (control)",
            prometheus,
            ratio("healthy"),
            Expect::Recovers,
            None,
        ),
        row(
            "burning (control)",
            prometheus,
            ratio("burning"),
            Expect::Runs,
            Some("is still"),
        ),
        row(
            "prometheus down",
            &down,
            ratio("healthy"),
            Expect::Holds {
                status: "error",
                why: "cannot reach",
            },
            Some("failed"),
        ),
        row(
            "HTTP 502 from a proxy",
            &format!("{fake}/bad-gateway"),
            ratio("healthy"),
            Expect::Holds {
                status: "error",
                why: "502",
            },
            Some("failed"),
        ),
        row(
            "answer slower than the timeout",
            &format!("{fake}/slow"),
            ratio("healthy"),
            Expect::Holds {
                status: "error",
                why: "timed out",
            },
            Some("failed"),
        ),
        row(
            "NaN samples (0/0)",
            prometheus,
            raw("idle_errors_total", "idle_requests_total", "nan"),
            Expect::Holds {
                status: "no_data",
                why: "no data in any window",
            },
            Some("no burn rate"),
        ),
        row(
            "+Inf samples (x/0)",
            prometheus,
            raw("busy_errors_total", "idle_requests_total", "inf"),
            Expect::Holds {
                status: "no_data",
                why: "no data in any window",
            },
            Some("no burn rate"),
        ),
        row(
            "no series at all",
            prometheus,
            ratio("nothing"),
            Expect::Holds {
                status: "no_data",
                why: "no data in any window",
            },
            Some("no burn rate"),
        ),
        row(
            "partial responses on the short windows",
            &format!("{fake}/partial"),
            ratio("healthy"),
            Expect::Holds {
                status: "partial",
                why: "cannot fire",
            },
            Some("partial response"),
        ),
        row(
            "errors exceed total",
            prometheus,
            raw("busy_errors_total", "half_requests_total", "impossible"),
            Expect::Holds {
                status: "error",
                why: "errors exceed total",
            },
            Some("errors exceed total"),
        ),
        row(
            "series vanished mid-incident",
            prometheus,
            ratio("vanished"),
            Expect::Holds {
                status: "partial",
                why: "cannot fire",
            },
            Some("no burn rate"),
        ),
    ]
}

#[tokio::test]
async fn nothing_resolves_lifts_or_runs_on_missing_or_untrustworthy_data() {
    let prometheus = PrometheusServer::start(&history());
    let fake = fake_query_api().await;
    let receiver = Receiver::start().await;
    let at = end();
    for row in rows(&prometheus.url, &fake) {
        let call = format!(
            "    - name: call\n      http: {{method: POST, url: \"{}/{}\", timeout: 1s}}\n",
            receiver.url,
            row.name.replace(' ', "-")
        );
        let (slos, books) = load(&policy(&row.indicator, "approve", &call));
        let db = TestDb::sqlite();
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let incident = prepare(&store, &slos, at).await;

        let evaluation = cycle(&store, &row.url, &slos, &books, at).await;
        let status = evaluation.slos[0].status.as_str();
        let d = detail(&store, incident).await;
        let freezes = store.active_freezes().await.unwrap().len();
        let calls = receiver
            .to(&format!("/{}", row.name.replace(' ', "-")))
            .len();
        let name = row.name;
        match row.expect {
            Expect::Recovers => {
                assert_eq!(status, "ok", "{name}");
                assert_eq!(d.incident.status, "resolved", "{name}");
                assert_eq!(freezes, 0, "{name}: the freeze lifts");
                assert_eq!(calls, 0, "{name}: the incident is over before remediation");
            }
            Expect::Runs => {
                assert_eq!(status, "page", "{name}");
                assert_eq!(d.incident.status, "open", "{name}");
                assert_eq!(freezes, 1, "{name}");
                assert_eq!(calls, 1, "{name}: the approved step runs");
            }
            Expect::Holds {
                status: expected,
                why,
            } => {
                assert_eq!(status, expected, "{name}: {:?}", evaluation.slos[0]);
                assert_eq!(d.incident.status, "open", "{name}: no resolution");
                assert_eq!(freezes, 1, "{name}: no lift");
                assert_eq!(calls, 0, "{name}: no step runs");
                let missing = d
                    .timeline
                    .iter()
                    .find(|e| e.kind == "data_missing")
                    .unwrap_or_else(|| panic!("{name}: no data_missing entry: {:?}", d.timeline));
                assert!(missing.message.contains(why), "{name}: {}", missing.message);
                assert_eq!(
                    d.actions.iter().find(|a| a.step == "call").unwrap().status,
                    "approved",
                    "{name}: the approved step still waits"
                );
            }
        }

        // The verify column: a playbook that started on good data verifies while the fault
        // lasts. Only a number read from data may pass it.
        let verify =
            "    - name: check\n      verify: {window: 5m, burnRateBelow: 1, within: 2s}\n";
        let (slos, books) = load(&policy(&row.indicator, "auto", verify));
        let db = TestDb::sqlite();
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let incident = prepare(&store, &slos, at).await;
        let engine = engine(store.clone(), &row.url);
        engine
            .after_cycle(&slos, &books, &decisive_page(&slos[0], at))
            .await;
        engine.wait_idle().await;
        let d = detail(&store, incident).await;
        let check = d.actions.iter().find(|a| a.step == "check").unwrap();
        match row.verify_fails_with {
            None => assert_eq!(check.status, "succeeded", "{name}: {check:?}"),
            Some(why) => {
                assert_eq!(check.status, "failed", "{name}: {check:?}");
                let error = check.outcome.as_ref().unwrap()["error"].as_str().unwrap();
                assert!(error.contains(why), "{name}: {error}");
            }
        }
    }
}

/// A page evaluation with data, as the cycle that started the playbook saw it.
fn decisive_page(slo: &Slo, at: i64) -> Evaluation {
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
            error_budget_remaining: Some(0.4),
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

#[tokio::test]
async fn data_coming_back_restarts_the_quiet_clock_instead_of_resolving() {
    let prometheus = PrometheusServer::start(&recent_traffic("healthy", 0.0001));
    let receiver = Receiver::start().await;
    // Two cycles fifteen minutes apart, both inside the history.
    let (first, second) = (end() - 15 * 60, end());
    let call = format!(
        "    - name: call\n      http: {{method: POST, url: \"{}/back\", timeout: 1s}}\n",
        receiver.url
    );
    let (slos, books) = load(&policy(&ratio("healthy"), "approve", &call));
    let db = TestDb::sqlite();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let incident = prepare(&store, &slos, first).await;
    // The cycle ten minutes before found no series.
    let gap = EvaluationRecord {
        slo: "checkout".into(),
        service: "checkout".into(),
        evaluated_at: first - 600,
        status: "no_data".into(),
        error_budget_remaining: None,
        snapshot: json!({}).to_string(),
    };
    store
        .record(&gap, |_| Decision::DataMissing {
            reason: "no data in any window".into(),
        })
        .await
        .unwrap();

    // The series are back and quiet. The last firing was two hours ago, but the gap is no
    // evidence of quiet: nothing resolves or lifts, and the timeline says how long data was
    // missing.
    let evaluation = cycle(&store, &prometheus.url, &slos, &books, first).await;
    assert_eq!(evaluation.slos[0].status.as_str(), "ok");
    let d = detail(&store, incident).await;
    assert_eq!(d.incident.status, "open");
    assert_eq!(store.active_freezes().await.unwrap().len(), 1);
    let back = d.timeline.iter().find(|e| e.kind == "data_back").unwrap();
    assert!(back.message.contains("after 600s"), "{}", back.message);
    // Data is back and decisive, the page incident open: the approved step runs (once).
    assert_eq!(receiver.to("/back").len(), 1);

    // Quiet on data for resolveAfter (15m) since data came back: resolved.
    cycle(&store, &prometheus.url, &slos, &books, second).await;
    let d = detail(&store, incident).await;
    assert_eq!(d.incident.status, "resolved", "{:?}", d.timeline);
    // The freeze still holds: unfreezeAfter (1h) of quiet on data has not passed.
    assert_eq!(store.active_freezes().await.unwrap().len(), 1);
    assert_eq!(receiver.to("/back").len(), 1);
}
