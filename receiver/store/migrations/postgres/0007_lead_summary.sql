-- A lead's summary on its own row: the first and last seen, event count and sources (as
-- JSON text, compact as msgspec writes it, sorted by code point) of its lead_sources
-- rows. The write path keeps it (store/postgres.py, _GROW and SUMMARIZE_LEAD), so a page
-- or an export of leads reads them from the lead's row instead of an aggregate of
-- lead_sources. Its identities are not copied here: a lead may gather any number of
-- them, and a row rewritten on every delivery must stay small.
ALTER TABLE leads ADD COLUMN first_seen_at TEXT;
ALTER TABLE leads ADD COLUMN last_seen_at TEXT;
ALTER TABLE leads ADD COLUMN event_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN sources_json TEXT NOT NULL DEFAULT '[]';
UPDATE leads SET first_seen_at = s.f, last_seen_at = s.z, event_count = s.n, sources_json = s.sources
FROM (SELECT lead_id, min(first_seen_at) AS f, max(last_seen_at) AS z, sum(events) AS n,
      '[' || string_agg(to_json(source)::text, ',' ORDER BY source COLLATE "C") || ']' AS sources
      FROM lead_sources GROUP BY lead_id) s
WHERE leads.id = s.lead_id AND leads.merged_into IS NULL;
