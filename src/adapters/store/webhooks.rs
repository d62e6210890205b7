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

/// `($1, $2, ...), (...)` for `rows` rows of `columns` values, numbered from `first`.
fn values_list(rows: usize, columns: usize, first: usize) -> String {
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

/// One timeline entry to write; `alert` names the event it belongs to, written only when that
/// event turned out new.
struct Entry<'a> {
    incident: i64,
    kind: &'static str,
    message: &'a str,
    detail: Option<String>,
    alert: Option<&'a str>,
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

async fn open_incident_id(tx: &mut Tx<'_>, key: &str) -> Result<Option<i64>, StoreError> {
    sqlx::query("SELECT id FROM incidents WHERE slo = $1 AND status <> 'resolved'")
        .bind(key)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?
        .map(|row| row.try_get("id").map_err(db_error))
        .transpose()
}

/// Opens the external incident `key`, or finds the one already open: `(id, opened)`.
async fn open_external(
    tx: &mut Tx<'_>,
    key: &str,
    service: &str,
    severity: crate::domain::policy::Severity,
    at: UnixSeconds,
) -> Result<(i64, bool), StoreError> {
    // The partial unique index allows one unresolved incident per key, whoever writes.
    let inserted = sqlx::query(
        "INSERT INTO incidents (slo, service, severity, status, opened_at, last_firing_at, peak_burn_rate, data_missing) \
         VALUES ($1, $2, $3, 'open', $4, $5, 0, FALSE) \
         ON CONFLICT (slo) WHERE status <> 'resolved' DO NOTHING RETURNING id",
    )
    .bind(key)
    .bind(service)
    .bind(severity.as_str())
    .bind(at)
    .bind(at)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    if let Some(row) = inserted {
        return Ok((row.try_get("id").map_err(db_error)?, true));
    }
    let id = open_incident_id(tx, key)
        .await?
        .ok_or_else(|| StoreError::Database(format!("external incident {key} vanished")))?;
    Ok((id, false))
}

async fn insert_timeline(
    tx: &mut Tx<'_>,
    entries: &[Entry<'_>],
    at: UnixSeconds,
) -> Result<(), StoreError> {
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO incident_events (incident_id, at, kind, message, actor, detail) VALUES {}",
            values_list(chunk.len(), 6, 1)
        );
        // Built from constants and numbered placeholders only; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for entry in chunk {
            query = query
                .bind(entry.incident)
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

    /// The keys of `alerts` already recorded.
    async fn known_alerts(
        tx: &mut Tx<'_>,
        alerts: &[&IncomingAlert],
    ) -> Result<HashSet<String>, StoreError> {
        let mut known = HashSet::new();
        for chunk in alerts.chunks(ROWS_PER_STATEMENT) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT dedup_key FROM webhook_events WHERE source = $1 AND dedup_key IN ({})",
                placeholders.join(", ")
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
            "INSERT INTO webhook_events (source, dedup_key, received_at, incident_id, body_id) VALUES ($1, $2, $3, $4, $5) \
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
        let known = Self::known_alerts(&mut tx, &fresh).await?;
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

        // The open incident of each SLO or external key, as this delivery leaves it.
        let mut open: HashMap<&str, Option<i64>> = HashMap::new();
        let mut links: Vec<Option<i64>> = Vec::with_capacity(fresh.len());
        let mut timeline: Vec<Entry> = Vec::with_capacity(fresh.len() * 2);
        for alert in &fresh {
            let received = |incident| Entry {
                incident,
                kind: "alert_received",
                message: &alert.message,
                detail: Some(alert.detail.to_string()),
                alert: Some(&alert.dedup_key),
            };
            let incident = match &alert.target {
                AlertTarget::Slo(slo) => {
                    let id = match open.get(slo.as_str()) {
                        Some(known) => *known,
                        None => open_incident_id(&mut tx, slo).await?,
                    };
                    open.insert(slo, id);
                    id
                }
                AlertTarget::External {
                    key,
                    service,
                    severity,
                    firing: true,
                } => {
                    let id = match open.get(key.as_str()) {
                        Some(Some(id)) => *id,
                        _ => {
                            let (id, opened) =
                                open_external(&mut tx, key, service, *severity, at).await?;
                            if opened {
                                timeline.push(Entry {
                                    incident: id,
                                    kind: "opened",
                                    message: &alert.message,
                                    detail: None,
                                    alert: None,
                                });
                            }
                            id
                        }
                    };
                    open.insert(key, Some(id));
                    Some(id)
                }
                AlertTarget::External {
                    key, firing: false, ..
                } => {
                    let id = match open.get(key.as_str()) {
                        Some(known) => *known,
                        None => open_incident_id(&mut tx, key).await?,
                    };
                    if let Some(id) = id {
                        sqlx::query("UPDATE incidents SET status = 'resolved', resolved_at = $1 WHERE id = $2 AND status <> 'resolved'")
                            .bind(at)
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_error)?;
                        timeline.push(Entry {
                            incident: id,
                            kind: "resolved",
                            message: &alert.message,
                            detail: None,
                            alert: None,
                        });
                    }
                    open.insert(key, None);
                    id
                }
            };
            if let Some(id) = incident {
                timeline.push(received(id));
            }
            links.push(incident);
        }

        let mut inserted: HashSet<String> = HashSet::with_capacity(fresh.len());
        let rows: Vec<(&IncomingAlert, Option<i64>)> = fresh.iter().copied().zip(links).collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO webhook_events (source, dedup_key, received_at, incident_id, body_id) VALUES {} \
                 ON CONFLICT (source, dedup_key) DO NOTHING RETURNING dedup_key",
                values_list(chunk.len(), 5, 1)
            );
            // Built from constants and numbered placeholders only; every value is bound.
            let mut query = sqlx::query(AssertSqlSafe(sql));
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
        // some meanwhile: only the events written here go on the timeline.
        timeline.retain(|e| e.alert.is_none_or(|key| inserted.contains(key)));
        insert_timeline(&mut tx, &timeline, at).await?;
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
    use super::values_list;

    #[test]
    fn values_lists_number_every_placeholder_once() {
        assert_eq!(values_list(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_list(1, 2, 2), "($2, $3)");
    }
}
