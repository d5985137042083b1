-- Indexes of the read side (store/reads.py): every list page is one range of one index,
-- read in its order. Events are listed newest first by (received_at, id) under each
-- filter; a page of leads takes its event counts, sources and first/last seen from one
-- covering index, and their identities, in the order they are listed, from another; the
-- ids of a page of leads come from an index that answers every lead filter without
-- reading a lead row; the rare delivery statuses have a small index of their own.
DROP INDEX events_lead;
DROP INDEX events_source;
DROP INDEX events_type;
DROP INDEX events_received;
DROP INDEX leads_updated;
DROP INDEX identities_lead;
CREATE INDEX events_received ON events (received_at, id);
CREATE INDEX events_source ON events (source, received_at, id);
CREATE INDEX events_source_type ON events (source, type, received_at, id);
CREATE INDEX events_type ON events (type, received_at, id);
CREATE INDEX events_lead ON events (lead_id, received_at, id);
CREATE INDEX events_lead_seen ON events (lead_id, source, occurred_at);
CREATE INDEX deliveries_unaccepted ON deliveries (source, status, id) WHERE status != 'accepted';
CREATE INDEX leads_live ON leads (id, merged_into, updated_at);
CREATE INDEX identities_lead ON identities (lead_id, first_seen_at, kind, value, source)
