"""The writer resolves most events from its cache without a coroutine per step
(``SQLLeadRepo.resolve_cached``), falling back to ``resolve.resolve`` for everything
else. Whatever the deliveries (new people, known ones, anonymous ids alone or meeting a
person, merges, several in one batch), the store holds the same as when every event
goes through ``resolve``."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_writer import request

from receiver.events import Identity
from receiver.store import sql
from receiver.store.sqlite import SQLiteStore

identity = st.one_of(
    st.tuples(st.just("email_sha256"), st.sampled_from("abcd"), st.just(True)),
    st.tuples(st.just("phone"), st.sampled_from("12"), st.just(True)),
    st.tuples(st.just("anon"), st.sampled_from("xyz"), st.just(False)),
)
delivery = st.tuples(
    st.lists(identity, max_size=3, unique_by=lambda i: (i[0], i[1])),
    st.sampled_from([None, {"name": "Ann"}, {"name": "Bo", "address": {"city": "Rome"}}, {"city": ""}]),
    st.sampled_from(["2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z"]),
    st.sampled_from(["lead.captured", "lead.test"]),
)


def stored(batches: list[list[Any]]) -> list[Any]:
    """The rows the batches leave, lead ids named by their order of creation."""

    async def run(path: Path) -> list[Any]:
        store = SQLiteStore(path)
        await store.open()
        try:
            for batch in batches:
                reqs = []
                for idents, lead, at, type_ in batch:
                    req = request()
                    req.events[0].lead = None if lead is None else dict(lead)
                    req.events[0].occurred_at = at
                    # Not the clock's: identities are listed by when they were first seen.
                    req.delivery.received_at = req.events[0].received_at = at
                    req.events[0].type = type_
                    req.identities = [[Identity(*i) for i in idents]]
                    reqs.append(req)
                results = await store._run(store._write_batch_sync, reqs)
                assert not any(isinstance(r, Exception) for r in results), results
            conn = store._writer()

            def dump() -> list[Any]:
                rank = {r[0]: n for n, r in enumerate(conn.execute("SELECT id FROM leads ORDER BY id"))}
                out: list[Any] = []
                for r in conn.execute("SELECT rowid, lead_id FROM events ORDER BY rowid"):
                    out.append(("event", r[0], rank.get(r[1])))
                for r in conn.execute(
                    "SELECT id, merged_into, traits, trait_times, event_count, sources_json, identities_json,"
                    " first_seen_at, last_seen_at FROM leads ORDER BY id"
                ):
                    out.append(("lead", rank[r[0]], rank.get(r[1]), *r[2:]))
                for r in conn.execute(
                    "SELECT kind, value, source, known, lead_id FROM identities ORDER BY 1, 2"
                ):
                    out.append(("identity", *r[:4], rank.get(r[4])))
                for r in conn.execute("SELECT lead_id, source, events FROM lead_sources ORDER BY 1, 2"):
                    out.append(("source", rank.get(r[0]), *r[1:]))
                return out

            rows: list[Any] = await store._run(dump)
            return rows
        finally:
            await store.close()

    with tempfile.TemporaryDirectory() as work:
        return asyncio.run(run(Path(work) / "receiver.db"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(delivery, min_size=1, max_size=5), min_size=1, max_size=5))
def test_resolving_from_the_cache_stores_what_resolve_does(batches: list[list[Any]]) -> None:
    cached = stored(batches)
    original = sql.SQLLeadRepo.resolve_cached
    sql.SQLLeadRepo.resolve_cached = lambda self, event, identities, now: sql.MISS  # type: ignore[method-assign]
    try:
        resolved = stored(batches)
    finally:
        sql.SQLLeadRepo.resolve_cached = original  # type: ignore[method-assign]
    assert cached == resolved
