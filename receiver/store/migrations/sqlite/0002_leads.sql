-- Leads and the identities that point at them (docs/events.md).
CREATE TABLE leads (
    id           TEXT PRIMARY KEY,
    merged_into  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    traits       BLOB NOT NULL,
    trait_times  BLOB NOT NULL
);
CREATE INDEX leads_merged_into ON leads (merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX leads_updated ON leads (updated_at);

CREATE TABLE identities (
    kind          TEXT NOT NULL,
    value         TEXT NOT NULL,
    source        TEXT NOT NULL,
    known         INTEGER NOT NULL,
    lead_id       TEXT,
    first_seen_at TEXT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX identities_lead ON identities (lead_id);

CREATE INDEX events_lead ON events (lead_id, id);
CREATE INDEX events_lead_source ON events (lead_id, source);
CREATE INDEX events_source ON events (source, id);
CREATE INDEX events_type ON events (type, id);
CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_anonymous ON events (source, anonymous_id) WHERE anonymous_id IS NOT NULL
