-- The raw delivery log and the canonical events.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    source          TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    method          TEXT NOT NULL,
    path            TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    query           TEXT NOT NULL,
    headers         TEXT NOT NULL,
    body            BLOB,
    body_format     TEXT NOT NULL,
    status          TEXT NOT NULL,
    reasons         TEXT NOT NULL,
    idempotency_key TEXT,
    fingerprint     TEXT,
    mapping         TEXT
);
CREATE UNIQUE INDEX deliveries_idempotency ON deliveries (source, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX deliveries_fingerprint ON deliveries (source, fingerprint, received_at);
CREATE INDEX deliveries_status ON deliveries (status, id);
CREATE INDEX deliveries_source ON deliveries (source, id);

CREATE TABLE events (
    id           TEXT PRIMARY KEY,
    delivery_id  TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    source       TEXT NOT NULL,
    type         TEXT NOT NULL,
    source_type  TEXT,
    occurred_at  TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    lead_id      TEXT,
    anonymous_id TEXT,
    data         BLOB NOT NULL
);
CREATE INDEX events_delivery ON events (delivery_id);
