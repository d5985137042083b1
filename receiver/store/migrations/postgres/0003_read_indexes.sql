-- Indexes of the read side (store/reads.py): every list page is one range of one index,
-- read in its order. Events are listed newest first by (received_at, id) under each
-- filter; a page of leads takes its event counts, sources and first/last seen from one
-- covering index; the rare delivery statuses and the leads updated since a time have
-- small indexes of their own.
DROP INDEX events_lead;
DROP INDEX events_source;
DROP INDEX events_type;
DROP INDEX events_received;
DROP INDEX leads_updated;
CREATE INDEX events_received ON events (received_at, id);
CREATE INDEX events_source ON events (source, received_at, id);
CREATE INDEX events_source_type ON events (source, type, received_at, id);
CREATE INDEX events_type ON events (type, received_at, id);
CREATE INDEX events_lead ON events (lead_id, received_at, id);
CREATE INDEX events_lead_seen ON events (lead_id, source, occurred_at);
CREATE INDEX deliveries_unaccepted ON deliveries (source, status, id) WHERE status != 'accepted';
CREATE INDEX leads_live_updated ON leads (updated_at, id) WHERE merged_into IS NULL
