"""Read API latency with a large store: p50/p99 of filtered pages over real HTTP.

    .venv/bin/python bench/read_latency.py [--events 1000000] [--requests 400]

Fills a fresh SQLite data directory with N events (bulk SQL through the real schema
and migrations; 4 sources, 20 types, 50k leads), starts ``receiver serve`` on it, and
times filtered first pages and deeper cursor pages, one request at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from receiver.ids import new_id  # noqa: E402
from receiver.store.sqlite import SQLiteStore  # noqa: E402

TYPES = {
    "kartra": ["page.viewed", "lead.captured", "order.placed", "tag.added", "video.played"],
    "convead": ["page.viewed", "product.viewed", "cart.updated", "order.placed", "custom"],
    "croct": ["page.viewed", "page.loaded", "tab.opened", "goal.completed", "lead.captured"],
    "affitor": ["lead.captured", "affiliate.click", "lead.test", "lead.captured", "affiliate.click"],
}
KEY = "bench-read-key"


def fill(db: Path, n: int) -> tuple[list[str], list[str]]:
    asyncio.run(_migrate(db))
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    rnd = random.Random(7)
    leads = [new_id() for _ in range(50_000)]
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO leads (id, merged_into, created_at, updated_at, traits, trait_times)"
        " VALUES (?, NULL, '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', ?, '{}')",
        [(lid, msgspec.json.encode({"email_sha256": lid})) for lid in leads],
    )
    conn.execute("COMMIT")
    start = time.time() - n / 1000  # ~1000 events a second of history
    batch: list[tuple[object, ...]] = []
    deliveries: list[tuple[object, ...]] = []
    t0 = time.perf_counter()
    for i in range(n):
        source = rnd.choice(list(TYPES))
        etype = rnd.choice(TYPES[source])
        ts = start + i / 1000
        received = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"
        eid, did = new_id(), new_id()
        lead = leads[rnd.randrange(len(leads))] if rnd.random() < 0.7 else None
        data = msgspec.json.encode(
            {
                "id": eid,
                "source": source,
                "source_type": etype,
                "type": etype,
                "occurred_at": received,
                "received_at": received,
                "lead_id": lead,
                "anonymous_id": None,
                "lead": None,
                "properties": {"page": {"url": f"https://site.example/p/{i % 500}"}},
                "context": {},
                "extra": {},
                "delivery_id": did,
                "mapping": f"{source}@1",
            }
        )
        deliveries.append(
            (
                did,
                source,
                received,
                "POST",
                "/",
                "application/json",
                "{}",
                "{}",
                b"{}",
                "original",
                "accepted",
                "[]",
                None,
                None,
                f"{source}@1",
            )
        )
        batch.append((eid, did, source, etype, etype, received, received, lead, None, data))
        if len(batch) == 50_000 or i == n - 1:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", deliveries)
            conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", batch)
            conn.execute("COMMIT")
            batch.clear()
            deliveries.clear()
            print(f"\r  filled {i + 1:,} events ({time.perf_counter() - t0:.0f}s)", end="", flush=True)
    print()
    conn.execute("ANALYZE")
    conn.close()
    return leads, [TYPES[s][0] for s in TYPES]


async def _migrate(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="receiver-read-bench-"))
    print(f"data dir {data}")
    leads, _ = fill(data / "receiver.db", args.events)
    env = {**os.environ, "RECEIVER_DATA_DIR": str(data), "RECEIVER_API_KEY": KEY}
    server = subprocess.Popen(
        [sys.executable, "-m", "receiver", "serve", "--port", str(args.port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        rnd = random.Random(1)
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)

        def cursor_page() -> dict[str, str]:
            first = client.get("/v1/events", params={"limit": 100, "source": "croct"}).json()
            return {"limit": "100", "source": "croct", "cursor": first["next_cursor"]}

        queries = {
            "newest page": lambda: {"limit": "100"},
            "by source": lambda: {"limit": "100", "source": rnd.choice(list(TYPES))},
            "by type": lambda: {
                "limit": "100",
                "type": rnd.choice(["page.viewed", "order.placed", "custom"]),
            },
            "by lead": lambda: {"limit": "100", "lead_id": rnd.choice(leads)},
            "by source+type": lambda: {"limit": "100", "source": "convead", "type": "cart.updated"},
            "time window": lambda: {
                "limit": "100",
                "since": "2000-01-01T00:00:00Z",
                "until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600)),
            },
            "second page": cursor_page,
        }
        all_ms: list[float] = []
        print(f"{'query':16} {'p50 ms':>8} {'p99 ms':>8}")
        for name, make in queries.items():
            samples = []
            for _ in range(args.requests // len(queries)):
                params = make()
                t0 = time.perf_counter()
                r = client.get("/v1/events", params=params)
                samples.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
            samples.sort()
            all_ms += samples
            print(f"{name:16} {statistics.median(samples):8.2f} {samples[int(len(samples) * 0.99) - 1]:8.2f}")
        all_ms.sort()
        p99 = all_ms[int(len(all_ms) * 0.99) - 1]
        print(f"events={args.events} read_p50_ms={statistics.median(all_ms):.2f} read_p99_ms={p99:.2f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
