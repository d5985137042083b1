-- receiver_prefetch (0008) with its dedup-key lookups planned for the arrays of each
-- call (EXECUTE: a custom plan) instead of once per connection. PL/pgSQL keeps a generic
-- plan of each query from its sixth call on, planned from the table's size at that
-- moment and kept until the table is next analyzed: a store that starts empty (a new
-- install, a bench) had it fixed while ``deliveries`` held a few hundred rows, a hash
-- join over a sequential scan of the whole table, run by every batch from then on
-- (its cost growing with the table, 4 ms a batch at 4,000 rows). The lookups by index
-- are the only plan that makes sense for a handful of keys; planned each time, they get
-- it as soon as the table is not tiny. The identities and leads lookups stay as they
-- were (one key of a unique index each: no plan is cheaper at any size).
--
-- The same trap held the batch's lead updates (postgres.ARRAYS: ``leads.id = ANY(…)``),
-- kept on a scan of every lead (live and dead row versions: each batch rewrites its
-- leads), 3 to 10 ms a batch and growing. Every statement of a write batch finds its
-- rows by key, so this function, the first statement of each batch's transaction, turns
-- sequential scans off until that transaction ends (``set_config(…, true)``: SET LOCAL):
-- the plans the batch's statements keep are made under it, by index.
CREATE OR REPLACE FUNCTION receiver_prefetch(
    p_locks text[], p_sources text[], p_prints text[], p_ikeys text[], p_since text[],
    p_kinds text[], p_values text[]
) RETURNS TABLE (t int, a text, b text, c text, d text, e text, flag boolean, x bytea, y bytea)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('enable_seqscan', 'off', true);
    PERFORM count(pg_advisory_xact_lock(hashtextextended(lk, 0))) FROM unnest(p_locks) AS lk;
    RETURN QUERY EXECUTE
        'SELECT 0, dl.id, dl.source, dl.fingerprint, dl.idempotency_key, dl.received_at, true,'
        '  NULL::bytea, NULL::bytea'
        ' FROM unnest($1, $2) AS k(source, ik)'
        ' JOIN deliveries dl ON dl.source = k.source AND dl.idempotency_key = k.ik'
        ' UNION ALL'
        ' SELECT 0, dl.id, dl.source, dl.fingerprint, dl.idempotency_key, dl.received_at, false,'
        '  NULL::bytea, NULL::bytea'
        ' FROM unnest($1, $3, $4) AS k(source, fp, since)'
        ' JOIN deliveries dl ON dl.source = k.source AND dl.fingerprint = k.fp'
        '  AND dl.received_at >= k.since AND dl.status <> ''rejected'''
        USING p_sources, p_ikeys, p_prints, p_since;
    RETURN QUERY
    WITH ids AS (
        SELECT k.kind, k.value, li.lead_id FROM unnest(p_kinds, p_values) AS k(kind, value)
        CROSS JOIN LATERAL (
            SELECT lead_id FROM identities WHERE kind = k.kind AND value = k.value LIMIT 1
        ) AS li
    ), ls AS (
        SELECT id, merged_into, traits, trait_times FROM leads
        WHERE id = ANY(ARRAY(SELECT lead_id FROM ids WHERE lead_id IS NOT NULL))
        ORDER BY id FOR UPDATE
    )
    SELECT 1, ids.kind, ids.value, ids.lead_id, NULL::text, NULL::text, NULL::boolean, NULL::bytea, NULL::bytea
    FROM ids
    UNION ALL
    SELECT 2, ls.id, ls.merged_into, NULL, NULL, NULL, NULL, ls.traits, ls.trait_times FROM ls;
END
$$;
