"""SQLite keeps deliveries by status only for the rare statuses (migration
0009_unaccepted_status): every page of deliveries the read API offers still reads one
index in its order, without sorting, and answers what the rows say."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from test_writer import request

from receiver.store.base import DeliveryQuery
from receiver.store.reads import _DELIVERY_LIST, SQLReads, _select
from receiver.store.sqlite import SQLiteStore


def test_pages_of_deliveries_by_status_read_an_index_in_order(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db"

    async def fill() -> dict[str, list[str]]:
        store = SQLiteStore(path)
        await store.open()
        try:
            batch = []
            for i in range(30):
                req = request(email=f"p{i}@example.com")
                req.delivery.source = req.events[0].source = ("croct", "kartra")[i % 2]
                if i % 3 == 0:
                    req.delivery.status = "rejected"
                    req.events, req.identities = [], []
                batch.append(req)
            await store.write_batch(batch)
            pages = {}
            for status in ("accepted", "rejected"):
                for source in (None, "croct"):
                    q = DeliveryQuery(status=status, source=source)
                    rows = await store.list_deliveries(q, None, 100)
                    pages[f"{status}/{source}"] = [r["id"] for r in rows]
                    want = [
                        r.delivery.id
                        for r in batch
                        if r.delivery.status == status and source in (None, r.delivery.source)
                    ]
                    assert pages[f"{status}/{source}"] == sorted(want, reverse=True)
            return pages
        finally:
            await store.close()

    pages = asyncio.run(fill())
    assert len(pages["accepted/None"]) == 20 and len(pages["rejected/croct"]) == 5
    conn = sqlite3.connect(path)
    # The index holds the rejected deliveries only (one page of entries).
    entries = "SELECT sum(ncell) FROM dbstat WHERE name = 'deliveries_status'"
    assert conn.execute(entries).fetchone() == (10,)
    for status in ("accepted", "rejected", None):
        for source in ("croct", None):
            for before in (None, "x"):
                where, args = SQLReads._delivery_where(DeliveryQuery(status=status, source=source))
                if before:
                    where.append("id < ?")
                    args.append(before)
                sql = _select(_DELIVERY_LIST, "deliveries", where, "id DESC") + " LIMIT ?"
                plan = " ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", [*args, 100]))
                assert "INDEX" in plan and "TEMP B-TREE" not in plan, (status, source, plan)
                if status == "rejected":
                    assert "deliveries_status" in plan or "deliveries_unaccepted" in plan, plan
