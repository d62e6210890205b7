-- Webhook intake that cannot fill the disk: each received body is stored once, in
-- webhook_bodies, and the events it carried (one per Alertmanager alert, one per PagerDuty or
-- Opsgenie delivery) point at it. Retention (age and count) deletes bodies with their events.
CREATE TABLE webhook_bodies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX webhook_bodies_by_received ON webhook_bodies (received_at);

-- Events stored before kept a whole body each: it moves to webhook_bodies under the event's
-- own id (one body per old event), so nothing is lost, and retention removes them in time.
INSERT INTO webhook_bodies (id, source, received_at, body)
    SELECT id, source, received_at, body FROM webhook_events;

-- SQLite cannot drop a column that is NOT NULL in place: the table is rebuilt without it.
CREATE TABLE webhook_events_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    incident_id INTEGER REFERENCES incidents (id) ON DELETE SET NULL,
    body_id INTEGER NOT NULL REFERENCES webhook_bodies (id) ON DELETE CASCADE,
    -- The key first: a delivery's keys are looked up all at once (`dedup_key IN (...)`).
    UNIQUE (dedup_key, source)
);
INSERT INTO webhook_events_new (id, source, dedup_key, received_at, incident_id, body_id)
    SELECT id, source, dedup_key, received_at, incident_id, id FROM webhook_events;
DROP TABLE webhook_events;
ALTER TABLE webhook_events_new RENAME TO webhook_events;
CREATE INDEX webhook_events_by_body ON webhook_events (body_id);
