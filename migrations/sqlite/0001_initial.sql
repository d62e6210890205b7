-- burnguard store, SQLite flavour. Times are unix seconds; JSON documents are TEXT.

-- Every evaluation of every SLO (pruned by the retention setting).
CREATE TABLE evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slo TEXT NOT NULL,
    service TEXT NOT NULL,
    evaluated_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    error_budget_remaining REAL,
    snapshot TEXT NOT NULL
);
CREATE INDEX evaluations_by_slo_time ON evaluations (slo, evaluated_at);

-- The latest evaluation of each SLO.
CREATE TABLE latest_evaluations (
    slo TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    evaluated_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    snapshot TEXT NOT NULL
);

CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slo TEXT NOT NULL,
    service TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('page', 'ticket')),
    status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    opened_at INTEGER NOT NULL,
    acknowledged_at INTEGER,
    resolved_at INTEGER,
    last_firing_at INTEGER NOT NULL,
    peak_burn_rate REAL NOT NULL,
    budget_at_open REAL,
    budget_at_resolve REAL,
    data_missing BOOLEAN NOT NULL DEFAULT FALSE
);
-- At most one incident per SLO that is not resolved, whoever writes (two replicas included).
CREATE UNIQUE INDEX incidents_one_unresolved_per_slo ON incidents (slo) WHERE status <> 'resolved';
CREATE INDEX incidents_by_opened ON incidents (opened_at);

-- The timeline of each incident.
CREATE TABLE incident_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    actor TEXT,
    detail TEXT
);
CREATE INDEX incident_events_by_incident ON incident_events (incident_id, id);

-- Remediation steps: the intent is written before a step runs, the outcome after.
CREATE TABLE actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER REFERENCES incidents (id) ON DELETE SET NULL,
    -- incident + rule + step: a step runs at most once per incident.
    idempotency_key TEXT NOT NULL UNIQUE,
    slo TEXT NOT NULL,
    playbook TEXT,
    step TEXT NOT NULL,
    kind TEXT NOT NULL,
    intent TEXT NOT NULL,
    status TEXT NOT NULL,
    dry_run BOOLEAN NOT NULL DEFAULT FALSE,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    outcome TEXT
);

-- Deployment freezes: the record the freeze gate and the admission webhook read.
CREATE TABLE freezes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT,
    namespace TEXT,
    deployments TEXT,
    selector TEXT,
    reason TEXT NOT NULL,
    incident_id INTEGER REFERENCES incidents (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    lifted_at INTEGER,
    lifted_by TEXT,
    slo TEXT,
    -- What created it (`slo/rule`, a playbook step, `manual/...`); one active freeze per source.
    source_key TEXT NOT NULL,
    -- The budget rule's trigger as JSON, to know when to lift it.
    lift_when TEXT,
    -- What burnguard applied to Kubernetes, to remove only that.
    applied TEXT
);
CREATE UNIQUE INDEX freezes_one_active_per_source ON freezes (source_key) WHERE lifted_at IS NULL;
CREATE INDEX actions_by_created ON actions (created_at);

-- Inbound webhooks, raw body kept for audit, deduplicated per source.
CREATE TABLE webhook_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    incident_id INTEGER REFERENCES incidents (id) ON DELETE SET NULL,
    body TEXT NOT NULL,
    UNIQUE (source, dedup_key)
);

-- Notifications to deliver (incident opened, escalated, resolved), written in the same
-- transaction as the change, so none is lost across restarts.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    payload TEXT NOT NULL
);

-- One row per notification and channel: attempts, backoff, delivery.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at INTEGER,
    last_error TEXT,
    UNIQUE (outbox_id, channel)
);
CREATE INDEX deliveries_due ON deliveries (delivered_at, next_attempt_at);
