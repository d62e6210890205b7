//! Inbound webhooks: each received body stored once, the events it carried (deduplicated per
//! source), retention, and the "external" incidents that alerts from other sources open.
//!
//! An Alertmanager delivery is one transaction whatever its size: the body is written once,
//! events and timeline entries go in multi-row statements, and every lookup is by index, so
//! the time and the bytes written grow linearly with the alerts (before, each alert kept a copy
//! of the whole body: 1,000 alerts of a 212 KB body wrote 216 MB).
//!
//! Owns: the SQL of webhook intake. Must not touch: how a body is read or checked (the HTTP
//! side hands over [`IncomingAlert`]s that are already valid).

use std::collections::{HashMap, HashSet};

use sqlx::{AssertSqlSafe, Row};

use super::{Backend, SqlStore, db_error};
use crate::ports::{AlertTarget, IncomingAlert, StoreError, UnixSeconds, Webhooks};

const ALERTMANAGER: &str = "alertmanager";

/// Rows per multi-row statement: far below SQLite's and PostgreSQL's parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

/// Bytes of values per multi-row statement of webhook intake: a delivery's rows rarely fill
/// one (intake was measured with this budget, docs/benchmarks.md; a cycle's records, far more
/// rows, use the store's `CYCLE_STATEMENT_BYTES`).
pub(super) const BYTES_PER_STATEMENT: usize = 8 * 1024;

/// `items` cut into runs of at most [`ROWS_PER_STATEMENT`] rows and about
/// [`BYTES_PER_STATEMENT`] bytes, each item weighing `bytes(item)` plus its placeholders.
pub(super) fn batches<T>(items: &[T], bytes: impl Fn(&T) -> usize) -> Vec<&[T]> {
    batches_within(items, bytes, BYTES_PER_STATEMENT, ROWS_PER_STATEMENT)
}

/// [`batches`] with another budget of bytes and of rows per statement.
pub(super) fn batches_within<T>(
    items: &[T],
    bytes: impl Fn(&T) -> usize,
    budget: usize,
    rows: usize,
) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let weight = bytes(item) + 32;
        if i > start && (i - start == rows || size + weight > budget) {
            out.push(&items[start..i]);
            (start, size) = (i, 0);
        }
        size += weight;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// `($1, $2, ...), (...)` for `rows` rows of `columns` values, numbered from `first`.
pub(super) fn values_list(rows: usize, columns: usize, first: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (0..columns)
                .map(|c| format!("${}", first + r * columns + c))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One timeline entry to write, about the incident in `slot`; `alert` names the event it
/// belongs to, written only when that event turned out new.
struct Entry<'a> {
    slot: usize,
    kind: &'static str,
    message: &'a str,
    detail: Option<String>,
    alert: Option<&'a str>,
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// The incident an alert is about: its SLO's name, or its external key.
fn target_key(target: &AlertTarget) -> &str {
    match target {
        AlertTarget::Slo(slo) => slo,
        AlertTarget::External { key, .. } => key,
    }
}

/// `$first, $first+1, ...` for `n` values.
fn placeholders(n: usize, first: usize) -> String {
    (0..n)
        .map(|i| format!("${}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The unresolved incidents among `keys`: `(key, id)`.
async fn open_incidents(tx: &mut Tx<'_>, keys: &[&str]) -> Result<Vec<(String, i64)>, StoreError> {
    let distinct: Vec<&str> = keys
        .iter()
        .copied()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut open = Vec::new();
    for chunk in batches(&distinct, |key| key.len()) {
        let sql = format!(
            "SELECT id, slo FROM incidents WHERE status <> 'resolved' AND slo IN ({})",
            placeholders(chunk.len(), 1)
        );
        // Built from constants and numbered placeholders only; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(super::ONE_OFF);
        for key in chunk {
            query = query.bind(*key);
        }
        for row in query.fetch_all(&mut **tx).await.map_err(db_error)? {
            open.push((
                row.try_get("slo").map_err(db_error)?,
                row.try_get("id").map_err(db_error)?,
            ));
        }
    }
    Ok(open)
}

/// The keys of `alerts` already recorded.
async fn known_alerts(
    tx: &mut Tx<'_>,
    alerts: &[&IncomingAlert],
) -> Result<HashSet<String>, StoreError> {
    let mut known = HashSet::new();
    for chunk in batches(alerts, |alert| alert.dedup_key.len()) {
        let sql = format!(
            "SELECT dedup_key FROM webhook_events WHERE source = $1 AND dedup_key IN ({})",
            placeholders(chunk.len(), 2)
        );
        // Built from constants and numbered placeholders only; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(ALERTMANAGER);
        for alert in chunk {
            query = query.bind(alert.dedup_key.as_str());
        }
        for row in query.fetch_all(&mut **tx).await.map_err(db_error)? {
            known.insert(row.try_get("dedup_key").map_err(db_error)?);
        }
    }
    Ok(known)
}

/// The incident changes of one delivery. Incidents are slots: an id known from the start, or
/// one an open of the current wave will get. Opens and resolves wait in the wave and are
/// written together by [`Plan::flush`] (opens first, so a resolve may follow an open); an alert
/// that opens a key resolved in the same wave flushes first.
#[derive(Default)]
struct Plan<'a> {
    ids: Vec<Option<i64>>,
    /// The open incident of each key, as the alerts walked so far leave it.
    open: HashMap<String, usize>,
    opens: Vec<(usize, &'a str, &'a str, crate::domain::policy::Severity)>,
    resolves: Vec<usize>,
    resolving: HashSet<String>,
    /// Slots whose incident this delivery opened (not found open by a concurrent writer).
    opened_here: HashSet<usize>,
}

impl<'a> Plan<'a> {
    fn known(&mut self, id: i64) -> usize {
        self.ids.push(Some(id));
        self.ids.len() - 1
    }

    fn pending(
        &mut self,
        key: &'a str,
        service: &'a str,
        severity: crate::domain::policy::Severity,
    ) -> usize {
        self.ids.push(None);
        let slot = self.ids.len() - 1;
        self.opens.push((slot, key, service, severity));
        self.open.insert(key.to_string(), slot);
        slot
    }

    fn resolve(&mut self, key: &str, slot: usize) {
        self.resolves.push(slot);
        self.resolving.insert(key.to_string());
    }

    /// The incident id of `slot`; every slot has one once flushed, and a slot without one is
    /// reported as a store error rather than a panic.
    fn id(&self, slot: usize) -> Result<i64, StoreError> {
        self.ids.get(slot).copied().flatten().ok_or_else(|| {
            StoreError::Corrupt(format!("incident slot {slot} was not filled by the flush"))
        })
    }

    async fn flush(&mut self, tx: &mut Tx<'_>, at: UnixSeconds) -> Result<(), StoreError> {
        let mut opens = std::mem::take(&mut self.opens);
        // Rows in key order: two deliveries that overlap take their row locks in the same order
        // (PostgreSQL), so one waits for the other instead of deadlocking.
        opens.sort_by(|a, b| a.1.cmp(b.1));
        for chunk in batches(&opens, |(_, key, service, _)| {
            key.len() + service.len() + 32
        }) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p = 1 + i * 4;
                    format!(
                        "(${}, ${}, ${}, 'open', ${}, ${}, 0, FALSE)",
                        p,
                        p + 1,
                        p + 2,
                        p + 3,
                        p + 3
                    )
                })
                .collect();
            // The partial unique index allows one unresolved incident per key, whoever writes.
            let sql = format!(
                "INSERT INTO incidents (slo, service, severity, status, opened_at, last_firing_at, peak_burn_rate, data_missing) \
                 VALUES {} ON CONFLICT (slo) WHERE status <> 'resolved' DO NOTHING RETURNING id, slo",
                rows.join(", ")
            );
            // Built from constants and numbered placeholders only; every value is bound.
            let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(super::ONE_OFF);
            for (_, key, service, severity) in chunk {
                query = query
                    .bind(*key)
                    .bind(*service)
                    .bind(severity.as_str())
                    .bind(at);
            }
            let slot_of: HashMap<&str, usize> =
                chunk.iter().map(|(slot, key, ..)| (*key, *slot)).collect();
            for row in query.fetch_all(&mut **tx).await.map_err(db_error)? {
                let key: String = row.try_get("slo").map_err(db_error)?;
                if let Some(&slot) = slot_of.get(key.as_str()) {
                    self.ids[slot] = Some(row.try_get("id").map_err(db_error)?);
                    self.opened_here.insert(slot);
                }
            }
            // Opened meanwhile by another writer: theirs is the one to attach to.
            let taken: Vec<&str> = chunk
                .iter()
                .filter(|(slot, ..)| self.ids[*slot].is_none())
                .map(|(_, key, ..)| *key)
                .collect();
            for (key, id) in open_incidents(tx, &taken).await? {
                if let Some(&slot) = slot_of.get(key.as_str()) {
                    self.ids[slot] = Some(id);
                }
            }
            if let Some((_, key, ..)) = chunk.iter().find(|(slot, ..)| self.ids[*slot].is_none()) {
                return Err(StoreError::Database(format!(
                    "external incident {key} could be neither opened nor found"
                )));
            }
        }
        let resolves = std::mem::take(&mut self.resolves);
        self.resolving.clear();
        let ids: Vec<i64> = resolves
            .iter()
            .map(|slot| self.id(*slot))
            .collect::<Result<_, _>>()?;
        for chunk in batches(&ids, |_| 8) {
            let sql = format!(
                "UPDATE incidents SET status = 'resolved', resolved_at = $1 WHERE status <> 'resolved' AND id IN ({})",
                placeholders(chunk.len(), 2)
            );
            // Built from constants and numbered placeholders only; every value is bound.
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(at);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await.map_err(db_error)?;
        }
        Ok(())
    }
}

async fn insert_timeline(
    tx: &mut Tx<'_>,
    entries: &[Entry<'_>],
    plan: &Plan<'_>,
    at: UnixSeconds,
) -> Result<(), StoreError> {
    for chunk in batches(entries, |e| {
        e.message.len() + e.detail.as_ref().map_or(0, String::len) + 40
    }) {
        let sql = format!(
            "INSERT INTO incident_events (incident_id, at, kind, message, actor, detail) VALUES {}",
            values_list(chunk.len(), 6, 1)
        );
        // Built from constants and numbered placeholders only; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(super::ONE_OFF);
        for entry in chunk {
            query = query
                .bind(plan.id(entry.slot)?)
                .bind(at)
                .bind(entry.kind)
                .bind(entry.message)
                .bind(ALERTMANAGER)
                .bind(entry.detail.clone());
        }
        query.execute(&mut **tx).await.map_err(db_error)?;
    }
    Ok(())
}

impl SqlStore {
    /// What the database takes on disk, in bytes: SQLite's pages (the WAL's included),
    /// PostgreSQL's `pg_database_size`. For benchmarks and tests of growth.
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT CAST(c.page_count * s.page_size AS BIGINT) AS size FROM pragma_page_count() c, pragma_page_size() s"
            }
            Backend::Postgres => {
                "SELECT CAST(pg_database_size(current_database()) AS BIGINT) AS size"
            }
        };
        let row = sqlx::query(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        let size: i64 = row.try_get("size").map_err(db_error)?;
        Ok(u64::try_from(size).unwrap_or(0))
    }
}

impl Webhooks for SqlStore {
    async fn record_webhook(
        &self,
        source: &str,
        dedup_key: &str,
        body: &str,
        incident_id: Option<i64>,
        at: UnixSeconds,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let seen =
            sqlx::query("SELECT id FROM webhook_events WHERE source = $1 AND dedup_key = $2")
                .bind(source)
                .bind(dedup_key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        if seen.is_some() {
            return Ok(None);
        }
        let body_id: i64 = sqlx::query(
            "INSERT INTO webhook_bodies (source, received_at, body) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(source)
        .bind(at)
        .bind(body)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?
        .try_get("id")
        .map_err(db_error)?;
        let inserted = sqlx::query(
            // A webhook may name an incident this database does not have (pruned, another
            // installation's): it is stored unattached rather than refused.
            "INSERT INTO webhook_events (source, dedup_key, received_at, incident_id, body_id) \
             VALUES ($1, $2, $3, (SELECT id FROM incidents WHERE id = $4), $5) \
             ON CONFLICT (source, dedup_key) DO NOTHING RETURNING id",
        )
        .bind(source)
        .bind(dedup_key)
        .bind(at)
        .bind(incident_id)
        .bind(body_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = inserted else {
            // Another request recorded it meanwhile; dropping the transaction drops our body.
            return Ok(None);
        };
        let id = row.try_get("id").map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(id))
    }

    async fn record_alerts(
        &self,
        body: &str,
        alerts: &[IncomingAlert],
        at: UnixSeconds,
    ) -> Result<usize, StoreError> {
        // The same alert twice in one delivery counts once.
        let mut in_batch = HashSet::new();
        let mut fresh: Vec<&IncomingAlert> = alerts
            .iter()
            .filter(|a| in_batch.insert(a.dedup_key.as_str()))
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let known = known_alerts(&mut tx, &fresh).await?;
        fresh.retain(|a| !known.contains(&a.dedup_key));
        if fresh.is_empty() {
            return Ok(0);
        }
        let body_id: i64 = sqlx::query(
            "INSERT INTO webhook_bodies (source, received_at, body) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(ALERTMANAGER)
        .bind(at)
        .bind(body)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?
        .try_get("id")
        .map_err(db_error)?;

        // Walk the alerts in order against the incidents open now, batching the opens and
        // resolves into waves of multi-row statements.
        let keys: Vec<&str> = fresh.iter().map(|a| target_key(&a.target)).collect();
        let mut plan = Plan::default();
        for (key, id) in open_incidents(&mut tx, &keys).await? {
            let slot = plan.known(id);
            plan.open.insert(key, slot);
        }
        let mut links: Vec<Option<usize>> = Vec::with_capacity(fresh.len());
        let mut timeline: Vec<Entry> = Vec::with_capacity(fresh.len() * 2);
        for alert in &fresh {
            let key = target_key(&alert.target);
            let incident = match &alert.target {
                AlertTarget::Slo(_) => plan.open.get(key).copied(),
                AlertTarget::External {
                    service,
                    severity,
                    firing: true,
                    ..
                } => match plan.open.get(key).copied() {
                    Some(slot) => Some(slot),
                    None => {
                        if plan.resolving.contains(key) {
                            // Opened again after a resolve in this wave: the resolve goes first.
                            plan.flush(&mut tx, at).await?;
                        }
                        let slot = plan.pending(key, service, *severity);
                        timeline.push(Entry {
                            slot,
                            kind: "opened",
                            message: &alert.message,
                            detail: None,
                            alert: None,
                        });
                        Some(slot)
                    }
                },
                AlertTarget::External { firing: false, .. } => {
                    let slot = plan.open.remove(key);
                    if let Some(slot) = slot {
                        plan.resolve(key, slot);
                        timeline.push(Entry {
                            slot,
                            kind: "resolved",
                            message: &alert.message,
                            detail: None,
                            alert: None,
                        });
                    }
                    slot
                }
            };
            if let Some(slot) = incident {
                timeline.push(Entry {
                    slot,
                    kind: "alert_received",
                    message: &alert.message,
                    detail: Some(alert.detail.to_string()),
                    alert: Some(&alert.dedup_key),
                });
            }
            links.push(incident);
        }
        plan.flush(&mut tx, at).await?;

        let mut inserted: HashSet<String> = HashSet::with_capacity(fresh.len());
        let mut rows: Vec<(&IncomingAlert, Option<i64>)> = fresh
            .iter()
            .copied()
            .zip(
                links
                    .iter()
                    .map(|slot| slot.map(|s| plan.id(s)).transpose())
                    .collect::<Result<Vec<_>, _>>()?,
            )
            .collect();
        rows.sort_by(|a, b| a.0.dedup_key.cmp(&b.0.dedup_key));
        for chunk in batches(&rows, |(alert, _)| alert.dedup_key.len() + 40) {
            let sql = format!(
                "INSERT INTO webhook_events (source, dedup_key, received_at, incident_id, body_id) VALUES {} \
                 ON CONFLICT (source, dedup_key) DO NOTHING RETURNING dedup_key",
                values_list(chunk.len(), 5, 1)
            );
            // Built from constants and numbered placeholders only; every value is bound.
            let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(super::ONE_OFF);
            for (alert, incident) in chunk {
                query = query
                    .bind(ALERTMANAGER)
                    .bind(alert.dedup_key.as_str())
                    .bind(at)
                    .bind(*incident)
                    .bind(body_id);
            }
            for row in query.fetch_all(&mut *tx).await.map_err(db_error)? {
                inserted.insert(row.try_get("dedup_key").map_err(db_error)?);
            }
        }
        // A concurrent delivery of the same alerts (two Alertmanagers in HA) may have recorded
        // some, or opened an incident, meanwhile: only what this one did goes on the timeline.
        timeline.retain(|e| match (e.kind, e.alert) {
            (_, Some(key)) => inserted.contains(key),
            ("opened", None) => plan.opened_here.contains(&e.slot),
            _ => true,
        });
        insert_timeline(&mut tx, &timeline, &plan, at).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(inserted.len())
    }

    async fn prune_webhooks(&self, before: UnixSeconds, keep: u64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        // The newest body past the `keep` newest: it and every older one go.
        let cut: i64 =
            sqlx::query("SELECT id FROM webhook_bodies ORDER BY id DESC LIMIT 1 OFFSET $1")
                .bind(i64::try_from(keep).unwrap_or(i64::MAX))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
                .map(|row| row.try_get("id"))
                .transpose()
                .map_err(db_error)?
                .unwrap_or(0);
        sqlx::query(
            "DELETE FROM webhook_events WHERE body_id IN \
             (SELECT id FROM webhook_bodies WHERE received_at < $1 OR id <= $2)",
        )
        .bind(before)
        .bind(cut)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let done = sqlx::query("DELETE FROM webhook_bodies WHERE received_at < $1 OR id <= $2")
            .bind(before)
            .bind(cut)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::{BYTES_PER_STATEMENT, ROWS_PER_STATEMENT, batches, values_list};

    #[test]
    fn batches_stay_under_the_byte_budget_and_keep_every_item_once_in_order() {
        let items: Vec<usize> = (0..1_200).collect();
        for weight in [0, 100, 1_000] {
            let cut = batches(&items, |_| weight);
            assert!(
                cut.iter().all(|b| b.len() <= ROWS_PER_STATEMENT
                    && b.len() * (weight + 32) <= BYTES_PER_STATEMENT),
                "{weight}"
            );
            let joined: Vec<usize> = cut.iter().flat_map(|b| b.iter().copied()).collect();
            assert_eq!(joined, items, "{weight}");
        }
        let huge = batches(&items[..3], |_| 100_000);
        assert_eq!(huge.len(), 3, "an item bigger than the budget goes alone");
        assert!(batches(&items[..0], |_| 1).is_empty());
    }

    #[test]
    fn values_lists_number_every_placeholder_once() {
        assert_eq!(values_list(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_list(1, 2, 2), "($2, $3)");
    }
}
