-- Two indexes fewer for the writer to keep on every event: the events of one source, or
-- of one type, are read from events_source_type (source, type, received_at, id), one
-- range per type of the source (per source of the type) merged in order by a compound
-- SELECT (store/reads.py, SQLiteReads._event_arms): no sort, and a page reads no more
-- entries than it lists plus one per range.
DROP INDEX events_source;
DROP INDEX events_type
