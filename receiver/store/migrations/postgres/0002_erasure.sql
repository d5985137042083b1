-- What each delivery names (store/keys.py), so that erasure finds it by index; the record
-- of each erasure (names nobody: counts only); the one row /readyz writes.
CREATE TABLE delivery_keys (
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    PRIMARY KEY (kind, value, delivery_id)
);
CREATE INDEX delivery_keys_delivery ON delivery_keys (delivery_id);

CREATE TABLE erasures (
    id           TEXT PRIMARY KEY,
    state        TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    completed_at TEXT,
    leads        INTEGER NOT NULL,
    identities   INTEGER NOT NULL,
    events       INTEGER NOT NULL,
    deliveries   INTEGER NOT NULL
);
CREATE INDEX erasures_pending ON erasures (state) WHERE state = 'pending';

CREATE TABLE readiness (
    id         INTEGER PRIMARY KEY,
    checked_at TEXT NOT NULL
);
