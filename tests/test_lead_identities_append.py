"""On SQLite a lead's new identities are appended to the list on its row in the lead's own
update (store/sql.py, ``_append``) instead of the lead being summarized again whole. The
row must hold exactly what the whole summary (``SUMMARIZE_LEAD``) would have written, to
the byte, whatever the batches: identities first seen before others of the lead, at the
same time with the same kind, several in one batch, text JSON must escape, leads past 20
identities, new leads, two sources in one batch."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_writer import request

from receiver.events import Identity
from receiver.store.sql import _IDENTITIES_SUMMARY, IDENTITIES_ON_ROW
from receiver.store.sqlite import SQLiteStore

SUMMARY = (
    "SELECT first_seen_at, last_seen_at, event_count, sources_json, identities_json FROM leads"
    " WHERE merged_into IS NULL ORDER BY id"
)
WHOLE = (  # what SUMMARIZE_LEAD writes, read instead of written
    "SELECT (SELECT min(first_seen_at) FROM lead_sources WHERE lead_id = leads.id),"
    " (SELECT max(last_seen_at) FROM lead_sources WHERE lead_id = leads.id),"
    " (SELECT coalesce(sum(events), 0) FROM lead_sources WHERE lead_id = leads.id),"
    " (SELECT json_group_array(source) FROM lead_sources WHERE lead_id = leads.id),"
    f" {_IDENTITIES_SUMMARY} FROM leads WHERE merged_into IS NULL ORDER BY id"
)
TIMES = [f"2026-01-0{d}T00:00:00.000Z" for d in range(1, 5)]
text = st.one_of(
    st.sampled_from(
        ["a", "b", "c-1", "x y", "é", 'q"uote', "back\\slash", "tab\there", "nl\n", "\x7f", "\u2028"]
    ),
    st.text(max_size=6),
)
delivery = st.tuples(
    st.integers(0, 2),  # the person (their email)
    st.sampled_from(["croct", "kartra", "affitor"]),  # the source
    st.sampled_from(TIMES),  # received (when its identities are first seen)
    st.lists(st.tuples(st.sampled_from(["phone", "customer_code", "a_kind"]), text), max_size=3),
)


def requests(batches: list[list[Any]], *, refuse_nul: bool = False) -> Iterator[list[Any]]:
    """Each batch of ``delivery`` tuples as write requests, one per delivery.

    An identity names one person: a value already given to someone is skipped (it would
    merge leads, which summarizes them whole anyway). ``refuse_nul`` drops values with a
    NUL, which the edge refuses (ingest/storable.py) and PostgreSQL text cannot hold."""
    seen: set[tuple[str, str]] = set()
    for batch in batches:
        reqs = []
        for person, source, at, extra in batch:
            req = request(email=f"p{person}@example.com")
            req.delivery.source = req.events[0].source = source
            req.delivery.received_at = req.events[0].received_at = at
            req.events[0].occurred_at = at
            for kind, value in extra:
                if (kind, value) in seen or (refuse_nul and "\x00" in value):
                    continue
                seen.add((kind, value))
                req.identities[0].append(Identity(kind, value, True))
            reqs.append(req)
        yield reqs


def write(path: Path, batches: list[list[Any]]) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        store = SQLiteStore(path)
        await store.open()
        try:
            for reqs in requests(batches):
                results = await store._run(store._write_batch_sync, reqs)
                assert not any(isinstance(r, Exception) for r in results), results
            conn = store._writer()
            stored: list[tuple[Any, ...]] = await store._run(lambda: conn.execute(SUMMARY).fetchall())
            whole: list[tuple[Any, ...]] = await store._run(lambda: conn.execute(WHOLE).fetchall())
            assert stored == whole
            return stored
        finally:
            await store.close()

    return asyncio.run(run())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(delivery, min_size=1, max_size=6), min_size=1, max_size=5))
def test_appended_identities_are_the_whole_summary(batches: list[list[Any]]) -> None:
    with tempfile.TemporaryDirectory() as work:
        write(Path(work) / "receiver.db", batches)


def test_a_lead_past_the_limit_and_identities_older_than_its_others() -> None:
    one = (0, "affitor", TIMES[2], [("customer_code", f"c{i:02d}") for i in range(3)])
    batches = [[one]]
    later = [("customer_code", f"d{i:02d}") for i in range(IDENTITIES_ON_ROW)]
    batches += [[(0, "affitor", TIMES[3], [code])] for code in later]
    batches.insert(2, [(0, "affitor", TIMES[0], [("phone", "older")])])  # before the others
    with tempfile.TemporaryDirectory() as work:
        [lead] = write(Path(work) / "receiver.db", batches)
    assert lead[4] is None  # more than IDENTITIES_ON_ROW: listed from their index
    with tempfile.TemporaryDirectory() as work:
        [lead] = write(Path(work) / "receiver.db", batches[:4])
    assert lead[4].count('"kind"') == 7 and '"value":"older"' in lead[4].split("},")[0]
