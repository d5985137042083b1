"""Erasure on a filled SQLite store, with and without a reader holding the WAL: how long
``DELETE /v1/leads/{id}`` takes, what it does to the latency of deliveries meanwhile, and
how soon a pending purge completes once the reader lets go.

    sudo apt-get install wrk
    .venv/bin/python bench/erasure.py [--fill 20] [--connections 4]

``receiver serve`` runs pinned to core 0, wrk to core 1 (as in bench/ingest.py, whose mix
of the four vendors it reuses). The store is filled by wrk for ``--fill`` seconds; then
each phase runs wrk at a few connections for a few seconds and erases one person in the
middle. The reader is another process with a read transaction open, as a backup tool or
a ``sqlite3`` shell keeps one.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import SECRETS, free_port, load, start, write_lua

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
READER = (
    "import sqlite3, sys\n"
    "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "c.execute('BEGIN'); c.execute('SELECT count(*) FROM deliveries').fetchone()\n"
    "print('reading', flush=True); sys.stdin.readline(); c.execute('COMMIT')\n"
)


def lead_of(url: str, n: int) -> str:
    """The n-th distinct person among recent Kartra events (one vendor each in the mix)."""
    events = httpx.get(f"{url}/v1/events", params={"source": "kartra", "limit": 100}, headers=KEY)
    leads = list(dict.fromkeys(e["lead_id"] for e in events.json()["data"] if e["lead_id"]))
    return leads[n]


def under_load(
    port: int, lua: Path, seconds: int, connections: int, during: Any
) -> tuple[dict[str, float], Any]:
    """wrk for ``seconds``; ``during()`` runs one second in. Both results."""
    figures: dict[str, float] = {}
    worker = threading.Thread(target=lambda: figures.update(load(port, lua, seconds, connections)))
    worker.start()
    time.sleep(1)
    result = during()
    worker.join()
    return figures, result


def show(name: str, f: dict[str, float], extra: str = "") -> None:
    print(
        f"{name:<34} {f['rps']:7.0f} req/s  p50 {f['p50']:7.2f} ms  p99 {f['p99']:7.2f} ms"
        f"  non-2xx {int(f['non2xx'])}/{int(f['total'])}  {extra}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fill", type=int, default=20, help="seconds of wrk to fill the store")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections while erasing")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="receiver-erasure-bench-"))
    lua = work / "mix.lua"
    write_lua(lua)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start("receiver", port, work)
    db = work / f"receiver-{port}" / "receiver.db"
    try:
        load(port, lua, args.fill, 64)
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            n = conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
        print(f"store: {n} deliveries, {db.stat().st_size / 1e6:.0f} MB", flush=True)
        time.sleep(1)
        show("deliveries, no erasure", load(port, lua, 5, args.connections))

        def erase(person: int) -> tuple[int, float, str]:
            lead_id = lead_of(url, person)
            started = time.perf_counter()
            r = httpx.delete(f"{url}/v1/leads/{lead_id}", headers=KEY, timeout=600)
            return r.status_code, time.perf_counter() - started, r.headers.get("location", "")

        figures, (status, took, _) = under_load(port, lua, 5, args.connections, lambda: erase(1))
        show("deliveries while erasing", figures, f"DELETE {status} in {took * 1000:.0f} ms")

        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline() == "reading\n"
        show("deliveries, reader, no erasure", load(port, lua, 5, args.connections))
        figures, (status, took, location) = under_load(port, lua, 5, args.connections, lambda: erase(2))
        show("deliveries while erasing, reader", figures, f"DELETE {status} in {took * 1000:.0f} ms")
        state = httpx.get(url + location, headers=KEY).json()["state"]
        released = time.perf_counter()
        reader.stdin.write("done\n")
        reader.stdin.close()
        reader.wait()
        while state != "complete":
            time.sleep(0.01)
            state = httpx.get(url + location, headers=KEY).json()["state"]
        after = (time.perf_counter() - released) * 1000
        print(f"pending purge complete {after:.0f} ms after the reader let go")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


if __name__ == "__main__":
    main()
