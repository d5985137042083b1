-- Forwarding: the outbox of messages to destinations, their attempts, and the
-- destinations an answer of 410 Gone disabled. A message is written in the transaction
-- that stores its event; its body is that event as stored (dropped once delivered).
CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    destination     TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    delivery_id     TEXT NOT NULL,
    state           TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     TEXT,
    settled_at      TEXT,
    reason          TEXT,
    body            BLOB
);
CREATE INDEX messages_due ON messages (destination, next_attempt_at) WHERE state = 'pending';
CREATE INDEX messages_destination ON messages (destination, state, id);
CREATE INDEX messages_event ON messages (event_id);
CREATE INDEX messages_delivery ON messages (delivery_id);

CREATE TABLE message_attempts (
    message_id  TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    n           INTEGER NOT NULL,
    at          TEXT NOT NULL,
    status      INTEGER,
    duration_ms INTEGER NOT NULL,
    error       TEXT,
    PRIMARY KEY (message_id, n)
);

CREATE TABLE destination_state (
    name        TEXT PRIMARY KEY,
    disabled_at TEXT,
    reason      TEXT
)
