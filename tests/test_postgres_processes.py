"""Two receiver processes, one PostgreSQL: the same delivery or the same new person posted
to both at once is still one delivery and one lead."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from conftest import DB, SECRETS, Server, make_env

N = 1000
PEOPLE = 100


@pytest.mark.postgres_only
def test_two_processes_one_store(tmp_path: Path, database_url: str, db: DB) -> None:
    a = Server(tmp_path / "a", env=make_env(tmp_path / "a", RECEIVER_DATABASE_URL=database_url)).start()
    b = Server(tmp_path / "b", env=make_env(tmp_path / "b", RECEIVER_DATABASE_URL=database_url)).start()
    try:

        async def run() -> list[int]:
            limits = httpx.Limits(max_connections=64)
            async with httpx.AsyncClient(timeout=60, limits=limits) as c:
                sem = asyncio.Semaphore(64)

                async def post(url: str, i: int) -> int:
                    body = {
                        "type": "leadGenerated",
                        "leadId": f"lead-{i}",
                        "lead": {"email": f"person{i % PEOPLE}@example.com"},
                    }
                    async with sem:
                        r = await c.post(
                            f"{url}/hooks/croct",
                            json=body,
                            headers={"X-App-Id": SECRETS["RECEIVER_CROCT_APP_ID"]},
                        )
                    return r.status_code

                calls = []
                for i in range(N):
                    if i % 2:  # half of them: the same delivery to both processes at once
                        calls += [post(a.url, i), post(b.url, i)]
                    else:
                        calls.append(post((a if i % 4 else b).url, i))
                return await asyncio.gather(*calls)

        statuses = asyncio.run(run())
    finally:
        a.stop()
        b.stop()
    assert all(s in (200, 202) for s in statuses), sorted(set(statuses))
    assert statuses.count(200) == N // 2  # the second copy of each doubled delivery
    assert db.count("deliveries") == N
    assert db.count("events") == N
    assert db.count("leads") == PEOPLE
    assert db.rows("SELECT count(DISTINCT lead_id) AS n FROM events")[0]["n"] == PEOPLE
    # Both processes added to the same leads' summaries at once: nothing lost or doubled.
    summary = db.rows(
        "SELECT lead_id, source, events, first_seen_at, last_seen_at FROM lead_sources"
        " ORDER BY lead_id, source"
    )
    assert sum(r["events"] for r in summary) == N
    assert summary == db.rows(
        "SELECT lead_id, source, count(*) AS events, min(occurred_at) AS first_seen_at,"
        " max(occurred_at) AS last_seen_at FROM events GROUP BY lead_id, source ORDER BY lead_id, source"
    )
