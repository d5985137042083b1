-- Two indexes every delivery writes at a random place, made smaller (store/sql.py).
-- The fingerprint window finds a body by its source and the first 16 hex digits of its
-- fingerprint (64 bits; the whole fingerprint is compared on the row): entries a third
-- the size of (source, fingerprint, received_at) split its pages less often and keep
-- more of it in the writer's page cache.
DROP INDEX deliveries_fingerprint;
CREATE INDEX deliveries_fingerprint ON deliveries (source, substr(fingerprint, 1, 16));
-- An anonymous id is looked up only for the events it has not yet given to a lead
-- (adopt_anonymous): events that came with their lead are left out.
DROP INDEX events_anonymous;
CREATE INDEX events_anonymous ON events (source, anonymous_id)
    WHERE anonymous_id IS NOT NULL AND lead_id IS NULL
