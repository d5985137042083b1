-- A lead's summary on its own row: the first and last seen, event count and sources (as
-- JSON text, compact as msgspec writes it, sorted by code point) of its lead_sources
-- rows, and its identities in the order first seen (as JSON text) while it has at most
-- 20 of them. The write path keeps it (store/postgres.py, _GROW and SUMMARIZE_LEAD), so
-- a page or an export of leads reads one row per lead instead of two lateral aggregates.
-- A lead may gather any number of identities and its row is rewritten on every delivery
-- of it, so beyond 20 they are left out (NULL) and read from their index.
ALTER TABLE leads ADD COLUMN first_seen_at TEXT;
ALTER TABLE leads ADD COLUMN last_seen_at TEXT;
ALTER TABLE leads ADD COLUMN event_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN sources_json TEXT NOT NULL DEFAULT '[]';
ALTER TABLE leads ADD COLUMN identities_json TEXT;
UPDATE leads SET first_seen_at = s.f, last_seen_at = s.z, event_count = s.n, sources_json = s.sources
FROM (SELECT lead_id, min(first_seen_at) AS f, max(last_seen_at) AS z, sum(events) AS n,
      '[' || string_agg(to_json(source)::text, ',' ORDER BY source COLLATE "C") || ']' AS sources
      FROM lead_sources GROUP BY lead_id) s
WHERE leads.id = s.lead_id AND leads.merged_into IS NULL;
UPDATE leads SET identities_json = '[' || coalesce((SELECT string_agg('{"source":' || to_json(source)::text
      || ',"kind":' || to_json(kind)::text || ',"value":' || to_json(value)::text
      || '}', ',' ORDER BY first_seen_at, kind) FROM identities WHERE lead_id = leads.id), '') || ']'
WHERE merged_into IS NULL
  AND (SELECT count(*) FROM (SELECT 1 FROM identities WHERE lead_id = leads.id LIMIT 21) x) <= 20;
