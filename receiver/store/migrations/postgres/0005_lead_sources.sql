-- Per lead and source of its events: how many, the first and the last occurred_at. The
-- write path keeps it in the transaction that moves events (store/sql.py, erasure.py), so
-- a page of leads reads one short range of it instead of aggregating every event of
-- every lead. Events of no lead (an anonymous id not yet identified) are not counted.
-- It replaces the index the aggregate was read from.
CREATE TABLE lead_sources (
    lead_id       TEXT NOT NULL,
    source        TEXT NOT NULL,
    events        BIGINT NOT NULL,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    PRIMARY KEY (lead_id, source)
);
INSERT INTO lead_sources (lead_id, source, events, first_seen_at, last_seen_at)
SELECT lead_id, source, count(*), min(occurred_at), max(occurred_at) FROM events
WHERE lead_id IS NOT NULL GROUP BY lead_id, source;
DROP INDEX events_lead_seen;
