//! The action journal (guarded starts, compare-and-set claims, crash recovery by incarnation),
//! playbook runs, rollback memory and the freeze records, for SQLite and PostgreSQL alike.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{
    ACTION_COLUMNS, INCIDENT_COLUMNS, SqlStore, action_record, db_error, incident_record, json,
};
use crate::ports::{
    ActionIntent, ActionRecord, ActionStatus, FreezeRecord, Freezes, Guards, IncidentRecord,
    Instance, Journal, Journaled, NewFreeze, RunStatus, Started, StoreError, UnixSeconds,
};

fn is_unique_violation(error: &sqlx::Error) -> bool {
    super::is_unique_violation(error)
}

impl SqlStore {
    /// Checks the guards inside a write transaction; `Some(reason)` when one refuses.
    async fn refused_by(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        guards: &Guards,
    ) -> Result<Option<String>, sqlx::Error> {
        if let Some(lock) = self.backend.guard_lock() {
            // PostgreSQL: one guarded start at a time across replicas (SQLite's IMMEDIATE
            // transactions are already exclusive).
            sqlx::query(lock).execute(&mut **tx).await?;
        }
        if let Some(cooldown) = &guards.cooldown {
            let last: Option<i64> = sqlx::query(
                "SELECT MAX(COALESCE(started_at, created_at)) AS last FROM actions WHERE slo = $1 AND playbook = $2 \
                 AND (incident_id IS NULL OR incident_id <> $3) AND COALESCE(started_at, created_at) >= $4 \
                 AND status IN ('started', 'succeeded', 'failed', 'unknown')",
            )
            .bind(&cooldown.slo)
            .bind(&cooldown.playbook)
            .bind(cooldown.incident_id)
            .bind(cooldown.since)
            .fetch_one(&mut **tx)
            .await?
            .try_get("last")?;
            if let Some(last) = last {
                return Ok(Some(format!(
                    "playbook `{}` last ran for this SLO at {}, within its cooldown of {}",
                    cooldown.playbook,
                    crate::timefmt::rfc3339(last),
                    cooldown.text
                )));
            }
        }
        if let Some((since, max)) = guards.hourly_cap {
            let n: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM actions WHERE COALESCE(started_at, created_at) >= $1 \
                 AND status IN ('started', 'succeeded', 'failed', 'unknown')",
            )
            .bind(since)
            .fetch_one(&mut **tx)
            .await?
            .try_get("n")?;
            if n >= i64::from(max) {
                return Ok(Some(format!(
                    "{n} actions ran in the last hour; maxActionsPerHour is {max}"
                )));
            }
        }
        Ok(None)
    }

    async fn insert_action(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        intent: &ActionIntent,
        status: ActionStatus,
        instance: Option<&str>,
        outcome: Option<String>,
    ) -> Result<Option<i64>, sqlx::Error> {
        let started_at = (status == ActionStatus::Started).then_some(intent.at);
        let inserted = sqlx::query(
            "INSERT INTO actions (incident_id, idempotency_key, slo, playbook, step, kind, intent, status, dry_run, created_at, started_at, instance_id, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(intent.incident_id)
        .bind(&intent.key)
        .bind(&intent.slo)
        .bind(intent.playbook.as_deref())
        .bind(&intent.step)
        .bind(&intent.kind)
        .bind(intent.intent.to_string())
        .bind(status.as_str())
        .bind(intent.dry_run)
        .bind(intent.at)
        .bind(started_at)
        .bind(instance)
        .bind(outcome)
        .fetch_optional(&mut **tx)
        .await?;
        inserted.map(|row| row.try_get("id")).transpose()
    }
}

impl Journal for SqlStore {
    async fn step_status(&self, key: &str) -> Result<Option<(i64, ActionStatus)>, StoreError> {
        let row = sqlx::query("SELECT id, status FROM actions WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(|row| {
            let status: String = row.try_get("status").map_err(db_error)?;
            Ok((
                row.try_get("id").map_err(db_error)?,
                ActionStatus::parse(&status).ok_or_else(|| {
                    StoreError::Corrupt(format!("unknown action status {status}"))
                })?,
            ))
        })
        .transpose()
    }

    async fn run_actions(&self, prefix: &str) -> Result<Vec<ActionRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {ACTION_COLUMNS} FROM actions WHERE substr(idempotency_key, 1, length($1)) = $1 ORDER BY id"
        )))
        .bind(prefix)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(action_record)
        .collect()
    }

    async fn journal(&self, intent: &ActionIntent) -> Result<Journaled, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = Self::insert_action(&mut tx, intent, intent.status, None, None)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        match inserted {
            Some(id) => Ok(Journaled::New { id }),
            None => {
                let (id, status) = self.step_status(&intent.key).await?.ok_or_else(|| {
                    StoreError::Corrupt(format!("action {} vanished", intent.key))
                })?;
                Ok(Journaled::Existing { id, status })
            }
        }
    }

    async fn start(
        &self,
        intent: &ActionIntent,
        instance: &Instance,
        guards: &Guards,
    ) -> Result<Started, StoreError> {
        let mut tx = self.begin_write().await?;
        let refused = self.refused_by(&mut tx, guards).await.map_err(db_error)?;
        let (status, outcome) = match &refused {
            Some(reason) => (
                ActionStatus::Skipped,
                Some(serde_json::json!({ "skipped": reason }).to_string()),
            ),
            None => (ActionStatus::Started, None),
        };
        let id = Self::insert_action(&mut tx, intent, status, Some(&instance.id), outcome)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(match (id, refused) {
            (None, _) => Started::Lost,
            (Some(id), None) => Started::Run { id },
            (Some(id), Some(reason)) => Started::Refused {
                id,
                reason,
                new: true,
            },
        })
    }

    async fn claim(
        &self,
        id: i64,
        from: ActionStatus,
        instance: &Instance,
        guards: Option<&Guards>,
        at: UnixSeconds,
    ) -> Result<Started, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(guards) = guards
            && let Some(reason) = self.refused_by(&mut tx, guards).await.map_err(db_error)?
        {
            tx.commit().await.map_err(db_error)?;
            return Ok(Started::Refused {
                id,
                reason,
                new: false,
            });
        }
        let done = sqlx::query(
            "UPDATE actions SET status = 'started', started_at = $1, finished_at = NULL, instance_id = $2 \
             WHERE id = $3 AND status = $4",
        )
        .bind(at)
        .bind(&instance.id)
        .bind(id)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(if done.rows_affected() == 1 {
            Started::Run { id }
        } else {
            Started::Lost
        })
    }

    async fn settle(
        &self,
        id: i64,
        instance: &Instance,
        status: ActionStatus,
        outcome: serde_json::Value,
        at: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE actions SET status = $1, outcome = $2, finished_at = $3 \
             WHERE id = $4 AND status = 'started' AND instance_id = $5",
        )
        .bind(status.as_str())
        .bind(outcome.to_string())
        .bind(at)
        .bind(id)
        .bind(&instance.id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn heartbeat(&self, instance: &Instance, at: UnixSeconds) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO instances (id, name, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        )
        .bind(&instance.id)
        .bind(&instance.name)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn recover_interrupted(
        &self,
        me: &Instance,
        stale_before: UnixSeconds,
        at: UnixSeconds,
    ) -> Result<Vec<ActionRecord>, StoreError> {
        // Dead: no incarnation on record, an earlier incarnation of my own name, stopped,
        // or silent since `stale_before`. Never this incarnation, never a live replica.
        let dead = "status = 'started' AND (instance_id IS NULL OR instance_id IN (\
             SELECT id FROM instances WHERE id <> $1 AND (name = $2 OR stopped_at IS NOT NULL OR heartbeat_at < $3)) \
             OR instance_id NOT IN (SELECT id FROM instances))";
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ACTION_COLUMNS} FROM actions WHERE {dead} ORDER BY id"
        )))
        .bind(&me.id)
        .bind(&me.name)
        .bind(stale_before)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        for row in &rows {
            let id: i64 = row.try_get("id").map_err(db_error)?;
            sqlx::query(
                "UPDATE actions SET status = 'unknown', finished_at = $1, \
                 outcome = '{\"error\": \"the burnguard process running this step died; whether it took effect is unknown\"}' \
                 WHERE id = $2 AND status = 'started'",
            )
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        rows.iter().map(action_record).collect()
    }

    async fn interrupt_own(
        &self,
        me: &Instance,
        at: UnixSeconds,
    ) -> Result<Vec<ActionRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ACTION_COLUMNS} FROM actions WHERE status = 'started' AND instance_id = $1 ORDER BY id"
        )))
        .bind(&me.id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "UPDATE actions SET status = 'unknown', finished_at = $1, \
             outcome = '{\"error\": \"burnguard shut down before this step finished; whether it took effect is unknown\"}' \
             WHERE status = 'started' AND instance_id = $2",
        )
        .bind(at)
        .bind(&me.id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query("UPDATE instances SET stopped_at = $1 WHERE id = $2")
            .bind(at)
            .bind(&me.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        rows.iter().map(action_record).collect()
    }

    async fn playbook_run(
        &self,
        incident_id: i64,
        rule_id: &str,
        playbook: &str,
        slo: &str,
        at: UnixSeconds,
    ) -> Result<RunStatus, StoreError> {
        sqlx::query(
            "INSERT INTO playbook_runs (incident_id, rule_id, playbook, slo, status, started_at) \
             VALUES ($1, $2, $3, $4, 'running', $5) ON CONFLICT (incident_id, rule_id, playbook) DO NOTHING",
        )
        .bind(incident_id)
        .bind(rule_id)
        .bind(playbook)
        .bind(slo)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        let status: String = sqlx::query(
            "SELECT status FROM playbook_runs WHERE incident_id = $1 AND rule_id = $2 AND playbook = $3",
        )
        .bind(incident_id)
        .bind(rule_id)
        .bind(playbook)
        .fetch_one(&self.pool)
        .await
        .and_then(|r| r.try_get("status"))
        .map_err(db_error)?;
        RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown playbook run status {status}")))
    }

    async fn end_run(
        &self,
        incident_id: i64,
        rule_id: &str,
        playbook: &str,
        status: RunStatus,
        at: UnixSeconds,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE playbook_runs SET status = $1, finished_at = $2 \
             WHERE incident_id = $3 AND rule_id = $4 AND playbook = $5 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(at)
        .bind(incident_id)
        .bind(rule_id)
        .bind(playbook)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn rolled_away_from(
        &self,
        namespace: &str,
        deployment: &str,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query(
            "SELECT DISTINCT rolled_away_from FROM rollbacks WHERE namespace = $1 AND deployment = $2",
        )
        .bind(namespace)
        .bind(deployment)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| r.try_get("rolled_away_from").map_err(db_error))
        .collect()
    }

    async fn rolled_to(
        &self,
        namespace: &str,
        deployment: &str,
        incident_id: i64,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query(
            "SELECT rolled_to FROM rollbacks WHERE namespace = $1 AND deployment = $2 AND incident_id = $3 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(namespace)
        .bind(deployment)
        .bind(incident_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .map(|r| r.try_get("rolled_to").map_err(db_error))
        .transpose()
    }

    async fn record_rollback(
        &self,
        namespace: &str,
        deployment: &str,
        from: &str,
        to: &str,
        incident_id: Option<i64>,
        at: UnixSeconds,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rollbacks (namespace, deployment, rolled_away_from, rolled_to, incident_id, at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(namespace)
        .bind(deployment)
        .bind(from)
        .bind(to)
        .bind(incident_id)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
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

    async fn quiet_since(&self, slo: &str) -> Result<Option<UnixSeconds>, StoreError> {
        sqlx::query(
            "SELECT MAX(CASE WHEN data_back_at IS NOT NULL AND data_back_at > last_firing_at \
             THEN data_back_at ELSE last_firing_at END) AS last FROM incidents WHERE slo = $1",
        )
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

    async fn lifted_freezes(&self, limit: i64) -> Result<Vec<FreezeRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {FREEZE_COLUMNS} FROM freezes WHERE lifted_at IS NOT NULL ORDER BY lifted_at DESC, id DESC LIMIT $1"
        )))
        .bind(limit)
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
        applied: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE freezes SET applied = $1 WHERE id = $2")
            .bind(applied.map(|a| a.to_string()))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn lifted_not_removed(&self) -> Result<Vec<FreezeRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {FREEZE_COLUMNS} FROM freezes WHERE lifted_at IS NOT NULL AND applied IS NOT NULL \
             AND removed_at IS NULL ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(freeze_record)
        .collect()
    }

    async fn set_freeze_removed(&self, id: i64, at: UnixSeconds) -> Result<(), StoreError> {
        sqlx::query("UPDATE freezes SET removed_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
