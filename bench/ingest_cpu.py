"""CPU per delivery, in process: the ingest bench's mix pushed through the ASGI app.

    .venv/bin/python bench/ingest_cpu.py [--deliveries 4000] [--rounds 5] [--concurrency 64]
    .venv/bin/python bench/ingest_cpu.py --postgres postgresql://127.0.0.1:5432/test

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

With ``--postgres URL`` the store is PostgreSQL, in a schema of its own (dropped at the
end). PostgreSQL's work for us is as much a cost as ours (both share the cores), so the
CPU of the server processes serving this one (found by ``application_name``) is counted
too: ``pg_us``, and ``sum_us`` = ``total_us`` + ``pg_us``. ``pg_all_us`` is every
PostgreSQL process's (its WAL writer too; anyone else's work on the server as well).
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


def cpu_of(pids: list[int]) -> float:
    """CPU seconds of these processes (those gone are left out)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on this machine."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "postgres":
                    out.append(int(proc.name))
            except OSError:
                continue
    return out


class Postgres:
    """The bench's schema, its server processes, and its checks."""

    def __init__(self, url: str) -> None:
        self.name = f"ingest_cpu_{os.getpid()}"
        sep = "&" if "?" in url else "?"
        self.url = f"{url}{sep}schema={self.name}&application_name={self.name}"

    async def _conn(self) -> Any:
        import asyncpg

        from receiver.store.postgres import PostgresStore

        store = PostgresStore(self.url)
        return await asyncpg.connect(store.dsn, server_settings={"search_path": self.name})

    async def backends(self) -> list[int]:
        conn = await self._conn()
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
                self.name,
            )
            return [r[0] for r in rows]
        finally:
            await conn.close()

    async def counts(self) -> tuple[int, int]:
        conn = await self._conn()
        try:
            d = await conn.fetchval("SELECT count(*) FROM deliveries WHERE status = 'accepted'")
            return int(d), int(await conn.fetchval("SELECT count(*) FROM events"))
        finally:
            await conn.close()

    async def drop(self) -> None:
        conn = await self._conn()
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
        finally:
            await conn.close()


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
    pg = Postgres(args.postgres) if args.postgres else None
    if pg is not None:
        os.environ["RECEIVER_DATABASE_URL"] = pg.url
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
    rows: list[tuple[float, ...]] = []
    async with app.router.lifespan_context(app):
        await push(app, requests(args.warmup, "warm"), args.concurrency)
        stored += args.warmup
        for r in range(args.rounds):
            reqs = requests(args.deliveries, f"r{r}-{time.time_ns()}")
            backends = await pg.backends() if pg is not None else []
            everyone = postgres_pids() if pg is not None else []
            b0, a0 = cpu_of(backends), cpu_of(everyone)
            t0, p0, w0, th0 = time.thread_time(), time.process_time(), time.perf_counter(), by_thread()
            statuses = await push(app, reqs, args.concurrency)
            t1, p1, w1, th1 = time.thread_time(), time.process_time(), time.perf_counter(), by_thread()
            b1, a1 = cpu_of(backends), cpu_of(everyone)
            bad = sum(1 for s in statuses if not 200 <= s < 300)
            stored += len(reqs)
            n = len(reqs)
            loop_us, total_us = (t1 - t0) / n * 1e6, (p1 - p0) / n * 1e6
            pg_us, pg_all_us = (b1 - b0) / n * 1e6, (a1 - a0) / n * 1e6
            rows.append((loop_us, total_us - loop_us, total_us, pg_us, total_us + pg_us, pg_all_us))
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
            if pg is not None:
                print(
                    f"         PostgreSQL: {pg_us:.1f} µs per delivery in its {len(backends)} server"
                    f" process(es) for us, {pg_all_us:.1f} in all of its processes",
                    file=sys.__stdout__,
                )
            if bad:
                sys.exit("some deliveries were not accepted")
    if pg is not None:
        try:
            deliveries, events = await pg.counts()
        finally:
            await pg.drop()
    else:
        deliveries, events = counts(work / "receiver.db")
    verdict = "ok" if deliveries == events == stored else "MISSING OR UNMAPPED"
    out = sys.__stdout__
    print(f"store check: {verdict}: {stored} sent, {deliveries} accepted, {events} events", file=out)
    med = [statistics.median(x[i] for x in rows) for i in range(len(rows[0]))]
    last = f"loop_us={med[0]:.1f} writer_us={med[1]:.1f} total_us={med[2]:.1f}"
    if pg is not None:
        last += f" pg_us={med[3]:.1f} sum_us={med[4]:.1f} pg_all_us={med[5]:.1f}"
    print(last, file=sys.__stdout__)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=4000, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--postgres", metavar="URL", help="the store on PostgreSQL (postgresql://…)")
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory(prefix="receiver-ingest-cpu-") as work:
        uvloop.run(run(args, Path(work)))


if __name__ == "__main__":
    main()
