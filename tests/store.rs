//! The store against REAL SQLite (a temp file) and the REAL PostgreSQL, every test on both,
//! each in a fresh database: migrations, the incident lifecycle as persisted, listing and
//! showing, two writers racing on one SLO, and retention.

mod common;

use std::sync::Arc;

use burnguard::adapters::store::SqlStore;
use burnguard::domain::incident::{self, Decision, IncidentStatus, Observation};
use burnguard::domain::policy::Severity;
use burnguard::ports::{EvaluationRecord, IncidentFilter, Operations, Store, StoreError};
use common::db::TestDb;

const RESOLVE_AFTER: u64 = 900;

fn record<'a>(
    slo: impl Into<std::borrow::Cow<'a, str>>,
    at: i64,
    status: &'a str,
) -> EvaluationRecord<'a> {
    let slo = slo.into();
    EvaluationRecord {
        snapshot: serde_json::json!({"name": slo, "status": status, "at": at}).to_string(),
        slo,
        service: "checkout".into(),
        evaluated_at: at,
        status: status.into(),
        error_budget_remaining: Some(0.5),
    }
}

fn firing(severity: Severity, burn_rate: f64) -> Observation {
    Observation::Firing {
        severity,
        burn_rate,
        budget_remaining: Some(0.5),
    }
}

fn quiet() -> Observation {
    Observation::Quiet {
        budget_remaining: Some(0.4),
    }
}

/// Records one observation of `slo` at `at`, through the domain's lifecycle rule.
async fn observe(store: &SqlStore, slo: &str, at: i64, seen: Observation) -> Decision {
    let status = match &seen {
        Observation::Firing { severity, .. } => severity.as_str(),
        Observation::Quiet { .. } => "ok",
        Observation::NoData => "no_data",
        Observation::Partial => "partial",
        Observation::Failed { .. } => "error",
    };
    store
        .record(&record(slo, at, status), |open| {
            incident::decide(open, &seen, at, RESOLVE_AFTER)
        })
        .await
        .unwrap()
        .decision
}

#[tokio::test]
async fn migrations_apply_once_and_a_newer_database_is_refused() {
    for db in TestDb::both().await {
        let store = SqlStore::open(db.url()).await.unwrap();
        if db.url().starts_with("postgres") {
            // Every kept evaluation updates its SLO's latest state: its pages keep room for
            // the new row versions.
            let roomy = common::db::count(
                db.url(),
                "SELECT COUNT(*) AS n FROM pg_class \
                 WHERE relname = 'latest_evaluations' AND 'fillfactor=50' = ANY(reloptions)",
            )
            .await;
            assert_eq!(roomy, 1);
        }
        // Re-running is a no-op.
        store.migrate().await.unwrap();
        SqlStore::open(db.url()).await.unwrap().close().await;
        // Pretend a newer burnguard migrated this database.
        let raw = sqlx::AnyPool::connect(db.url()).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
             VALUES (9999, 'from the future', CURRENT_TIMESTAMP, TRUE, $1, 0)",
        )
        .bind(vec![0u8; 48])
        .execute(&raw)
        .await
        .unwrap();
        raw.close().await;
        store.close().await;
        match SqlStore::open(db.url()).await {
            Err(StoreError::NewerSchema { version }) => assert_eq!(version, 9999),
            other => panic!("{}: expected NewerSchema, got {other:?}", db.url()),
        }
    }
}

/// `serve` starting while `burnguard incidents list` opens the same fresh database is two
/// processes migrating at once. Each pool here is such a process (its own connections, so
/// its own locks). On SQLite, where sqlx takes no migration lock, the loser of a race used
/// to fail with "duplicate column name" and `serve` exited; every opener must come up.
#[tokio::test]
async fn several_processes_migrating_one_fresh_database_at_once_all_come_up() {
    for round in 0..8 {
        for db in TestDb::both().await {
            let openers = (0..6).map(|_| SqlStore::open(db.url()));
            let opened = futures_util::future::join_all(openers).await;
            for (index, store) in opened.into_iter().enumerate() {
                let store = store.unwrap_or_else(|e| {
                    panic!("{} round {round}: opener {index} failed: {e}", db.url())
                });
                store.close().await;
            }
            let applied = common::db::rows(db.url(), "_sqlx_migrations").await;
            let expected = std::fs::read_dir(if db.url().starts_with("sqlite") {
                "migrations/sqlite"
            } else {
                "migrations/postgres"
            })
            .unwrap()
            .count() as i64;
            assert_eq!(
                applied,
                expected,
                "{}: each migration recorded once",
                db.url()
            );
        }
    }
}

#[tokio::test]
async fn the_lifecycle_is_persisted_with_its_timeline() {
    for db in TestDb::both().await {
        let store = SqlStore::open(db.url()).await.unwrap();
        let slo = "checkout-availability";
        // A ticket opens the incident.
        assert!(matches!(
            observe(&store, slo, 1_000, firing(Severity::Ticket, 2.0)).await,
            Decision::Open { .. }
        ));
        // A page escalates it and raises the peak.
        assert!(matches!(
            observe(&store, slo, 1_030, firing(Severity::Page, 20.0)).await,
            Decision::Escalate { .. }
        ));
        // Data goes missing: noted once, nothing else changes.
        assert!(matches!(
            observe(&store, slo, 1_060, Observation::NoData).await,
            Decision::DataMissing { .. }
        ));
        assert_eq!(
            observe(
                &store,
                slo,
                1_090,
                Observation::Failed {
                    reason: "timeout".into()
                }
            )
            .await,
            Decision::Nothing
        );
        // Data back after 60s without it: noted, and the quiet clock starts now.
        assert_eq!(
            observe(&store, slo, 1_120, quiet()).await,
            Decision::DataBack { missing_for: 60 }
        );
        assert!(matches!(
            observe(&store, slo, 1_150, firing(Severity::Ticket, 3.0)).await,
            Decision::StillFiring { .. }
        ));
        assert_eq!(
            observe(&store, slo, 1_150 + 899, quiet()).await,
            Decision::Nothing
        );
        // Quiet for resolveAfter: resolved.
        assert!(matches!(
            observe(&store, slo, 1_150 + 900, quiet()).await,
            Decision::Resolve { .. }
        ));
        // The next burn is a new incident.
        assert!(matches!(
            observe(&store, slo, 5_000, firing(Severity::Page, 15.0)).await,
            Decision::Open { .. }
        ));

        let all = store
            .list_incidents(&IncidentFilter::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 2, "{}", db.url());
        let (newest, first) = (&all[0], &all[1]);
        assert_eq!(newest.status, "open");
        assert_eq!(first.status, "resolved");
        assert_eq!(first.severity, "page");
        assert_eq!(first.opened_at, 1_000);
        assert_eq!(first.resolved_at, Some(2_050));
        assert_eq!(first.peak_burn_rate, 20.0);
        assert_eq!(first.budget_remaining_at_open, Some(0.5));
        assert_eq!(first.budget_remaining_at_resolve, Some(0.4));

        let open_only = store
            .list_incidents(&IncidentFilter {
                status: Some(IncidentStatus::Open),
                ..IncidentFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(
            open_only.iter().map(|i| i.id).collect::<Vec<_>>(),
            vec![newest.id]
        );
        let other_slo = store
            .list_incidents(&IncidentFilter {
                slo: Some("nope".into()),
                ..IncidentFilter::default()
            })
            .await
            .unwrap();
        assert!(other_slo.is_empty());

        let detail = store.incident(first.id).await.unwrap().unwrap();
        let kinds: Vec<&str> = detail.timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "opened",
                "escalated",
                "data_missing",
                "data_back",
                "resolved"
            ],
            "{}",
            db.url()
        );
        // Each change carries the evaluation that caused it.
        assert_eq!(detail.timeline[1].detail.as_ref().unwrap()["at"], 1_030);
        assert!(detail.actions.is_empty());
        assert!(store.incident(987_654).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn two_writers_racing_on_one_slo_keep_exactly_one_open_incident() {
    for db in TestDb::both().await {
        // Two stores with their own pools: two replicas sharing one database.
        let a = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let b = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let mut tasks = Vec::new();
        for (k, store) in [a.clone(), b.clone()].into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                for cycle in 0..25 {
                    let at = 10_000 + cycle * 30 + k as i64;
                    observe(
                        &store,
                        "contended",
                        at,
                        firing(Severity::Page, 10.0 + cycle as f64),
                    )
                    .await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let open = a
            .list_incidents(&IncidentFilter {
                slo: Some("contended".into()),
                ..IncidentFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(open.len(), 1, "{}: {open:?}", db.url());
        let detail = a.incident(open[0].id).await.unwrap().unwrap();
        let opened = detail
            .timeline
            .iter()
            .filter(|e| e.kind == "opened")
            .count();
        assert_eq!(opened, 1, "{}", db.url());
        assert_eq!(open[0].peak_burn_rate, 34.0);
    }
}

/// Each latest state as (SLO, when, the `at` its snapshot carries).
fn states(latest: &[burnguard::ports::EvaluationPoint]) -> Vec<(&str, i64, Option<i64>)> {
    latest
        .iter()
        .map(|p| (p.slo.as_str(), p.evaluated_at, p.snapshot["at"].as_i64()))
        .collect()
}

#[tokio::test]
async fn evaluation_history_is_pruned_by_age() {
    for db in TestDb::both().await {
        let store = SqlStore::open(db.url()).await.unwrap();
        for at in [100, 200, 300] {
            observe(&store, "s", at, quiet()).await;
        }
        // An SLO last evaluated before the cut (one no replica evaluates any more, or one
        // whose history is kept at a coarse resolution): its newest row is its latest state.
        observe(&store, "stale", 100, quiet()).await;
        assert_eq!(store.prune_evaluations(250).await.unwrap(), 2);
        assert_eq!(store.prune_evaluations(250).await.unwrap(), 0);
        let latest = store.latest_evaluations().await.unwrap();
        assert_eq!(
            states(&latest),
            vec![("s", 300, Some(300)), ("stale", 100, Some(100))],
            "{}",
            db.url()
        );
    }
}

/// A database written before the latest state became a reference to its history row:
/// every SLO's latest state survives the migration, including one whose history row had
/// already been pruned (it becomes a history row again).
#[tokio::test]
async fn latest_states_written_before_they_pointed_at_the_history_survive_the_migration() {
    sqlx::any::install_default_drivers();
    for db in TestDb::both().await {
        let (dir, url) = match db.url().strip_prefix("sqlite://") {
            Some(_) => ("migrations/sqlite", format!("{}?mode=rwc", db.url())),
            None => ("migrations/postgres", db.url().to_string()),
        };
        let raw = sqlx::AnyPool::connect(&url).await.unwrap();
        let migrator = sqlx::migrate::Migrator::new(std::path::Path::new(dir))
            .await
            .unwrap();
        migrator.run_to(4, &raw).await.unwrap();
        for (slo, at, history) in [("kept", 200, true), ("pruned", 100, false)] {
            let snapshot = serde_json::json!({"name": slo, "at": at}).to_string();
            // An older row, then the one the latest state copies.
            let rows = [(at - 60, "{}"), (at, snapshot.as_str())];
            for (when, text) in rows.into_iter().filter(|_| history) {
                sqlx::query(
                    "INSERT INTO evaluations (slo, service, evaluated_at, status, error_budget_remaining, snapshot) \
                     VALUES ($1, 'checkout', $2, 'ok', 0.25, $3)",
                )
                .bind(slo)
                .bind(when)
                .bind(text)
                .execute(&raw)
                .await
                .unwrap();
            }
            sqlx::query(
                "INSERT INTO latest_evaluations (slo, service, evaluated_at, status, snapshot) \
                 VALUES ($1, 'checkout', $2, 'ok', $3)",
            )
            .bind(slo)
            .bind(at)
            .bind(&snapshot)
            .execute(&raw)
            .await
            .unwrap();
        }
        raw.close().await;

        let store = SqlStore::open(db.url()).await.unwrap();
        let latest = store.latest_evaluations().await.unwrap();
        assert_eq!(
            states(&latest),
            vec![("kept", 200, Some(200)), ("pruned", 100, Some(100))],
            "{}",
            db.url()
        );
        assert_eq!(latest[0].error_budget_remaining, Some(0.25));
        let history = store
            .evaluation_history("pruned", 0, 1000, 10)
            .await
            .unwrap();
        assert_eq!(history.len(), 1, "{}: {history:?}", db.url());
        assert_eq!(common::db::rows(db.url(), "evaluations").await, 3);
        // The next evaluation moves each latest state on.
        observe(&store, "pruned", 400, quiet()).await;
        let latest = store.latest_evaluations().await.unwrap();
        assert_eq!(latest[1].evaluated_at, 400, "{}: {latest:?}", db.url());
        assert_eq!(latest[1].error_budget_remaining, Some(0.5));
        store.close().await;
    }
}

#[tokio::test]
async fn a_bad_url_is_a_clear_error_without_the_password() {
    let error = SqlStore::open("mysql://root:hunter2@localhost/x")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("sqlite://FILE or postgres://"),
        "{error}"
    );
    let error = SqlStore::open("postgres://bg:hunter2@127.0.0.1:1/x")
        .await
        .unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

/// Records one cycle of `(slo, observation)` as one batch, through the lifecycle rule.
async fn observe_batch(store: &SqlStore, at: i64, seen: &[(&str, Observation)]) -> Vec<Decision> {
    let records: Vec<EvaluationRecord> = seen
        .iter()
        .map(|(slo, o)| {
            let status = match o {
                Observation::Firing { severity, .. } => severity.as_str(),
                _ => "ok",
            };
            record(*slo, at, status)
        })
        .collect();
    store
        .record_batch(
            &records,
            &vec![true; records.len()],
            |i, open| incident::decide(open, &seen[i].1, at, RESOLVE_AFTER),
            |i| records[i].snapshot.clone(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.decision)
        .collect()
}

async fn unresolved(store: &SqlStore, slo: &str) -> Vec<burnguard::ports::IncidentRecord> {
    store
        .list_incidents(&IncidentFilter {
            slo: Some(slo.into()),
            ..IncidentFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.status != "resolved")
        .collect()
}

#[tokio::test]
async fn a_cycle_recorded_as_one_batch_opens_escalates_goes_on_firing_and_resolves_per_slo() {
    for db in TestDb::both().await {
        let store = SqlStore::open(db.url()).await.unwrap();
        let t0 = 50_000;
        let first = observe_batch(
            &store,
            t0,
            &[
                ("a", firing(Severity::Page, 20.0)),
                ("b", quiet()),
                ("c", firing(Severity::Ticket, 4.0)),
            ],
        )
        .await;
        assert!(matches!(first[0], Decision::Open { .. }), "{first:?}");
        assert_eq!(first[1], Decision::Nothing);
        assert!(matches!(first[2], Decision::Open { .. }), "{first:?}");
        // Next cycle: a burns harder (one shared update), c escalates, b stays quiet.
        let t1 = t0 + 60;
        let second = observe_batch(
            &store,
            t1,
            &[
                ("a", firing(Severity::Page, 30.0)),
                ("b", quiet()),
                ("c", firing(Severity::Page, 15.0)),
            ],
        )
        .await;
        assert!(
            matches!(second[0], Decision::StillFiring { .. }),
            "{second:?}"
        );
        assert!(matches!(second[2], Decision::Escalate { .. }), "{second:?}");
        let a = unresolved(&store, "a").await;
        assert_eq!(a.len(), 1, "{}", db.url());
        assert_eq!(a[0].peak_burn_rate, 30.0);
        let detail = store.incident(a[0].id).await.unwrap().unwrap();
        assert_eq!(detail.incident.last_firing_at, t1, "{}", db.url());
        let c = unresolved(&store, "c").await;
        assert_eq!((c.len(), c[0].severity.as_str()), (1, "page"));
        assert!(unresolved(&store, "b").await.is_empty());
        // Quiet for longer than resolve_after: both resolve, in one batch.
        let t2 = t1 + RESOLVE_AFTER as i64 + 60;
        observe_batch(&store, t1 + 30, &[("a", quiet()), ("c", quiet())]).await;
        let third = observe_batch(&store, t2, &[("a", quiet()), ("c", quiet())]).await;
        assert!(
            third.iter().all(|d| matches!(d, Decision::Resolve { .. })),
            "{third:?}"
        );
        // Every evaluation is in the history, each SLO's latest is the last.
        assert_eq!(common::db::rows(db.url(), "evaluations").await, 10);
        assert_eq!(common::db::rows(db.url(), "latest_evaluations").await, 3);
        let latest = store.latest_evaluations().await.unwrap();
        let at_t2 = latest.iter().filter(|l| l.evaluated_at == t2).count();
        assert_eq!(at_t2, 2, "a and c's latest is the last cycle: {latest:?}");
    }
}

#[tokio::test]
async fn two_replicas_recording_the_same_cycles_as_batches_keep_one_incident_per_slo() {
    for db in TestDb::both().await {
        let a = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let b = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let slos: Vec<String> = (0..40).map(|i| format!("slo-{i}")).collect();
        let mut tasks = Vec::new();
        for (k, store) in [a.clone(), b.clone()].into_iter().enumerate() {
            let slos = slos.clone();
            tasks.push(tokio::spawn(async move {
                for cycle in 0..10 {
                    let at = 10_000 + cycle * 30 + k as i64;
                    // The two replicas list the SLOs in opposite orders.
                    let mut seen: Vec<(&str, Observation)> = slos
                        .iter()
                        .map(|s| (s.as_str(), firing(Severity::Page, 10.0 + cycle as f64)))
                        .collect();
                    if k == 1 {
                        seen.reverse();
                    }
                    observe_batch(&store, at, &seen).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for slo in &slos {
            let open = unresolved(&a, slo).await;
            assert_eq!(open.len(), 1, "{}: {slo}: {open:?}", db.url());
            assert_eq!(open[0].peak_burn_rate, 19.0, "{slo}");
            let detail = a.incident(open[0].id).await.unwrap().unwrap();
            let opened = detail
                .timeline
                .iter()
                .filter(|e| e.kind == "opened")
                .count();
            assert_eq!(opened, 1, "{}: {slo}", db.url());
        }
        // Each SLO's latest state is the last row either replica wrote for it.
        assert_eq!(common::db::rows(db.url(), "latest_evaluations").await, 40);
        assert_eq!(
            common::db::stale_latest_states(db.url()).await,
            0,
            "{}",
            db.url()
        );
    }
}

#[tokio::test]
async fn a_batch_stores_what_is_kept_and_every_change_of_incident_and_serializes_nothing_else() {
    for db in TestDb::both().await {
        let store = SqlStore::open(db.url()).await.unwrap();
        let asked = std::sync::atomic::AtomicUsize::new(0);
        // The caller serializes only what it keeps; the store asks for the rest it writes.
        let batch =
            |at: i64, statuses: &dyn Fn(usize) -> &'static str, kept: &dyn Fn(usize) -> bool| {
                (0..300)
                    .map(|i| {
                        let mut r = record(format!("slo-{i}"), at, statuses(i));
                        if !kept(i) {
                            r.snapshot = String::new();
                        }
                        r
                    })
                    .collect::<Vec<EvaluationRecord>>()
            };
        let snapshot_of = |records: &[EvaluationRecord], i: usize| {
            asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let r = &records[i];
            serde_json::json!({"name": r.slo, "status": r.status, "at": r.evaluated_at}).to_string()
        };

        // Cycle 1: every third SLO pages (kept: a change of status); the rest are quiet and
        // not kept.
        let at = 70_000;
        let paging = |i: usize| i.is_multiple_of(3);
        let records = batch(at, &|i| if paging(i) { "page" } else { "ok" }, &paging);
        let kept: Vec<bool> = (0..300).map(paging).collect();
        let decisions = store
            .record_batch(
                &records,
                &kept,
                |i, open| {
                    let seen = if paging(i) {
                        firing(Severity::Page, 20.0)
                    } else {
                        quiet()
                    };
                    incident::decide(open, &seen, at, RESOLVE_AFTER)
                },
                |i| snapshot_of(&records, i),
            )
            .await
            .unwrap();
        let opened = decisions
            .iter()
            .filter(|t| matches!(t.decision, Decision::Open { .. }))
            .count();
        assert_eq!(opened, 100, "{}", db.url());
        assert_eq!(common::db::rows(db.url(), "evaluations").await, 100);
        assert_eq!(common::db::rows(db.url(), "latest_evaluations").await, 100);
        assert_eq!(
            asked.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "nothing else was serialized"
        );
        assert!(
            store
                .evaluation_history("slo-4", at, at, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Cycle 2, long after: all quiet, nothing kept. The 100 incidents resolve, so those
        // evaluations are stored after all, with the snapshots the store asked for.
        let later = at + RESOLVE_AFTER as i64 + 60;
        let records = batch(later, &|_| "ok", &|_| false);
        let decisions = store
            .record_batch(
                &records,
                &vec![false; 300],
                |_, open| incident::decide(open, &quiet(), later, RESOLVE_AFTER),
                |i| snapshot_of(&records, i),
            )
            .await
            .unwrap();
        let resolved = decisions
            .iter()
            .filter(|t| matches!(t.decision, Decision::Resolve { .. }))
            .count();
        assert_eq!(resolved, 100, "{}", db.url());
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 100);
        assert_eq!(common::db::rows(db.url(), "evaluations").await, 200);
        let history = store
            .evaluation_history("slo-3", at, later, 10)
            .await
            .unwrap();
        assert_eq!(
            history
                .iter()
                .map(|p| (p.evaluated_at, p.status.as_str()))
                .collect::<Vec<_>>(),
            vec![(at, "page"), (later, "ok")]
        );
        assert_eq!(history[1].snapshot["at"], later, "{:?}", history[1]);
        assert!(
            store
                .evaluation_history("slo-4", at, later, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let latest = store.latest_evaluations().await.unwrap();
        assert_eq!(latest.len(), 100);
        assert!(
            latest
                .iter()
                .all(|p| p.evaluated_at == later && p.status == "ok"),
            "{latest:?}"
        );
    }
}

#[tokio::test]
async fn a_batch_finds_the_incidents_of_its_keys_in_byte_order_whatever_the_collation() {
    // Upper case before lower case, `{` after letters: byte order, not a locale's.
    let keys = [
        "Zeta",
        "a-x",
        "B{route=\"/x\"}",
        "checkout{route=\"/pay\"}",
        "checkout",
        "ümlaut",
    ];
    for db in TestDb::both().await {
        let store = SqlStore::open(db.url()).await.unwrap();
        let firing_all: Vec<(&str, Observation)> = keys
            .iter()
            .map(|k| (*k, firing(Severity::Page, 20.0)))
            .collect();
        let opened = observe_batch(&store, 1_000, &firing_all).await;
        assert!(
            opened.iter().all(|d| matches!(d, Decision::Open { .. })),
            "{opened:?}"
        );
        // Batches of a few keys each: every one finds its own incident still firing.
        for pair in firing_all.chunks(2) {
            let again = observe_batch(&store, 1_060, pair).await;
            assert!(
                again
                    .iter()
                    .all(|d| matches!(d, Decision::StillFiring { .. })),
                "{}: {pair:?} -> {again:?}",
                db.url()
            );
        }
    }
}

#[tokio::test]
async fn unresolved_keys_of_group_keys_only_leave_out_plain_keys_and_resolved_incidents() {
    for db in TestDb::both().await {
        let store = SqlStore::open(db.url()).await.unwrap();
        let page = || firing(Severity::Page, 20.0);
        let grouped = r#"checkout{route="/pay"}"#;
        observe_batch(
            &store,
            100,
            &[("checkout", page()), (grouped, page()), ("search", page())],
        )
        .await;
        // `search` goes quiet past `RESOLVE_AFTER`: resolved, so no longer listed.
        observe(&store, "search", 100 + RESOLVE_AFTER as i64, quiet()).await;
        let keys = |all: Vec<(i64, String)>| -> Vec<String> {
            all.into_iter().map(|(_, key)| key).collect()
        };
        assert_eq!(
            keys(store.unresolved_keys(false).await.unwrap()),
            ["checkout", grouped],
            "{}",
            db.url()
        );
        assert_eq!(
            keys(store.unresolved_keys(true).await.unwrap()),
            [grouped],
            "{}",
            db.url()
        );
        let ids: Vec<i64> = store
            .unresolved_keys(false)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            let listed = store.incident(id).await.unwrap().expect("the incident");
            assert_ne!(listed.incident.status, "resolved");
        }
    }
}

/// Cycles of many sizes, with snapshots of many lengths so that each cycle's multi-row
/// statements are cut differently, store every evaluation once, each with its own values, on
/// both backends.
#[tokio::test]
async fn cycles_of_every_size_and_shape_store_each_evaluation_once_with_its_own_values() {
    for db in TestDb::both().await {
        let store = SqlStore::open(db.url()).await.unwrap();
        let mut written = 0;
        for (cycle, n) in [1usize, 3, 7, 8, 9, 17, 33, 64, 65, 100, 5, 2]
            .into_iter()
            .enumerate()
        {
            let at = 80_000 + 60 * cycle as i64;
            let records: Vec<EvaluationRecord> = (0..n)
                .map(|i| {
                    let mut r = record(format!("slo-{i:03}"), at, "ok");
                    r.error_budget_remaining = Some((i * 7 + cycle) as f64 / 1_000.0);
                    // 0 to about 2 KiB of padding, differing per SLO and per cycle.
                    let padding = "x".repeat((i * 131 + cycle * 977) % 2_048);
                    r.snapshot =
                        serde_json::json!({"slo": r.slo, "at": at, "padding": padding}).to_string();
                    r
                })
                .collect();
            let kept = vec![true; n];
            store
                .record_batch(
                    &records,
                    &kept,
                    |_, open| incident::decide(open, &quiet(), at, RESOLVE_AFTER),
                    |_| unreachable!("every snapshot was given"),
                )
                .await
                .unwrap();
            written += n;
            assert_eq!(
                common::db::rows(db.url(), "evaluations").await,
                written as i64,
                "{} cycle {cycle}",
                db.url()
            );
            for r in &records {
                let history = store.evaluation_history(&r.slo, at, at, 10).await.unwrap();
                assert_eq!(history.len(), 1, "{} {} cycle {cycle}", db.url(), r.slo);
                let stored = &history[0];
                assert_eq!(
                    stored.error_budget_remaining, r.error_budget_remaining,
                    "{}",
                    r.slo
                );
                assert_eq!(
                    stored.snapshot,
                    serde_json::from_str::<serde_json::Value>(&r.snapshot).unwrap(),
                    "{} {} cycle {cycle}",
                    db.url(),
                    r.slo
                );
            }
        }
    }
}

/// A replica killed -9 while it holds the turn to record a cycle (PostgreSQL's advisory
/// lock, held here by a real `psql` process that dies inside its transaction) does not stall
/// the others: the server ends the dead session, the lock goes with it, and the next
/// replica's cycle is recorded.
#[tokio::test]
async fn a_replica_killed_while_it_holds_the_turn_to_record_does_not_stall_the_others() {
    use std::io::Write as _;
    let db = TestDb::postgres().await;
    let store = SqlStore::open(db.url()).await.unwrap();
    let mut holder = std::process::Command::new(common::tool("psql"))
        .args([db.url(), "-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut input = holder.stdin.take().unwrap();
    input
        .write_all(b"BEGIN;\nSELECT pg_advisory_xact_lock(7163002);\n")
        .unwrap();
    input.flush().unwrap();
    // The lock is held once the server lists it as granted.
    let raw = sqlx::AnyPool::connect(db.url()).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let held: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 7163002 AND granted",
        )
        .fetch_one(&raw)
        .await
        .unwrap();
        if held == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "psql never took the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    drop(input);

    let decisions =
        observe_batch(&store, 1_000, &[("checkout", firing(Severity::Page, 20.0))]).await;
    assert!(
        matches!(decisions[0], Decision::Open { .. }),
        "{decisions:?}"
    );
    assert_eq!(unresolved(&store, "checkout").await.len(), 1);
    raw.close().await;
    store.close().await;
}

/// The store's PostgreSQL connections send without Nagle's delay (`TCP_NODELAY`), as libpq's
/// do. Without it, a statement larger than one TLS record (16 KiB) goes out in two writes and
/// the second waits for the server's delayed ACK, about 40 ms per statement; sqlx 0.9.0 had
/// dropped the option (sqlx#4335), and 0.9.1 sets it again. Read off the process's own sockets
/// to the server, after a batch has gone over them.
#[tokio::test]
async fn the_connections_to_postgres_send_without_waiting_for_acknowledgements() {
    let db = TestDb::postgres().await;
    let store = SqlStore::open(db.url()).await.unwrap();
    observe_batch(&store, 1_000, &[("checkout", firing(Severity::Page, 20.0))]).await;
    let port: u16 = db
        .url()
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("the test database's URL names a port");
    let sockets = tcp_sockets_to(port);
    assert!(
        !sockets.is_empty(),
        "no TCP socket of this process to port {port}"
    );
    for (fd, nodelay) in &sockets {
        assert!(
            *nodelay,
            "socket fd {fd} to port {port} waits for ACKs (Nagle)"
        );
    }
    store.close().await;
}

/// This process's TCP sockets connected to `port` on any address, each with whether it has
/// `TCP_NODELAY`: the socket inodes from `/proc/self/net/tcp{,6}`, the descriptors from
/// `/proc/self/fd`.
fn tcp_sockets_to(port: u16) -> Vec<(i32, bool)> {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // `rem_address` is `ADDR:PORT` in hex; field 9 is the inode.
            let remote_port = fields
                .get(2)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port) {
                inodes.insert(fields[9].to_string());
            }
        }
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.display().to_string();
        let inode = target
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'));
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if inode.is_some_and(|i| inodes.contains(i)) {
            let mut value: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: `value` and `len` are valid for writes of a c_int. A descriptor another
            // test closed meanwhile makes the call fail (EBADF, ENOTSOCK): it is left out.
            let done = unsafe {
                libc::getsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&mut value as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            if done == 0 {
                found.push((fd, value != 0));
            }
        }
    }
    found
}

/// A 10,000-SLO cycle recorded with every evaluation kept (two batches, every record borrowing
/// its key, service and status from its evaluation): each SLO's stored latest state is its own
/// row, under its own key (a tenth of them grouped, so their keys are made for the record),
/// with its own status, budget and snapshot, and exactly the paging SLOs open incidents.
#[tokio::test]
async fn a_ten_thousand_slo_cycle_stores_each_evaluation_under_its_own_key_with_its_own_values() {
    use burnguard::engine::record::{HistoryCadence, record_cycle};
    const N: usize = 10_000;
    let slos = common::fleet::slos(N);
    let at = 1_765_000_000;
    let mut cycle = common::fleet::evaluation(&slos, at);
    // Each SLO's own budget; every tenth (offset from the paging ones) grouped by route.
    let budget = |i: usize| i as f64 / 10_007.0 - 0.25;
    let grouped = |i: usize| i % 10 == 3;
    for (i, e) in cycle.slos.iter_mut().enumerate() {
        let e = Arc::make_mut(e);
        e.error_budget_remaining = Some(budget(i));
        if grouped(i) {
            e.group.insert("route".into(), format!("/r{i}"));
        }
    }
    let key = |i: usize| match grouped(i) {
        true => format!("slo-{i}{{route=\"/r{i}\"}}"),
        false => format!("slo-{i}"),
    };
    for db in TestDb::both().await {
        let store = SqlStore::open(db.url()).await.unwrap();
        let mut history = HistoryCadence::new(std::time::Duration::ZERO);
        let recorded = record_cycle(&store, &slos, &cycle, &mut history).await;
        assert_eq!(
            (recorded.opened, recorded.failed),
            (N / 10, 0),
            "{}",
            db.url()
        );
        assert_eq!(common::db::rows(db.url(), "evaluations").await, N as i64);

        let latest: std::collections::HashMap<String, burnguard::ports::EvaluationPoint> = store
            .latest_evaluations()
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.slo.clone(), p))
            .collect();
        assert_eq!(latest.len(), N, "{}", db.url());
        for i in 0..N {
            let point = &latest[&key(i)];
            let status = if i % 10 == 0 { "page" } else { "ok" };
            assert_eq!(point.status, status, "{} {}", db.url(), key(i));
            assert_eq!(point.evaluated_at, at);
            assert_eq!(point.error_budget_remaining, Some(budget(i)), "{}", key(i));
            assert_eq!(point.snapshot["name"], format!("slo-{i}"), "{}", key(i));
            assert_eq!(
                point.snapshot["service"],
                format!("svc-{}", i % 50),
                "{}",
                key(i)
            );
        }
        let mut open: Vec<String> = store
            .unresolved_incidents()
            .await
            .unwrap()
            .into_iter()
            .map(|incident| incident.slo)
            .collect();
        open.sort();
        let mut paging: Vec<String> = (0..N).filter(|i| i % 10 == 0).map(key).collect();
        paging.sort();
        assert_eq!(open, paging, "{}", db.url());
    }
}
