//! The Kubernetes controller, one reconcile at a time, against the API server stand-in of
//! `common::kube` (no API server can run on our test machines): every request is checked in
//! order (method, path, fieldManager and force, content type, body) and answered as the API
//! server would. The service side is a recording [`ClusterHost`] whose facts each test sets.
//!
//! - A new object gets the finalizer first; the next reconcile applies its PrometheusRule
//!   (owned by the SLO) and its status (only burnguard's fields), then publishes the Events
//!   the change tells.
//! - An invalid object gets `Valid=False` with every problem's field path, and a Warning
//!   Event; an invalid edit keeps the last valid version running; a valid one replaces it.
//! - Deleting an SLO cleans up (freezes lifted, incident resolved) BEFORE the finalizer goes;
//!   a failed clean-up keeps the finalizer.
//! - Names: a file's name and an older object's name are never taken.
//! - No PrometheusRule CRD: a condition says so, and the API is not asked again for minutes.
//! - Unchanged status: no write. Numbers alone: at most once per status interval.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::DynamicObject;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use burnguard::adapters::kube::controller::{
    self, Context, ControllerSettings, reconcile_playbook, reconcile_slo,
};
use burnguard::domain::cluster::{EvaluationFacts, HeldFreeze, LastAction};
use burnguard::ports::{ClusterHost, ClusterPolicies, FileNames, SloFacts};
use common::kube::{ApiServer, Expect, expect, scripted_client, status};

/// The clock of these tests: 2026-01-04T00:00:00Z.
const AT: i64 = 1_767_484_800;
const AT_TEXT: &str = "2026-01-04T00:00:00Z";
const SLO_PATH: &str = "/apis/burnguard.dev/v1/namespaces/shop/servicelevelobjectives/checkout";
const SLO_STATUS_PATH: &str =
    "/apis/burnguard.dev/v1/namespaces/shop/servicelevelobjectives/checkout/status";
const RULE_PATH: &str =
    "/apis/monitoring.coreos.com/v1/namespaces/shop/prometheusrules/checkout-slo-rules";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";

fn fixed_clock() -> i64 {
    AT
}

/// The service as the controller sees it, recording what it is told.
#[derive(Default)]
struct Host {
    files: Mutex<FileNames>,
    facts: Mutex<BTreeMap<String, SloFacts>>,
    fail_cleanup: Mutex<bool>,
    published: Mutex<Vec<ClusterPolicies>>,
    deleted: Mutex<Vec<String>>,
    reconciles: Mutex<Vec<(String, String)>>,
}

impl Host {
    fn latest(&self) -> ClusterPolicies {
        self.published
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

impl ClusterHost for Host {
    fn file_names(&self) -> FileNames {
        self.files.lock().unwrap().clone()
    }

    fn set_cluster_policies(&self, policies: ClusterPolicies) {
        self.published.lock().unwrap().push(policies);
    }

    async fn slo_facts(&self, slo: &str) -> Result<SloFacts, String> {
        Ok(self
            .facts
            .lock()
            .unwrap()
            .get(slo)
            .cloned()
            .unwrap_or_default())
    }

    async fn slo_deleted(&self, slo: &str) -> Result<(), String> {
        if *self.fail_cleanup.lock().unwrap() {
            return Err("the database is unreachable".into());
        }
        self.deleted.lock().unwrap().push(slo.to_string());
        Ok(())
    }

    fn reconciled(&self, kind: &str, outcome: &str, _seconds: f64) {
        self.reconciles
            .lock()
            .unwrap()
            .push((kind.to_string(), outcome.to_string()));
    }
}

fn settings() -> ControllerSettings {
    ControllerSettings {
        status_interval: Duration::from_secs(300),
        refresh: Duration::from_secs(30),
        prometheus_rules: true,
        instance: "burnguard-0".into(),
    }
}

fn context(
    script: Vec<Expect>,
    host: Arc<Host>,
    clock: fn() -> i64,
) -> (Arc<Context<Host>>, ApiServer) {
    let (client, server) = scripted_client(script);
    (
        Arc::new(Context::new(client, host, settings()).with_clock(clock)),
        server,
    )
}

const ERRORS: &str = "sum(rate(http_requests_total{job=\"checkout\",code=~\"5..\"}[{{.window}}]))";
const TOTAL: &str = "sum(rate(http_requests_total{job=\"checkout\"}[{{.window}}]))";

fn checkout_spec(objective: f64) -> Value {
    json!({
        "service": "checkout",
        "objective": objective,
        "window": "30d",
        "indicator": {"ratio": {"errors": ERRORS, "total": TOTAL}},
    })
}

/// A ServiceLevelObjective as the API server returns it.
fn slo_object(namespace: &str, name: &str, generation: i64, spec: Value) -> Value {
    json!({
        "apiVersion": "burnguard.dev/v1",
        "kind": "ServiceLevelObjective",
        "metadata": {
            "name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}"),
            "generation": generation, "resourceVersion": "100",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"team": "payments", "app.kubernetes.io/part-of": "shop"},
        },
        "spec": spec,
    })
}

fn finalized(mut object: Value) -> Value {
    object["metadata"]["finalizers"] = json!(["burnguard.dev/cleanup"]);
    object
}

fn deleting(mut object: Value) -> Value {
    object["metadata"]["deletionTimestamp"] = json!(AT_TEXT);
    object
}

fn with_status(mut object: Value, status: &Value) -> Value {
    object["status"] = status.clone();
    object
}

fn dynamic(object: &Value) -> Arc<DynamicObject> {
    Arc::new(serde_json::from_value(object.clone()).expect("a valid object"))
}

fn event_reply() -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
           "metadata": {"name": "checkout.1", "namespace": "shop"},
           "eventTime": "2026-01-04T00:00:00.000000Z", "reportingController": "burnguard",
           "reportingInstance": "burnguard-0", "action": "Evaluate", "reason": "X", "type": "Normal"})
}

/// The JSON patch that adds the finalizer to an object that has none.
fn add_finalizer(reply: Value) -> Expect {
    Expect {
        content_type: Some("application/json-patch+json"),
        body: Some(Box::new(|body: &Value| {
            assert_eq!(
                body,
                &json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["burnguard.dev/cleanup"]},
                ])
            )
        })),
        ..expect("PATCH", SLO_PATH, &[], reply)
    }
}

/// The JSON patch that removes the finalizer, and only if it is still ours at index 0.
fn remove_finalizer(reply: Value) -> Expect {
    Expect {
        content_type: Some("application/json-patch+json"),
        body: Some(Box::new(|body: &Value| {
            assert_eq!(
                body,
                &json!([
                    {"op": "test", "path": "/metadata/finalizers/0", "value": "burnguard.dev/cleanup"},
                    {"op": "remove", "path": "/metadata/finalizers/0"},
                ])
            )
        })),
        ..expect("PATCH", SLO_PATH, &[], reply)
    }
}

/// A server-side apply of the status subresource; `check` sees the status sent.
fn status_apply(
    path: &'static str,
    kind: &'static str,
    check: impl Fn(&Value) + Send + 'static,
    reply: Value,
) -> Expect {
    Expect {
        content_type: Some("application/apply-patch+yaml"),
        body: Some(Box::new(move |body: &Value| {
            assert_eq!(body["apiVersion"], "burnguard.dev/v1");
            assert_eq!(body["kind"], kind);
            // Only the status: no spec, no metadata that could take fields from their owners.
            let keys: BTreeSet<&str> = body
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            assert_eq!(keys, BTreeSet::from(["apiVersion", "kind", "status"]));
            check(&body["status"]);
        })),
        ..expect(
            "PATCH",
            path,
            &["fieldManager=burnguard", "force=true"],
            reply,
        )
    }
}

fn event(reason: &'static str, type_: &'static str) -> Expect {
    Expect {
        body: Some(Box::new(move |body: &Value| {
            assert_eq!(body["reason"], reason, "{body}");
            assert_eq!(body["type"], type_, "{body}");
            assert_eq!(body["regarding"]["kind"], "ServiceLevelObjective");
            assert_eq!(body["regarding"]["name"], "checkout");
            assert_eq!(body["reportingController"], "burnguard");
        })),
        ..expect("POST", EVENTS_PATH, &[], event_reply())
    }
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

/// The rule group `burnguard rules` writes for the same SLO given as a policy file: the
/// PrometheusRule must carry exactly these.
fn rules_from_file(objective: f64) -> Value {
    let file = burnguard::domain::rules::rule_file(&[slo_from_file(objective)]);
    // The SLO's group and its hourly group (the 30d window reads the hourly series).
    assert_eq!(file.groups.len(), 2);
    serde_json::to_value(&file.groups).unwrap()
}

/// The checkout SLO written as a policy file, read by the file loader.
fn slo_from_file(objective: f64) -> burnguard::domain::policy::Slo {
    let text = format!(
        "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata:\n  name: checkout\n  labels: {{team: payments}}\nspec:\n  service: checkout\n  objective: {objective}\n  window: 30d\n  indicator:\n    ratio:\n      errors: '{ERRORS}'\n      total: '{TOTAL}'\n"
    );
    let (slos, _, problems) = burnguard::policies::parse_policies("checkout.yaml", &text);
    assert!(problems.is_empty(), "{problems:?}");
    slos[0].slo.clone()
}

/// The first pass over a burning SLO ([`burning_facts`]): its rules, its status (seen by
/// `check`), and the three Events of the change.
fn first_pass(object: &Value, check: impl Fn(&Value) + Send + 'static) -> Vec<Expect> {
    vec![
        expect("PATCH", RULE_PATH, &["fieldManager=burnguard"], json!({})),
        status_apply(
            SLO_STATUS_PATH,
            "ServiceLevelObjective",
            check,
            object.clone(),
        ),
        event("IncidentOpened", "Warning"),
        event("DeploymentFrozen", "Warning"),
        event("RolledBack", "Normal"),
    ]
}

fn burning_facts(incident: i64) -> SloFacts {
    SloFacts {
        evaluation: Some(EvaluationFacts {
            status: "page".into(),
            budget_remaining: Some(0.25),
            burn_rates: vec![("5m".into(), 16.2), ("1h".into(), 14.9)],
            at: AT - 10,
        }),
        open_incident: Some(incident),
        freezes: vec![HeldFreeze {
            namespace: "shop".into(),
            deployment: "checkout".into(),
        }],
        last_action: Some(LastAction {
            id: 3,
            kind: "rollback".into(),
            step: "roll back checkout".into(),
            status: "done".into(),
            target: Some("shop/checkout".into()),
        }),
    }
}

#[tokio::test]
async fn a_new_slo_object_gets_the_finalizer_before_anything_else() {
    let host = Arc::new(Host::default());
    let object = slo_object("shop", "checkout", 1, checkout_spec(99.9));
    let (ctx, mut server) = context(
        vec![add_finalizer(finalized(object.clone()))],
        host.clone(),
        fixed_clock,
    );
    let action = reconcile_slo(dynamic(&object), ctx).await.unwrap();
    assert_eq!(action, Action::await_change(), "the next event applies it");
    server.script_done().await;
    assert_eq!(server.unexpected(), Vec::<String>::new());
    assert!(
        host.published.lock().unwrap().is_empty(),
        "nothing is evaluated before the finalizer is on"
    );
}

#[tokio::test]
async fn a_valid_slo_gets_its_prometheus_rule_then_its_status_then_the_events_of_the_change() {
    let host = Arc::new(Host::default());
    host.facts
        .lock()
        .unwrap()
        .insert("checkout".into(), burning_facts(7));
    let object = finalized(slo_object("shop", "checkout", 2, checkout_spec(99.9)));
    let wanted_groups = rules_from_file(99.9);
    let rule = Expect {
        content_type: Some("application/apply-patch+yaml"),
        body: Some(Box::new(move |body: &Value| {
            assert_eq!(body["apiVersion"], "monitoring.coreos.com/v1");
            assert_eq!(body["kind"], "PrometheusRule");
            assert_eq!(body["metadata"]["name"], "checkout-slo-rules");
            assert_eq!(body["metadata"]["namespace"], "shop");
            assert_eq!(
                body["metadata"]["ownerReferences"],
                json!([{"apiVersion": "burnguard.dev/v1", "kind": "ServiceLevelObjective",
                        "name": "checkout", "uid": "uid-shop-checkout",
                        "controller": true, "blockOwnerDeletion": true}])
            );
            assert_eq!(body["spec"]["groups"], wanted_groups);
        })),
        ..expect(
            "PATCH",
            RULE_PATH,
            &["fieldManager=burnguard", "force=true"],
            json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                   "metadata": {"name": "checkout-slo-rules", "namespace": "shop"}}),
        )
    };
    let status_check = |status: &Value| {
        assert_eq!(status["observedGeneration"], 2);
        assert_eq!(status["status"], "page");
        assert_eq!(status["budgetRemainingPercent"], 25.0);
        assert_eq!(
            status["burnRates"],
            json!([{"window": "5m", "burnRate": 16.2}, {"window": "1h", "burnRate": 14.9}])
        );
        assert_eq!(status["lastEvaluationTime"], "2026-01-03T23:59:50Z");
        assert_eq!(status["openIncident"], 7);
        assert_eq!(
            status["activeFreezes"],
            json!([{"namespace": "shop", "deployment": "checkout"}])
        );
        for (type_, value, reason) in [
            ("Valid", "True", "Valid"),
            ("RulesApplied", "True", "Applied"),
            ("Burning", "True", "FastBurn"),
            ("Frozen", "True", "BudgetPolicy"),
        ] {
            let c = condition(status, type_);
            assert_eq!(
                (c["status"].as_str(), c["reason"].as_str()),
                (Some(value), Some(reason)),
                "{c}"
            );
            assert_eq!(c["lastTransitionTime"], AT_TEXT);
            assert_eq!(c["observedGeneration"], 2);
        }
    };
    let (ctx, mut server) = context(
        vec![
            rule,
            status_apply(
                SLO_STATUS_PATH,
                "ServiceLevelObjective",
                status_check,
                object.clone(),
            ),
            event("IncidentOpened", "Warning"),
            event("DeploymentFrozen", "Warning"),
            event("RolledBack", "Normal"),
        ],
        host.clone(),
        fixed_clock,
    );
    let action = reconcile_slo(dynamic(&object), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    server.script_done().await;
    assert_eq!(server.unexpected(), Vec::<String>::new());
    let published = host.latest();
    // The object and the file say the same thing: the same SLO, to the last field (the
    // file has the object's Prometheus-named label; `app.kubernetes.io/part-of` stays a
    // Kubernetes label).
    assert_eq!(published.slos["checkout"], slo_from_file(99.9));
    assert_eq!(
        host.reconciles.lock().unwrap().as_slice(),
        &[("ServiceLevelObjective".to_string(), "ok".to_string())]
    );
}

#[tokio::test]
async fn an_unchanged_status_is_not_written_and_an_unchanged_rule_is_not_applied_again() {
    let host = Arc::new(Host::default());
    host.facts
        .lock()
        .unwrap()
        .insert("checkout".into(), burning_facts(7));
    let object = finalized(slo_object("shop", "checkout", 2, checkout_spec(99.9)));
    let written = Arc::new(Mutex::new(Value::Null));
    let keep = written.clone();
    let (ctx, mut server) = context(
        first_pass(&object, move |status| {
            *keep.lock().unwrap() = status.clone()
        }),
        host.clone(),
        fixed_clock,
    );
    reconcile_slo(dynamic(&object), ctx.clone()).await.unwrap();
    server.script_done().await;
    // The watch brings the object back with the status just written: nothing to do.
    let again = with_status(object.clone(), &written.lock().unwrap());
    reconcile_slo(dynamic(&again), ctx).await.unwrap();
    assert_eq!(
        server.unexpected(),
        Vec::<String>::new(),
        "a second pass asks nothing"
    );
}

#[tokio::test]
async fn numbers_alone_are_written_at_most_once_per_status_interval_but_an_incident_at_once() {
    static NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(AT);
    fn clock() -> i64 {
        NOW.load(std::sync::atomic::Ordering::SeqCst)
    }
    let set_now = |at: i64| NOW.store(at, std::sync::atomic::Ordering::SeqCst);
    let host = Arc::new(Host::default());
    let mut facts = burning_facts(7);
    host.facts
        .lock()
        .unwrap()
        .insert("checkout".into(), facts.clone());
    let object = finalized(slo_object("shop", "checkout", 2, checkout_spec(99.9)));
    let written = Arc::new(Mutex::new(Vec::<Value>::new()));
    let (keep1, keep2, keep3) = (written.clone(), written.clone(), written.clone());
    let (ctx, mut server) = context(
        first_pass(&object, move |status| {
            keep1.lock().unwrap().push(status.clone())
        })
        .into_iter()
        .chain([
            // The incident resolved: written at once, 2 minutes after the last write.
            status_apply(
                SLO_STATUS_PATH,
                "ServiceLevelObjective",
                move |status| {
                    assert_eq!(status.get("openIncident"), None, "{status}");
                    keep2.lock().unwrap().push(status.clone());
                },
                object.clone(),
            ),
            event("IncidentResolved", "Normal"),
            // Numbers only, and the interval has passed since the last write.
            status_apply(
                SLO_STATUS_PATH,
                "ServiceLevelObjective",
                move |status| {
                    assert_eq!(status["budgetRemainingPercent"], 20.0, "{status}");
                    keep3.lock().unwrap().push(status.clone());
                },
                object.clone(),
            ),
        ])
        .collect(),
        host.clone(),
        clock,
    );
    reconcile_slo(dynamic(&object), ctx.clone()).await.unwrap();
    let status_on_object = |n: usize| with_status(object.clone(), &written.lock().unwrap()[n]);

    // A minute later only the budget moved: nothing is written.
    set_now(AT + 60);
    facts.evaluation.as_mut().unwrap().budget_remaining = Some(0.24);
    host.facts
        .lock()
        .unwrap()
        .insert("checkout".into(), facts.clone());
    let action = reconcile_slo(dynamic(&status_on_object(0)), ctx.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    assert_eq!(
        written.lock().unwrap().len(),
        1,
        "numbers alone wait for the interval"
    );

    // Two minutes after the write the incident resolves: written at once.
    set_now(AT + 120);
    facts.open_incident = None;
    host.facts
        .lock()
        .unwrap()
        .insert("checkout".into(), facts.clone());
    reconcile_slo(dynamic(&status_on_object(0)), ctx.clone())
        .await
        .unwrap();
    assert_eq!(written.lock().unwrap().len(), 2);

    // Numbers again, a whole interval after that write: written.
    set_now(AT + 120 + 300);
    facts.evaluation.as_mut().unwrap().budget_remaining = Some(0.2);
    host.facts.lock().unwrap().insert("checkout".into(), facts);
    reconcile_slo(dynamic(&status_on_object(1)), ctx.clone())
        .await
        .unwrap();
    server.script_done().await;
    assert_eq!(server.unexpected(), Vec::<String>::new());
}

#[tokio::test]
async fn an_invalid_object_gets_every_problem_with_its_path_in_status_and_a_warning_event() {
    let host = Arc::new(Host::default());
    let mut spec = checkout_spec(100.5);
    spec["window"] = json!("30 days");
    spec["indicator"] = json!({"ratio": {"errors": ERRORS, "good": TOTAL, "total": TOTAL}});
    spec["budgetPolicy"] = json!([{"when": {"alert": "sometimes"}, "run": "degrade"}]);
    let object = finalized(slo_object("shop", "checkout", 4, spec));
    let check = |status: &Value| {
        let paths: BTreeSet<&str> = status["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            BTreeSet::from([
                "spec.objective",
                "spec.window",
                "spec.indicator.ratio",
                "spec.budgetPolicy[0].when.alert",
            ]),
            "{status}"
        );
        let valid = condition(status, "Valid");
        assert_eq!(valid["status"], "False");
        assert_eq!(valid["reason"], "InvalidSpec");
        assert!(
            valid["message"]
                .as_str()
                .unwrap()
                .contains("spec.objective: 100.5 is out of range"),
            "{valid}"
        );
        assert_eq!(condition(status, "RulesApplied")["status"], "Unknown");
        assert_eq!(condition(status, "Burning")["reason"], "NotEvaluated");
        assert_eq!(status["status"], "invalid");
        assert_eq!(status["observedGeneration"], 4);
    };
    let warning = Expect {
        body: Some(Box::new(|body: &Value| {
            assert_eq!(body["type"], "Warning");
            assert_eq!(body["reason"], "InvalidSpec");
            let note = body["note"].as_str().unwrap();
            assert!(
                note.contains("spec.window") && note.contains("spec.budgetPolicy[0].when.alert"),
                "{note}"
            );
        })),
        ..expect("POST", EVENTS_PATH, &[], event_reply())
    };
    let (ctx, mut server) = context(
        vec![
            status_apply(
                SLO_STATUS_PATH,
                "ServiceLevelObjective",
                check,
                object.clone(),
            ),
            warning,
        ],
        host.clone(),
        fixed_clock,
    );
    reconcile_slo(dynamic(&object), ctx).await.unwrap();
    server.script_done().await;
    assert_eq!(
        server.unexpected(),
        Vec::<String>::new(),
        "no PrometheusRule for an invalid spec"
    );
    assert!(
        host.latest().slos.is_empty(),
        "an invalid SLO is never evaluated"
    );
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_last_valid_version_running_and_a_valid_one_replaces_it() {
    let host = Arc::new(Host::default());
    host.facts
        .lock()
        .unwrap()
        .insert("checkout".into(), burning_facts(7));
    let valid = finalized(slo_object("shop", "checkout", 2, checkout_spec(99.9)));
    let mut broken_spec = checkout_spec(99.9);
    broken_spec["indicator"] = json!({});
    let broken = finalized(slo_object("shop", "checkout", 3, broken_spec));
    let fixed = finalized(slo_object("shop", "checkout", 4, checkout_spec(99.5)));
    let (ctx, mut server) = context(
        first_pass(&valid, |_| {})
            .into_iter()
            .chain([
                // Generation 3 is invalid: the rules of generation 2 stay (no apply), the status
                // says what is wrong and still shows the numbers of the version that runs.
                status_apply(
                    SLO_STATUS_PATH,
                    "ServiceLevelObjective",
                    |status| {
                        assert_eq!(condition(status, "Valid")["status"], "False");
                        assert_eq!(condition(status, "RulesApplied")["status"], "True");
                        assert_eq!(status["openIncident"], 7, "the open incident is kept");
                        assert_eq!(status["status"], "page");
                        assert_eq!(status["observedGeneration"], 3);
                    },
                    broken.clone(),
                ),
                event("InvalidSpec", "Warning"),
                // Generation 4 is valid: new rules, and the status says so.
                expect("PATCH", RULE_PATH, &["fieldManager=burnguard"], json!({})),
                status_apply(
                    SLO_STATUS_PATH,
                    "ServiceLevelObjective",
                    |status| {
                        assert_eq!(condition(status, "Valid")["status"], "True");
                        assert_eq!(status["observedGeneration"], 4);
                    },
                    fixed.clone(),
                ),
                event("Valid", "Normal"),
            ])
            .collect(),
        host.clone(),
        fixed_clock,
    );
    reconcile_slo(dynamic(&valid), ctx.clone()).await.unwrap();
    assert_eq!(host.latest().slos["checkout"], slo_from_file(99.9));
    // Each pass sees the status the previous one wrote (the watch brings it back).
    let status_of = |object: &Value| -> Value {
        let facts = burning_facts(7);
        let status = burnguard::domain::cluster::desired_slo_status(
            &burnguard::domain::cluster::StatusFacts {
                generation: object["metadata"]["generation"].as_i64(),
                validity: burnguard::domain::cluster::Validity::Valid,
                rules: burnguard::domain::cluster::RulesOutcome::Applied,
                evaluation: facts.evaluation,
                open_incident: facts.open_incident,
                freezes: facts.freezes,
                last_action: facts.last_action,
            },
            None,
            AT,
        );
        serde_json::to_value(status).unwrap()
    };
    reconcile_slo(
        dynamic(&with_status(broken.clone(), &status_of(&valid))),
        ctx.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        host.latest().slos["checkout"],
        slo_from_file(99.9),
        "the last valid version keeps running"
    );
    let mut invalid_status = status_of(&broken);
    invalid_status["conditions"][0] = json!({"type": "Valid", "status": "False", "reason": "InvalidSpec", "message": "x", "lastTransitionTime": AT_TEXT});
    reconcile_slo(
        dynamic(&with_status(fixed.clone(), &invalid_status)),
        ctx.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        host.latest().slos["checkout"],
        slo_from_file(99.5),
        "replaced in place"
    );
    server.script_done().await;
    assert_eq!(server.unexpected(), Vec::<String>::new());
}

#[tokio::test]
async fn deleting_an_slo_cleans_up_before_the_finalizer_goes() {
    let host = Arc::new(Host::default());
    let object = finalized(slo_object("shop", "checkout", 2, checkout_spec(99.9)));
    let seen = host.clone();
    let removal = Expect {
        before_reply: None,
        ..remove_finalizer(object.clone())
    };
    let (ctx, mut server) = context(
        vec![
            expect("PATCH", RULE_PATH, &["fieldManager=burnguard"], json!({})),
            status_apply(
                SLO_STATUS_PATH,
                "ServiceLevelObjective",
                |_| {},
                object.clone(),
            ),
            Expect {
                // By the time the finalizer is removed, the clean-up has happened.
                body: Some(Box::new(move |_| {
                    assert_eq!(
                        seen.deleted.lock().unwrap().as_slice(),
                        &["checkout".to_string()]
                    );
                })),
                ..removal
            },
        ],
        host.clone(),
        fixed_clock,
    );
    reconcile_slo(dynamic(&object), ctx.clone()).await.unwrap();
    assert!(host.latest().slos.contains_key("checkout"));
    let action = reconcile_slo(dynamic(&deleting(object)), ctx)
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    server.script_done().await;
    assert_eq!(server.unexpected(), Vec::<String>::new());
    assert!(host.latest().slos.is_empty(), "no longer evaluated");
}

/// Reconciles the deletion of `shop/checkout` on a fresh controller (a restart: its first
/// sight of the object is its deletion) and returns the SLOs the service was asked to clean up.
async fn delete_on_a_fresh_controller(host: Arc<Host>) -> Vec<String> {
    let object = deleting(finalized(slo_object(
        "shop",
        "checkout",
        2,
        checkout_spec(99.9),
    )));
    let (ctx, mut server) = context(
        vec![remove_finalizer(object.clone())],
        host.clone(),
        fixed_clock,
    );
    reconcile_slo(dynamic(&object), ctx).await.unwrap();
    server.script_done().await;
    host.deleted.lock().unwrap().clone()
}

#[tokio::test]
async fn an_slo_deleted_while_burnguard_was_down_is_still_cleaned_up() {
    let deleted = delete_on_a_fresh_controller(Arc::new(Host::default())).await;
    assert_eq!(deleted, ["checkout".to_string()]);
}

#[tokio::test]
async fn deleting_a_files_namesake_leaves_the_files_incident_alone() {
    let host = Arc::new(Host::default());
    host.files.lock().unwrap().slos.insert("checkout".into());
    let deleted = delete_on_a_fresh_controller(host).await;
    assert!(deleted.is_empty(), "the file's SLO keeps its incident");
}

#[tokio::test]
async fn a_failed_clean_up_keeps_the_finalizer_and_is_retried_with_backoff() {
    let host = Arc::new(Host::default());
    *host.fail_cleanup.lock().unwrap() = true;
    let object = deleting(finalized(slo_object(
        "shop",
        "checkout",
        2,
        checkout_spec(99.9),
    )));
    let (ctx, mut server) = context(vec![], host.clone(), fixed_clock);
    let error = reconcile_slo(dynamic(&object), ctx.clone())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("database is unreachable"),
        "{error}"
    );
    assert_eq!(error.label(), "cleanup");
    let retry = controller::error_policy(dynamic(&object), &error, ctx.clone());
    assert_eq!(retry, Action::requeue(Duration::from_secs(5)));
    let again = controller::error_policy(dynamic(&object), &error, ctx.clone());
    assert_eq!(
        again,
        Action::requeue(Duration::from_secs(10)),
        "per-object backoff doubles"
    );
    server.script_done().await;
    // reconcile returned: every request it made was made; none removed the finalizer.
    assert_eq!(server.unexpected(), Vec::<String>::new());
    assert_eq!(
        host.reconciles.lock().unwrap().last(),
        Some(&("ServiceLevelObjective".to_string(), "cleanup".to_string()))
    );
}

#[tokio::test]
async fn the_older_object_keeps_a_name_and_the_newer_one_says_who_holds_it() {
    let host = Arc::new(Host::default());
    let older = finalized(slo_object("shop", "checkout", 1, checkout_spec(99.9)));
    let mut newer = finalized(slo_object("payments", "checkout", 1, checkout_spec(99.0)));
    newer["metadata"]["creationTimestamp"] = json!("2026-01-02T00:00:00Z");
    let newer_status_path =
        "/apis/burnguard.dev/v1/namespaces/payments/servicelevelobjectives/checkout/status";
    let (ctx, mut server) = context(
        vec![
            expect("PATCH", RULE_PATH, &["fieldManager=burnguard"], json!({})),
            status_apply(
                SLO_STATUS_PATH,
                "ServiceLevelObjective",
                |_| {},
                older.clone(),
            ),
            status_apply(
                newer_status_path,
                "ServiceLevelObjective",
                |status| {
                    let valid = condition(status, "Valid");
                    assert_eq!(valid["reason"], "NameConflict");
                    assert!(
                        valid["message"]
                            .as_str()
                            .unwrap()
                            .contains("object shop/checkout"),
                        "{valid}"
                    );
                    assert_eq!(status["status"], "conflict");
                },
                newer.clone(),
            ),
            Expect {
                body: Some(Box::new(|body: &Value| {
                    assert_eq!(body["reason"], "NameConflict");
                    assert_eq!(body["regarding"]["namespace"], "payments");
                })),
                ..expect(
                    "POST",
                    "/apis/events.k8s.io/v1/namespaces/payments/events",
                    &[],
                    event_reply(),
                )
            },
        ],
        host.clone(),
        fixed_clock,
    );
    // Which one holds the name depends on age, not on the order the watch delivers them
    // (domain::cluster's table tests take both orders).
    reconcile_slo(dynamic(&older), ctx.clone()).await.unwrap();
    reconcile_slo(dynamic(&newer), ctx.clone()).await.unwrap();
    assert_eq!(
        host.latest().slos["checkout"],
        slo_from_file(99.9),
        "the older object's SLO runs"
    );
    server.script_done().await;
    assert_eq!(server.unexpected(), Vec::<String>::new());
}

#[tokio::test]
async fn without_the_prometheus_operator_the_condition_says_so_and_the_api_is_not_asked_again_soon()
{
    let host = Arc::new(Host::default());
    let object = finalized(slo_object("shop", "checkout", 1, checkout_spec(99.9)));
    let written = Arc::new(Mutex::new(Value::Null));
    let keep = written.clone();
    let (ctx, mut server) = context(
        vec![
            Expect {
                status: 404,
                ..expect(
                    "PATCH",
                    RULE_PATH,
                    &["fieldManager=burnguard"],
                    status(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    ),
                )
            },
            status_apply(
                SLO_STATUS_PATH,
                "ServiceLevelObjective",
                move |status| {
                    let rules = condition(status, "RulesApplied");
                    assert_eq!(rules["status"], "False");
                    assert_eq!(rules["reason"], "PrometheusRuleCRDMissing");
                    assert_eq!(
                        condition(status, "Valid")["status"],
                        "True",
                        "the SLO is still evaluated"
                    );
                    *keep.lock().unwrap() = status.clone();
                },
                object.clone(),
            ),
        ],
        host.clone(),
        fixed_clock,
    );
    reconcile_slo(dynamic(&object), ctx.clone()).await.unwrap();
    assert!(host.latest().slos.contains_key("checkout"));
    let again = with_status(object, &written.lock().unwrap());
    reconcile_slo(dynamic(&again), ctx).await.unwrap();
    server.script_done().await;
    assert_eq!(
        server.unexpected(),
        Vec::<String>::new(),
        "no second apply within 5 minutes"
    );
}

#[tokio::test]
async fn a_playbook_object_is_read_like_a_file_and_its_status_says_whether_it_is_valid() {
    let host = Arc::new(Host::default());
    let book = |generation: i64, steps: Value| {
        json!({
            "apiVersion": "burnguard.dev/v1", "kind": "Playbook",
            "metadata": {"name": "degrade", "namespace": "shop", "uid": "uid-degrade",
                         "generation": generation, "resourceVersion": "7",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"mode": "auto", "steps": steps},
        })
    };
    let good = book(
        1,
        json!([{"name": "roll back", "rollback": {"namespace": "shop", "deployment": "checkout"}}]),
    );
    let bad = book(
        2,
        json!([{"name": "two actions", "rollback": {"namespace": "shop", "deployment": "checkout"},
                              "scale": {"namespace": "shop", "deployment": "checkout", "replicas": 3}}]),
    );
    let path = "/apis/burnguard.dev/v1/namespaces/shop/playbooks/degrade/status";
    let (ctx, mut server) = context(
        vec![
            status_apply(
                path,
                "Playbook",
                |status| {
                    assert_eq!(condition(status, "Valid")["status"], "True");
                    assert_eq!(status["observedGeneration"], 1);
                },
                good.clone(),
            ),
            status_apply(
                path,
                "Playbook",
                |status| {
                    assert_eq!(condition(status, "Valid")["status"], "False");
                    assert_eq!(status["problems"][0]["path"], "spec.steps[0]", "{status}");
                },
                bad.clone(),
            ),
            Expect {
                body: Some(Box::new(|body: &Value| {
                    assert_eq!(body["reason"], "InvalidSpec");
                    assert_eq!(body["regarding"]["kind"], "Playbook");
                })),
                ..expect("POST", EVENTS_PATH, &[], event_reply())
            },
        ],
        host.clone(),
        fixed_clock,
    );
    reconcile_playbook(dynamic(&good), ctx.clone())
        .await
        .unwrap();
    let (_, books, problems) = burnguard::policies::parse_policies(
        "degrade.yaml",
        "apiVersion: burnguard.dev/v1\nkind: Playbook\nmetadata: {name: degrade}\nspec:\n  mode: auto\n  steps:\n    - name: roll back\n      rollback: {namespace: shop, deployment: checkout}\n",
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        host.latest().playbooks["degrade"],
        books[0].playbook,
        "the object says what the file says"
    );
    reconcile_playbook(dynamic(&bad), ctx).await.unwrap();
    assert!(
        host.latest().playbooks.contains_key("degrade"),
        "the valid version stays"
    );
    server.script_done().await;
    assert_eq!(server.unexpected(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// The watch: the controllers run as `serve --kubernetes` runs them, against an API server
// stand-in that answers lists and watches from a script per resource path (a watch answer is
// one batch of events, after which the watcher watches again from the last resourceVersion,
// as it does when a real watch times out) and answers writes with the object.

struct Cluster {
    /// Answers to the lists of each path, in order; the last one repeats.
    lists: Mutex<BTreeMap<String, std::collections::VecDeque<Value>>>,
    /// Batches of watch events for each path; with none left, a watch is held open.
    watches: Mutex<BTreeMap<String, std::collections::VecDeque<Vec<Value>>>>,
    /// Every request seen: `METHOD path?query`.
    log: Mutex<Vec<String>>,
    /// Watches waiting for their next batch.
    held: Mutex<
        BTreeMap<String, Vec<tower_test::mock::SendResponse<http::Response<kube::client::Body>>>>,
    >,
}

fn watch_body(events: Vec<Value>) -> http::Response<kube::client::Body> {
    let mut body = Vec::new();
    for e in events {
        body.extend(serde_json::to_vec(&e).unwrap());
        body.push(b'\n');
    }
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body))
        .unwrap()
}

impl Cluster {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            lists: Mutex::default(),
            watches: Mutex::default(),
            log: Mutex::default(),
            held: Mutex::default(),
        })
    }

    /// From now on every list of `path` gets `answer`.
    fn relist(&self, path: &str, answer: Value) {
        let mut lists = self.lists.lock().unwrap();
        let queue = lists.entry(path.into()).or_default();
        queue.clear();
        queue.push_back(answer);
    }

    fn list(&self, path: &str, answer: Value) {
        self.lists
            .lock()
            .unwrap()
            .entry(path.into())
            .or_default()
            .push_back(answer);
    }

    /// The next batch of events on `path`: to a watch already waiting, or to the next one.
    fn watch(&self, path: &str, events: Vec<Value>) {
        let waiting = self
            .held
            .lock()
            .unwrap()
            .get_mut(path)
            .and_then(|w| w.pop());
        match waiting {
            Some(respond) => respond.send_response(watch_body(events)),
            None => self
                .watches
                .lock()
                .unwrap()
                .entry(path.into())
                .or_default()
                .push_back(events),
        }
    }

    fn requests(&self, prefix: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// A client whose every request this cluster answers.
    fn client(self: &Arc<Self>) -> kube::Client {
        use http::{Request, Response};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let cluster = self.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let method = request.method().to_string();
                let content_type = common::kube::content_type_of(&request);
                common::kube::assert_rbac_allows(&method, &path, &query, &content_type);
                cluster
                    .log
                    .lock()
                    .unwrap()
                    .push(format!("{method} {path}?{query}"));
                let reply = |code: u16, body: Vec<u8>| {
                    Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(Body::from(body))
                        .unwrap()
                };
                if method == "GET" && query.contains("watch=true") {
                    let batch = cluster
                        .watches
                        .lock()
                        .unwrap()
                        .get_mut(&path)
                        .and_then(|q| q.pop_front());
                    match batch {
                        Some(events) => respond.send_response(watch_body(events)),
                        // Nothing to say yet: the watch stays open until the test speaks.
                        None => cluster
                            .held
                            .lock()
                            .unwrap()
                            .entry(path)
                            .or_default()
                            .push(respond),
                    }
                } else if method == "GET" {
                    let answer = {
                        let mut lists = cluster.lists.lock().unwrap();
                        let queue = lists.entry(path.clone()).or_default();
                        if queue.len() > 1 {
                            queue.pop_front()
                        } else {
                            queue.front().cloned()
                        }
                    };
                    let answer = answer.unwrap_or_else(|| {
                        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": []})
                    });
                    respond.send_response(reply(200, serde_json::to_vec(&answer).unwrap()));
                } else if path.starts_with("/apis/events.k8s.io") {
                    respond.send_response(reply(201, serde_json::to_vec(&event_reply()).unwrap()));
                } else {
                    // Writes: answer with a minimal object of the path's kind.
                    let name = path
                        .trim_end_matches("/status")
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let namespace = path
                        .split("/namespaces/")
                        .nth(1)
                        .and_then(|r| r.split('/').next())
                        .unwrap_or_default()
                        .to_string();
                    let object = json!({"apiVersion": "burnguard.dev/v1", "kind": "ServiceLevelObjective",
                                        "metadata": {"name": name, "namespace": namespace}});
                    respond.send_response(reply(200, serde_json::to_vec(&object).unwrap()));
                }
            }
        });
        kube::Client::new(service, "default")
    }
}

fn slo_list(items: Vec<Value>, resource_version: &str, continue_token: Option<&str>) -> Value {
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    json!({"apiVersion": "burnguard.dev/v1", "kind": "ServiceLevelObjectiveList", "metadata": metadata, "items": items})
}

fn watch_event(type_: &str, object: Value) -> Value {
    json!({"type": type_, "object": object})
}

fn quick_settings() -> ControllerSettings {
    ControllerSettings {
        refresh: Duration::from_millis(200),
        ..settings()
    }
}

/// Waits until the service was handed SLOs with exactly these names and objectives.
async fn until_published(host: &Host, wanted: &[(&str, f64)]) {
    let wanted: BTreeMap<String, f64> = wanted.iter().map(|(n, o)| (n.to_string(), *o)).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now: BTreeMap<String, f64> = host
            .latest()
            .slos
            .iter()
            .map(|(n, s)| (n.clone(), (s.objective.ratio() * 1000.0).round() / 10.0))
            .collect();
        if now == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "published {now:?}, waited for {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until a watch on `path` is open and waiting.
async fn until_watching(cluster: &Cluster, path: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while cluster
        .held
        .lock()
        .unwrap()
        .get(path)
        .is_none_or(|w| w.is_empty())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no watch on {path}: {:?}",
            cluster.requests("GET")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn named_slo(namespace: &str, name: &str, generation: i64, objective: f64, rv: &str) -> Value {
    let mut object = finalized(slo_object(
        namespace,
        name,
        generation,
        checkout_spec(objective),
    ));
    object["metadata"]["resourceVersion"] = json!(rv);
    object
}

const ALL_SLOS: &str = "/apis/burnguard.dev/v1/servicelevelobjectives";

#[tokio::test]
async fn the_controller_lists_in_pages_follows_the_watch_and_lists_again_after_410_gone() {
    let cluster = Cluster::new();
    cluster.list(
        ALL_SLOS,
        slo_list(
            vec![named_slo("shop", "alpha", 1, 99.9, "90")],
            "100",
            Some("page-2"),
        ),
    );
    cluster.list(
        ALL_SLOS,
        slo_list(vec![named_slo("shop", "beta", 1, 99.0, "95")], "100", None),
    );
    let host = Arc::new(Host::default());
    let ctx = Arc::new(
        Context::new(cluster.client(), host.clone(), quick_settings()).with_clock(fixed_clock),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(controller::run_scope(
        ctx,
        controller::Scope::default(),
        stop.clone(),
    ));

    until_published(&host, &[("alpha", 99.9), ("beta", 99.0)]).await;
    let lists = cluster.requests(&format!("GET {ALL_SLOS}?"));
    assert!(lists[0].contains("limit=500"), "{lists:?}");
    assert!(
        lists[1].contains("continue=page-2"),
        "the second page is asked for: {lists:?}"
    );

    // The watch's changes: alpha edited, gamma added, beta deleted (without burnguard's
    // finalizer: it disappears from the cache and is forgotten).
    until_watching(&cluster, ALL_SLOS).await;
    cluster.watch(
        ALL_SLOS,
        vec![
            watch_event(
                "BOOKMARK",
                json!({"apiVersion": "burnguard.dev/v1", "kind": "ServiceLevelObjective",
                                            "metadata": {"resourceVersion": "101"}}),
            ),
            watch_event("MODIFIED", named_slo("shop", "alpha", 2, 99.5, "102")),
            watch_event("ADDED", named_slo("shop", "gamma", 1, 95.0, "103")),
            watch_event("DELETED", named_slo("shop", "beta", 1, 99.0, "104")),
        ],
    );
    until_published(&host, &[("alpha", 99.5), ("gamma", 95.0)]).await;

    // The watch's history expired: 410 Gone, and the controller lists again.
    cluster.relist(
        ALL_SLOS,
        slo_list(
            vec![
                named_slo("shop", "alpha", 2, 99.5, "200"),
                named_slo("shop", "gamma", 1, 95.0, "200"),
                named_slo("shop", "delta", 1, 90.0, "200"),
            ],
            "200",
            None,
        ),
    );
    until_watching(&cluster, ALL_SLOS).await;
    cluster.watch(
        ALL_SLOS,
        vec![watch_event(
            "ERROR",
            json!({"kind": "Status", "apiVersion": "v1",
        "metadata": {}, "status": "Failure", "message": "too old resource version: 100 (150)",
        "reason": "Expired", "code": 410}),
        )],
    );
    until_published(&host, &[("alpha", 99.5), ("gamma", 95.0), ("delta", 90.0)]).await;
    let lists_after = cluster
        .requests(&format!("GET {ALL_SLOS}?"))
        .into_iter()
        .filter(|r| !r.contains("watch=true"))
        .count();
    assert!(
        lists_after >= 3,
        "listed again after 410: {:?}",
        cluster.requests("GET")
    );
    stop.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn a_new_namespace_list_and_selector_take_effect_without_a_restart() {
    let shop = "/apis/burnguard.dev/v1/namespaces/shop/servicelevelobjectives";
    let payments = "/apis/burnguard.dev/v1/namespaces/payments/servicelevelobjectives";
    let cluster = Cluster::new();
    cluster.list(
        shop,
        slo_list(vec![named_slo("shop", "alpha", 1, 99.9, "10")], "10", None),
    );
    cluster.list(
        payments,
        slo_list(
            vec![named_slo("payments", "pay", 1, 99.0, "20")],
            "20",
            None,
        ),
    );
    let host = Arc::new(Host::default());
    let ctx = Arc::new(
        Context::new(cluster.client(), host.clone(), quick_settings()).with_clock(fixed_clock),
    );
    let (scope, changes) = tokio::sync::watch::channel(controller::Scope {
        namespaces: vec!["shop".into()],
        selector: None,
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(controller::run(ctx, changes, stop.clone()));
    until_published(&host, &[("alpha", 99.9)]).await;
    assert!(
        cluster.requests(&format!("GET {payments}")).is_empty(),
        "payments is not watched yet"
    );

    scope.send_replace(controller::Scope {
        namespaces: vec!["payments".into()],
        selector: Some("team=payments".into()),
    });
    // shop's SLO is forgotten (out of scope), payments' is taken.
    until_published(&host, &[("pay", 99.0)]).await;
    let lists = cluster.requests(&format!("GET {payments}?"));
    assert!(
        lists
            .iter()
            .all(|r| r.contains("labelSelector=team%3Dpayments")),
        "the selector goes to the API server: {lists:?}"
    );
    stop.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn one_object_that_does_not_decode_never_stops_the_others() {
    let cluster = Cluster::new();
    let mut broken = named_slo("shop", "broken", 1, 99.9, "11");
    // Stored under an older, looser schema: a string where a number belongs, a map where a
    // catalogue name or a list belongs.
    broken["spec"]["objective"] = json!("ninety-nine");
    broken["spec"]["alerting"] = json!({"windows": {"fast": "5m"}});
    cluster.list(
        ALL_SLOS,
        slo_list(
            vec![broken, named_slo("shop", "alpha", 1, 99.9, "12")],
            "12",
            None,
        ),
    );
    let host = Arc::new(Host::default());
    let ctx = Arc::new(
        Context::new(cluster.client(), host.clone(), quick_settings()).with_clock(fixed_clock),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(controller::run_scope(
        ctx,
        controller::Scope::default(),
        stop.clone(),
    ));
    until_published(&host, &[("alpha", 99.9)]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while cluster
        .requests(
            "PATCH /apis/burnguard.dev/v1/namespaces/shop/servicelevelobjectives/broken/status",
        )
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no status for the broken object"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        host.reconciles
            .lock()
            .unwrap()
            .iter()
            .all(|(_, outcome)| outcome == "ok"),
        "an invalid object is a status, not an error: {:?}",
        host.reconciles.lock().unwrap()
    );
    stop.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn ten_thousand_slo_objects_are_all_taken_and_handed_over_in_batches() {
    const N: usize = 10_000;
    let cluster = Cluster::new();
    let items: Vec<Value> = (0..N)
        .map(|i| named_slo("shop", &format!("slo-{i:05}"), 1, 99.9, "5"))
        .collect();
    cluster.list(ALL_SLOS, slo_list(items, "10", None));
    let host = Arc::new(Host::default());
    let ctx =
        Arc::new(Context::new(cluster.client(), host.clone(), settings()).with_clock(fixed_clock));
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(controller::run_scope(
        ctx,
        controller::Scope::default(),
        stop.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while host.latest().slos.len() < N {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {N} taken",
            host.latest().slos.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let handovers = host.published.lock().unwrap().len();
    // Without batching this would be one hand-over (a copy of the whole set) per object.
    assert!(handovers < N / 10, "{handovers} hand-overs for {N} objects");
    stop.cancel();
    running.await.unwrap();
}
