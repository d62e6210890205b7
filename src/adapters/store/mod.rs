//! The store: SQLite (embedded default) or PostgreSQL, chosen by URL, through sqlx.
//!
//! One implementation over sqlx's `Any` driver serves both: the SQL is portable (numbered
//! parameters, `RETURNING`, `ON CONFLICT`, partial unique indexes) except where a backend needs
//! its own words, which [`Backend`] spells out (row locks, how a write transaction begins,
//! the anonymous SQLite parameters of a cycle's large statements).
//! Each backend has its own migrations (`migrations/sqlite`, `migrations/postgres`), embedded at
//! build time and applied at start; a database migrated by a newer burnguard is refused.
//! An SLO's stored latest state is the id of its newest history row, not a copy of it.
//!
//! Owns: SQL, transactions, row mapping. Must not touch: the lifecycle rules (it applies the
//! `Decision` the domain returns, inside the transaction that read the incident).

use std::fmt::Write as _;
use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::domain::incident::{Decision, IncidentStatus, OpenIncident};
use crate::domain::policy::Severity;
use crate::ports::{
    ActionRecord, Channel, EvaluationRecord, IncidentDetail, IncidentFilter, IncidentRecord, Store,
    StoreError, TimelineEvent, Transitioned, UnixSeconds,
};

mod counts;
mod operations;
mod outbox;
mod remediation;
mod webhooks;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The database behind a [`SqlStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Serializes guarded starts across replicas inside a transaction (PostgreSQL's
    /// transaction-scoped advisory lock); SQLite's IMMEDIATE transactions need none.
    fn guard_lock(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("SELECT pg_advisory_xact_lock(7163001)"),
        }
    }

    /// The `n`th parameter of a statement whose parameters appear in the order they are
    /// bound. SQLite's are anonymous (`?`): looking up a numbered one by its number walks
    /// every parameter before it, so binding a statement of thousands of `$N`s cost time
    /// square in their number (`sqlite3_bind_parameter_name`, in the profile of
    /// docs/benchmarks.md, "seventh pass").
    fn placeholder(self, n: usize) -> String {
        match self {
            Backend::Sqlite => "?".to_string(),
            Backend::Postgres => format!("${n}"),
        }
    }

    /// `(p1, p2, ...), (...)`: `rows` rows of `columns` parameters, numbered from `first`,
    /// for a statement whose parameters appear in the order they are bound.
    fn values_list(self, rows: usize, columns: usize, first: usize) -> String {
        let mut out = String::with_capacity(rows * columns * 6);
        for r in 0..rows {
            out.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..columns {
                if c > 0 {
                    out.push_str(", ");
                }
                match self {
                    Backend::Sqlite => out.push('?'),
                    Backend::Postgres => {
                        let _ = write!(out, "${}", first + r * columns + c);
                    }
                }
            }
            out.push(')');
        }
        out
    }

    /// Locks the incident row read inside a transaction. SQLite needs none: its write
    /// transactions begin IMMEDIATE and so already exclude every other writer.
    fn lock_clause(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Compares text byte by byte, as Rust orders `String`s (SQLite's default; PostgreSQL's
    /// database collation may order otherwise).
    fn byte_order(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " COLLATE \"C\"",
        }
    }

    /// Locks the due deliveries a claim reads and passes over those another replica is
    /// claiming at that moment. SQLite needs none (IMMEDIATE: one writer at a time).
    fn claim_clause(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE OF d SKIP LOCKED",
        }
    }
}

/// Bytes of values per multi-row statement of a cycle's records. Fewer, larger
/// statements mean fewer hand-overs to SQLite's worker thread and fewer round trips to
/// PostgreSQL. Measured with `benches/store.rs` (10,000 evaluations of about 1 KiB, every
/// one kept): 24 KiB and 500 rows, SQLite 227 to 245 ms, PostgreSQL 558 to 581 ms; 1 MiB
/// and 2,000 rows, 176 to 210 ms and 329 to 406 ms; 2 MiB and 3,000 rows no better
/// (docs/benchmarks.md, "seventh pass"). Large statements need anonymous SQLite
/// parameters ([`Backend::placeholder`]) and, on PostgreSQL, `TCP_NODELAY` (sqlx 0.9.1).
const CYCLE_STATEMENT_BYTES: usize = 1 << 20;

/// Rows per multi-row statement of a cycle's records: at most six values each, 12,000
/// parameters, inside SQLite's 32,766 and PostgreSQL's 65,535 per statement.
const CYCLE_STATEMENT_ROWS: usize = 2_000;

/// Ends an insert of `(slo, evaluation_id)` rows into `latest_evaluations`: a latest state
/// only moves to a newer history row (ids grow with each write).
const POINT_LATEST_STATE: &str = "ON CONFLICT (slo) DO UPDATE SET evaluation_id = excluded.evaluation_id \
     WHERE latest_evaluations.evaluation_id < excluded.evaluation_id";

/// SQLite or PostgreSQL behind the [`Store`] port.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// The notification channels this process has: every outbox entry it writes gets one
    /// delivery per channel, in the transaction that writes the entry.
    notify_channels: Arc<[Channel]>,
}

pub(crate) fn db_error(error: sqlx::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    crate::redact::credentials(url)
}

impl SqlStore {
    /// Connects and applies migrations. `sqlite://FILE` creates the file if missing and runs
    /// in WAL mode with foreign keys on; `postgres://...` must point at an existing database.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let connect_error = |reason: String| StoreError::Connect {
            url: redact(url),
            reason,
        };
        let backend = Backend::of(url).ok_or_else(|| {
            connect_error("expected a sqlite://FILE or postgres://... URL".into())
        })?;
        let (url, max_connections) = match backend {
            Backend::Sqlite => {
                let with_mode = if url.contains("mode=") {
                    url.to_string()
                } else if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                };
                (with_mode, 4)
            }
            Backend::Postgres => (url.to_string(), 8),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 10000",
                            "PRAGMA synchronous = NORMAL",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        Ok(Self {
            pool,
            backend,
            notify_channels: Arc::from([]),
        })
    }

    /// The store, binding every outbox entry it writes from now on to `channels` (the
    /// notification channels configured in this process). Without it entries get no
    /// deliveries: nothing is configured to receive them.
    pub fn with_notify_channels(mut self, channels: Vec<Channel>) -> Self {
        self.notify_channels = channels.into();
        self
    }

    /// The channels outbox entries are bound to.
    pub fn notify_channels(&self) -> &[Channel] {
        &self.notify_channels
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations; re-running is a no-op.
    ///
    /// Several processes may migrate one fresh database at once (`serve` starting while a CLI
    /// command opens the same file, or replicas starting together). PostgreSQL serializes them
    /// with an advisory lock; SQLite has no such lock, but each migration runs in its own
    /// transaction with its bookkeeping row, so the process that loses a race has its attempt
    /// rolled back whole. It then tries again, as long as another process is making progress
    /// (more migrations recorded than before): once they are all recorded there is nothing
    /// left to race on. A failure without such progress is the migration's own and is reported.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        loop {
            let recorded_before = self.recorded_migrations().await;
            let error = match self.backend.migrator().run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(MigrateError::VersionMissing(version)) => {
                    return Err(StoreError::NewerSchema { version });
                }
                Err(other) => other,
            };
            if self.recorded_migrations().await <= recorded_before {
                return Err(StoreError::Migrate(error.to_string()));
            }
            tracing::debug!(%error, "another process migrated this database meanwhile; trying again");
        }
    }

    /// How many migrations the database records as applied; 0 before the first ever ran.
    async fn recorded_migrations(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await
            .unwrap_or(0)
    }

    /// Closes the pool (tests use it before dropping a database).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'_, sqlx::Any>, StoreError> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(db_error)
    }

    /// A transaction that reads incidents and decides on them from what it read. Replicas
    /// recording the same SLOs take turns: SQLite's IMMEDIATE transactions exclude every
    /// other writer, and on PostgreSQL a transaction-scoped advisory lock does the same for
    /// these transactions. Without it two replicas' cycles interleave: each reads no open
    /// incident, both insert one, and the loser's retry could lose again (a deadlock victim
    /// retries before the winner commits), failing its whole cycle.
    async fn begin_incident_decisions(
        &self,
    ) -> Result<sqlx::Transaction<'_, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(7163002)")
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    async fn record_once<F>(
        &self,
        evaluation: &EvaluationRecord<'_>,
        decide: &F,
    ) -> Result<Transitioned, sqlx::Error>
    where
        F: Fn(Option<&OpenIncident>) -> Decision + Send + Sync,
    {
        let mut tx = self.begin_incident_decisions().await?;
        let snapshot = &evaluation.snapshot;
        let at = evaluation.evaluated_at;
        let row: i64 = sqlx::query(
            "INSERT INTO evaluations (slo, service, evaluated_at, status, error_budget_remaining, snapshot) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(evaluation.slo.as_ref())
        .bind(evaluation.service.as_ref())
        .bind(at)
        .bind(evaluation.status.as_ref())
        .bind(evaluation.error_budget_remaining)
        .bind(snapshot)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        self.point_latest_states_at(&mut tx, &[(evaluation.slo.to_string(), row)])
            .await?;

        // Built from constants only; the SLO name is bound.
        let open = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, severity, status, opened_at, last_firing_at, peak_burn_rate, data_missing_since, data_back_at \
             FROM incidents WHERE slo = $1 AND status <> 'resolved'{}",
            self.backend.lock_clause()
        )))
        .bind(evaluation.slo.as_ref())
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| open_incident(&row))
        .transpose()?;

        let decision = decide(open.as_ref());
        let incident_id = self
            .apply_decision(&mut tx, evaluation, snapshot, open.as_ref(), &decision)
            .await?;
        tx.commit().await?;
        Ok(Transitioned {
            decision,
            incident_id,
        })
    }

    async fn record_batch_once<F, S>(
        &self,
        evaluations: &[EvaluationRecord<'_>],
        kept: &[bool],
        decide: &F,
        snapshot: &S,
    ) -> Result<Vec<Transitioned>, sqlx::Error>
    where
        F: Fn(usize, Option<&OpenIncident>) -> Decision + Send + Sync,
        S: Fn(usize) -> String + Send + Sync,
    {
        // An evaluation's snapshot, made now if the caller left it out.
        let text = |i: usize| -> std::borrow::Cow<'_, str> {
            match evaluations[i].snapshot.as_str() {
                "" => std::borrow::Cow::Owned(snapshot(i)),
                given => std::borrow::Cow::Borrowed(given),
            }
        };
        let (Some(first), Some(last)) = (
            evaluations.iter().map(|e| e.slo.as_ref()).min(),
            evaluations.iter().map(|e| e.slo.as_ref()).max(),
        ) else {
            return Ok(Vec::new());
        };
        let mut tx = self.begin_incident_decisions().await?;
        // The unresolved incidents of the batch's key range (`first` to `last`), in one read,
        // locked in id order on PostgreSQL (two replicas recording at once take the locks in
        // the same order). A caller that sorts its evaluations by key makes each batch read
        // only its own.
        let order = self.backend.byte_order();
        let unresolved = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, slo, severity, status, opened_at, last_firing_at, peak_burn_rate, data_missing_since, data_back_at \
             FROM incidents WHERE status <> 'resolved' AND slo{order} >= $1 AND slo{order} <= $2 ORDER BY id{}",
            self.backend.lock_clause()
        )))
        .bind(first)
        .bind(last)
        .fetch_all(&mut *tx)
        .await?;
        let mut open_by_slo: foldhash::HashMap<String, OpenIncident> =
            foldhash::HashMapExt::with_capacity(unresolved.len());
        for row in &unresolved {
            open_by_slo.insert(row.try_get("slo")?, open_incident(row)?);
        }
        let decisions: Vec<Decision> = evaluations
            .iter()
            .enumerate()
            .map(|(i, e)| decide(i, open_by_slo.get(e.slo.as_ref())))
            .collect();

        // The history and the stored latest state: what the caller keeps, and every
        // evaluation that changes its incident (the history shows why it changed). By index:
        // the snapshot of each evaluation stored, `None` for the others.
        let texts: Vec<Option<std::borrow::Cow<'_, str>>> = (0..evaluations.len())
            .map(|i| (kept[i] || changes_incident(&decisions[i])).then(|| text(i)))
            .collect();
        let stored: Vec<usize> = (0..evaluations.len())
            .filter(|&i| texts[i].is_some())
            .collect();
        let stored_text = |i: usize| texts[i].as_deref().unwrap_or_default();
        let weight = |i: &usize| stored_text(*i).len() + evaluations[*i].slo.len() * 2;
        let (bytes, rows) = (CYCLE_STATEMENT_BYTES, CYCLE_STATEMENT_ROWS);
        let mut written: Vec<(String, i64)> = Vec::with_capacity(stored.len());
        for batch in webhooks::batches_within(&stored, weight, bytes, rows) {
            let insert = format!(
                "INSERT INTO evaluations (slo, service, evaluated_at, status, error_budget_remaining, snapshot) \
                 VALUES {} RETURNING slo, id",
                self.backend.values_list(batch.len(), 6, 1)
            );
            // On PostgreSQL the latest states are pointed at the new rows by the same
            // statement, and nothing comes back; SQLite has no INSERT inside WITH, and its
            // round trips stay in the process.
            let sql = match self.backend {
                Backend::Postgres => format!(
                    "WITH written AS ({insert}) INSERT INTO latest_evaluations (slo, evaluation_id) \
                     SELECT slo, id FROM written {POINT_LATEST_STATE}"
                ),
                Backend::Sqlite => insert,
            };
            // Built from constants and placeholders only; every value is bound. Not kept
            // prepared: its size changes with the batch (see `ONE_OFF`).
            let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(ONE_OFF);
            for &i in batch {
                let e = &evaluations[i];
                query = query
                    .bind(e.slo.as_ref())
                    .bind(e.service.as_ref())
                    .bind(e.evaluated_at)
                    .bind(e.status.as_ref())
                    .bind(e.error_budget_remaining)
                    .bind(stored_text(i));
            }
            match self.backend {
                Backend::Postgres => {
                    query.execute(&mut *tx).await?;
                }
                Backend::Sqlite => {
                    for row in query.fetch_all(&mut *tx).await? {
                        written.push((row.try_get("slo")?, row.try_get("id")?));
                    }
                }
            }
        }
        self.point_latest_states_at(&mut tx, &written).await?;

        let mut answers = Vec::with_capacity(evaluations.len());
        // Incidents that only go on firing: one statement for all of them.
        let mut still_firing: Vec<(i64, f64)> = Vec::new();
        for (i, (evaluation, decision)) in evaluations.iter().zip(decisions).enumerate() {
            let open = open_by_slo.get(evaluation.slo.as_ref());
            let incident_id = match (&decision, open) {
                (Decision::Nothing, open) => open.map(|o| o.id),
                (Decision::StillFiring { peak_burn_rate }, Some(o))
                    if o.data_missing_since.is_none() =>
                {
                    still_firing.push((o.id, *peak_burn_rate));
                    Some(o.id)
                }
                (decision, open) => {
                    let snapshot = texts[i].clone().unwrap_or_else(|| text(i));
                    self.apply_decision(&mut tx, evaluation, &snapshot, open, decision)
                        .await?
                }
            };
            answers.push(Transitioned {
                decision,
                incident_id,
            });
        }
        let at = evaluations.first().map_or(0, |e| e.evaluated_at);
        for batch in still_firing.chunks(rows) {
            // VALUES columns are `column1`, `column2` in both SQLite and PostgreSQL.
            let sql = format!(
                "UPDATE incidents SET peak_burn_rate = v.column2, last_firing_at = {}, data_missing = FALSE, \
                 data_missing_since = NULL FROM (VALUES {}) AS v WHERE incidents.id = v.column1",
                self.backend.placeholder(1),
                self.backend.values_list(batch.len(), 2, 2)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(ONE_OFF).bind(at);
            for (id, peak) in batch {
                query = query.bind(*id).bind(*peak);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(answers)
    }

    /// Makes each `(slo, history row)` of `written` that SLO's stored latest state. A latest
    /// state only moves to a newer row: ids grow with each write.
    async fn point_latest_states_at(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        written: &[(String, i64)],
    ) -> Result<(), sqlx::Error> {
        for batch in written.chunks(CYCLE_STATEMENT_ROWS) {
            let sql = format!(
                "INSERT INTO latest_evaluations (slo, evaluation_id) VALUES {} {POINT_LATEST_STATE}",
                self.backend.values_list(batch.len(), 2, 1)
            );
            // Built from constants and placeholders only; every value is bound.
            let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(ONE_OFF);
            for (slo, row) in batch {
                query = query.bind(slo).bind(*row);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Applies `decision` to the SLO's unresolved incident `open` (or opens one) inside `tx`:
    /// the incident row, its timeline entries and the outbox entry that notifies about it.
    /// Returns the incident the decision applied to.
    async fn apply_decision(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        evaluation: &EvaluationRecord<'_>,
        snapshot: &str,
        open: Option<&OpenIncident>,
        decision: &Decision,
    ) -> Result<Option<i64>, sqlx::Error> {
        let at = evaluation.evaluated_at;
        let event = |kind: &'static str, message: String| (kind, message);
        let mut events: Vec<(&str, String)> = Vec::new();
        let incident_id = match (decision, open) {
            (Decision::Nothing, open) => open.map(|o| o.id),
            (
                Decision::Open {
                    severity,
                    peak_burn_rate,
                    budget_remaining,
                },
                _,
            ) => {
                let id: i64 = sqlx::query(
                    "INSERT INTO incidents (slo, service, severity, status, opened_at, last_firing_at, peak_burn_rate, budget_at_open, data_missing) \
                     VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, FALSE) RETURNING id",
                )
                .bind(evaluation.slo.as_ref())
                .bind(evaluation.service.as_ref())
                .bind(severity.as_str())
                .bind(at)
                .bind(at)
                .bind(*peak_burn_rate)
                .bind(*budget_remaining)
                .fetch_one(&mut **tx)
                .await?
                .try_get("id")?;
                events.push(event(
                    "opened",
                    format!("{} burns its error budget: {severity} alert fired (burn rate {peak_burn_rate:.2})", evaluation.slo),
                ));
                Some(id)
            }
            (
                Decision::Escalate {
                    from,
                    to,
                    peak_burn_rate,
                },
                Some(o),
            ) => {
                sqlx::query(
                    "UPDATE incidents SET severity = $1, peak_burn_rate = $2, last_firing_at = $3, data_missing = FALSE, data_missing_since = NULL WHERE id = $4",
                )
                .bind(to.as_str())
                .bind(*peak_burn_rate)
                .bind(at)
                .bind(o.id)
                .execute(&mut **tx)
                .await?;
                if let Some(since) = o.data_missing_since {
                    events.push(event("data_back", data_back_message(at - since)));
                }
                events.push(event("escalated", format!("escalated from {from} to {to}")));
                Some(o.id)
            }
            (Decision::StillFiring { peak_burn_rate }, Some(o)) => {
                sqlx::query(
                    "UPDATE incidents SET peak_burn_rate = $1, last_firing_at = $2, data_missing = FALSE, data_missing_since = NULL WHERE id = $3",
                )
                .bind(*peak_burn_rate)
                .bind(at)
                .bind(o.id)
                .execute(&mut **tx)
                .await?;
                if let Some(since) = o.data_missing_since {
                    events.push(event("data_back", data_back_message(at - since)));
                }
                Some(o.id)
            }
            (Decision::Resolve { budget_remaining }, Some(o)) => {
                sqlx::query(
                    "UPDATE incidents SET status = 'resolved', resolved_at = $1, budget_at_resolve = $2, data_missing = FALSE, data_missing_since = NULL WHERE id = $3",
                )
                .bind(at)
                .bind(*budget_remaining)
                .bind(o.id)
                .execute(&mut **tx)
                .await?;
                let quiet_for = at - o.quiet_since();
                events.push(event(
                    "resolved",
                    format!("quiet on data for {quiet_for}s with nothing firing; resolved"),
                ));
                Some(o.id)
            }
            (Decision::DataMissing { reason }, Some(o)) => {
                sqlx::query(
                    "UPDATE incidents SET data_missing = TRUE, data_missing_since = $1 WHERE id = $2",
                )
                .bind(at)
                .bind(o.id)
                    .execute(&mut **tx)
                    .await?;
                events.push(event(
                    "data_missing",
                    format!("{reason}; nothing resolves, lifts or runs on missing data, so the incident is left as it is"),
                ));
                Some(o.id)
            }
            (Decision::DataBack { missing_for }, Some(o)) => {
                sqlx::query(
                    "UPDATE incidents SET data_missing = FALSE, data_missing_since = NULL, data_back_at = $1 WHERE id = $2",
                )
                .bind(at)
                .bind(o.id)
                .execute(&mut **tx)
                .await?;
                events.push(event("data_back", data_back_message(*missing_for)));
                Some(o.id)
            }
            // A decision about an incident that is not there: nothing to apply.
            (_, None) => None,
        };
        let notify = match decision {
            Decision::Open { severity, .. } => Some(("opened", severity.as_str())),
            Decision::Escalate { to, .. } => Some(("escalated", to.as_str())),
            Decision::Resolve { .. } => {
                Some(("resolved", open.map_or("page", |o| o.severity.as_str())))
            }
            _ => None,
        };
        if let (Some(id), Some((event, severity))) = (incident_id, notify) {
            let payload = serde_json::json!({
                "incident": id,
                "slo": evaluation.slo,
                "service": evaluation.service,
                "severity": severity,
                "event": event,
                "at": at,
                "error_budget_remaining": evaluation.error_budget_remaining,
            });
            let outbox_id: i64 = sqlx::query(
                "INSERT INTO outbox (incident_id, event, created_at, payload) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(id)
            .bind(event)
            .bind(at)
            .bind(payload.to_string())
            .fetch_one(&mut **tx)
            .await?
            .try_get("id")?;
            // Bound now to the channels configured now: one added later never gets this entry.
            for channel in self.notify_channels.iter() {
                sqlx::query(
                    "INSERT INTO deliveries (outbox_id, channel, target, attempts, next_attempt_at, state) \
                     VALUES ($1, $2, $3, 0, $4, 'pending')",
                )
                .bind(outbox_id)
                .bind(&channel.name)
                .bind(&channel.target)
                .bind(at)
                .execute(&mut **tx)
                .await?;
            }
        }
        if let Some(id) = incident_id {
            for (kind, message) in events {
                sqlx::query(
                    "INSERT INTO incident_events (incident_id, at, kind, message, actor, detail) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id)
                .bind(at)
                .bind(kind)
                .bind(message)
                .bind("burnguard")
                .bind(snapshot)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(incident_id)
    }
}

/// Whether `decision` changes the incident (opens, escalates, resolves it or notes its data),
/// rather than leaving it be or only refreshing a firing one.
fn changes_incident(decision: &Decision) -> bool {
    !matches!(decision, Decision::Nothing | Decision::StillFiring { .. })
}

/// `persistent` for statements whose text changes with the size of the batch (a `VALUES`
/// list of one to hundreds of rows): each size would otherwise stay prepared on every pooled
/// connection, up to the driver's cache of 100 statements per connection, and a prepared
/// statement of thousands of placeholders holds tens of kilobytes or more, for good.
const ONE_OFF: bool = false;

/// PostgreSQL ended one of two transactions that waited on each other's locks.
fn is_deadlock(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("40P01"))
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            e.is_unique_violation()
                || e.message().contains("UNIQUE constraint failed")
                || e.code().as_deref() == Some("23505")
        }
        _ => false,
    }
}

fn open_incident(row: &AnyRow) -> Result<OpenIncident, sqlx::Error> {
    let severity: String = row.try_get("severity")?;
    let status: String = row.try_get("status")?;
    let corrupt = |what: &str| sqlx::Error::Decode(format!("unknown incident {what}").into());
    Ok(OpenIncident {
        id: row.try_get("id")?,
        severity: match severity.as_str() {
            "page" => Severity::Page,
            "ticket" => Severity::Ticket,
            _ => return Err(corrupt("severity")),
        },
        status: IncidentStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        opened_at: row.try_get("opened_at")?,
        last_firing_at: row.try_get("last_firing_at")?,
        peak_burn_rate: row.try_get("peak_burn_rate")?,
        data_missing_since: row.try_get("data_missing_since")?,
        data_back_at: row.try_get("data_back_at")?,
    })
}

/// The timeline entry for data coming back, with how long it was missing.
fn data_back_message(missing_for: i64) -> String {
    format!(
        "evaluations have data again after {missing_for}s without it; quiet time counts from now"
    )
}

pub(crate) const INCIDENT_COLUMNS: &str = "id, slo, service, severity, status, opened_at, acknowledged_at, resolved_at, \
     last_firing_at, peak_burn_rate, budget_at_open, budget_at_resolve";

pub(crate) fn incident_record(row: &AnyRow) -> Result<IncidentRecord, sqlx::Error> {
    Ok(IncidentRecord {
        id: row.try_get("id")?,
        slo: row.try_get("slo")?,
        service: row.try_get("service")?,
        severity: row.try_get("severity")?,
        status: row.try_get("status")?,
        opened_at: row.try_get("opened_at")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        resolved_at: row.try_get("resolved_at")?,
        last_firing_at: row.try_get("last_firing_at")?,
        peak_burn_rate: row.try_get("peak_burn_rate")?,
        budget_remaining_at_open: row.try_get("budget_at_open")?,
        budget_remaining_at_resolve: row.try_get("budget_at_resolve")?,
    })
}

pub(crate) const ACTION_COLUMNS: &str = "id, incident_id, slo, playbook, step, idempotency_key, kind, status, \
     CAST(CASE WHEN dry_run THEN 1 ELSE 0 END AS BIGINT) AS dry_run, created_at, started_at, finished_at, intent, outcome";

pub(crate) fn action_record(a: &AnyRow) -> Result<ActionRecord, StoreError> {
    Ok(ActionRecord {
        id: a.try_get("id").map_err(db_error)?,
        incident_id: a.try_get("incident_id").map_err(db_error)?,
        slo: a.try_get("slo").map_err(db_error)?,
        playbook: a.try_get("playbook").map_err(db_error)?,
        step: a.try_get("step").map_err(db_error)?,
        idempotency_key: a.try_get("idempotency_key").map_err(db_error)?,
        kind: a.try_get("kind").map_err(db_error)?,
        status: a.try_get("status").map_err(db_error)?,
        dry_run: a.try_get::<i64, _>("dry_run").map_err(db_error)? != 0,
        created_at: a.try_get("created_at").map_err(db_error)?,
        started_at: a.try_get("started_at").map_err(db_error)?,
        finished_at: a.try_get("finished_at").map_err(db_error)?,
        intent: json(Some(a.try_get("intent").map_err(db_error)?))?.unwrap_or_default(),
        outcome: json(a.try_get("outcome").map_err(db_error)?)?,
    })
}

pub(crate) fn json(text: Option<String>) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

impl Store for SqlStore {
    async fn record<F>(
        &self,
        evaluation: &EvaluationRecord<'_>,
        decide: F,
    ) -> Result<Transitioned, StoreError>
    where
        F: Fn(Option<&OpenIncident>) -> Decision + Send + Sync,
    {
        // Replicas' recordings take turns (`begin_incident_decisions`), but webhook intake
        // opens incidents too, and may open this SLO's between our read and our insert
        // (PostgreSQL); the unique index refuses ours, and the retry sees theirs.
        match self.record_once(evaluation, &decide).await {
            Err(e) if is_unique_violation(&e) => self
                .record_once(evaluation, &decide)
                .await
                .map_err(db_error),
            other => other.map_err(db_error),
        }
    }

    async fn record_batch<F, S>(
        &self,
        evaluations: &[EvaluationRecord<'_>],
        kept: &[bool],
        decide: F,
        snapshot: S,
    ) -> Result<Vec<Transitioned>, StoreError>
    where
        F: Fn(usize, Option<&OpenIncident>) -> Decision + Send + Sync,
        S: Fn(usize) -> String + Send + Sync,
    {
        // As in `record`: webhook intake opening one of these incidents meanwhile makes ours
        // collide on the unique index (or, on PostgreSQL, deadlock on the row locks); the
        // retry sees what it wrote.
        match self
            .record_batch_once(evaluations, kept, &decide, &snapshot)
            .await
        {
            Err(e) if is_unique_violation(&e) || is_deadlock(&e) => self
                .record_batch_once(evaluations, kept, &decide, &snapshot)
                .await
                .map_err(db_error),
            other => other.map_err(db_error),
        }
    }

    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        let mut sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE 1 = 1");
        let mut n = 0;
        if filter.status.is_some() {
            n += 1;
            sql.push_str(&format!(" AND status = ${n}"));
        }
        if filter.slo.is_some() {
            n += 1;
            sql.push_str(&format!(" AND slo = ${n}"));
        }
        sql.push_str(" ORDER BY opened_at DESC, id DESC");
        if filter.limit.is_some() {
            n += 1;
            sql.push_str(&format!(" LIMIT ${n}"));
        }
        // Built from constants and numbered placeholders only; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(status) = filter.status {
            query = query.bind(status.as_str());
        }
        if let Some(slo) = &filter.slo {
            query = query.bind(slo);
        }
        if let Some(limit) = filter.limit {
            query = query.bind(limit);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db_error)?;
        rows.iter()
            .map(incident_record)
            .collect::<Result<_, _>>()
            .map_err(db_error)
    }

    async fn unresolved_incidents(&self) -> Result<Vec<IncidentRecord>, StoreError> {
        // Built from constants only.
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status <> 'resolved' ORDER BY opened_at DESC, id DESC"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(incident_record)
        .collect::<Result<_, _>>()
        .map_err(db_error)
    }

    async fn unresolved_keys(&self, grouped_only: bool) -> Result<Vec<(i64, String)>, StoreError> {
        // `{` is no wildcard in LIKE; only a group key has one (names cannot).
        let only = if grouped_only {
            " AND slo LIKE '%{%'"
        } else {
            ""
        };
        // Built from constants only.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, slo FROM incidents WHERE status <> 'resolved'{only} ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("slo")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db_error)
    }

    async fn incident(&self, id: i64) -> Result<Option<IncidentDetail>, StoreError> {
        let Some(row) = sqlx::query(AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        else {
            return Ok(None);
        };
        let incident = incident_record(&row).map_err(db_error)?;
        let events = sqlx::query(
            "SELECT id, at, kind, message, actor, detail FROM incident_events WHERE incident_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut timeline = Vec::with_capacity(events.len());
        for e in &events {
            timeline.push(TimelineEvent {
                id: e.try_get("id").map_err(db_error)?,
                at: e.try_get("at").map_err(db_error)?,
                kind: e.try_get("kind").map_err(db_error)?,
                message: e.try_get("message").map_err(db_error)?,
                actor: e.try_get("actor").map_err(db_error)?,
                detail: json(e.try_get("detail").map_err(db_error)?)?,
            });
        }
        let action_rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ACTION_COLUMNS} FROM actions WHERE incident_id = $1 ORDER BY id"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let actions = action_rows
            .iter()
            .map(action_record)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(IncidentDetail {
            incident,
            timeline,
            actions,
        }))
    }

    async fn prune_evaluations(&self, before: UnixSeconds) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        // Each SLO's newest row stays, however old: it is the SLO's stored latest state.
        // PostgreSQL plans NOT EXISTS as an anti-join (hashed, spilling to disk if need be),
        // where a NOT IN list larger than `work_mem` would be scanned once per row; SQLite
        // builds its NOT IN list into a temporary index once.
        let latest_kept = match self.backend {
            Backend::Sqlite => "id NOT IN (SELECT evaluation_id FROM latest_evaluations)",
            Backend::Postgres => {
                "NOT EXISTS (SELECT 1 FROM latest_evaluations l WHERE l.evaluation_id = evaluations.id)"
            }
        };
        // Built from constants only; the cut is bound.
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM evaluations WHERE evaluated_at < $1 AND {latest_kept}"
        )))
        .bind(before)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://bg:s3cret@db:5432/x"),
            "postgres://bg:***@db:5432/x"
        );
        assert_eq!(redact("postgres://bg@db/x"), "postgres://***@db/x");
        assert_eq!(redact("sqlite://burnguard.db"), "sqlite://burnguard.db");
    }

    #[test]
    fn sqlite_parameters_are_anonymous_and_postgres_ones_numbered() {
        assert_eq!(
            Backend::Postgres.values_list(2, 3, 1),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(Backend::Postgres.values_list(1, 2, 2), "($2, $3)");
        assert_eq!(Backend::Sqlite.values_list(2, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(Backend::Sqlite.placeholder(7), "?");
    }
}
