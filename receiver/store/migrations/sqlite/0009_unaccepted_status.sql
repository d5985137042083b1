-- Deliveries by status hold only the rare statuses (store/reads.py adds the clause that
-- defines the index to every query for one of them): an accepted delivery, nearly every
-- one, no longer writes an entry in a place the writer dirties on every batch. A page of
-- accepted deliveries is read from the primary key in its order, each row's status
-- checked, as a page of one source's accepted deliveries already was.
DROP INDEX deliveries_status;
CREATE INDEX deliveries_status ON deliveries (status, id) WHERE status != 'accepted'
