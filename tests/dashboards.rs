//! The Grafana dashboards in `dashboards/`: what `burnguard dashboards` writes, committed up to
//! date, valid against Grafana's own dashboard schema (a JSON Schema generated from npm
//! `@grafana/schema`; no Grafana server runs on our machines), and every panel query, with its
//! variables substituted as Grafana would, returns data from a REAL Prometheus holding
//! burnguard's series:
//!
//! - two days of raw history for the example policies in `policies/` (a checkout spike that
//!   pages, a search latency slow burn that opens a ticket, three healthy SLOs), written as
//!   OpenMetrics and turned into blocks by `promtool tsdb create-blocks-from openmetrics`;
//! - the recording rules generated for those policies, backfilled by
//!   `promtool tsdb create-blocks-from rules` in passes (rules reading recorded series after
//!   the series they read);
//! - burnguard's own `/metrics` as history: twelve hours of cycles in which the real evaluator
//!   reads that Prometheus, the real recorder drives incidents in a real SQLite store, steps and
//!   a freeze are journaled there, and the real exposition is written down at each cycle.
//!
//! A query that returns nothing fails the test. A few numbers are checked too (how many SLOs
//! page, the ideal burn-down line), so a query that returns the wrong thing fails as well.
//!
//! Set `BURNGUARD_DASHBOARD_PICTURE_DATA=FILE` to also write the SLO detail panels' results
//! for checkout as JSON; `scripts/dashboard-picture` draws `docs/slo-detail.png` from it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, RwLock};

use burnguard::adapters::prometheus::{Prometheus, PrometheusConfig};
use burnguard::adapters::store::SqlStore;
use burnguard::domain::dashboards::{self, exported};
use burnguard::domain::playbook::FreezeTarget;
use burnguard::domain::policy::{Slo, Window};
use burnguard::domain::rules;
use burnguard::engine::{Evaluator, ReadMode, record};
use burnguard::http::metrics::{Latest, Metrics};
use burnguard::http::state::ServiceState;
use burnguard::policies;
use burnguard::ports::{
    ActionIntent, ActionStatus, Freezes, Guards, Instance, Journal, MetricsSource, NewFreeze,
    Started, Store,
};
use common::prometheus::{Series, counter, gauge, labels};
use serde_json::{Value, json};

/// The end of all history: 2026-01-01T00:00:00Z.
const END: i64 = 1_767_225_600;
/// Raw history and recorded series cover the two days before `END`.
const HISTORY: i64 = 48 * 3_600;
/// Seconds between raw samples and between backfilled rule evaluations.
const STEP: i64 = 60;
/// burnguard's /metrics history: cycles every `CYCLE` seconds over the last `METRICS_HISTORY`.
const METRICS_HISTORY: i64 = 12 * 3_600;
const CYCLE: i64 = 120;
/// The dashboards' time range in this test (their default is 24h; 6h keeps it quick).
const SHOWN: i64 = 6 * 3_600;
/// What `$__rate_interval` becomes: four scrape intervals, as Grafana computes it.
const RATE_INTERVAL: &str = "8m";
/// Checkout fails 3% of its requests from three hours before the end to 20 minutes before.
const SPIKE: (i64, i64) = (END - 3 * 3_600, END - 20 * 60);
const CHECKOUT: &str = "checkout-availability";

fn burnguard() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_burnguard"));
    command.current_dir(common::repo_root());
    command
}

#[test]
fn committed_dashboards_are_up_to_date_with_the_generator() {
    let dir = common::repo_root().join("dashboards");
    for dashboard in dashboards::all() {
        let path = dir.join(dashboard.file_name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == dashboards::to_text(&dashboard.json),
            "dashboards/{} is stale; regenerate with:\n  cargo run -- dashboards -o dashboards",
            dashboard.file_name
        );
    }
}

#[test]
fn the_dashboards_command_writes_what_the_library_generates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new");
    let (ok, output) = common::run(burnguard().args(["dashboards", "-o"]).arg(&out));
    assert!(ok, "{output}");
    let written: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let expected: BTreeSet<String> = dashboards::all()
        .iter()
        .map(|d| d.file_name.to_string())
        .collect();
    assert_eq!(written, expected);
    for dashboard in dashboards::all() {
        let text = std::fs::read_to_string(out.join(dashboard.file_name)).unwrap();
        assert_eq!(text, dashboards::to_text(&dashboard.json));
    }
}

#[test]
fn every_dashboard_validates_against_grafanas_schema() {
    let root = common::repo_root();
    let tools = root.join(".tools/grafana-schema");
    let (ok, output) =
        common::run(Command::new(root.join("scripts/grafana-schema/install")).arg(&tools));
    assert!(ok, "installing the schema tools failed:\n{output}");
    let validate = |files: &[std::path::PathBuf]| {
        common::run(
            Command::new("node")
                .arg(root.join("scripts/grafana-schema/validate.cjs"))
                .arg(&tools)
                .args(files),
        )
    };
    let files: Vec<_> = dashboards::all()
        .iter()
        .map(|d| root.join("dashboards").join(d.file_name))
        .collect();
    let (ok, output) = validate(&files);
    assert!(ok, "a dashboard does not match Grafana's schema:\n{output}");
    assert_eq!(output.matches(": valid").count(), files.len(), "{output}");

    // The schema is strict: an unknown panel key, a bad variable type and a missing
    // schemaVersion are each reported.
    let mut broken = dashboards::all()[1].json.clone();
    broken["panels"][1]["legendFormat"] = json!("misplaced");
    broken["templating"]["list"][0]["type"] = json!("dropdown");
    broken.as_object_mut().unwrap().remove("schemaVersion");
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "broken.json", &broken.to_string());
    let (ok, output) = validate(&[path]);
    assert!(!ok, "{output}");
    for problem in ["legendFormat", "schemaVersion", "/templating/list/0/type"] {
        assert!(
            output.contains(problem),
            "{problem} not reported:\n{output}"
        );
    }
}

/// burnguard's /metrics carries every series the dashboards read: the store's counts, the
/// webhook counter (through the real router), and per-SLO series once an SLO is evaluated.
#[tokio::test]
async fn burnguard_exports_the_store_counts_and_webhook_requests_the_dashboards_read() {
    use tower::ServiceExt as _;
    for db in common::db::TestDb::both().await {
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let mut state = ServiceState::new(store.clone(), "sa".into());
        state.webhook_auth.alertmanager_token = Some(secrecy::SecretString::from("am-token"));
        let state = Arc::new(state);
        let router = burnguard::http::router(state.clone());

        // An open incident, a freeze it made, a step that succeeded and one still running.
        let incident = store
            .record(&evaluation_record("checkout", 1_000), |_| {
                burnguard::domain::incident::Decision::Open {
                    severity: burnguard::domain::policy::Severity::Page,
                    peak_burn_rate: 20.0,
                    budget_remaining: Some(0.5),
                }
            })
            .await
            .unwrap()
            .incident_id
            .unwrap();
        let instance = Instance {
            name: "burnguard-0".into(),
            id: "burnguard-0/1".into(),
        };
        store.heartbeat(&instance, 1_000).await.unwrap();
        let done = start_step(
            &store, &instance, incident, "checkout", "flags", "http", 1_010,
        )
        .await;
        store
            .settle(done, &instance, ActionStatus::Succeeded, json!({}), 1_020)
            .await
            .unwrap();
        start_step(
            &store, &instance, incident, "checkout", "rollback", "rollback", 1_030,
        )
        .await;
        freeze(&store, incident, "checkout", 1_040).await;

        let counts = store.counts().await.unwrap();
        assert_eq!(counts.open_incidents.get("checkout"), Some(&1));
        assert_eq!(counts.active_freezes.get("checkout"), Some(&1));
        assert_eq!(counts.outbox_pending, 0);
        state.metrics.set_store_counts(counts);

        for (body, code) in [(r#"{"version": "4", "alerts": []}"#, 200), ("{", 400)] {
            let response = router
                .clone()
                .oneshot(
                    http::Request::post("/webhooks/alertmanager")
                        .header("content-type", "application/json")
                        .header("authorization", "Bearer am-token")
                        .body(axum::body::Body::from(body))
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), code);
        }
        let response = router
            .oneshot(
                http::Request::get("/metrics")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        for line in [
            r#"burnguard_actions{slo="checkout",kind="http",status="succeeded"} 1"#,
            r#"burnguard_actions{slo="checkout",kind="rollback",status="started"} 1"#,
            "burnguard_notification_outbox_pending 0",
            r#"burnguard_webhook_requests_total{source="alertmanager",code="200"} 1"#,
            r#"burnguard_webhook_requests_total{source="alertmanager",code="400"} 1"#,
            r#"burnguard_policy_reloads_total{result="applied"} 0"#,
            r#"burnguard_policy_reloads_total{result="rejected"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        store.close().await;
    }
}

fn evaluation_record(slo: &str, at: i64) -> burnguard::ports::EvaluationRecord<'_> {
    burnguard::ports::EvaluationRecord {
        slo: slo.into(),
        service: slo.into(),
        evaluated_at: at,
        status: "page".into(),
        error_budget_remaining: Some(0.5),
        snapshot: json!({}).to_string(),
    }
}

async fn start_step(
    store: &SqlStore,
    instance: &Instance,
    incident: i64,
    slo: &str,
    step: &str,
    kind: &str,
    at: i64,
) -> i64 {
    let intent = ActionIntent {
        key: format!("incident:{incident}/rule:degrade/playbook:degrade/step:{step}"),
        incident_id: Some(incident),
        slo: slo.into(),
        playbook: Some("degrade".into()),
        step: step.into(),
        kind: kind.into(),
        intent: json!({}),
        status: ActionStatus::Started,
        dry_run: false,
        at,
    };
    match store
        .start(&intent, instance, &Guards::default())
        .await
        .unwrap()
    {
        Started::Run { id } => id,
        other => panic!("the step did not start: {other:?}"),
    }
}

async fn freeze(store: &SqlStore, incident: i64, slo: &str, at: i64) {
    store
        .create_freeze(&NewFreeze {
            target: FreezeTarget {
                service: Some("checkout".into()),
                namespace: Some("shop".into()),
                deployments: vec!["checkout".into()],
                selector: None,
            },
            reason: format!("{slo}: budget below 15%"),
            incident_id: Some(incident),
            slo: Some(slo.into()),
            source_key: format!("slo:{slo}/rule:freeze"),
            created_by: "burnguard".into(),
            lift_when: None,
            at,
        })
        .await
        .unwrap()
        .expect("a new freeze");
}

// ---------------------------------------------------------------------------------------------
// The history

/// Raw series for the example policies over `[END - HISTORY, END]`.
fn raw_history() -> Vec<Series> {
    let (start, end) = (END - HISTORY, END);
    let spiking = |t: i64| t >= SPIKE.0 && t < SPIKE.1;
    let checkout_errors = move |t: i64| if spiking(t) { 0.6 } else { 0.01 };
    let histogram = |le: &str, per_second: f64| {
        let mut s = counter(
            "http_request_duration_seconds_bucket",
            labels(&[("job", "search"), ("handler", "/api/search"), ("le", le)]),
            start,
            end,
            STEP,
            0.0,
            move |_| per_second,
        );
        s.family = "http_request_duration_seconds".into();
        s.kind = "histogram";
        s
    };
    let mut search_count = histogram("", 10.0);
    search_count.name = "http_request_duration_seconds_count".into();
    search_count.labels.remove("le");
    let mut search_sum = search_count.clone();
    search_sum.name = "http_request_duration_seconds_sum".into();
    vec![
        // checkout: 20 requests/s, 0.05% failing, 3% during the spike (burn rate 30: pages).
        counter(
            "http_requests_total",
            labels(&[("job", "checkout"), ("code", "500")]),
            start,
            end,
            STEP,
            0.0,
            checkout_errors,
        ),
        counter(
            "http_requests_total",
            labels(&[("job", "checkout"), ("code", "200")]),
            start,
            end,
            STEP,
            0.0,
            move |t| 20.0 - checkout_errors(t),
        ),
        // search: 10 queries/s, 2.5% slower than 300 ms (burn rate 2.5 of a 1% budget: the
        // 3d/6h ticket row fires, no page does).
        histogram("0.1", 8.0),
        histogram("0.3", 9.75),
        histogram("+Inf", 10.0),
        search_count,
        search_sum,
        // billing exports: 1 call/s, 0.1% rejected (burn rate 0.2 of 0.5%).
        counter(
            "billing_export_requests_total",
            labels(&[("outcome", "accepted")]),
            start,
            end,
            STEP,
            0.0,
            |_| 0.999,
        ),
        counter(
            "billing_export_requests_total",
            labels(&[("outcome", "rejected")]),
            start,
            end,
            STEP,
            0.0,
            |_| 0.001,
        ),
        // login: 5 attempts/s, 0.02% errors (burn rate 0.4 of 0.05%).
        counter(
            "login_attempts_total",
            labels(&[("result", "error")]),
            start,
            end,
            STEP,
            0.0,
            |_| 0.001,
        ),
        counter(
            "login_attempts_total",
            labels(&[("result", "ok")]),
            start,
            end,
            STEP,
            0.0,
            |_| 4.999,
        ),
        // token refresh: the identity team's own success ratio, 99.96% (burn rate 0.4).
        gauge(
            "identity:token_refresh_success:ratio",
            labels(&[("job", "identity")]),
            (start..=end)
                .step_by(STEP as usize)
                .map(|t| (t, 0.9996))
                .collect(),
        ),
    ]
}

/// Samples of burnguard's /metrics over time, written down from each scrape.
#[derive(Default)]
struct MetricsHistory {
    /// Family -> its `# TYPE` line.
    types: BTreeMap<String, String>,
    /// (family, series text) -> samples.
    series: BTreeMap<(String, String), Vec<(i64, String)>>,
}

impl MetricsHistory {
    /// Records one scrape at `at`, with the `job` and `instance` labels a scrape adds.
    fn scrape(&mut self, exposition: &str, at: i64) {
        let mut family = String::new();
        for line in exposition.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split_whitespace().next().unwrap().to_string();
                self.types.insert(family.clone(), line.to_string());
            } else if !line.starts_with('#') && !line.is_empty() {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let scraped = r#"job="burnguard",instance="burnguard-0:8080""#;
                let series = match series.split_once('{') {
                    Some((name, labels)) => format!("{name}{{{scraped},{labels}"),
                    None => format!("{series}{{{scraped}}}"),
                };
                self.series
                    .entry((family.clone(), series))
                    .or_default()
                    .push((at, value.to_string()));
            }
        }
    }

    fn openmetrics(&self) -> String {
        let mut text = String::new();
        for (family, type_line) in &self.types {
            text.push_str(type_line);
            text.push('\n');
            for ((f, series), samples) in &self.series {
                if f == family {
                    for (at, value) in samples {
                        text.push_str(&format!("{series} {value} {at}\n"));
                    }
                }
            }
        }
        text.push_str("# EOF\n");
        text
    }
}

/// burnguard's cycles over the last `METRICS_HISTORY`: the evaluator reads `prometheus`, the
/// recorder drives incidents in a SQLite store, the playbook's steps and a freeze are journaled
/// when the checkout incident opens, webhooks arrive while it burns; the real exposition is
/// written down after every cycle. Returns the history and the last exposition.
async fn burnguard_history(url: &str, slos: &[Slo]) -> (String, String) {
    let prometheus = Prometheus::new(&PrometheusConfig::new(url)).unwrap();
    let evaluator = Evaluator::new(prometheus, ReadMode::Auto, 8);
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(&format!("sqlite://{}", dir.path().join("b.db").display()))
        .await
        .unwrap();
    let latest: Latest = Arc::new(RwLock::new(BTreeMap::new()));
    let metrics = Metrics::new(latest.clone());
    metrics.slos_loaded.set(slos.len() as i64);
    let instance = Instance {
        name: "burnguard-0".into(),
        id: "burnguard-0/1".into(),
    };
    let mut history = MetricsHistory::default();
    let mut incident_seen: Option<(i64, i64)> = None;
    let mut running_rollback = None;
    let mut last = String::new();
    for at in (END - METRICS_HISTORY..=END).step_by(CYCLE as usize) {
        let started = std::time::Instant::now();
        let evaluation = evaluator.evaluate(slos, at).await;
        assert_eq!(evaluation.failed_queries, 0, "a query failed at {at}");
        assert!(
            evaluation.slos.iter().all(|e| e.error.is_none()),
            "{:?}",
            evaluation.slos
        );
        record::record_cycle(
            &store,
            slos,
            &evaluation,
            &mut record::HistoryCadence::default(),
        )
        .await;
        metrics
            .evaluation_duration
            .observe(started.elapsed().as_secs_f64());
        metrics.queries.inc_by(evaluation.queries as u64);
        metrics.last_success.set(at as f64);
        {
            let mut latest = latest.write().unwrap();
            for e in &evaluation.slos {
                latest.insert(
                    e.name.clone(),
                    burnguard::http::metrics::LatestEvaluation {
                        at,
                        evaluation: e.clone(),
                    },
                );
            }
        }

        // The world around it: the playbook and a freeze once checkout's incident is open.
        store.heartbeat(&instance, at).await.unwrap();
        let open = store.unresolved_incident(CHECKOUT).await.unwrap();
        if let (Some(incident), None) = (&open, incident_seen) {
            incident_seen = Some((incident.id, at));
        }
        if let Some((incident, opened)) = incident_seen {
            let since = at - opened;
            if since == CYCLE {
                let id =
                    start_step(&store, &instance, incident, CHECKOUT, "flags", "http", at).await;
                store
                    .settle(id, &instance, ActionStatus::Succeeded, json!({}), at)
                    .await
                    .unwrap();
            } else if since == 3 * CYCLE {
                running_rollback = Some(
                    start_step(
                        &store, &instance, incident, CHECKOUT, "rollback", "rollback", at,
                    )
                    .await,
                );
            } else if since == 6 * CYCLE {
                let id = running_rollback.take().unwrap();
                store
                    .settle(id, &instance, ActionStatus::Failed, json!({}), at)
                    .await
                    .unwrap();
                freeze(&store, incident, CHECKOUT, at).await;
            }
        }
        if at >= SPIKE.0 && at < SPIKE.1 {
            metrics
                .webhook_requests
                .get_or_create(&vec![
                    ("source".into(), "alertmanager".into()),
                    ("code".into(), "200".into()),
                ])
                .inc();
        }
        if at == END - SHOWN + 30 * 60 {
            metrics
                .policy_reloads
                .get_or_create(&vec![("result".into(), "applied".into())])
                .inc();
        }
        metrics.set_store_counts(store.counts().await.unwrap());
        last = metrics.encode().unwrap();
        history.scrape(&last, at);
    }
    assert!(incident_seen.is_some(), "checkout never opened an incident");
    store.close().await;
    (history.openmetrics(), last)
}

// ---------------------------------------------------------------------------------------------
// Grafana's side: variables, substitution, queries

/// A variable's values as Grafana would list them, and what a query gets for it.
#[derive(Clone)]
struct Variable {
    name: String,
    /// Every value the variable's query returns (a multi-value variable's queries get its
    /// `allValue` regex; a panel repeated over it gets each value).
    values: Vec<String>,
}

fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = values.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = text.to_string();
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &values[name])
            .replace(&format!("${name}"), &values[name]);
    }
    out
}

/// `label_values(SELECTOR, LABEL)` over the shown range.
async fn label_values(prometheus: &Prometheus, query: &str) -> Vec<String> {
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a label_values query: {query}"));
    let (selector, label) = inner.rsplit_once(',').unwrap();
    let label = label.trim();
    let series = prometheus
        .range(
            &format!("group by ({label}) ({selector})"),
            END - SHOWN,
            END,
            600,
        )
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let values: BTreeSet<String> = series
        .iter()
        .filter_map(|s| s.labels.get(label).cloned())
        .filter(|v| !v.is_empty())
        .collect();
    values.into_iter().collect()
}

/// Every assignment of the dashboard's variables the test runs: "All" for multi-value
/// variables, each value of single-value ones (and of those depending on them).
async fn assignments(
    prometheus: &Prometheus,
    dashboard: &Value,
) -> Vec<(Vec<Variable>, BTreeMap<String, String>)> {
    let mut done: Vec<(Vec<Variable>, BTreeMap<String, String>)> = vec![(
        Vec::new(),
        BTreeMap::from([("__rate_interval".to_string(), RATE_INTERVAL.to_string())]),
    )];
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] == "datasource" {
            continue;
        }
        let name = variable["name"].as_str().unwrap().to_string();
        let all = variable["includeAll"].as_bool().unwrap_or(false);
        let mut next = Vec::new();
        for (variables, values) in done {
            let query = substitute(variable["query"].as_str().unwrap(), &values);
            let found = label_values(prometheus, &query).await;
            assert!(
                !found.is_empty(),
                "variable `{name}` has no values: {query}"
            );
            let choices: Vec<String> = if all {
                vec![variable["allValue"].as_str().unwrap().to_string()]
            } else {
                found.clone()
            };
            for choice in choices {
                let mut values = values.clone();
                values.insert(name.clone(), choice);
                let mut variables = variables.clone();
                variables.push(Variable {
                    name: name.clone(),
                    values: found.clone(),
                });
                next.push((variables, values));
            }
        }
        done = next;
    }
    done
}

/// One query's answer: `(legend, points)` per series.
type Answer = Vec<(String, Vec<(i64, f64)>)>;

fn legend(format: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = format.to_string();
    for (k, v) in labels {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

/// Runs one target as Grafana would: an instant query at the end, or a range query over the
/// panel's range (its `timeFrom` when set, else the shown range).
async fn run_target(
    prometheus: &Prometheus,
    target: &Value,
    time_from: Option<&str>,
    values: &BTreeMap<String, String>,
) -> (String, Answer) {
    let expr = substitute(target["expr"].as_str().unwrap(), values);
    let legend_format = substitute(target["legendFormat"].as_str().unwrap_or(""), values);
    let range = match time_from {
        Some(text) => Window::parse(&substitute(text, values))
            .unwrap_or_else(|e| panic!("timeFrom {text}: {e:?}"))
            .as_secs_f64() as i64,
        None => SHOWN,
    };
    let answer = if target["instant"].as_bool().unwrap_or(false) {
        prometheus
            .instant(&expr, END)
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .into_iter()
            .map(|s| {
                let labels = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (legend(&legend_format, &labels), vec![(END, s.value)])
            })
            .collect()
    } else {
        let step = (range / 500).max(STEP) as u64;
        prometheus
            .range(&expr, END - range, END, step)
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .into_iter()
            .map(|s| (legend(&legend_format, &s.labels), s.points))
            .collect()
    };
    (expr, answer)
}

/// A panel's answers by refId (repeated panels once per value, with the value in the title).
struct PanelAnswer {
    title: String,
    unit: String,
    answers: BTreeMap<String, Answer>,
}

/// Runs every panel target and annotation of a dashboard under one assignment; a query that
/// returns nothing fails. Annotations are run when `annotations` is set.
async fn run_dashboard(
    prometheus: &Prometheus,
    dashboard: &Value,
    variables: &[Variable],
    values: &BTreeMap<String, String>,
    annotations: bool,
) -> Vec<PanelAnswer> {
    let name = dashboard["title"].as_str().unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let Some(targets) = panel["targets"].as_array() else {
            continue;
        };
        // A repeated panel is one panel per value of its variable.
        let repeats: Vec<BTreeMap<String, String>> = match panel["repeat"].as_str() {
            Some(var) => {
                let variable = variables.iter().find(|v| v.name == var).unwrap();
                variable
                    .values
                    .iter()
                    .map(|value| {
                        let mut values = values.clone();
                        values.insert(var.to_string(), value.clone());
                        values
                    })
                    .collect()
            }
            None => vec![values.clone()],
        };
        for values in repeats {
            let title = substitute(panel["title"].as_str().unwrap(), &values);
            let mut answers = BTreeMap::new();
            for target in targets {
                let (expr, answer) =
                    run_target(prometheus, target, panel["timeFrom"].as_str(), &values).await;
                assert!(
                    answer.iter().any(|(_, points)| !points.is_empty()),
                    "{name} / {title} / {}: no data for\n  {expr}\nwith {values:?}",
                    target["refId"]
                );
                answers.insert(target["refId"].as_str().unwrap().to_string(), answer);
            }
            out.push(PanelAnswer {
                title,
                unit: panel["fieldConfig"]["defaults"]["unit"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                answers,
            });
        }
    }
    if annotations {
        for annotation in dashboard["annotations"]["list"].as_array().unwrap() {
            let Some(expr) = annotation["expr"].as_str() else {
                continue;
            };
            let expr = substitute(expr, values);
            let series = prometheus
                .range(&expr, END - SHOWN, END, STEP as u64)
                .await
                .unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert!(
                series.iter().any(|s| !s.points.is_empty()),
                "{name}: annotation {} has no data:\n  {expr}",
                annotation["name"]
            );
            let title = annotation["titleFormat"].as_str().unwrap_or("");
            let answer = series
                .into_iter()
                .map(|s| (legend(title, &s.labels), s.points))
                .collect();
            out.push(PanelAnswer {
                title: format!("annotation: {}", annotation["name"].as_str().unwrap()),
                unit: String::new(),
                answers: BTreeMap::from([("A".to_string(), answer)]),
            });
        }
    }
    out
}

fn value_of(panels: &[PanelAnswer], title: &str) -> f64 {
    let panel = panels
        .iter()
        .find(|p| p.title == title)
        .unwrap_or_else(|| panic!("no panel {title}"));
    panel.answers["A"][0].1.last().unwrap().1
}

#[test]
fn every_panel_query_returns_data_from_a_prometheus_holding_burnguards_series() {
    burnguard::adapters::prometheus::install_crypto_provider();
    let root = common::repo_root();
    let set = policies::load(&[root.join("policies")]).expect("the example policies load");
    // Calendar SLOs are left out: their period ratio reads the period start `@ end()`, which
    // is the evaluation time for a rule but the end of each chunk when promtool backfills by
    // range queries (tests/calendar_prometheus.rs evaluates those rules as Prometheus does).
    let slos: Vec<_> = set
        .slos()
        .into_iter()
        .filter(|slo| slo.calendar.is_none())
        .collect();

    // Raw history, then the recording rules in passes.
    let mut server = common::prometheus::PrometheusServer::start(&raw_history());
    let file = rules::rule_file(&slos);
    for pass in common::prometheus::rule_passes(&file) {
        let yaml = rules::to_yaml(&pass, "policies").unwrap();
        server.backfill_rules(&yaml, END - HISTORY, END, STEP as u64);
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // burnguard's /metrics as history, from cycles over the recorded series.
        let (history, last) = burnguard_history(&server.url, &slos).await;
        for name in exported::ALL {
            assert!(
                last.lines().any(|l| l.starts_with(name)),
                "{name} is not in burnguard's /metrics:\n{last}"
            );
        }
        server.add_history(&history);

        let prometheus = Prometheus::new(&PrometheusConfig::new(&server.url)).unwrap();
        let mut picture = None;
        for dashboard in dashboards::all() {
            let json = &dashboard.json;
            let runs = assignments(&prometheus, json).await;
            assert!(!runs.is_empty());
            for (variables, values) in &runs {
                let is_checkout = values.get("slo").is_none_or(|s| s == CHECKOUT);
                let panels = run_dashboard(&prometheus, json, variables, values, is_checkout).await;
                match dashboard.file_name {
                    "slo-overview.json" => {
                        assert_eq!(value_of(&panels, "SLOs"), slos.len() as f64);
                        assert_eq!(value_of(&panels, "Paging"), 1.0);
                        assert_eq!(value_of(&panels, "Ticket"), 1.0);
                        assert_eq!(value_of(&panels, "Budget spent"), 2.0);
                        // checkout pages and search tickets: both have an incident.
                        assert_eq!(value_of(&panels, "Open incidents"), 2.0);
                        assert_eq!(value_of(&panels, "Active freezes"), 1.0);
                        let worst = &panels
                            .iter()
                            .find(|p| p.title == "Error budget remaining, worst first")
                            .unwrap()
                            .answers["A"];
                        assert_eq!(worst.len(), slos.len());
                        assert!(worst[0].1[0].1 < worst[slos.len() - 1].1[0].1);
                    }
                    "slo-detail.json" if is_checkout => {
                        let status =
                            &panels.iter().find(|p| p.title == "Status").unwrap().answers["A"];
                        assert_eq!(status[0].0, "page");
                        let ideal = &panels
                            .iter()
                            .find(|p| p.title.starts_with("Budget burn-down"))
                            .unwrap()
                            .answers["B"][0]
                            .1;
                        let (first, last) = (ideal[0].1, ideal[ideal.len() - 1].1);
                        assert!(first > 0.99 && last < 0.01, "ideal line {first} -> {last}");
                        picture = Some(picture_data(&panels));
                    }
                    "burnguard-health.json" => {
                        assert_eq!(value_of(&panels, "SLOs loaded"), slos.len() as f64);
                    }
                    _ => {}
                }
            }
        }
        let picture = picture.expect("the detail dashboard ran for checkout");
        if let Ok(path) = std::env::var("BURNGUARD_DASHBOARD_PICTURE_DATA") {
            std::fs::write(&path, serde_json::to_string_pretty(&picture).unwrap()).unwrap();
        }
    });
}

/// The SLO detail panels' answers for the picture script.
fn picture_data(panels: &[PanelAnswer]) -> Value {
    let panels: Vec<Value> = panels
        .iter()
        .map(|p| {
            let series: Vec<Value> = p
                .answers
                .iter()
                .flat_map(|(ref_id, answer)| {
                    answer.iter().map(move |(legend, points)| {
                        json!({"refId": ref_id, "legend": legend, "points": points})
                    })
                })
                .collect();
            json!({"title": p.title, "unit": p.unit, "series": series})
        })
        .collect();
    json!({"slo": CHECKOUT, "end": END, "panels": panels})
}
