-- Safe automation: data gaps on incidents, process identity for the journal, playbook runs
-- that stay finished, rollbacks remembered, freezes reconciled with Kubernetes.

-- When the evaluations of an open incident lost their data, and when it came back (quiet time
-- counts from there).
ALTER TABLE incidents ADD COLUMN data_missing_since BIGINT;
ALTER TABLE incidents ADD COLUMN data_back_at BIGINT;
UPDATE incidents SET data_missing_since = last_firing_at WHERE data_missing AND status <> 'resolved';

-- Every burnguard process: `name` is stable across restarts (the pod or host name), `id` is
-- one incarnation. Crash recovery touches only the journal rows of dead incarnations.
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at BIGINT
);
CREATE INDEX instances_by_name ON instances (name);

-- The incarnation that started a step.
ALTER TABLE actions ADD COLUMN instance_id TEXT;
CREATE INDEX actions_by_status ON actions (status, instance_id);

-- One run of a playbook per incident and budget rule; once finished it stays finished, so
-- steps added to the playbook later do not run for that incident.
CREATE TABLE playbook_runs (
    id BIGSERIAL PRIMARY KEY,
    incident_id BIGINT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    rule_id TEXT NOT NULL,
    playbook TEXT NOT NULL,
    slo TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'stopped')),
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    UNIQUE (incident_id, rule_id, playbook)
);

-- Pod templates burnguard rolled a Deployment away from; it never rolls back to them.
CREATE TABLE rollbacks (
    id BIGSERIAL PRIMARY KEY,
    namespace TEXT NOT NULL,
    deployment TEXT NOT NULL,
    rolled_away_from TEXT NOT NULL,
    rolled_to TEXT NOT NULL,
    incident_id BIGINT REFERENCES incidents (id) ON DELETE SET NULL,
    at BIGINT NOT NULL
);
CREATE INDEX rollbacks_by_deployment ON rollbacks (namespace, deployment);

-- A lifted freeze keeps `applied` until its annotations are gone from Kubernetes.
ALTER TABLE freezes ADD COLUMN removed_at BIGINT;
UPDATE freezes SET removed_at = lifted_at WHERE lifted_at IS NOT NULL;
