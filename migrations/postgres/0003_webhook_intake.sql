-- Webhook intake that cannot fill the disk: each received body is stored once, in
-- webhook_bodies, and the events it carried (one per Alertmanager alert, one per PagerDuty or
-- Opsgenie delivery) point at it. Retention (age and count) deletes bodies with their events.
CREATE TABLE webhook_bodies (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX webhook_bodies_by_received ON webhook_bodies (received_at);

-- Events stored before kept a whole body each: it moves to webhook_bodies under the event's
-- own id (one body per old event), so nothing is lost, and retention removes them in time.
INSERT INTO webhook_bodies (id, source, received_at, body)
    SELECT id, source, received_at, body FROM webhook_events;
SELECT setval(pg_get_serial_sequence('webhook_bodies', 'id'),
              COALESCE((SELECT MAX(id) FROM webhook_bodies), 0) + 1, false);

ALTER TABLE webhook_events ADD COLUMN body_id BIGINT;
UPDATE webhook_events SET body_id = id;
ALTER TABLE webhook_events ALTER COLUMN body_id SET NOT NULL;
ALTER TABLE webhook_events
    ADD FOREIGN KEY (body_id) REFERENCES webhook_bodies (id) ON DELETE CASCADE;
ALTER TABLE webhook_events DROP COLUMN body;
CREATE INDEX webhook_events_by_body ON webhook_events (body_id);

-- The key first: a delivery's keys are looked up all at once (`dedup_key IN (...)`), and
-- PostgreSQL before 17 cannot use a list on the second column of an index to skip: with the
-- source first it read every row of the source, and each lookup grew with the table.
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_source_dedup_key_key;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_one_per_key UNIQUE (dedup_key, source);
