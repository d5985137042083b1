-- The fingerprint window's index, every delivery's entry at a random place (the largest
-- share of the pages a batch writes), made smaller again (store/sql.py, sqlite.py): the
-- first 8 hex digits of the fingerprint alone (32 bits), the source and the whole
-- fingerprint compared on the row that the lookup reads anyway. An entry half the size
-- of (source, substr(fingerprint, 1, 16)): fewer pages split and written per batch, more
-- of the index in the writer's page cache. A prefix shared by chance costs one row read
-- (one in 4 billion stored deliveries per lookup); it is never taken for a duplicate.
-- The fingerprint does not hash the source and the index holds no time: a lookup reads
-- every stored copy of its body, from every source, in or out of the window (a ping with
-- the same body sent for months: one row per copy read), then keeps the source's own.
DROP INDEX deliveries_fingerprint;
CREATE INDEX deliveries_fingerprint ON deliveries (substr(fingerprint, 1, 8))
