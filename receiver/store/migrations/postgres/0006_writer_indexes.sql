-- An anonymous id is looked up only for the events it has not yet given to a lead
-- (store/sql.py, adopt_anonymous): events that came with their lead are left out of
-- its index, which every such event otherwise enters at a random place.
DROP INDEX events_anonymous;
CREATE INDEX events_anonymous ON events (source, anonymous_id)
    WHERE anonymous_id IS NOT NULL AND lead_id IS NULL;
