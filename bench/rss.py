"""Memory soak: RSS stays flat over a million deliveries through mapping and the writer.

    .venv/bin/python bench/rss.py [--deliveries 1000000]

In-process: the four vendors' typical payloads are decoded, mapped and written through
the group-commit writer into a fresh SQLite file (synchronous=FULL), 256 in flight.
Prints RSS at the start, every 100k, and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from payloads import MIX

from receiver.clock import now_rfc3339
from receiver.config import shipped_mappings_dir
from receiver.ids import new_id
from receiver.ingest.envelope import decode_inner, decode_outer
from receiver.mapping import load_dir
from receiver.pipeline import map_document
from receiver.store.base import Delivery, WriteRequest
from receiver.store.sqlite import SQLiteStore
from receiver.writer import Writer


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


async def run(n: int) -> None:
    mappings = load_dir(shipped_mappings_dir())
    db = Path(tempfile.mkdtemp(prefix="receiver-rss-")) / "receiver.db"
    store = SQLiteStore(db)
    await store.open()
    writer = Writer(store, queue_size=10_000, batch_max=512)
    await writer.start()
    sem = asyncio.Semaphore(256)
    start_rss = rss_mb()
    print(f"start rss_mb={start_rss:.1f}")
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        source, path, body, ctype, headers = MIX[i % len(MIX)]
        m = mappings[source]
        body = body.replace(b"12345", str(i).encode())  # distinct deliveries
        doc = decode_outer(m.envelope, body, ctype, "")
        decode_inner(m.envelope, doc)
        m.redact(doc)
        did, now = new_id(), now_rfc3339()
        mapped = map_document(m, doc, headers, path, now, did)
        delivery = Delivery(
            id=did,
            source=source,
            received_at=now,
            method="POST",
            path=path,
            content_type=ctype,
            query={},
            headers={},
            body=body,
            body_format="original",
            status=mapped.status,
            # As the endpoint makes it: SHA-256 of the path and body (uniform hex digits;
            # an id would share its leading digits, its time, with every other of the minute).
            fingerprint=hashlib.sha256(path.encode() + b"?\n" + body).hexdigest(),
            mapping=m.name,
        )
        try:
            await writer.submit(
                WriteRequest(delivery=delivery, events=mapped.events, identities=mapped.identities)
            )
        finally:
            sem.release()

    tasks: set[asyncio.Task[None]] = set()
    for i in range(n):
        await sem.acquire()
        t = asyncio.create_task(one(i))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        if (i + 1) % 100_000 == 0:
            rate = (i + 1) / (time.perf_counter() - t0)
            print(f"{i + 1:>9,} deliveries  rss_mb={rss_mb():.1f}  {rate:,.0f}/s", flush=True)
    await asyncio.gather(*tasks)
    await writer.stop()
    await store.close()
    end_rss = rss_mb()
    print(
        f"deliveries={n} start_rss_mb={start_rss:.1f} end_rss_mb={end_rss:.1f} "
        f"growth_mb={end_rss - start_rss:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    args = parser.parse_args()
    asyncio.run(run(args.deliveries))


if __name__ == "__main__":
    main()
