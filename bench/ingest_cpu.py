"""CPU per delivery, in process: the ingest bench's mix pushed through the ASGI app.

    .venv/bin/python bench/ingest_cpu.py [--deliveries 4000] [--rounds 5] [--concurrency 64]

Another checkout, side by side (``-S`` keeps this one's editable install out of the way;
run it from outside the checkout):

    PYTHONPATH=/path/to/other:$PWD/.venv/lib/python3.11/site-packages \
        .venv/bin/python -S bench/ingest_cpu.py

The app is the one ``receiver serve`` runs (uvloop, the access log queued to its thread
as ``logs.setup`` does, a real SQLite store in a temporary directory); ``concurrency``
requests are in flight at once, so the writer batches as it does under load. No HTTP
server and no socket: what is measured is the receiver's own work, per delivery, as CPU
time, which a busy shared machine disturbs far less than it does requests per second:

- ``loop``: the event-loop thread (the edge, decoding, redaction, mapping, the handoff);
- ``writer``: every other thread of the process (SQLite's writer, the log thread);
- ``total``: the process.

Every round uses new bodies (``__N__`` unique, ``__P__`` a person of a pool of 5,000, as
in ``ingest.py``); each is checked: every delivery answered 2xx, stored and mapped to one
event. Prints one line per round and the medians:
``loop_us=… writer_us=… total_us=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import SECRETS, _templates


def requests(n: int, tag: str) -> list[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]]:
    """(path, query, headers, body) of ``n`` distinct deliveries of the mix."""
    out = []
    templates = _templates()
    for i in range(n):
        t = templates[i % len(templates)]
        body = t["body"].replace("__N__", f"{tag}-{i}").replace("__P__", str(i % 5000)).encode()
        path, _, query = t["path"].partition("?")
        headers = [(k.lower().encode(), v.encode()) for k, v in t["headers"].items()]
        headers += [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode())]
        out.append((path.encode(), query.encode(), headers, body))
    return out


async def deliver(app: Any, req: tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]) -> int:
    path, query, headers, body = req
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path.decode(),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def push(app: Any, reqs: list[Any], concurrency: int) -> list[int]:
    statuses: list[int] = []
    it = iter(reqs)

    async def worker() -> None:
        for req in it:
            statuses.append(await deliver(app, req))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def by_thread() -> dict[str, float]:
    """CPU seconds of each thread of this process, by name (Linux: /proc)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").iterdir():
        fields = (task / "stat").read_text().rpartition(")")[2].split()
        tid = int(task.name)
        name = "main" if tid == threading.main_thread().native_id else names.get(tid, "?").split("_")[0]
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def counts(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        d = conn.execute("SELECT count(*) FROM deliveries WHERE status = 'accepted'").fetchone()[0]
        return d, conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()


async def run(args: argparse.Namespace, work: Path) -> None:
    from receiver import logs
    from receiver.app import create_app
    from receiver.config import Settings

    os.environ.update(SECRETS)
    os.environ["RECEIVER_DATA_DIR"] = str(work)
    # The access log as under ``receiver serve``, written to /dev/null by its thread.
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the whole run
    logs.setup("info")
    app = create_app(Settings.from_env())
    try:  # as ``receiver serve`` does (absent from older checkouts)
        from receiver.gc_tuning import tune_for_serving
    except ImportError:
        pass
    else:
        tune_for_serving()
    stored = 0
    rows: list[tuple[float, float, float]] = []
    async with app.router.lifespan_context(app):
        await push(app, requests(args.warmup, "warm"), args.concurrency)
        stored += args.warmup
        for r in range(args.rounds):
            reqs = requests(args.deliveries, f"r{r}-{time.time_ns()}")
            t0, p0, w0, th0 = time.thread_time(), time.process_time(), time.perf_counter(), by_thread()
            statuses = await push(app, reqs, args.concurrency)
            t1, p1, w1, th1 = time.thread_time(), time.process_time(), time.perf_counter(), by_thread()
            bad = sum(1 for s in statuses if not 200 <= s < 300)
            stored += len(reqs)
            n = len(reqs)
            loop_us, total_us = (t1 - t0) / n * 1e6, (p1 - p0) / n * 1e6
            rows.append((loop_us, total_us - loop_us, total_us))
            print(
                f"round {r + 1}: loop {loop_us:6.1f} µs  writer {total_us - loop_us:6.1f} µs"
                f"  total {total_us:6.1f} µs per delivery  ({n / (w1 - w0):6.0f}/s wall, non-2xx {bad})",
                file=sys.__stdout__,
                flush=True,
            )
            threads = "  ".join(
                f"{name} {(th1[name] - th0.get(name, 0.0)) / n * 1e6:.1f}"
                for name in sorted(th1)
                if name != "main"
            )
            print(f"         other threads, µs per delivery: {threads}", file=sys.__stdout__)
            if bad:
                sys.exit("some deliveries were not accepted")
    deliveries, events = counts(work / "receiver.db")
    verdict = "ok" if deliveries == events == stored else "MISSING OR UNMAPPED"
    out = sys.__stdout__
    print(f"store check: {verdict}: {stored} sent, {deliveries} accepted, {events} events", file=out)
    med = [statistics.median(x[i] for x in rows) for i in range(3)]
    print(f"loop_us={med[0]:.1f} writer_us={med[1]:.1f} total_us={med[2]:.1f}", file=sys.__stdout__)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=4000, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory(prefix="receiver-ingest-cpu-") as work:
        uvloop.run(run(args, Path(work)))


if __name__ == "__main__":
    main()
