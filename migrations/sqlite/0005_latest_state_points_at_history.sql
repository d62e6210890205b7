-- Each SLO's stored latest state is its newest history row. It used to be a second copy of
-- that row, snapshot and all, so a cycle wrote every kept snapshot twice; now it names the row.
-- Pruning the history keeps the rows named here.

-- A latest state whose history row is gone (pruned) becomes a history row again.
INSERT INTO evaluations (slo, service, evaluated_at, status, error_budget_remaining, snapshot)
SELECT l.slo, l.service, l.evaluated_at, l.status, NULL, l.snapshot
FROM latest_evaluations l
WHERE NOT EXISTS (
    SELECT 1 FROM evaluations e WHERE e.slo = l.slo AND e.evaluated_at = l.evaluated_at
);

CREATE TABLE latest_evaluation_rows (
    slo TEXT PRIMARY KEY,
    evaluation_id BIGINT NOT NULL
);
INSERT INTO latest_evaluation_rows (slo, evaluation_id)
SELECT l.slo, (
    SELECT MAX(e.id) FROM evaluations e WHERE e.slo = l.slo AND e.evaluated_at = l.evaluated_at
)
FROM latest_evaluations l;

DROP TABLE latest_evaluations;
ALTER TABLE latest_evaluation_rows RENAME TO latest_evaluations;
