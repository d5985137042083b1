-- A write batch's first statement (store/postgres.py, PgTransactions.prefetch) as one
-- function call: one round trip where there were two, on a cycle of round trips the
-- writer waits for. First the batch's transaction-scoped advisory locks on its dedup
-- keys and identities (``p_locks``, sorted by the caller: no deadlock between batches),
-- then, on a snapshot taken after them (each statement of a volatile function takes its
-- own), what the batch will look up; ``t`` says which:
--   0: a stored delivery one of its dedup keys names (id, source, fingerprint,
--      idempotency key, received_at, by idempotency key?), oldest first;
--   1: one of its identities that is stored (kind, value, lead);
--   2: a lead of those, locked in id order, as the write path reads it
--      (id, merged_into, traits, trait_times).
-- Dedup keys come as arrays: (source, fingerprint, window start) or (source, idempotency
-- key), each a joined lookup by index (a LATERAL … LIMIT 1 per key cost half the req/s
-- under HTTP load). Identities: one primary-key lookup each. Leads by ``= ANY`` of an
-- array: by index, whatever the planner guesses of its length.
CREATE FUNCTION receiver_prefetch(
    p_locks text[], p_sources text[], p_prints text[], p_ikeys text[], p_since text[],
    p_kinds text[], p_values text[]
) RETURNS TABLE (t int, a text, b text, c text, d text, e text, flag boolean, x bytea, y bytea)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM count(pg_advisory_xact_lock(hashtextextended(lk, 0))) FROM unnest(p_locks) AS lk;
    RETURN QUERY
    WITH dk AS (
        SELECT dl.id, dl.source, dl.fingerprint, dl.idempotency_key, dl.received_at, true AS by_key
        FROM unnest(p_sources, p_ikeys) AS k(source, ik)
        JOIN deliveries dl ON dl.source = k.source AND dl.idempotency_key = k.ik
        UNION ALL
        SELECT dl.id, dl.source, dl.fingerprint, dl.idempotency_key, dl.received_at, false AS by_key
        FROM unnest(p_sources, p_prints, p_since) AS k(source, fp, since)
        JOIN deliveries dl ON dl.source = k.source AND dl.fingerprint = k.fp AND dl.received_at >= k.since
         AND dl.status <> 'rejected'
    ), ids AS (
        SELECT k.kind, k.value, li.lead_id FROM unnest(p_kinds, p_values) AS k(kind, value)
        CROSS JOIN LATERAL (
            SELECT lead_id FROM identities WHERE kind = k.kind AND value = k.value LIMIT 1
        ) AS li
    ), ls AS (
        SELECT id, merged_into, traits, trait_times FROM leads
        WHERE id = ANY(ARRAY(SELECT lead_id FROM ids WHERE lead_id IS NOT NULL))
        ORDER BY id FOR UPDATE
    )
    SELECT 0, dk.id, dk.source, dk.fingerprint, dk.idempotency_key, dk.received_at, dk.by_key,
        NULL::bytea, NULL::bytea FROM dk
    UNION ALL
    SELECT 1, ids.kind, ids.value, ids.lead_id, NULL, NULL, NULL, NULL, NULL FROM ids
    UNION ALL
    SELECT 2, ls.id, ls.merged_into, NULL, NULL, NULL, NULL, ls.traits, ls.trait_times FROM ls;
END
$$;
