//! The notification outbox and its deliveries: binding deliveries to the channels configured,
//! claiming due ones under a lease, and settling them with their timeline entry.
//!
//! Owns: the SQL of claims, leases and delivery states. Must not touch: the retry rules (the
//! engine asks the domain and passes the outcome in).

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{SqlStore, db_error, json};
use crate::domain::delivery::{DeliveryState, stop_reason};
use crate::ports::{
    Channel, DeliveryRecord, DueDelivery, Instance, Outbox, Settlement, StoreError, UnixSeconds,
};

const DELIVERY_COLUMNS: &str = "d.id, o.incident_id, o.event, d.channel, d.target, d.state, d.attempts, \
     o.created_at, d.next_attempt_at, d.delivered_at, d.ended_at, d.last_error, d.end_reason, d.claimed_by, d.claimed_until";

fn delivery_record(r: &AnyRow) -> Result<DeliveryRecord, StoreError> {
    let state: String = r.try_get("state").map_err(db_error)?;
    Ok(DeliveryRecord {
        id: r.try_get("id").map_err(db_error)?,
        incident_id: r.try_get("incident_id").map_err(db_error)?,
        event: r.try_get("event").map_err(db_error)?,
        channel: r.try_get("channel").map_err(db_error)?,
        target: r.try_get("target").map_err(db_error)?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery state `{state}`")))?,
        attempts: r.try_get("attempts").map_err(db_error)?,
        written_at: r.try_get("created_at").map_err(db_error)?,
        next_attempt_at: r.try_get("next_attempt_at").map_err(db_error)?,
        delivered_at: r.try_get("delivered_at").map_err(db_error)?,
        ended_at: r.try_get("ended_at").map_err(db_error)?,
        last_error: r.try_get("last_error").map_err(db_error)?,
        end_reason: r.try_get("end_reason").map_err(db_error)?,
        claimed_by: r.try_get("claimed_by").map_err(db_error)?,
        claimed_until: r.try_get("claimed_until").map_err(db_error)?,
    })
}

/// `(d.channel = $n AND d.target = $n+1) OR ...` for `channels`, numbering from `first`;
/// a condition that holds for no row when there are none.
fn to_any_of(channels: &[Channel], first: usize) -> String {
    if channels.is_empty() {
        return "1 = 0".into();
    }
    channels
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let n = first + 2 * i;
            format!("(d.channel = ${n} AND d.target = ${})", n + 1)
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

impl Outbox for SqlStore {
    async fn bind_channels(
        &self,
        channels: &[Channel],
        me: &Instance,
        at: UnixSeconds,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        for channel in channels {
            sqlx::query(
                "UPDATE deliveries SET target = $1 WHERE channel = $2 AND target IS NULL AND state = 'pending'",
            )
            .bind(&channel.target)
            .bind(&channel.name)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        sqlx::query(
            "UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL WHERE state = 'pending' \
             AND claimed_by IN (SELECT id FROM instances WHERE name = $1 AND id <> $2)",
        )
        .bind(&me.name)
        .bind(&me.id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        // Rows another replica holds a live claim on are left to it: it is sending them.
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN outbox o ON o.id = d.outbox_id \
             WHERE d.state = 'pending' AND (d.claimed_until IS NULL OR d.claimed_until <= $1) \
             AND NOT ({}) ORDER BY d.id{}",
            to_any_of(channels, 2),
            self.backend.lock_clause(),
        );
        // Built from constants and numbered placeholders only; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(at);
        for channel in channels {
            query = query.bind(&channel.name).bind(&channel.target);
        }
        let rows = query.fetch_all(&mut *tx).await.map_err(db_error)?;
        let mut stopped = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut record = delivery_record(row)?;
            let still_named = channels.iter().any(|c| c.name == record.channel);
            let reason = stop_reason(&record.channel, still_named);
            sqlx::query(
                "UPDATE deliveries SET state = 'stopped', ended_at = $1, end_reason = $2, \
                 claimed_by = NULL, claimed_until = NULL WHERE id = $3 AND state = 'pending'",
            )
            .bind(at)
            .bind(&reason)
            .bind(record.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            let message = format!(
                "notifying {} of `{}` stopped after {} attempts: {reason}; it will not be sent",
                record.channel, record.event, record.attempts
            );
            add_event(
                &mut tx,
                record.incident_id,
                at,
                "notification_stopped",
                &message,
            )
            .await?;
            record.state = DeliveryState::Stopped;
            record.ended_at = Some(at);
            record.end_reason = Some(reason);
            record.claimed_by = None;
            record.claimed_until = None;
            stopped.push(record);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(stopped)
    }

    async fn claim_due(
        &self,
        channels: &[Channel],
        claimer: &str,
        at: UnixSeconds,
        lease_until: UnixSeconds,
        stale_before: UnixSeconds,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut tx = self.begin_write().await?;
        // An entry waits while an earlier entry of its incident is pending on the same channel,
        // so a pager never hears `resolved` before `opened`.
        let sql = format!(
            "SELECT d.id AS delivery_id, d.channel, d.target, d.attempts, o.incident_id, o.event, o.payload, o.created_at \
             FROM deliveries d JOIN outbox o ON o.id = d.outbox_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
             AND (d.claimed_until IS NULL OR d.claimed_until <= $1) \
             AND (o.created_at <= $2 OR {}) \
             AND NOT EXISTS (SELECT 1 FROM deliveries e JOIN outbox eo ON eo.id = e.outbox_id \
                 WHERE eo.incident_id = o.incident_id AND eo.id < o.id AND e.state = 'pending' \
                 AND e.channel = d.channel AND COALESCE(e.target, '') = COALESCE(d.target, '')) \
             ORDER BY d.id LIMIT $3{}",
            to_any_of(channels, 4),
            self.backend.claim_clause(),
        );
        // Built from constants and numbered placeholders only; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(at)
            .bind(stale_before)
            .bind(limit);
        for channel in channels {
            query = query.bind(&channel.name).bind(&channel.target);
        }
        let rows = query.fetch_all(&mut *tx).await.map_err(db_error)?;
        let mut due = Vec::with_capacity(rows.len());
        for r in &rows {
            let d = DueDelivery {
                delivery_id: r.try_get("delivery_id").map_err(db_error)?,
                channel: r.try_get("channel").map_err(db_error)?,
                target: r.try_get("target").map_err(db_error)?,
                attempts: r.try_get("attempts").map_err(db_error)?,
                incident_id: r.try_get("incident_id").map_err(db_error)?,
                event: r.try_get("event").map_err(db_error)?,
                payload: json(Some(r.try_get("payload").map_err(db_error)?))?.unwrap_or_default(),
                written_at: r.try_get("created_at").map_err(db_error)?,
            };
            sqlx::query("UPDATE deliveries SET claimed_by = $1, claimed_until = $2 WHERE id = $3")
                .bind(claimer)
                .bind(lease_until)
                .bind(d.delivery_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            due.push(d);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(due)
    }

    async fn settle_delivery(
        &self,
        delivery: &DueDelivery,
        claimer: &str,
        settlement: &Settlement,
        message: &str,
        at: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        const HELD: &str = "id = $1 AND claimed_by = $2 AND state = 'pending'";
        let query = match settlement {
            Settlement::Delivered { .. } => sqlx::query(AssertSqlSafe(format!(
                "UPDATE deliveries SET state = 'delivered', delivered_at = $3, attempts = attempts + 1, \
                 last_error = NULL, claimed_by = NULL, claimed_until = NULL WHERE {HELD}"
            )))
            .bind(delivery.delivery_id)
            .bind(claimer)
            .bind(at),
            Settlement::Failed { error, retry_at } => sqlx::query(AssertSqlSafe(format!(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = $3, next_attempt_at = $4, \
                 claimed_by = NULL, claimed_until = NULL WHERE {HELD}"
            )))
            .bind(delivery.delivery_id)
            .bind(claimer)
            .bind(error.as_str())
            .bind(*retry_at),
            Settlement::Dead {
                attempted,
                error,
                reason,
            } => sqlx::query(AssertSqlSafe(format!(
                "UPDATE deliveries SET state = 'dead', ended_at = $3, end_reason = $4, \
                 attempts = attempts + $5, last_error = COALESCE($6, last_error), \
                 claimed_by = NULL, claimed_until = NULL WHERE {HELD}"
            )))
            .bind(delivery.delivery_id)
            .bind(claimer)
            .bind(at)
            .bind(reason.as_str())
            .bind(i64::from(*attempted))
            .bind(error.as_deref()),
        };
        let done = query.execute(&mut *tx).await.map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        add_event(
            &mut tx,
            delivery.incident_id,
            at,
            settlement.timeline_kind(),
            message,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn release_claim(&self, delivery_id: i64, claimer: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND claimed_by = $2",
        )
        .bind(delivery_id)
        .bind(claimer)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn deliveries(&self, incident_id: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN outbox o ON o.id = d.outbox_id \
             WHERE o.incident_id = $1 ORDER BY d.id"
        )))
        .bind(incident_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(delivery_record).collect()
    }
}

async fn add_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    incident_id: i64,
    at: UnixSeconds,
    kind: &str,
    message: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO incident_events (incident_id, at, kind, message, actor) VALUES ($1, $2, $3, $4, 'burnguard')",
    )
    .bind(incident_id)
    .bind(at)
    .bind(kind)
    .bind(message)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_conditions_number_their_placeholders_from_where_they_start() {
        let channel = |name: &str| Channel {
            name: name.into(),
            target: "t".into(),
        };
        assert_eq!(to_any_of(&[], 4), "1 = 0");
        assert_eq!(
            to_any_of(&[channel("webhook"), channel("pagerduty")], 4),
            "(d.channel = $4 AND d.target = $5) OR (d.channel = $6 AND d.target = $7)"
        );
    }
}
