"""On PostgreSQL a lead's new identities go into the list on its row in the lead's own
update (store/postgres.py, sql.SAVE_LEAD_IDENTIFIED / TOUCH_LEAD_IDENTIFIED) instead of a
SUMMARIZE_LEAD after it. The row must hold exactly what the whole summary would have
written, whatever the batches (the cases of test_lead_identities_append: identities first
seen before others of the lead, several in one batch, text JSON must escape, leads past 20
identities, new leads, two sources in one batch)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from conftest import PG_URL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_lead_identities_append import TIMES, delivery, requests

from receiver.store import postgres
from receiver.store.postgres import _SOURCES_SUMMARY, PostgresStore, _identities_summary
from receiver.store.sql import IDENTITIES_ON_ROW, SUMMARIZE_LEAD

SUMMARY = (
    "SELECT id, first_seen_at, last_seen_at, event_count, sources_json, identities_json FROM leads"
    " WHERE merged_into IS NULL ORDER BY id"
)
WHOLE = (  # what SUMMARIZE_LEAD writes, read instead of written
    f"SELECT leads.id, s.f, s.z, s.n, s.sources, {_identities_summary('leads.id')} FROM leads"
    f" CROSS JOIN LATERAL (SELECT {_SOURCES_SUMMARY} FROM lead_sources WHERE lead_id = leads.id) s"
    " WHERE merged_into IS NULL ORDER BY id"
)


async def _write(batches: list[list[Any]]) -> list[tuple[Any, ...]]:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    store = PostgresStore(f"{PG_URL}?schema={schema}")
    await store.open()
    try:
        for reqs in requests(batches, refuse_nul=True):
            results = await store.write_batch(reqs)
            assert not any(isinstance(r, Exception) for r in results), results
        conn = await asyncpg.connect(store.dsn, server_settings={"search_path": schema})
        try:
            stored = [tuple(r) for r in await conn.fetch(SUMMARY)]
            whole = [tuple(r) for r in await conn.fetch(WHOLE)]
        finally:
            await conn.close()
        assert stored == whole
        return [r[1:] for r in stored]
    finally:
        await store.close()
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()


def write(batches: list[list[Any]]) -> list[tuple[Any, ...]]:
    return asyncio.run(_write(batches))


@pytest.mark.postgres_only
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.lists(delivery, min_size=1, max_size=6), min_size=1, max_size=5))
def test_identities_in_the_lead_update_are_the_whole_summary(backend: str, batches: list[list[Any]]) -> None:
    write(batches)


@pytest.mark.postgres_only
def test_a_lead_past_the_limit_and_identities_older_than_its_others(backend: str) -> None:
    one = (0, "affitor", TIMES[2], [("customer_code", f"c{i:02d}") for i in range(3)])
    batches = [[one]]
    later = [("customer_code", f"d{i:02d}") for i in range(IDENTITIES_ON_ROW)]
    batches += [[(0, "affitor", TIMES[3], [code])] for code in later]
    batches.insert(2, [(0, "affitor", TIMES[0], [("phone", "older")])])  # before the others
    [lead] = write(batches)
    assert lead[4] is None  # more than IDENTITIES_ON_ROW: listed from their index
    [lead] = write(batches[:4])
    assert lead[4].count('"kind"') == 7 and '"value":"older"' in lead[4].split("},")[0]


@pytest.mark.postgres_only
def test_new_identities_of_a_lead_cost_no_statement_of_their_own(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch bringing a known lead new identities updates the lead once: no
    SUMMARIZE_LEAD after it (the whole summary is for merges, links, several sources)."""
    ran: list[str] = []
    many = postgres.PgExecutor.many

    async def counted(self: postgres.PgExecutor, sql: str, rows: list[tuple[Any, ...]]) -> None:
        ran.append(sql)
        await many(self, sql, rows)

    monkeypatch.setattr(postgres.PgExecutor, "many", counted)
    [lead] = write([[(0, "kartra", TIMES[0], [])], [(0, "kartra", TIMES[1], [("phone", "1")])]])
    assert SUMMARIZE_LEAD not in ran
    assert '"value":"1"' in lead[4] and lead[2] == 2
