//! The action journal and the freeze records, for SQLite and PostgreSQL alike.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{
    ACTION_COLUMNS, INCIDENT_COLUMNS, SqlStore, action_record, db_error, incident_record, json,
};
use crate::ports::{
    ActionIntent, ActionRecord, ActionStatus, FreezeRecord, Freezes, IncidentRecord, Journal,
    Journaled, NewFreeze, StoreError, UnixSeconds,
};

fn is_unique_violation(error: &sqlx::Error) -> bool {
    super::is_unique_violation(error)
}

impl Journal for SqlStore {
    async fn journal(&self, intent: &ActionIntent) -> Result<Journaled, StoreError> {
        let started_at = (intent.status == ActionStatus::Started).then_some(intent.at);
        let inserted = sqlx::query(
            "INSERT INTO actions (incident_id, idempotency_key, slo, playbook, step, kind, intent, status, dry_run, created_at, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(intent.incident_id)
        .bind(&intent.key)
        .bind(&intent.slo)
        .bind(intent.playbook.as_deref())
        .bind(&intent.step)
        .bind(&intent.kind)
        .bind(intent.intent.to_string())
        .bind(intent.status.as_str())
        .bind(intent.dry_run)
        .bind(intent.at)
        .bind(started_at)
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(row) => Ok(Journaled::New {
                id: row.try_get("id").map_err(db_error)?,
            }),
            Err(e) if is_unique_violation(&e) => {
                let row = sqlx::query("SELECT id, status FROM actions WHERE idempotency_key = $1")
                    .bind(&intent.key)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_error)?;
                let status: String = row.try_get("status").map_err(db_error)?;
                Ok(Journaled::Existing {
                    id: row.try_get("id").map_err(db_error)?,
                    status: ActionStatus::parse(&status).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown action status {status}"))
                    })?,
                })
            }
            Err(e) => Err(db_error(e)),
        }
    }

    async fn settle(
        &self,
        id: i64,
        status: ActionStatus,
        outcome: serde_json::Value,
        at: UnixSeconds,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE actions SET status = $1, outcome = $2, finished_at = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(outcome.to_string())
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn claim_approved(&self, id: i64, at: UnixSeconds) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE actions SET status = 'started', started_at = $1 WHERE id = $2 AND status = 'approved'")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn retry_unknown(&self, id: i64, at: UnixSeconds) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE actions SET status = 'started', started_at = $1 WHERE id = $2 AND status = 'unknown'")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_interrupted(&self, at: UnixSeconds) -> Result<Vec<ActionRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ACTION_COLUMNS} FROM actions WHERE status = 'started' ORDER BY id"
        )))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "UPDATE actions SET status = 'unknown', finished_at = $1, \
             outcome = '{\"error\": \"burnguard stopped while this step ran; whether it took effect is unknown\"}' \
             WHERE status = 'started'",
        )
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        rows.iter().map(action_record).collect()
    }

    async fn count_actions_since(&self, at: UnixSeconds) -> Result<i64, StoreError> {
        sqlx::query(
            "SELECT COUNT(*) AS n FROM actions WHERE created_at >= $1 AND status IN ('started', 'succeeded', 'failed', 'unknown')",
        )
        .bind(at)
        .fetch_one(&self.pool)
        .await
        .and_then(|r| r.try_get("n"))
        .map_err(db_error)
    }

    async fn last_playbook_run(
        &self,
        slo: &str,
        playbook: &str,
    ) -> Result<Option<UnixSeconds>, StoreError> {
        sqlx::query(
            "SELECT MAX(created_at) AS last FROM actions WHERE slo = $1 AND playbook = $2 \
             AND status IN ('started', 'succeeded', 'failed', 'unknown')",
        )
        .bind(slo)
        .bind(playbook)
        .fetch_one(&self.pool)
        .await
        .and_then(|r| r.try_get("last"))
        .map_err(db_error)
    }

    async fn add_event(
        &self,
        incident_id: i64,
        at: UnixSeconds,
        kind: &str,
        message: &str,
        actor: &str,
        detail: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO incident_events (incident_id, at, kind, message, actor, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(incident_id)
            .bind(at)
            .bind(kind)
            .bind(message)
            .bind(actor)
            .bind(detail.map(|d| d.to_string()))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn unresolved_incident(&self, slo: &str) -> Result<Option<IncidentRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE slo = $1 AND status <> 'resolved'"
        )))
        .bind(slo)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .map(|r| incident_record(&r).map_err(db_error))
        .transpose()
    }

    async fn last_firing_at(&self, slo: &str) -> Result<Option<UnixSeconds>, StoreError> {
        sqlx::query("SELECT MAX(last_firing_at) AS last FROM incidents WHERE slo = $1")
            .bind(slo)
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get("last"))
            .map_err(db_error)
    }
}

const FREEZE_COLUMNS: &str = "id, service, namespace, deployments, selector, reason, incident_id, slo, source_key, \
     created_at, created_by, lifted_at, lifted_by, lift_when, applied";

fn freeze_record(row: &AnyRow) -> Result<FreezeRecord, StoreError> {
    let deployments: Option<String> = row.try_get("deployments").map_err(db_error)?;
    Ok(FreezeRecord {
        id: row.try_get("id").map_err(db_error)?,
        service: row.try_get("service").map_err(db_error)?,
        namespace: row.try_get("namespace").map_err(db_error)?,
        deployments: match json(deployments)? {
            Some(v) => serde_json::from_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            None => Vec::new(),
        },
        selector: row.try_get("selector").map_err(db_error)?,
        reason: row.try_get("reason").map_err(db_error)?,
        incident_id: row.try_get("incident_id").map_err(db_error)?,
        slo: row.try_get("slo").map_err(db_error)?,
        source_key: row.try_get("source_key").map_err(db_error)?,
        created_at: row.try_get("created_at").map_err(db_error)?,
        created_by: row.try_get("created_by").map_err(db_error)?,
        lifted_at: row.try_get("lifted_at").map_err(db_error)?,
        lifted_by: row.try_get("lifted_by").map_err(db_error)?,
        lift_when: json(row.try_get("lift_when").map_err(db_error)?)?,
        applied: json(row.try_get("applied").map_err(db_error)?)?,
    })
}

impl Freezes for SqlStore {
    async fn create_freeze(&self, f: &NewFreeze) -> Result<Option<i64>, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO freezes (service, namespace, deployments, selector, reason, incident_id, slo, source_key, created_at, created_by, lift_when) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(f.target.service.as_deref())
        .bind(f.target.namespace.as_deref())
        .bind(serde_json::to_string(&f.target.deployments).unwrap_or_else(|_| "[]".into()))
        .bind(f.target.selector.as_deref())
        .bind(&f.reason)
        .bind(f.incident_id)
        .bind(f.slo.as_deref())
        .bind(&f.source_key)
        .bind(f.at)
        .bind(&f.created_by)
        .bind(f.lift_when.as_ref().map(|v| v.to_string()))
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(row) => Ok(Some(row.try_get("id").map_err(db_error)?)),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn active_freezes(&self) -> Result<Vec<FreezeRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {FREEZE_COLUMNS} FROM freezes WHERE lifted_at IS NULL ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(freeze_record)
        .collect()
    }

    async fn lift_freeze(&self, id: i64, by: &str, at: UnixSeconds) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE freezes SET lifted_at = $1, lifted_by = $2 WHERE id = $3 AND lifted_at IS NULL",
        )
        .bind(at)
        .bind(by)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_freeze_applied(
        &self,
        id: i64,
        applied: serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE freezes SET applied = $1 WHERE id = $2")
            .bind(applied.to_string())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
