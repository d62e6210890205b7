//! The remediation engine's guards and failure handling, against a REAL SQLite store (and the
//! REAL PostgreSQL for the journal), a REAL local HTTP receiver and, for `verify`, a REAL
//! Prometheus. Kubernetes is not configured here, so its steps fail as "not configured".

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use burnguard::adapters::actuator::Actuators;
use burnguard::adapters::http_action::HttpActuator;
use burnguard::adapters::prometheus::{Prometheus, PrometheusConfig};
use burnguard::adapters::store::SqlStore;
use burnguard::domain::burn::Status;
use burnguard::domain::incident::Decision;
use burnguard::domain::playbook::Playbook;
use burnguard::domain::policy::{Severity, Slo};
use burnguard::engine::evaluate::{EvalStatus, Evaluation, SloEvaluation, WindowValues};
use burnguard::engine::remediate::{RemediationSettings, Remediator, step_key};
use burnguard::ports::{
    ActionIntent, ActionStatus, EvaluationRecord, Freezes, Guards, IncidentDetail, Instance,
    Journal, Started, Store,
};
use common::db::TestDb;
use common::prometheus::{PrometheusServer, counter, free_port, labels};
use common::receiver::Receiver;
use serde_json::json;

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

fn policy(budget_policy: &str, steps: &str, playbook_extra: &str) -> String {
    format!(
        "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {{name: checkout}}\nspec:\n  service: checkout\n  objective: 99.9\n  indicator:\n    ratio:\n      errors: sum(rate(http_requests_total{{job=\"checkout\",code=\"500\"}}[{{{{.window}}}}]))\n      total: sum(rate(http_requests_total{{job=\"checkout\"}}[{{{{.window}}}}]))\n  budgetPolicy:\n{budget_policy}\n---\napiVersion: burnguard.dev/v1\nkind: Playbook\nmetadata: {{name: degrade}}\nspec:\n{playbook_extra}  steps:\n{steps}\n"
    )
}

fn evaluation(slo: &Slo, status: EvalStatus, budget: Option<f64>, at: i64) -> Evaluation {
    Evaluation {
        at,
        slos: vec![std::sync::Arc::new(SloEvaluation {
            name: slo.name.clone(),
            service: slo.service.clone(),
            objective: slo.objective.ratio(),
            window: slo.window_name(),
            budget_period: None,
            group: Default::default(),
            status,
            source: None,
            error_ratio: WindowValues::default(),
            burn_rate: WindowValues::default(),
            error_budget_remaining: budget,
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

async fn open_page_incident(store: &SqlStore, slo: &str, at: i64) -> i64 {
    let record = EvaluationRecord {
        slo: slo.into(),
        service: "checkout".into(),
        evaluated_at: at,
        status: "page".into(),
        error_budget_remaining: Some(0.5),
        snapshot: json!({}).to_string(),
    };
    store
        .record(&record, |_| Decision::Open {
            severity: Severity::Page,
            peak_burn_rate: 20.0,
            budget_remaining: Some(0.5),
        })
        .await
        .unwrap()
        .incident_id
        .unwrap()
}

type Engine = Remediator<SqlStore, Actuators, Prometheus>;

fn new_engine(
    store: Arc<SqlStore>,
    prometheus_url: &str,
    settings: RemediationSettings,
) -> Arc<Engine> {
    let actuators = Actuators {
        http: HttpActuator::new().unwrap(),
        kube: None,
    };
    let mut config = PrometheusConfig::new(prometheus_url);
    config.timeout = Duration::from_secs(2);
    Remediator::new(
        store,
        Arc::new(actuators),
        Arc::new(Prometheus::new(&config).unwrap()),
        settings,
        incarnation("test-host"),
    )
}

/// A new incarnation of the process named `name`.
fn incarnation(name: &str) -> Instance {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Instance {
        name: name.into(),
        id: format!("{name}/{n}"),
    }
}

/// The journal key of a step of the `degrade` playbook for the SLO's first budget rule.
fn key(slo: &Slo, incident: i64, step: &str) -> String {
    step_key(incident, &slo.budget_policy[0].id, "degrade", step, false)
}

fn nowhere() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

async fn detail(store: &SqlStore, incident: i64) -> IncidentDetail {
    store.incident(incident).await.unwrap().unwrap()
}

fn kinds(d: &IncidentDetail) -> Vec<String> {
    d.timeline.iter().map(|e| e.kind.clone()).collect()
}

fn http_step(name: &str, url: &str, extra: &str) -> String {
    format!(
        "    - name: {name}\n      http: {{method: POST, url: \"{url}\", timeout: 1s}}\n{extra}"
    )
}

#[tokio::test]
async fn nothing_acts_on_an_evaluation_without_data_or_that_failed() {
    let receiver = Receiver::start().await;
    let (slos, books) = load(&policy(
        "    - {when: {alert: page}, run: degrade}",
        &http_step("call", &format!("{}/a", receiver.url), ""),
        "",
    ));
    let db = TestDb::sqlite();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    open_page_incident(&store, "checkout", 1_000).await;
    let engine = new_engine(store.clone(), &nowhere(), RemediationSettings::default());
    for status in [
        EvalStatus::Assessed(Status::NoData),
        EvalStatus::Assessed(Status::Partial),
        EvalStatus::Error,
    ] {
        engine
            .after_cycle(
                &slos,
                &books,
                &evaluation(&slos[0], status, Some(0.0), 1_030),
            )
            .await;
        engine.wait_idle().await;
    }
    assert!(receiver.requests().is_empty());
    engine
        .after_cycle(
            &slos,
            &books,
            &evaluation(
                &slos[0],
                EvalStatus::Assessed(Status::Page),
                Some(0.5),
                1_060,
            ),
        )
        .await;
    engine.wait_idle().await;
    assert_eq!(receiver.to("/a").len(), 1);
}

#[tokio::test]
async fn a_failed_step_stops_the_playbook_unless_it_may_continue() {
    for db in TestDb::both().await {
        let receiver = Receiver::start().await;
        receiver.answer_with(500);
        let steps = [
            http_step(
                "first fails but may continue",
                &format!("{}/first", receiver.url),
                "      continueOnError: true\n",
            ),
            http_step("second fails", &format!("{}/second", receiver.url), ""),
            http_step("third never runs", &format!("{}/third", receiver.url), ""),
        ]
        .concat();
        let (slos, books) = load(&policy(
            "    - {when: {alert: ticket}, run: degrade}",
            &steps,
            "",
        ));
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let incident = open_page_incident(&store, "checkout", 1_000).await;
        let engine = new_engine(store.clone(), &nowhere(), RemediationSettings::default());
        for at in [1_030, 1_060] {
            engine
                .after_cycle(
                    &slos,
                    &books,
                    &evaluation(&slos[0], EvalStatus::Assessed(Status::Page), Some(0.5), at),
                )
                .await;
            engine.wait_idle().await;
        }
        assert_eq!(receiver.to("/first").len(), 1, "{}", db.url());
        assert_eq!(
            receiver.to("/second").len(),
            1,
            "a failed step is not retried: {}",
            db.url()
        );
        assert!(receiver.to("/third").is_empty());
        let d = detail(&store, incident).await;
        let statuses: Vec<&str> = d.actions.iter().map(|a| a.status.as_str()).collect();
        assert_eq!(statuses, ["failed", "failed"]);
        assert!(
            d.actions[1].outcome.as_ref().unwrap()["error"]
                .as_str()
                .unwrap()
                .contains("answered 500")
        );
        assert!(
            kinds(&d).contains(&"playbook_stopped".to_string()),
            "{:?}",
            kinds(&d)
        );
    }
}

#[tokio::test]
async fn a_slow_endpoint_times_out_as_a_failed_step() {
    let receiver = Receiver::start().await;
    receiver.delay(3_000);
    let (slos, books) = load(&policy(
        "    - {when: {alert: page}, run: degrade}",
        &http_step("slow", &format!("{}/slow", receiver.url), ""),
        "",
    ));
    let db = TestDb::sqlite();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let incident = open_page_incident(&store, "checkout", 1_000).await;
    let engine = new_engine(store.clone(), &nowhere(), RemediationSettings::default());
    engine
        .after_cycle(
            &slos,
            &books,
            &evaluation(
                &slos[0],
                EvalStatus::Assessed(Status::Page),
                Some(0.5),
                1_030,
            ),
        )
        .await;
    engine.wait_idle().await;
    let d = detail(&store, incident).await;
    assert_eq!(d.actions[0].status, "failed");
    assert!(
        d.actions[0].outcome.as_ref().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{:?}",
        d.actions[0]
    );
}

#[tokio::test]
async fn cooldown_and_the_hourly_action_budget_skip_with_a_reason() {
    let receiver = Receiver::start().await;
    let (slos, books) = load(&policy(
        "    - {when: {alert: page}, run: degrade}",
        &http_step("call", &format!("{}/a", receiver.url), ""),
        "  cooldown: 1h\n",
    ));
    let db = TestDb::sqlite();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let engine = new_engine(store.clone(), &nowhere(), RemediationSettings::default());
    let now = chrono::Utc::now().timestamp();
    // First incident: runs.
    let first = open_page_incident(&store, "checkout", now).await;
    engine
        .after_cycle(
            &slos,
            &books,
            &evaluation(&slos[0], EvalStatus::Assessed(Status::Page), Some(0.5), now),
        )
        .await;
    engine.wait_idle().await;
    assert_eq!(receiver.to("/a").len(), 1);
    // Resolve it and open a second one within the hour: the cooldown holds.
    let record = EvaluationRecord {
        slo: "checkout".into(),
        service: "checkout".into(),
        evaluated_at: now,
        status: "ok".into(),
        error_budget_remaining: Some(0.5),
        snapshot: json!({}).to_string(),
    };
    store
        .record(&record, |_| Decision::Resolve {
            budget_remaining: Some(0.5),
        })
        .await
        .unwrap();
    let second = open_page_incident(&store, "checkout", now + 60).await;
    assert_ne!(first, second);
    engine
        .after_cycle(
            &slos,
            &books,
            &evaluation(
                &slos[0],
                EvalStatus::Assessed(Status::Page),
                Some(0.5),
                now + 60,
            ),
        )
        .await;
    engine.wait_idle().await;
    assert_eq!(
        receiver.to("/a").len(),
        1,
        "cooldown must prevent a second run"
    );
    let d = detail(&store, second).await;
    assert_eq!(d.actions[0].status, "skipped");
    assert!(
        d.timeline
            .iter()
            .any(|e| e.kind == "action_skipped" && e.message.contains("cooldown of 1h")),
        "{:?}",
        kinds(&d)
    );

    // A separate database where the hourly budget is already used up.
    let db2 = TestDb::sqlite();
    let store2 = Arc::new(SqlStore::open(db2.url()).await.unwrap());
    let limited = engine_with_limit(store2.clone(), 2);
    for n in 0..2 {
        store2
            .journal(&ActionIntent {
                key: format!("earlier/{n}"),
                incident_id: None,
                slo: "other".into(),
                playbook: None,
                step: "x".into(),
                kind: "http".into(),
                intent: json!({}),
                status: ActionStatus::Succeeded,
                dry_run: false,
                at: now - 60,
            })
            .await
            .unwrap();
    }
    let incident = open_page_incident(&store2, "checkout", now).await;
    limited
        .after_cycle(
            &slos,
            &books,
            &evaluation(&slos[0], EvalStatus::Assessed(Status::Page), Some(0.5), now),
        )
        .await;
    limited.wait_idle().await;
    let d = detail(&store2, incident).await;
    assert_eq!(
        receiver.to("/a").len(),
        1,
        "the hourly budget must hold: {:?} {:?}",
        d.actions,
        d.timeline
    );
    let d = detail(&store2, incident).await;
    assert!(
        d.timeline
            .iter()
            .any(|e| e.kind == "action_skipped" && e.message.contains("maxActionsPerHour is 2")),
        "{:?}",
        d.timeline
    );
}

fn engine_with_limit(store: Arc<SqlStore>, max: u32) -> Arc<Engine> {
    new_engine(
        store,
        &nowhere(),
        RemediationSettings {
            max_actions_per_hour: max,
            ..RemediationSettings::default()
        },
    )
}

#[tokio::test]
async fn after_a_crash_only_steps_safe_to_repeat_run_again() {
    for db in TestDb::both().await {
        let receiver = Receiver::start().await;
        let steps = [
            http_step("not idempotent", &format!("{}/once", receiver.url), ""),
            "    - name: freeze\n      freeze: {service: checkout}\n".to_string(),
        ]
        .concat();
        let (slos, books) = load(&policy(
            "    - {when: {alert: page}, run: degrade}",
            &steps,
            "",
        ));
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let incident = open_page_incident(&store, "checkout", 1_000).await;
        // A previous process journaled both steps as started, then died.
        for (step, kind) in [("not idempotent", "http"), ("freeze", "freeze")] {
            store
                .journal(&ActionIntent {
                    key: key(&slos[0], incident, step),
                    incident_id: Some(incident),
                    slo: "checkout".into(),
                    playbook: Some("degrade".into()),
                    step: step.into(),
                    kind: kind.into(),
                    intent: json!({}),
                    status: ActionStatus::Started,
                    dry_run: false,
                    at: 1_000,
                })
                .await
                .unwrap();
        }
        let engine = new_engine(store.clone(), &nowhere(), RemediationSettings::default());
        engine.recover().await;
        let d = detail(&store, incident).await;
        assert!(
            d.actions.iter().all(|a| a.status == "unknown"),
            "{:?}",
            d.actions
        );
        assert_eq!(
            d.timeline
                .iter()
                .filter(|e| e.kind == "action_unknown")
                .count(),
            2
        );

        engine
            .after_cycle(
                &slos,
                &books,
                &evaluation(
                    &slos[0],
                    EvalStatus::Assessed(Status::Page),
                    Some(0.5),
                    1_030,
                ),
            )
            .await;
        engine.wait_idle().await;
        // The HTTP call may already have happened: it is not repeated, and the playbook stops there.
        assert!(receiver.requests().is_empty(), "{}", db.url());
        let d = detail(&store, incident).await;
        assert_eq!(d.actions[0].status, "unknown");
        assert_eq!(
            d.actions[1].status, "unknown",
            "the playbook stops at the unknown step"
        );

        // A freeze first is safe to repeat: with the order swapped it runs again.
        let steps = [
            "    - name: freeze\n      freeze: {service: checkout}\n".to_string(),
            http_step("not idempotent", &format!("{}/once", receiver.url), ""),
        ]
        .concat();
        let (slos, books) = load(&policy(
            "    - {when: {alert: page}, run: degrade}",
            &steps,
            "",
        ));
        let db2 = if db.url().starts_with("sqlite") {
            TestDb::sqlite()
        } else {
            TestDb::postgres().await
        };
        let store2 = Arc::new(SqlStore::open(db2.url()).await.unwrap());
        let incident = open_page_incident(&store2, "checkout", 1_000).await;
        store2
            .journal(&ActionIntent {
                key: key(&slos[0], incident, "freeze"),
                incident_id: Some(incident),
                slo: "checkout".into(),
                playbook: Some("degrade".into()),
                step: "freeze".into(),
                kind: "freeze".into(),
                intent: json!({}),
                status: ActionStatus::Started,
                dry_run: false,
                at: 1_000,
            })
            .await
            .unwrap();
        let engine2 = new_engine(store2.clone(), &nowhere(), RemediationSettings::default());
        engine2.recover().await;
        engine2
            .after_cycle(
                &slos,
                &books,
                &evaluation(
                    &slos[0],
                    EvalStatus::Assessed(Status::Page),
                    Some(0.5),
                    1_030,
                ),
            )
            .await;
        engine2.wait_idle().await;
        let d = detail(&store2, incident).await;
        assert_eq!(d.actions[0].status, "succeeded", "{:?}", d.actions);
        assert!(kinds(&d).contains(&"action_retry".to_string()));
        assert_eq!(receiver.to("/once").len(), 1);
        assert_eq!(store2.active_freezes().await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn kubernetes_steps_without_a_cluster_fail_as_not_configured() {
    let (slos, books) = load(&policy(
        "    - {when: {alert: page}, run: degrade}",
        "    - name: roll back\n      rollback: {namespace: shop, deployment: checkout}\n",
        "",
    ));
    let db = TestDb::sqlite();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let incident = open_page_incident(&store, "checkout", 1_000).await;
    let engine = new_engine(store.clone(), &nowhere(), RemediationSettings::default());
    engine
        .after_cycle(
            &slos,
            &books,
            &evaluation(
                &slos[0],
                EvalStatus::Assessed(Status::Page),
                Some(0.5),
                1_030,
            ),
        )
        .await;
    engine.wait_idle().await;
    let d = detail(&store, incident).await;
    assert_eq!(d.actions[0].status, "failed");
    assert!(
        d.timeline
            .iter()
            .any(|e| e.message.contains("no Kubernetes cluster is configured")),
        "{:?}",
        d.timeline
    );
}

#[tokio::test]
async fn a_budget_freeze_lifts_once_the_budget_recovers_and_nothing_fires() {
    let (slos, books) = load(&policy(
        "    - {when: {budgetRemainingBelow: 15}, freeze: {service: checkout}}",
        "    - name: x\n      freeze: {service: checkout}\n",
        "",
    ));
    let db = TestDb::sqlite();
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let engine = new_engine(
        store.clone(),
        &nowhere(),
        RemediationSettings {
            unfreeze_after: Duration::from_secs(600),
            ..RemediationSettings::default()
        },
    );
    let ok = EvalStatus::Assessed(Status::Ok);
    // 10% left: frozen, once.
    for at in [1_000, 1_030] {
        engine
            .after_cycle(&slos, &books, &evaluation(&slos[0], ok, Some(0.10), at))
            .await;
    }
    assert_eq!(store.active_freezes().await.unwrap().len(), 1);
    // 18% left: above 15 but not above 15 + 5: still frozen.
    engine
        .after_cycle(&slos, &books, &evaluation(&slos[0], ok, Some(0.18), 2_000))
        .await;
    assert_eq!(store.active_freezes().await.unwrap().len(), 1);
    // No data: never decides to lift.
    engine
        .after_cycle(
            &slos,
            &books,
            &evaluation(
                &slos[0],
                EvalStatus::Assessed(Status::NoData),
                Some(0.5),
                2_100,
            ),
        )
        .await;
    assert_eq!(store.active_freezes().await.unwrap().len(), 1);
    // 25% left and nothing ever fired: lifted.
    engine
        .after_cycle(&slos, &books, &evaluation(&slos[0], ok, Some(0.25), 2_200))
        .await;
    assert!(store.active_freezes().await.unwrap().is_empty());
}

#[tokio::test]
async fn verify_passes_when_the_burn_stops_and_fails_when_it_does_not() {
    let now = chrono::Utc::now().timestamp();
    let end = now - now % 60;
    let history = |job: &'static str, errors: f64| {
        vec![
            counter(
                "http_requests_total",
                labels(&[("job", job), ("code", "500")]),
                end - 3_600,
                end,
                60,
                1e6,
                move |_| errors,
            ),
            counter(
                "http_requests_total",
                labels(&[("job", job), ("code", "200")]),
                end - 3_600,
                end,
                60,
                1e6,
                move |_| 10.0 - errors,
            ),
        ]
    };
    let prometheus =
        PrometheusServer::start(&[history("checkout", 0.001), history("burning", 1.0)].concat());
    for (job, expected) in [("checkout", "succeeded"), ("burning", "failed")] {
        let text = policy("    - {when: {alert: page}, run: degrade}", "    - name: check it worked\n      verify: {window: 5m, burnRateBelow: 1, within: 2s}\n", "")
            .replace("job=\\\"checkout\\\"", &format!("job=\\\"{job}\\\""))
            .replace("job=\"checkout\"", &format!("job=\"{job}\""));
        let (slos, books) = load(&text);
        let db = TestDb::sqlite();
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let incident = open_page_incident(&store, "checkout", now).await;
        let engine = new_engine(
            store.clone(),
            &prometheus.url,
            RemediationSettings::default(),
        );
        engine
            .after_cycle(
                &slos,
                &books,
                &evaluation(&slos[0], EvalStatus::Assessed(Status::Page), Some(0.5), now),
            )
            .await;
        engine.wait_idle().await;
        let d = detail(&store, incident).await;
        assert_eq!(d.actions[0].status, expected, "{job}: {:?}", d.actions[0]);
    }
}

/// One cycle on a burning (page) evaluation, waiting for the playbook runs it starts.
async fn burning_cycle(
    engine: &Arc<Engine>,
    slos: &[Slo],
    books: &BTreeMap<String, Playbook>,
    at: i64,
) {
    engine
        .after_cycle(
            slos,
            books,
            &evaluation(&slos[0], EvalStatus::Assessed(Status::Page), Some(0.5), at),
        )
        .await;
    engine.wait_idle().await;
}

#[tokio::test]
async fn editing_a_playbook_during_its_incident_never_runs_a_step_twice() {
    for db in TestDb::both().await {
        let receiver = Receiver::start().await;
        let step =
            |name: &str, path: &str| http_step(name, &format!("{}/{path}", receiver.url), "");
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let incident = open_page_incident(&store, "checkout", 1_000).await;
        let calls = |path: &str| receiver.to(&format!("/{path}")).len();

        // v1 with room for two actions this hour: a and b run, c is held back by the cap.
        let v1 = [
            step("a", "a"),
            step("b", "b"),
            step("c", "c"),
            step("d", "d"),
        ]
        .concat();
        let (slos, books) = load(&policy(
            "    - {when: {alert: page}, run: degrade}",
            &v1,
            "",
        ));
        burning_cycle(&engine_with_limit(store.clone(), 2), &slos, &books, 1_030).await;
        assert_eq!(
            [calls("a"), calls("b"), calls("c")],
            [1, 1, 0],
            "{}",
            db.url()
        );

        // v2, while the incident is open: a step inserted first, b renamed, d removed, a
        // moved last. The cap now allows more: z and the held-back c run; a and b do not.
        let v2 = [
            step("z", "z"),
            step("bee", "b"),
            step("c", "c"),
            step("a", "a"),
        ]
        .concat();
        let (slos, books) = load(&policy(
            "    - {when: {alert: page}, run: degrade}",
            &v2,
            "",
        ));
        let engine = engine_with_limit(store.clone(), 100);
        burning_cycle(&engine, &slos, &books, 1_060).await;
        burning_cycle(&engine, &slos, &books, 1_090).await;
        assert_eq!(
            [calls("a"), calls("b"), calls("c"), calls("d"), calls("z")],
            [1, 1, 1, 0, 1],
            "{}",
            db.url()
        );
        let d = detail(&store, incident).await;
        let timeline = kinds(&d);
        for kind in [
            "action_skipped",
            "action_unblocked",
            "step_renamed",
            "playbook_finished",
        ] {
            assert!(timeline.contains(&kind.to_string()), "{kind}: {timeline:?}");
        }

        // v3: a rule inserted before the playbook's rule, d back and a new step e. The run
        // finished for this incident, so nothing more runs for it.
        let v3 = [
            step("a", "a"),
            step("b", "b"),
            step("c", "c"),
            step("d", "d"),
            step("e", "e"),
        ]
        .concat();
        let (slos, books) = load(&policy(
            "    - {when: {budgetRemainingBelow: 10}, freeze: {service: checkout}}\n    - {when: {alert: page}, run: degrade}",
            &v3,
            "",
        ));
        burning_cycle(&engine, &slos, &books, 1_120).await;
        assert_eq!(
            [
                calls("a"),
                calls("b"),
                calls("c"),
                calls("d"),
                calls("e"),
                calls("z")
            ],
            [1, 1, 1, 0, 0, 1],
            "{}",
            db.url()
        );
    }
}

fn intent(incident: i64, step: &str, at: i64) -> ActionIntent {
    ActionIntent {
        key: format!("incident:{incident}/rule:r/playbook:degrade/step:{step}"),
        incident_id: Some(incident),
        slo: "checkout".into(),
        playbook: Some("degrade".into()),
        step: step.into(),
        kind: "http".into(),
        intent: json!({}),
        status: ActionStatus::Started,
        dry_run: false,
        at,
    }
}

#[tokio::test]
async fn recovery_touches_only_the_steps_of_dead_incarnations() {
    for db in TestDb::both().await {
        let store = SqlStore::open(db.url()).await.unwrap();
        let incident = open_page_incident(&store, "checkout", 1_000).await;
        let now = 10_000;
        let (a1, b) = (incarnation("replica-a"), incarnation("replica-b"));
        store.heartbeat(&a1, now).await.unwrap();
        store.heartbeat(&b, now).await.unwrap();
        let start = |who: &Instance, step: &str| {
            let (who, intent) = (who.clone(), intent(incident, step, now));
            let store = &store;
            async move {
                match store
                    .start(&intent, &who, &Guards::default())
                    .await
                    .unwrap()
                {
                    Started::Run { id } => id,
                    other => panic!("{other:?}"),
                }
            }
        };
        let on_a = start(&a1, "one").await;
        let on_b = start(&b, "two").await;
        let status = |id: i64| {
            let store = &store;
            async move {
                store
                    .incident(incident)
                    .await
                    .unwrap()
                    .unwrap()
                    .actions
                    .into_iter()
                    .find(|a| a.id == id)
                    .unwrap()
                    .status
            }
        };

        // b looks for interrupted steps: a is alive (fresh heartbeat, another name).
        let stale_before = now - 60;
        assert!(
            store
                .recover_interrupted(&b, stale_before, now)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.url()
        );
        // Nobody settles a step they did not start.
        assert!(
            !store
                .settle(on_a, &b, ActionStatus::Succeeded, json!({}), now)
                .await
                .unwrap()
        );
        assert_eq!(status(on_a).await, "started");

        // a restarts (same name, new incarnation): its predecessor's step is unknown, b's is not.
        let a2 = incarnation("replica-a");
        store.heartbeat(&a2, now + 5).await.unwrap();
        let recovered = store
            .recover_interrupted(&a2, stale_before, now + 5)
            .await
            .unwrap();
        assert_eq!(
            recovered.iter().map(|r| r.id).collect::<Vec<_>>(),
            [on_a],
            "{}",
            db.url()
        );
        assert_eq!(status(on_a).await, "unknown");
        assert_eq!(status(on_b).await, "started");
        // The dead incarnation, were it a zombie, can no longer settle it.
        assert!(
            !store
                .settle(on_a, &a1, ActionStatus::Succeeded, json!({}), now)
                .await
                .unwrap()
        );
        assert_eq!(status(on_a).await, "unknown");

        // b goes silent for longer than the timeout: a recovers its step.
        let later = now + 600;
        store.heartbeat(&a2, later).await.unwrap();
        let recovered = store
            .recover_interrupted(&a2, later - 60, later)
            .await
            .unwrap();
        assert_eq!(recovered.iter().map(|r| r.id).collect::<Vec<_>>(), [on_b]);

        // A clean shutdown journals its own running steps as interrupted, nobody else's.
        let on_a2 = start(&a2, "three").await;
        let b2 = incarnation("replica-b");
        store.heartbeat(&b2, later).await.unwrap();
        let on_b2 = start(&b2, "four").await;
        let interrupted = store.interrupt_own(&a2, later + 1).await.unwrap();
        assert_eq!(
            interrupted.iter().map(|r| r.id).collect::<Vec<_>>(),
            [on_a2]
        );
        assert_eq!(status(on_b2).await, "started");
        assert!(
            store
                .settle(on_b2, &b2, ActionStatus::Succeeded, json!({}), later)
                .await
                .unwrap()
        );
        store.close().await;
    }
}

#[tokio::test]
async fn the_hourly_cap_is_checked_in_the_transaction_that_starts_a_step() {
    // Many starts racing (one pool, several connections; two replicas behave the same on one
    // database): exactly `max` get through.
    for db in TestDb::both().await {
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let incident = open_page_incident(&store, "checkout", 1_000).await;
        let me = incarnation("racer");
        store.heartbeat(&me, 1_000).await.unwrap();
        let guards = Guards {
            hourly_cap: Some((0, 3)),
            cooldown: None,
        };
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..12 {
            let (store, me, guards) = (store.clone(), me.clone(), guards.clone());
            tasks.spawn(async move {
                store
                    .start(&intent(incident, &format!("s{n}"), 1_000), &me, &guards)
                    .await
                    .unwrap()
            });
        }
        let results = tasks.join_all().await;
        let ran = results
            .iter()
            .filter(|r| matches!(r, Started::Run { .. }))
            .count();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Started::Refused { .. }))
            .count();
        assert_eq!((ran, refused), (3, 9), "{}", db.url());
    }
}

/// A grouped `checkout` (by route) whose page rule runs `degrade`, and the playbook.
fn grouped_policy(steps: &str) -> String {
    policy("    - {when: {alert: page}, run: degrade}", steps, "").replace(
        "  objective: 99.9\n",
        "  objective: 99.9\n  groupBy: [route]\n",
    )
}

/// One evaluation per route: `(route, status)`.
fn grouped_evaluation(slo: &Slo, groups: &[(&str, Status)], at: i64) -> Evaluation {
    let mut e = evaluation(slo, EvalStatus::Assessed(Status::Ok), Some(0.5), at);
    let one = e.slos.remove(0);
    e.slos = groups
        .iter()
        .map(|(route, status)| {
            Arc::new(SloEvaluation {
                group: BTreeMap::from([("route".to_string(), route.to_string())]),
                status: EvalStatus::Assessed(*status),
                ..one.as_ref().clone()
            })
        })
        .collect();
    e
}

#[tokio::test]
async fn a_grouped_slo_runs_its_playbook_once_for_the_burning_group_with_the_groups_labels() {
    for db in TestDb::both().await {
        let receiver = Receiver::start().await;
        let step = format!(
            "    - name: degrade the route\n      http: {{method: POST, url: \"{}/flags${{group.route}}\", body: '{{\"route\": \"${{group.route}}\"}}', timeout: 1s}}\n",
            receiver.url
        );
        let (slos, books) = load(&grouped_policy(&step));
        let slo = &slos[0];
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        // The incidents the cycle's records opened: one per burning group, by key.
        let pay = open_page_incident(&store, "checkout{route=\"/pay\"}", 1_000).await;
        let hostile = open_page_incident(&store, "checkout{route=\"/a?b=1\"}", 1_000).await;
        let engine = new_engine(store.clone(), &nowhere(), RemediationSettings::default());
        for at in [1_030, 1_060] {
            engine
                .after_cycle(
                    &slos,
                    &books,
                    &grouped_evaluation(
                        slo,
                        &[
                            ("/pay", Status::Page),
                            ("/cart", Status::Ok),
                            ("/a?b=1", Status::Page),
                        ],
                        at,
                    ),
                )
                .await;
            engine.wait_idle().await;
        }
        // /pay's call went out once, with its route in the URL and the body.
        let calls = receiver.requests();
        assert_eq!(
            calls.len(),
            1,
            "{:?} on {}",
            calls.iter().map(|c| &c.path).collect::<Vec<_>>(),
            db.url()
        );
        assert_eq!(calls[0].path, "/flags/pay");
        assert_eq!(calls[0].body, r#"{"route": "/pay"}"#);
        let d = detail(&store, pay).await;
        assert!(
            kinds(&d).contains(&"action_succeeded".to_string()),
            "{:?}",
            kinds(&d)
        );
        // The route that is not safe to put in a URL: the step failed, nothing was sent, and
        // the timeline says why.
        let d = detail(&store, hostile).await;
        let said: Vec<&str> = d.timeline.iter().map(|e| e.message.as_str()).collect();
        assert!(
            said.iter()
                .any(|m| m.contains("not safe to put into a step")),
            "{said:?} on {}",
            db.url()
        );
    }
}

#[test]
fn grouped_slos_refuse_what_cannot_act_per_group_and_templates_they_do_not_group_by() {
    let steps = "    - name: call\n      http: {method: POST, url: \"http://flags/${group.team}\", timeout: 1s}\n";
    let (_, _, problems) = burnguard::policies::parse_policies("t.yaml", &grouped_policy(steps));
    // parse_policies checks documents one by one; references are checked across files.
    assert!(problems.is_empty(), "{problems:?}");
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "t.yaml", &grouped_policy(steps));
    let error = burnguard::policies::load(&[dir.path().to_path_buf()]).unwrap_err();
    let text: Vec<String> = error
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.problem.path, p.problem.message))
        .collect();
    let text = text.join("\n");
    assert!(
        text.contains("spec.budgetPolicy[0].run: playbook `degrade` uses `${group.team}`, and this SLO groups by route only"),
        "{text}"
    );
    for (rule, path, says) in [
        (
            "    - {when: {burnRateAbove: 3, for: 1h, window: 1h}, run: degrade}",
            "spec.budgetPolicy[0].when.burnRateAbove",
            "not supported on a grouped SLO yet",
        ),
        (
            "    - {when: {alert: page}, freeze: {service: checkout}}",
            "spec.budgetPolicy[0].freeze",
            "run a playbook with a freeze step instead",
        ),
    ] {
        let text = policy(rule, &http_step("call", "http://flags/x", ""), "").replace(
            "  objective: 99.9\n",
            "  objective: 99.9\n  groupBy: [route]\n",
        );
        let (_, _, problems) = burnguard::policies::parse_policies("t.yaml", &text);
        assert!(
            problems
                .iter()
                .any(|p| p.problem.path == path && p.problem.message.contains(says)),
            "{path}: {problems:?}"
        );
    }
}

#[tokio::test]
async fn two_replicas_run_a_groups_playbook_once_between_them() {
    let db = TestDb::postgres().await;
    let receiver = Receiver::start().await;
    let step = format!(
        "    - name: degrade the route\n      http: {{method: POST, url: \"{}/flags${{group.route}}\", timeout: 1s}}\n",
        receiver.url
    );
    let (slos, books) = load(&grouped_policy(&step));
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    open_page_incident(&store, "checkout{route=\"/pay\"}", 1_000).await;
    open_page_incident(&store, "checkout{route=\"/cart\"}", 1_000).await;
    let a = new_engine(store.clone(), &nowhere(), RemediationSettings::default());
    let b = new_engine(
        Arc::new(SqlStore::open(db.url()).await.unwrap()),
        &nowhere(),
        RemediationSettings::default(),
    );
    let cycle = grouped_evaluation(
        &slos[0],
        &[("/pay", Status::Page), ("/cart", Status::Page)],
        1_030,
    );
    tokio::join!(
        a.after_cycle(&slos, &books, &cycle),
        b.after_cycle(&slos, &books, &cycle)
    );
    a.wait_idle().await;
    b.wait_idle().await;
    // Each group's step ran once, on one replica or the other.
    assert_eq!(receiver.to("/flags/pay").len(), 1);
    assert_eq!(receiver.to("/flags/cart").len(), 1);
    assert_eq!(receiver.requests().len(), 2);
}
