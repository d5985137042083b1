-- The fingerprint window (store/sql.py, find_duplicate) finds a body by its source and
-- the first 16 hex digits of its fingerprint (64 bits; the whole fingerprint is compared
-- on the row). Every delivery inserts into this index at a random place: entries a third
-- the size of (source, fingerprint, received_at) split its pages less often and keep
-- more of it in the writer's page cache.
DROP INDEX deliveries_fingerprint;
CREATE INDEX deliveries_fingerprint ON deliveries (source, substr(fingerprint, 1, 16))
