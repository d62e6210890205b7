//! Notifications out.
//!
//! End to end: `serve` with a REAL Prometheus burning up to now notifies a real local receiver
//! (generic signed webhook and a PagerDuty Events v2 stand-in) and a REAL Alertmanager. The
//! receiver fails at first and across a restart of burnguard; each notification still arrives
//! exactly once, and every attempt is on the incident's timeline. A receiver that never answers
//! well ends in a dead letter, counted on `/metrics`.
//!
//! The delivery loop against the REAL store (SQLite and PostgreSQL, every test on both) and a
//! real local receiver, driven with `deliver_due(.., now)` so the backoff runs without waiting:
//! entries are bound to the channels configured when they were written (a channel added later
//! gets none of the history, a removed or re-pointed one stops and says so), retries end in a
//! dead letter after exactly the documented schedule, two replicas deliver each entry exactly
//! once, a crashed claimer's entries are due again after the lease, and a resolution waits for
//! its opening.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use burnguard::adapters::notify::{Channels, HttpNotifier};
use burnguard::adapters::store::SqlStore;
use burnguard::domain::delivery::{DeliveryState, backoff};
use burnguard::domain::incident::Decision;
use burnguard::domain::policy::Severity;
use burnguard::engine::notify::{DeliverySettings, bind_channels, deliver_due};
use burnguard::ports::{
    EvaluationRecord, Instance, Journal, Outbox, Settlement, Store, TimelineEvent,
};
use common::db::TestDb;
use common::prometheus::{PrometheusServer, free_port, http_get, recent_traffic};
use common::receiver::{Received, Receiver};
use common::serve::Serve;
use hmac::{KeyInit, Mac};
use secrecy::SecretString;

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
    // Once the timeline says both were delivered, their rows are settled: nothing is pending
    // that could arrive again.
    wait_until(
        "both deliveries on the timeline",
        Duration::from_secs(30),
        || {
            let timeline = timeline_of(db.url(), 1);
            ["webhook", "pagerduty"].iter().all(|channel| {
                timeline.iter().any(|e| {
                    e["kind"] == "notification_delivered"
                        && e["message"]
                            .as_str()
                            .unwrap()
                            .starts_with(&format!("notified {channel} "))
                })
            })
        },
    );
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
    let timeline = timeline_of(db.url(), 1);
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

/// An incident's timeline as `incidents show` prints it.
fn timeline_of(db: &str, incident: i64) -> Vec<serde_json::Value> {
    let (ok, out) = common::run(Command::new(env!("CARGO_BIN_EXE_burnguard")).args([
        "incidents",
        "show",
        &incident.to_string(),
        "--output",
        "json",
        "--db",
        db,
    ]));
    assert!(ok, "{out}");
    let detail: serde_json::Value = serde_json::from_str(&out).unwrap();
    detail["timeline"].as_array().unwrap().clone()
}

#[test]
fn serve_dead_letters_a_notification_nobody_takes_and_counts_it_on_metrics() {
    let prometheus = PrometheusServer::start(&recent_traffic("checkout", 0.5));
    let receiver = Receiver::start_blocking();
    receiver.answer_with(503);
    let dir = tempfile::tempdir().unwrap();
    let policies = common::write(dir.path(), "slo.yaml", SLO);
    let dbs = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(TestDb::both());
    for (n, db) in dbs.iter().enumerate() {
        let path = format!("/hooks/{n}");
        let hook = format!("{}{path}", receiver.url);
        let serve = Serve::start(
            &[
                "--listen",
                "127.0.0.1:0",
                "--interval",
                "1s",
                "--prometheus",
                &prometheus.url,
                "--db",
                db.url(),
                "--policies",
                &policies.display().to_string(),
                "--notify-webhook",
                &hook,
                "--notify-max-attempts",
                "2",
            ],
            &[],
        );
        let metrics = serve.metrics_until("a dead letter", |m| {
            common::serve::value(m, "burnguard_notifications_dead_total{channel=\"webhook\"}")
                == Some(1.0)
        });
        assert!(
            metrics.contains("# TYPE burnguard_notifications_dead counter"),
            "{metrics}"
        );
        // Dead letters are settled: the two attempts are all there will ever be.
        assert_eq!(receiver.to(&path).len(), 2, "{}", db.url());
        drop(serve);
        let timeline = timeline_of(db.url(), 1);
        let kinds: Vec<&str> = timeline
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .filter(|k| k.starts_with("notification_"))
            .collect();
        assert_eq!(
            kinds,
            ["notification_failed", "notification_dead"],
            "{timeline:#?}"
        );
        let dead = timeline
            .iter()
            .find(|e| e["kind"] == "notification_dead")
            .unwrap();
        assert!(
            dead["message"]
                .as_str()
                .unwrap()
                .contains("2 attempts failed, and at most 2 are made"),
            "{dead}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The delivery loop against the store, with `now` in the test's hands.

const T: i64 = 1_700_000_000;

fn evaluation(slo: &str, at: i64) -> EvaluationRecord<'_> {
    EvaluationRecord {
        slo: slo.into(),
        service: "checkout".into(),
        evaluated_at: at,
        status: "page".into(),
        error_budget_remaining: Some(0.5),
        snapshot: serde_json::json!({"name": slo, "at": at}).to_string(),
    }
}

/// Opens an incident for `slo` at `at` (writing its `opened` outbox entry); returns its id.
async fn open_incident(store: &SqlStore, slo: &str, at: i64) -> i64 {
    store
        .record(&evaluation(slo, at), |_| Decision::Open {
            severity: Severity::Page,
            peak_burn_rate: 20.0,
            budget_remaining: Some(0.5),
        })
        .await
        .unwrap()
        .incident_id
        .unwrap()
}

async fn resolve_incident(store: &SqlStore, slo: &str, at: i64) {
    let done = store
        .record(&evaluation(slo, at), |_| Decision::Resolve {
            budget_remaining: Some(0.4),
        })
        .await
        .unwrap();
    assert!(matches!(done.decision, Decision::Resolve { .. }));
}

fn webhook(receiver: &Receiver, path: &str) -> Option<(String, Option<SecretString>)> {
    Some((format!("{}{path}", receiver.url), None))
}

fn pagerduty(receiver: &Receiver, key: &str) -> Option<(SecretString, String)> {
    Some((
        SecretString::from(key.to_string()),
        format!("{}/v2/enqueue", receiver.url),
    ))
}

fn instance(name: &str, incarnation: u32) -> Instance {
    Instance {
        name: name.into(),
        id: format!("{name}/{incarnation}"),
    }
}

/// A store that binds what it writes to `channels`, and the notifier that sends to them.
async fn process(db: &TestDb, channels: &Channels) -> (SqlStore, HttpNotifier) {
    let store = SqlStore::open(db.url())
        .await
        .unwrap()
        .with_notify_channels(channels.list());
    (store, HttpNotifier::new(channels.clone()).unwrap())
}

/// The incident each request was about (webhook body or PagerDuty dedup key), in arrival order.
fn incidents_in(requests: &[Received]) -> Vec<i64> {
    requests
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            match body["incident"].as_i64() {
                Some(id) => id,
                None => burnguard::domain::incident::incident_of_key(
                    body["dedup_key"].as_str().unwrap(),
                )
                .unwrap(),
            }
        })
        .collect()
}

async fn timeline(store: &SqlStore, incident: i64) -> Vec<TimelineEvent> {
    store.incident(incident).await.unwrap().unwrap().timeline
}

fn kinds(timeline: &[TimelineEvent], kind: &str) -> Vec<String> {
    timeline
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.message.clone())
        .collect()
}

#[tokio::test]
async fn a_channel_added_after_incidents_exist_receives_none_of_their_old_entries() {
    for db in TestDb::both().await {
        let receiver = Receiver::start().await;
        let hook_only = Channels {
            webhook: webhook(&receiver, "/hooks"),
            ..Channels::default()
        };
        let with_pagerduty = Channels {
            pagerduty: pagerduty(&receiver, "NEW-ROUTING-KEY"),
            ..hook_only.clone()
        };
        let settings = DeliverySettings::default();

        // Two incidents open while only the webhook is configured; burnguard stops before
        // delivering them.
        let (before, _) = process(&db, &hook_only).await;
        let a = open_incident(&before, "checkout", T).await;
        let b = open_incident(&before, "search", T + 1).await;
        before.close().await;

        // Restarted with PagerDuty added: the webhook keeps its pending entries, PagerDuty
        // gets none of them.
        let (after, notifier) = process(&db, &with_pagerduty).await;
        let stopped = bind_channels(&after, &with_pagerduty.list(), &instance("a", 2), T + 2)
            .await
            .unwrap();
        assert!(stopped.is_empty(), "{stopped:?}");
        let report = deliver_due(&after, &notifier, &settings, "a/2", T + 2)
            .await
            .unwrap();
        assert_eq!((report.claimed, report.delivered), (2, 2), "{report:?}");
        assert_eq!(incidents_in(&receiver.to("/hooks")), [a, b]);
        assert!(receiver.to("/v2/enqueue").is_empty());
        for id in [a, b] {
            let deliveries = after.deliveries(id).await.unwrap();
            let channels: Vec<(&str, DeliveryState)> = deliveries
                .iter()
                .map(|d| (d.channel.as_str(), d.state))
                .collect();
            assert_eq!(channels, [("webhook", DeliveryState::Delivered)]);
        }

        // An incident opened after PagerDuty was configured reaches both.
        let c = open_incident(&after, "payments", T + 3).await;
        let report = deliver_due(&after, &notifier, &settings, "a/2", T + 3)
            .await
            .unwrap();
        assert_eq!((report.claimed, report.delivered), (2, 2), "{report:?}");
        assert_eq!(incidents_in(&receiver.to("/hooks")), [a, b, c]);
        assert_eq!(incidents_in(&receiver.to("/v2/enqueue")), [c]);
        let pd: serde_json::Value =
            serde_json::from_str(&receiver.to("/v2/enqueue")[0].body).unwrap();
        assert_eq!(pd["routing_key"], "NEW-ROUTING-KEY");
        after.close().await;
    }
}

#[tokio::test]
async fn a_removed_or_repointed_channel_stops_its_pending_deliveries_and_says_so() {
    for db in TestDb::both().await {
        let receiver = Receiver::start().await;
        receiver.answer_with(500);
        let settings = DeliverySettings::default();
        let first = Channels {
            webhook: webhook(&receiver, "/hooks/old"),
            pagerduty: pagerduty(&receiver, "R0UTING"),
            ..Channels::default()
        };
        let (store, notifier) = process(&db, &first).await;
        let a = open_incident(&store, "checkout", T).await;
        let report = deliver_due(&store, &notifier, &settings, "a/1", T)
            .await
            .unwrap();
        assert_eq!(report.failed, 2, "{report:?}");
        store.close().await;

        // Restarted with the webhook pointing elsewhere: its pending delivery stops, on the
        // timeline; PagerDuty, configured as before, keeps going.
        let second = Channels {
            webhook: webhook(&receiver, "/hooks/new"),
            ..first.clone()
        };
        let (store, notifier) = process(&db, &second).await;
        let stopped = bind_channels(&store, &second.list(), &instance("a", 2), T + 1)
            .await
            .unwrap();
        assert_eq!(stopped.len(), 1, "{stopped:?}");
        assert_eq!(
            (stopped[0].incident_id, stopped[0].channel.as_str()),
            (a, "webhook")
        );
        assert_eq!(stopped[0].state, DeliveryState::Stopped);
        let said = kinds(&timeline(&store, a).await, "notification_stopped");
        assert_eq!(said.len(), 1);
        assert!(
            said[0].starts_with("notifying webhook of `opened` stopped after 1 attempts: webhook now points elsewhere"),
            "{said:?}"
        );
        receiver.answer_with(200);
        let report = deliver_due(&store, &notifier, &settings, "a/2", T + 1)
            .await
            .unwrap();
        assert_eq!((report.claimed, report.delivered), (1, 1), "{report:?}");
        assert_eq!(incidents_in(&receiver.to("/v2/enqueue")), [a, a]);
        assert!(receiver.to("/hooks/new").is_empty());
        assert_eq!(receiver.to("/hooks/old").len(), 1);

        // A second incident, undelivered when the webhook is removed altogether.
        receiver.answer_with(500);
        let b = open_incident(&store, "search", T + 2).await;
        let report = deliver_due(&store, &notifier, &settings, "a/2", T + 2)
            .await
            .unwrap();
        assert_eq!(report.failed, 2, "{report:?}");
        store.close().await;
        let third = Channels {
            webhook: None,
            ..second.clone()
        };
        let (store, notifier) = process(&db, &third).await;
        let stopped = bind_channels(&store, &third.list(), &instance("a", 3), T + 3)
            .await
            .unwrap();
        assert_eq!(stopped.len(), 1, "{stopped:?}");
        assert_eq!(
            stopped[0].end_reason.as_deref(),
            Some("webhook is no longer configured")
        );
        let said = kinds(&timeline(&store, b).await, "notification_stopped");
        assert_eq!(
            said,
            [
                "notifying webhook of `opened` stopped after 1 attempts: webhook is no longer configured; it will not be sent"
            ]
        );
        receiver.answer_with(200);
        let report = deliver_due(&store, &notifier, &settings, "a/3", T + 4)
            .await
            .unwrap();
        assert_eq!((report.claimed, report.delivered), (1, 1), "{report:?}");
        assert_eq!(
            receiver.to("/hooks/new").len(),
            1,
            "the failed attempt only"
        );
        let states: BTreeMap<String, DeliveryState> = store
            .deliveries(b)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.channel, d.state))
            .collect();
        assert_eq!(
            states,
            BTreeMap::from([
                ("pagerduty".to_string(), DeliveryState::Delivered),
                ("webhook".to_string(), DeliveryState::Stopped),
            ])
        );
        store.close().await;
    }
}

#[tokio::test]
async fn a_receiver_that_always_fails_gets_a_bounded_number_of_attempts_then_a_dead_letter() {
    for db in TestDb::both().await {
        let receiver = Receiver::start().await;
        receiver.answer_with(500);
        let settings = DeliverySettings::default();
        assert_eq!(settings.limits.max_attempts, 20);
        let channels = Channels {
            webhook: webhook(&receiver, "/hooks"),
            ..Channels::default()
        };
        let (store, notifier) = process(&db, &channels).await;
        let a = open_incident(&store, "checkout", T).await;

        // Each attempt comes exactly when the backoff says, never a second earlier.
        let mut now = T;
        let mut attempted_at = Vec::new();
        for attempt in 1..=20u32 {
            let report = deliver_due(&store, &notifier, &settings, "a/1", now)
                .await
                .unwrap();
            assert_eq!(report.claimed, 1, "attempt {attempt}: {report:?}");
            attempted_at.push(now - T);
            if attempt == 20 {
                assert_eq!(report.dead, ["webhook"], "{report:?}");
                break;
            }
            assert_eq!(report.failed, 1, "{report:?}");
            let wait = backoff(attempt);
            let early = deliver_due(&store, &notifier, &settings, "a/1", now + wait - 1)
                .await
                .unwrap();
            assert_eq!(early.claimed, 0, "attempt {} came early", attempt + 1);
            now += wait;
        }
        assert_eq!(
            attempted_at,
            [
                0, 1, 3, 7, 15, 31, 63, 127, 255, 511, 811, 1111, 1411, 1711, 2011, 2311, 2611,
                2911, 3211, 3511
            ]
        );
        assert_eq!(receiver.to("/hooks").len(), 20);

        // The dead letter: the store's record and the timeline say so; nothing more is sent.
        let deliveries = store.deliveries(a).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        let dead = &deliveries[0];
        assert_eq!(
            (dead.state, dead.attempts, dead.ended_at),
            (DeliveryState::Dead, 20, Some(now))
        );
        assert_eq!(
            dead.end_reason.as_deref(),
            Some("20 attempts failed, and at most 20 are made")
        );
        assert_eq!(dead.last_error.as_deref(), Some("answered 500"));
        let events = timeline(&store, a).await;
        assert_eq!(kinds(&events, "notification_failed").len(), 19);
        assert_eq!(
            kinds(&events, "notification_dead"),
            [
                "notifying webhook of `opened` failed (attempt 20): answered 500; giving up: 20 attempts failed, and at most 20 are made; it is dead-lettered"
            ]
        );
        let later = deliver_due(&store, &notifier, &settings, "a/1", now + 86_400)
            .await
            .unwrap();
        assert_eq!(later.claimed, 0);
        // A dead letter is no longer waiting: the outbox depth on /metrics does not count it.
        assert_eq!(store.counts().await.unwrap().outbox_pending, 0);

        // An entry nobody could send for a day (burnguard was down) is dead-lettered unsent.
        let b = open_incident(&store, "search", now).await;
        let report = deliver_due(&store, &notifier, &settings, "a/1", now + 86_400)
            .await
            .unwrap();
        assert_eq!((report.claimed, report.dead.len()), (1, 1), "{report:?}");
        assert_eq!(
            receiver.to("/hooks").len(),
            20,
            "no attempt for the stale entry"
        );
        let stale = &store.deliveries(b).await.unwrap()[0];
        assert_eq!((stale.state, stale.attempts), (DeliveryState::Dead, 0));
        assert_eq!(
            kinds(&timeline(&store, b).await, "notification_dead"),
            [
                "gave up notifying webhook of `opened` after 0 attempts: not delivered within 24h of being written, the most it is tried for; it is dead-lettered"
            ]
        );
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_database_deliver_each_entry_exactly_once() {
    const INCIDENTS: usize = 120;
    for db in TestDb::both().await {
        let receiver = Receiver::start().await;
        // Small batches and a quick receiver: the replicas spend much of their time claiming,
        // so their claims overlap again and again.
        let settings = DeliverySettings {
            batch: 2,
            ..DeliverySettings::default()
        };
        let channels = Channels {
            webhook: webhook(&receiver, "/hooks"),
            ..Channels::default()
        };
        let (writer, _) = process(&db, &channels).await;
        let mut ids = Vec::new();
        for i in 0..INCIDENTS {
            ids.push(open_incident(&writer, &format!("slo-{i}"), T).await);
        }
        let delivered = Arc::new(AtomicUsize::new(0));
        let mut replicas = Vec::new();
        for name in ["replica-a", "replica-b"] {
            // Each replica has its own connections, as two processes would.
            let (store, notifier) = process(&db, &channels).await;
            let delivered = delivered.clone();
            replicas.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mine = Arc::new(AtomicUsize::new(0));
                while delivered.load(Ordering::SeqCst) < INCIDENTS {
                    assert!(Instant::now() < deadline, "{name} timed out");
                    let report = deliver_due(&store, &notifier, &settings, &format!("{name}/1"), T)
                        .await
                        .unwrap();
                    assert_eq!(report.lost, 0, "{report:?}");
                    delivered.fetch_add(report.delivered, Ordering::SeqCst);
                    mine.fetch_add(report.delivered, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
                store.close().await;
                mine.load(Ordering::SeqCst)
            }));
        }
        let mut per_replica = Vec::new();
        for replica in replicas {
            per_replica.push(replica.await.unwrap());
        }
        assert_eq!(
            per_replica.iter().sum::<usize>(),
            INCIDENTS,
            "{per_replica:?}"
        );

        // Every entry exactly once: one request per incident, one attempt per delivery.
        let mut seen = incidents_in(&receiver.to("/hooks"));
        seen.sort();
        assert_eq!(seen, ids, "{} per replica: {per_replica:?}", db.url());
        for id in &ids {
            let d = &writer.deliveries(*id).await.unwrap()[0];
            assert_eq!((d.state, d.attempts), (DeliveryState::Delivered, 1));
        }
        writer.close().await;
    }
}

#[tokio::test]
async fn a_crashed_claimers_entry_is_deliverable_again_after_its_lease() {
    for db in TestDb::both().await {
        let receiver = Receiver::start().await;
        let channels = Channels {
            webhook: webhook(&receiver, "/hooks"),
            ..Channels::default()
        };
        let settings = DeliverySettings::default();
        assert_eq!(settings.lease, 60);
        let (crashed, _) = process(&db, &channels).await;
        let (survivor, notifier) = process(&db, &channels).await;
        let a = open_incident(&crashed, "checkout", T).await;

        // Replica A claims the entry and dies before sending it.
        let claimed = crashed
            .claim_due(&channels.list(), "replica-a/1", T, T + 60, T - 86_400, 5)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);

        // Replica B passes over it while the lease lasts...
        for now in [T, T + 1, T + 59] {
            let report = deliver_due(&survivor, &notifier, &settings, "replica-b/1", now)
                .await
                .unwrap();
            assert_eq!(report.claimed, 0, "at T+{}", now - T);
        }
        assert!(receiver.requests().is_empty());
        // ...and delivers it once the lease is over.
        let report = deliver_due(&survivor, &notifier, &settings, "replica-b/1", T + 60)
            .await
            .unwrap();
        assert_eq!(report.delivered, 1, "{report:?}");
        assert_eq!(incidents_in(&receiver.to("/hooks")), [a]);

        // Had A only stalled, its late bookkeeping changes nothing: the claim is gone.
        let late = crashed
            .settle_delivery(
                &claimed[0],
                "replica-a/1",
                &Settlement::Failed {
                    error: "late".into(),
                    retry_at: T + 61,
                },
                "late",
                T + 61,
            )
            .await
            .unwrap();
        assert!(!late);
        let d = &survivor.deliveries(a).await.unwrap()[0];
        assert_eq!(
            (d.state, d.attempts, d.claimed_by.as_deref()),
            (DeliveryState::Delivered, 1, None)
        );
        assert!(kinds(&timeline(&survivor, a).await, "notification_failed").is_empty());

        // A replica restarted under the same name takes its dead incarnation's claims back at
        // once instead of waiting for the lease.
        let first = instance("replica-a", 1);
        crashed.heartbeat(&first, T + 100).await.unwrap();
        let b = open_incident(&crashed, "search", T + 100).await;
        let claimed = crashed
            .claim_due(&channels.list(), &first.id, T + 100, T + 160, 0, 5)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        let restarted = instance("replica-a", 2);
        survivor.heartbeat(&restarted, T + 101).await.unwrap();
        bind_channels(&survivor, &channels.list(), &restarted, T + 101)
            .await
            .unwrap();
        let report = deliver_due(&survivor, &notifier, &settings, &restarted.id, T + 101)
            .await
            .unwrap();
        assert_eq!(report.delivered, 1, "{report:?}");
        assert_eq!(incidents_in(&receiver.to("/hooks")), [a, b]);
        crashed.close().await;
        survivor.close().await;
    }
}

#[tokio::test]
async fn a_resolution_waits_for_its_opening_on_the_same_channel() {
    for db in TestDb::both().await {
        let receiver = Receiver::start().await;
        receiver.answer_with(500);
        let channels = Channels {
            webhook: webhook(&receiver, "/hooks"),
            ..Channels::default()
        };
        let settings = DeliverySettings::default();
        let (store, notifier) = process(&db, &channels).await;
        open_incident(&store, "checkout", T).await;
        resolve_incident(&store, "checkout", T + 1000).await;

        // `opened` fails; `resolved` is due too, but waits behind it.
        let report = deliver_due(&store, &notifier, &settings, "a/1", T + 1000)
            .await
            .unwrap();
        assert_eq!((report.claimed, report.failed), (1, 1), "{report:?}");
        let report = deliver_due(&store, &notifier, &settings, "a/1", T + 1000)
            .await
            .unwrap();
        assert_eq!(report.claimed, 0, "{report:?}");

        receiver.answer_with(200);
        for _ in 0..2 {
            let report = deliver_due(&store, &notifier, &settings, "a/1", T + 1001)
                .await
                .unwrap();
            assert_eq!(report.delivered, 1, "{report:?}");
        }
        let events: Vec<String> = receiver
            .to("/hooks")
            .iter()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["event"].to_string()
            })
            .collect();
        assert_eq!(events, ["\"opened\"", "\"opened\"", "\"resolved\""]);
        store.close().await;
    }
}

#[tokio::test]
async fn deliveries_pending_from_before_channels_were_bound_are_adopted_by_their_channel_name() {
    for db in TestDb::both().await {
        let receiver = Receiver::start().await;
        let channels = Channels {
            webhook: webhook(&receiver, "/hooks"),
            ..Channels::default()
        };
        // An incident whose deliveries an earlier burnguard planned, before channels had
        // fingerprints: one to the webhook, one to PagerDuty, no longer configured.
        let (store, _) = process(&db, &Channels::default()).await;
        let a = open_incident(&store, "checkout", T).await;
        let notifier = HttpNotifier::new(channels.clone()).unwrap();
        let raw = sqlx::AnyPool::connect(db.url()).await.unwrap();
        for channel in ["webhook", "pagerduty"] {
            sqlx::query(
                "INSERT INTO deliveries (outbox_id, channel, attempts, next_attempt_at) \
                 SELECT id, $1, 3, $2 FROM outbox WHERE incident_id = $3",
            )
            .bind(channel)
            .bind(T)
            .bind(a)
            .execute(&raw)
            .await
            .unwrap();
        }
        raw.close().await;
        let stopped = bind_channels(&store, &channels.list(), &instance("a", 1), T + 1)
            .await
            .unwrap();
        let stopped: Vec<&str> = stopped.iter().map(|d| d.channel.as_str()).collect();
        assert_eq!(stopped, ["pagerduty"]);
        let report = deliver_due(
            &store,
            &notifier,
            &DeliverySettings::default(),
            "a/1",
            T + 1,
        )
        .await
        .unwrap();
        assert_eq!(report.delivered, 1, "{report:?}");
        assert_eq!(incidents_in(&receiver.to("/hooks")), [a]);
        let webhook = &store.deliveries(a).await.unwrap()[0];
        assert_eq!(
            (webhook.state, webhook.attempts, webhook.target.clone()),
            (
                DeliveryState::Delivered,
                4,
                Some(channels.list()[0].target.clone())
            )
        );
        store.close().await;
    }
}
