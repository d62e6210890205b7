//! Counts for `/metrics`: open incidents and active freezes per SLO, journaled steps by
//! status, and the notification outbox's depth. Read-only, one query each.

use sqlx::Row;

use super::{SqlStore, db_error};
use crate::ports::{StoreCounts, StoreError};

impl SqlStore {
    /// What the store holds now, for the gauges at `/metrics`.
    pub async fn counts(&self) -> Result<StoreCounts, StoreError> {
        let mut counts = StoreCounts {
            open_incidents: self
                .per_slo(
                    "SELECT slo, COUNT(*) AS n FROM incidents WHERE status <> 'resolved' GROUP BY slo",
                )
                .await?,
            active_freezes: self
                .per_slo(
                    "SELECT slo, COUNT(*) AS n FROM freezes WHERE lifted_at IS NULL AND slo IS NOT NULL GROUP BY slo",
                )
                .await?,
            ..StoreCounts::default()
        };
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
            // Still to be tried: not delivered, dead-lettered or stopped.
            sqlx::query("SELECT COUNT(*) AS n FROM deliveries WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?
                .try_get("n")
                .map_err(db_error)?;
        counts.outbox_pending = pending as u64;
        Ok(counts)
    }

    /// `slo -> n` from a query selecting `slo` and `n`.
    async fn per_slo(
        &self,
        sql: &'static str,
    ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for row in sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
        {
            let n: i64 = row.try_get("n").map_err(db_error)?;
            out.insert(row.try_get("slo").map_err(db_error)?, n as u64);
        }
        Ok(out)
    }
}
