//! Counts for `/metrics`: open incidents and active freezes per SLO, journaled steps by
//! status, and the notification outbox's depth. Read-only, one query each.

use sqlx::Row;

use super::{SqlStore, db_error};
use crate::ports::{StoreCounts, StoreError};

impl SqlStore {
    /// What the store holds now, for the gauges at `/metrics`.
    pub async fn counts(&self) -> Result<StoreCounts, StoreError> {
        let mut counts = StoreCounts::default();
        let rows = sqlx::query(
            "SELECT slo, COUNT(*) AS n FROM incidents WHERE status <> 'resolved' GROUP BY slo",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        for row in rows {
            let n: i64 = row.try_get("n").map_err(db_error)?;
            counts
                .open_incidents
                .insert(row.try_get("slo").map_err(db_error)?, n as u64);
        }
        let rows = sqlx::query(
            "SELECT slo, COUNT(*) AS n FROM freezes WHERE lifted_at IS NULL AND slo IS NOT NULL GROUP BY slo",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        for row in rows {
            let n: i64 = row.try_get("n").map_err(db_error)?;
            counts
                .active_freezes
                .insert(row.try_get("slo").map_err(db_error)?, n as u64);
        }
        let rows = sqlx::query(
            "SELECT slo, kind, status, COUNT(*) AS n FROM actions GROUP BY slo, kind, status",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        for row in rows {
            let n: i64 = row.try_get("n").map_err(db_error)?;
            let key = (
                row.try_get("slo").map_err(db_error)?,
                row.try_get("kind").map_err(db_error)?,
                row.try_get("status").map_err(db_error)?,
            );
            counts.actions.insert(key, n as u64);
        }
        let pending: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM deliveries WHERE delivered_at IS NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?
                .try_get("n")
                .map_err(db_error)?;
        counts.outbox_pending = pending as u64;
        Ok(counts)
    }
}
