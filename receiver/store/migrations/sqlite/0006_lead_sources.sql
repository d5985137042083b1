-- A lead's sources: a row per source of its events or its identities, with how many of
-- its events came from there and the first and last of their occurred_at (NULL when none
-- did). The write path keeps it in the transaction that moves events or identities
-- (store/sql.py, erasure.py), so a page of leads reads one short range of it instead of
-- aggregating every event and identity of every lead. Events of no lead (an anonymous id
-- not yet identified) are not counted. It replaces the index the aggregate was read from.
CREATE TABLE lead_sources (
    lead_id       TEXT NOT NULL,
    source        TEXT NOT NULL,
    events        INTEGER NOT NULL,
    first_seen_at TEXT,
    last_seen_at  TEXT,
    PRIMARY KEY (lead_id, source)
) WITHOUT ROWID;
INSERT INTO lead_sources (lead_id, source, events, first_seen_at, last_seen_at)
SELECT lead_id, source, count(*), min(occurred_at), max(occurred_at) FROM events
WHERE lead_id IS NOT NULL GROUP BY lead_id, source;
INSERT INTO lead_sources (lead_id, source, events, first_seen_at, last_seen_at)
SELECT DISTINCT lead_id, source, 0, NULL, NULL FROM identities
WHERE lead_id IS NOT NULL ON CONFLICT DO NOTHING;
DROP INDEX events_lead_seen
