-- A lead's summary on its own row: the first and last seen, event count and sources (as
-- JSON text) of its lead_sources rows, and its identities in the order first seen (as
-- JSON text) while it has at most 20 of them. The write path keeps it (store/sql.py,
-- _grow and SUMMARIZE_LEAD), so a page or an export of leads reads one row per lead
-- instead of five lookups in two other tables. A lead may gather any number of
-- identities and its row is rewritten on every delivery of it, so beyond 20 they are
-- left out (NULL) and read from their index.
ALTER TABLE leads ADD COLUMN first_seen_at TEXT;
ALTER TABLE leads ADD COLUMN last_seen_at TEXT;
ALTER TABLE leads ADD COLUMN event_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN sources_json TEXT NOT NULL DEFAULT '[]';
ALTER TABLE leads ADD COLUMN identities_json TEXT;
UPDATE leads SET (first_seen_at, last_seen_at, event_count, sources_json) =
    (SELECT min(first_seen_at), max(last_seen_at), coalesce(sum(events), 0), json_group_array(source)
     FROM lead_sources WHERE lead_id = leads.id),
  identities_json = CASE
    WHEN (SELECT count(*) FROM (SELECT 1 FROM identities WHERE lead_id = leads.id LIMIT 21)) > 20 THEN NULL
    ELSE (SELECT json_group_array(json_object('source', source, 'kind', kind, 'value', value))
          FROM (SELECT source, kind, value FROM identities WHERE lead_id = leads.id
                ORDER BY first_seen_at, kind)) END
WHERE merged_into IS NULL
