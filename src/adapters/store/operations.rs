//! People's commands on incidents (acknowledge, resolve, approve) and evaluation history.

use sqlx::{AssertSqlSafe, Row};

use super::{
    ACTION_COLUMNS, INCIDENT_COLUMNS, SqlStore, action_record, db_error, incident_record, json,
};
use crate::ports::{
    ActionRecord, CommandOutcome, EvaluationPoint, Journal, Operations, StoreError, UnixSeconds,
};

impl SqlStore {
    async fn incident_row(
        &self,
        id: i64,
    ) -> Result<Option<crate::ports::IncidentRecord>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .map(|r| incident_record(&r).map_err(db_error))
        .transpose()
    }

    async fn note(
        &self,
        id: i64,
        at: UnixSeconds,
        kind: &str,
        message: String,
        by: &str,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        let detail = note.map(|n| serde_json::json!({"note": n}));
        self.add_event(id, at, kind, &message, by, detail).await
    }
}

impl SqlStore {
    /// A person's status change: `sql` (binding `at`, then `id`) applies it when the incident is
    /// in a state it applies to; otherwise the outcome is a conflict worded by `conflict`. On
    /// success the change goes on the timeline as `kind`, "<kind> by <by>", with the note.
    async fn change_by_hand(
        &self,
        id: i64,
        sql: &'static str,
        conflict: impl FnOnce(&crate::ports::IncidentRecord) -> String,
        (kind, by, note, at): (&str, &str, Option<&str>, UnixSeconds),
    ) -> Result<CommandOutcome, StoreError> {
        let done = sqlx::query(sql)
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        let Some(incident) = self.incident_row(id).await? else {
            return Ok(CommandOutcome::NotFound);
        };
        if done.rows_affected() == 0 {
            return Ok(CommandOutcome::Conflict(conflict(&incident)));
        }
        // The note is the reason ("SLO deleted"): the timeline line says it, not only its detail.
        let message = match note.map(str::trim).filter(|n| !n.is_empty()) {
            Some(note) => format!("{kind} by {by}: {note}"),
            None => format!("{kind} by {by}"),
        };
        self.note(id, at, kind, message, by, note).await?;
        Ok(CommandOutcome::Done(incident))
    }
}

fn point(row: &sqlx::any::AnyRow) -> Result<EvaluationPoint, StoreError> {
    Ok(EvaluationPoint {
        slo: row.try_get("slo").map_err(db_error)?,
        evaluated_at: row.try_get("evaluated_at").map_err(db_error)?,
        status: row.try_get("status").map_err(db_error)?,
        error_budget_remaining: row.try_get("error_budget_remaining").map_err(db_error)?,
        snapshot: json(Some(row.try_get("snapshot").map_err(db_error)?))?.unwrap_or_default(),
    })
}

impl Operations for SqlStore {
    async fn acknowledge(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        at: UnixSeconds,
    ) -> Result<CommandOutcome, StoreError> {
        self.change_by_hand(
            id,
            "UPDATE incidents SET status = 'acknowledged', acknowledged_at = $1 WHERE id = $2 AND status = 'open'",
            |i| format!("incident {id} is {}; only an open incident can be acknowledged", i.status),
            ("acknowledged", by, note, at),
        )
        .await
    }

    async fn resolve_by_hand(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        at: UnixSeconds,
    ) -> Result<CommandOutcome, StoreError> {
        self.change_by_hand(
            id,
            "UPDATE incidents SET status = 'resolved', resolved_at = $1 WHERE id = $2 AND status <> 'resolved'",
            |_| format!("incident {id} is already resolved"),
            ("resolved", by, note, at),
        )
        .await
    }

    async fn approve(
        &self,
        id: i64,
        by: &str,
        note: Option<&str>,
        at: UnixSeconds,
    ) -> Result<CommandOutcome, StoreError> {
        let Some(incident) = self.incident_row(id).await? else {
            return Ok(CommandOutcome::NotFound);
        };
        let done = sqlx::query("UPDATE actions SET status = 'approved' WHERE incident_id = $1 AND status = 'awaiting_approval'")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Ok(CommandOutcome::Conflict(format!(
                "incident {id} has no step waiting for approval"
            )));
        }
        self.note(
            id,
            at,
            "approved",
            format!("{by} approved the waiting playbook steps; they run on the next cycle"),
            by,
            note,
        )
        .await?;
        Ok(CommandOutcome::Done(incident))
    }

    async fn latest_evaluations(&self) -> Result<Vec<EvaluationPoint>, StoreError> {
        sqlx::query(
            "SELECT l.slo AS slo, e.evaluated_at AS evaluated_at, e.status AS status, \
             e.error_budget_remaining AS error_budget_remaining, e.snapshot AS snapshot \
             FROM latest_evaluations l JOIN evaluations e ON e.id = l.evaluation_id ORDER BY l.slo",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(point)
        .collect()
    }

    async fn evaluation_history(
        &self,
        slo: &str,
        from: UnixSeconds,
        to: UnixSeconds,
        limit: i64,
    ) -> Result<Vec<EvaluationPoint>, StoreError> {
        sqlx::query(
            "SELECT slo, evaluated_at, status, error_budget_remaining, snapshot FROM evaluations \
             WHERE slo = $1 AND evaluated_at >= $2 AND evaluated_at <= $3 ORDER BY evaluated_at LIMIT $4",
        )
        .bind(slo)
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(point)
        .collect()
    }

    async fn slo_actions(
        &self,
        slo: &str,
        from: UnixSeconds,
        to: UnixSeconds,
        limit: i64,
    ) -> Result<Vec<ActionRecord>, StoreError> {
        // Built from constants only; every value is bound.
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {ACTION_COLUMNS} FROM actions WHERE slo = $1 \
             AND COALESCE(started_at, created_at) >= $2 AND COALESCE(started_at, created_at) <= $3 \
             ORDER BY id LIMIT $4"
        )))
        .bind(slo)
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(action_record)
        .collect()
    }
}
