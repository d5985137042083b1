-- A lead's summary on its own row: the first and last seen, event count and sources (as
-- JSON text) of its lead_sources rows. The write path keeps it (store/sql.py, _grow and
-- SUMMARIZE_LEAD), so a page or an export of leads reads them from the lead's row
-- instead of four lookups in lead_sources. Its identities are not copied here: a lead
-- may gather any number of them, and a row rewritten on every delivery must stay small.
ALTER TABLE leads ADD COLUMN first_seen_at TEXT;
ALTER TABLE leads ADD COLUMN last_seen_at TEXT;
ALTER TABLE leads ADD COLUMN event_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN sources_json TEXT NOT NULL DEFAULT '[]';
UPDATE leads SET (first_seen_at, last_seen_at, event_count, sources_json) =
    (SELECT min(first_seen_at), max(last_seen_at), coalesce(sum(events), 0), json_group_array(source)
     FROM lead_sources WHERE lead_id = leads.id)
WHERE merged_into IS NULL
