//! The notification outbox and its deliveries.

use sqlx::Row;

use super::{SqlStore, db_error, json};
use crate::ports::{DueDelivery, Outbox, StoreError, UnixSeconds};

impl Outbox for SqlStore {
    async fn plan_deliveries(
        &self,
        channels: &[String],
        at: UnixSeconds,
    ) -> Result<u64, StoreError> {
        let mut planned = 0;
        for channel in channels {
            let done = sqlx::query(
                "INSERT INTO deliveries (outbox_id, channel, attempts, next_attempt_at) \
                 SELECT o.id, $1, 0, $2 FROM outbox o \
                 WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_id = o.id AND d.channel = $3) \
                 ON CONFLICT (outbox_id, channel) DO NOTHING",
            )
            .bind(channel)
            .bind(at)
            .bind(channel)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            planned += done.rows_affected();
        }
        Ok(planned)
    }

    async fn due_deliveries(
        &self,
        at: UnixSeconds,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.id AS delivery_id, d.channel, d.attempts, o.incident_id, o.event, o.payload \
             FROM deliveries d JOIN outbox o ON o.id = d.outbox_id \
             WHERE d.delivered_at IS NULL AND d.next_attempt_at <= $1 ORDER BY d.id LIMIT $2",
        )
        .bind(at)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(DueDelivery {
                    delivery_id: r.try_get("delivery_id").map_err(db_error)?,
                    channel: r.try_get("channel").map_err(db_error)?,
                    attempts: r.try_get("attempts").map_err(db_error)?,
                    incident_id: r.try_get("incident_id").map_err(db_error)?,
                    event: r.try_get("event").map_err(db_error)?,
                    payload: json(Some(r.try_get("payload").map_err(db_error)?))?
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn mark_delivered(&self, delivery_id: i64, at: UnixSeconds) -> Result<(), StoreError> {
        sqlx::query("UPDATE deliveries SET delivered_at = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2")
            .bind(at)
            .bind(delivery_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn mark_failed(
        &self,
        delivery_id: i64,
        error: &str,
        retry_at: UnixSeconds,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE deliveries SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE id = $3")
            .bind(error)
            .bind(retry_at)
            .bind(delivery_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
