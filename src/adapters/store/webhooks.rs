//! Inbound webhook events and the "external" incidents that alerts from other sources open.

use sqlx::Row;

use super::{SqlStore, db_error, is_unique_violation};
use crate::domain::policy::Severity;
use crate::ports::{Journal, StoreError, UnixSeconds, Webhooks};

impl Webhooks for SqlStore {
    async fn record_webhook(
        &self,
        source: &str,
        dedup_key: &str,
        body: &str,
        incident_id: Option<i64>,
        at: UnixSeconds,
    ) -> Result<Option<i64>, StoreError> {
        let inserted = sqlx::query(
            // A webhook may name an incident this database does not have (pruned, another
            // installation's): it is stored unattached rather than refused.
            "INSERT INTO webhook_events (source, dedup_key, received_at, incident_id, body) \
             VALUES ($1, $2, $3, (SELECT id FROM incidents WHERE id = $4), $5) RETURNING id",
        )
        .bind(source)
        .bind(dedup_key)
        .bind(at)
        .bind(incident_id)
        .bind(body)
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(row) => Ok(Some(row.try_get("id").map_err(db_error)?)),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn open_external(
        &self,
        key: &str,
        service: &str,
        severity: Severity,
        message: &str,
        at: UnixSeconds,
    ) -> Result<i64, StoreError> {
        if let Some(open) = self.unresolved_incident(key).await? {
            return Ok(open.id);
        }
        let inserted = sqlx::query(
            "INSERT INTO incidents (slo, service, severity, status, opened_at, last_firing_at, peak_burn_rate, data_missing) \
             VALUES ($1, $2, $3, 'open', $4, $5, 0, FALSE) RETURNING id",
        )
        .bind(key)
        .bind(service)
        .bind(severity.as_str())
        .bind(at)
        .bind(at)
        .fetch_one(&self.pool)
        .await;
        let id: i64 = match inserted {
            Ok(row) => row.try_get("id").map_err(db_error)?,
            // Another request opened it first.
            Err(e) if is_unique_violation(&e) => {
                return self
                    .unresolved_incident(key)
                    .await?
                    .map(|i| i.id)
                    .ok_or_else(|| StoreError::Database("external incident vanished".into()));
            }
            Err(e) => return Err(db_error(e)),
        };
        self.add_event(id, at, "opened", message, "alertmanager", None)
            .await?;
        Ok(id)
    }

    async fn resolve_external(
        &self,
        key: &str,
        message: &str,
        at: UnixSeconds,
    ) -> Result<Option<i64>, StoreError> {
        let Some(open) = self.unresolved_incident(key).await? else {
            return Ok(None);
        };
        sqlx::query("UPDATE incidents SET status = 'resolved', resolved_at = $1 WHERE id = $2 AND status <> 'resolved'")
            .bind(at)
            .bind(open.id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        self.add_event(open.id, at, "resolved", message, "alertmanager", None)
            .await?;
        Ok(Some(open.id))
    }
}
