-- Notifications that stop, and never surprise: each delivery is bound to the channel that was
-- configured when its outbox entry was written (`target`, a hash of where the channel points),
-- retries end in a dead letter, and replicas claim due deliveries with a lease.

-- A fingerprint of the channel's destination (URL, routing key); NULL for deliveries planned
-- before this migration, which the channel of the same name adopts at the next start.
ALTER TABLE deliveries ADD COLUMN target TEXT;
-- pending | delivered | dead (retries ended) | stopped (its channel is no longer configured).
ALTER TABLE deliveries ADD COLUMN state TEXT NOT NULL DEFAULT 'pending'
    CHECK (state IN ('pending', 'delivered', 'dead', 'stopped'));
-- The incarnation trying it, and until when; an expired claim is due again.
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE deliveries ADD COLUMN claimed_until INTEGER;
-- When and why it became dead or stopped.
ALTER TABLE deliveries ADD COLUMN ended_at INTEGER;
ALTER TABLE deliveries ADD COLUMN end_reason TEXT;
UPDATE deliveries SET state = 'delivered' WHERE delivered_at IS NOT NULL;

DROP INDEX deliveries_due;
CREATE INDEX deliveries_pending ON deliveries (next_attempt_at) WHERE state = 'pending';
-- An entry waits for its incident's earlier entries on the same channel.
CREATE INDEX outbox_by_incident ON outbox (incident_id, id);
