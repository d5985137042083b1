-- The raw delivery log, canonical events, leads and identities (as in SQLite: times are
-- RFC 3339 UTC text, which sorts; JSON documents are stored as bytes, as msgspec writes them).
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    source          TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    method          TEXT NOT NULL,
    path            TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    query           TEXT NOT NULL,
    headers         TEXT NOT NULL,
    body            BYTEA,
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
    data         BYTEA NOT NULL
);
CREATE INDEX events_delivery ON events (delivery_id);
CREATE INDEX events_lead ON events (lead_id, id);
CREATE INDEX events_source ON events (source, id);
CREATE INDEX events_type ON events (type, id);
CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_anonymous ON events (source, anonymous_id) WHERE anonymous_id IS NOT NULL;

CREATE TABLE leads (
    id           TEXT PRIMARY KEY,
    merged_into  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    traits       BYTEA NOT NULL,
    trait_times  BYTEA NOT NULL
);
CREATE INDEX leads_merged_into ON leads (merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX leads_updated ON leads (updated_at);

CREATE TABLE identities (
    kind          TEXT NOT NULL,
    value         TEXT NOT NULL,
    source        TEXT NOT NULL,
    known         BOOLEAN NOT NULL,
    lead_id       TEXT,
    first_seen_at TEXT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX identities_lead ON identities (lead_id)
