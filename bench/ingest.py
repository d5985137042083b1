"""Ingest side by side: bare Starlette, the ceiling app, a typical FastAPI receiver, receiver.

    sudo apt-get install wrk                  # the load generator (Debian package)
    .venv/bin/pip install -e '.[bench]'       # fastapi + sqlalchemy for the typical receiver
    .venv/bin/python bench/ingest.py [--rounds 3] [--duration 10] [--connections 64]
        [--ceiling PATH]                      # the ceiling app (or RECEIVER_BENCH_CEILING)
    .venv/bin/python bench/ingest.py --postgres postgresql://127.0.0.1:5432/test

The ceiling app is the least any durable receiver must do per delivery (decode, pick the
type and the email, group-commit the raw body and one event row, answer after COMMIT);
it is not part of this repository: give its path with ``--ceiling`` or the environment
variable ``RECEIVER_BENCH_CEILING``; without either, that server is skipped (and the
ratio to it is not printed).

Every server runs under uvicorn with the same loop and HTTP implementation (checked in
the running process, not assumed), pinned to core 0 (taskset); wrk runs on core 1 with
64 connections and the four vendors' rich deliveries (every request distinct, people
drawn from a pool of 5,000). The servers alternate over the rounds; figures are medians.
wrk's Lua counts the answers that are not 2xx (they must be none); after each receiver
run the store is counted, so the bench shows that every acknowledged delivery is there,
mapped. Only ratios measured in one run mean anything on a shared machine.

Last line: ``ratio_vs_ceiling=X ratio_vs_typical=Y ratio_vs_starlette=Z p99_ms=P``.
With ``--postgres``: the SQLite receiver, one receiver on PostgreSQL and two, in one
run; last line ``ratio_pg1_vs_sqlite=X ratio_pg2_vs_sqlite=Y``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from payloads import AFFITOR_LEAD, CONVEAD_PURCHASE_FORM, CROCT_BEACON, KARTRA_BUY  # noqa: E402

SECRETS = {
    "RECEIVER_KARTRA_TOKEN": "bench-kartra",
    "RECEIVER_CONVEAD_APP_KEY": "bench-convead",
    "RECEIVER_CROCT_APP_ID": "bench-croct",
    "RECEIVER_AFFITOR_TOKEN": "bench-affitor",
    "RECEIVER_API_KEY": "bench-api",
}
CEILING_ENV = "RECEIVER_BENCH_CEILING"
#: The same uvicorn for every server; ``receiver serve`` picks these itself ("auto").
UVICORN = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--no-server-header"]


def _templates() -> list[dict[str, Any]]:
    """The mix, with __N__ (unique per request) and __P__ (a person of the pool) to fill."""
    from urllib.parse import urlencode

    kartra = json.loads(json.dumps(KARTRA_BUY))
    kartra["lead"]["id"] = "__P__"
    kartra["lead"]["email"] = "person__P__@example.com"
    kartra["action_details"]["transaction_details"]["transaction_id"] = "TX__N__"
    convead = dict(CONVEAD_PURCHASE_FORM)
    convead["app_key"] = SECRETS["RECEIVER_CONVEAD_APP_KEY"]
    convead["visitor_uid"] = "v__P__"
    convead["data"] = (
        convead["data"].replace("12345", "__N__").replace("test@example.net", "person__P__@example.com")
    )
    croct = json.loads(json.dumps(CROCT_BEACON))
    croct["payload"]["order"]["orderId"] = "__N__"
    affitor = dict(AFFITOR_LEAD, user_id="usr__P__", email="person__P__@example.com", customer_code="c__N__")
    json_h = {"Content-Type": "application/json"}
    return [
        {
            "path": f"/hooks/kartra?token={SECRETS['RECEIVER_KARTRA_TOKEN']}",
            "headers": json_h,
            "body": json.dumps(kartra),
        },
        {
            "path": "/hooks/convead/watch/event",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            "body": urlencode(convead),
        },
        {
            "path": "/hooks/croct/client/web/track",
            "headers": {
                **json_h,
                "X-App-Id": SECRETS["RECEIVER_CROCT_APP_ID"],
                "X-Client-Id": "9f2b4c6d8e0a1b3c5d7e9f1a2b3c4d5e",
            },
            "body": json.dumps(croct),
        },
        {
            "path": "/hooks/affitor/api/tracking/lead",
            "headers": {**json_h, "Authorization": f"Bearer {SECRETS['RECEIVER_AFFITOR_TOKEN']}"},
            "body": json.dumps(affitor),
        },
    ]


def write_lua(path: Path) -> None:
    parts = []
    for t in _templates():
        headers = ", ".join(f'["{k}"] = [==[{v}]==]' for k, v in t["headers"].items())
        parts.append(f"{{path = [==[{t['path']}]==], headers = {{{headers}}}, body = [==[{t['body']}]==]}}")
    path.write_text(
        "local reqs = {" + ",\n".join(parts) + "}\n"
        "local counter = 0\n"
        # Every wrk process gets its own tag (script argument): bodies never repeat across
        # processes or runs, so the receiver's dedup never has anything to merge.
        "local run = ''\n"
        "init = function(args) run = args[1] end\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        "  local r = reqs[(counter % #reqs) + 1]\n"
        "  local body = string.gsub(r.body, '__N__', run .. '-' .. counter)\n"
        "  body = string.gsub(body, '__P__', tostring(counter % 5000))\n"
        "  return wrk.format('POST', r.path, r.headers, body)\n"
        "end\n"
        # Each wrk thread has its own Lua state: the counts are read from them at the end.
        "ok, other = 0, 0\n"
        "local threads = {}\n"
        "setup = function(thread) table.insert(threads, thread) end\n"
        "response = function(status, headers, body)\n"
        "  if status >= 200 and status < 300 then ok = ok + 1 else other = other + 1 end\n"
        "end\n"
        "done = function(summary, latency, requests)\n"
        "  local o, x = 0, 0\n"
        "  for _, t in ipairs(threads) do o = o + t:get('ok'); x = x + t:get('other') end\n"
        "  io.write(string.format('ANSWERS 2xx %d other %d\\n', o, x))\n"
        "end\n"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def find_ceiling(given: str | None) -> Path | None:
    for candidate in (given, os.environ.get(CEILING_ENV)):
        if candidate:
            path = Path(candidate).expanduser().resolve()
            if not path.is_file():
                sys.exit(f"the ceiling app {path} does not exist")
            return path
    return None


@dataclass
class Server:
    kind: str
    proc: subprocess.Popen[bytes]
    url: str
    data: Path | None = None  # the receiver's data directory (SQLite)
    database_url: str | None = None


def start(
    kind: str, work: Path, ceiling: Path | None = None, database_url: str | None = None, core: int | None = 0
) -> Server:
    port = free_port()
    env = {**os.environ, **SECRETS}
    data = None
    if kind == "receiver":
        data = work / f"receiver-{port}"
        env["RECEIVER_DATA_DIR"] = str(data)
        if database_url:
            env["RECEIVER_DATABASE_URL"] = database_url
        cmd = [sys.executable, "-m", "receiver", "serve", "--port", str(port)]
    else:
        app_dir, module = {
            "starlette": (ROOT / "bench", "bare_app:app"),
            "typical": (ROOT / "bench", "typical_app:app"),
            "ceiling": (ceiling.parent if ceiling else ROOT, "ceiling_app:app"),
        }[kind]
        env["RECEIVER_TYPICAL_DB"] = str(work / f"typical-{port}.db")
        env["DB_PATH"] = str(work / f"ceiling-{port}.db")
        cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), module, "--port", str(port)]
        cmd += [*UVICORN, "--log-level", "warning"]
    log = (work / f"{kind}-{port}.log").open("wb")
    prefix = pin(core) if core is not None else []
    proc = subprocess.Popen(prefix + cmd, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(url + ("/healthz" if kind == "receiver" else "/"), timeout=0.5)
            return Server(kind, proc, url, data, database_url)
        except httpx.HTTPError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} did not start; see {work}")


def stop(server: Server) -> None:
    server.proc.send_signal(signal.SIGTERM)  # a receiver commits what it queued first
    server.proc.wait(60)


def implementations(pid: int) -> str:
    """The event loop and HTTP parser a running server really loaded."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    loop = "uvloop" if "uvloop/loop" in maps else "asyncio"
    http = "httptools" if "httptools/parser" in maps else "h11"
    return f"{loop}+{http}"


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of a process: its main thread (the event loop) and all its threads."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"loop": 0.0, "all": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick
        out["all"] += seconds
        if task.name == str(pid):
            out["loop"] += seconds
    return out


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load(url: str, lua: Path, duration: int, connections: int, pinned: bool = True) -> dict[str, float]:
    cmd = [*(pin(1) if pinned else []), "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    tag = f"{os.getpid()}-{time.time_ns()}"
    out = subprocess.run(
        [*cmd, "-s", str(lua), url, "--", tag], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"ANSWERS 2xx (\d+) other (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "ok": int(found.group(1)),  # type: ignore[union-attr]
        "non2xx": int(found.group(2)),  # type: ignore[union-attr]
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


def load_many(urls: list[str], lua: Path, duration: int, connections: int) -> dict[str, float]:
    """One wrk per process (the connections split between them), figures combined."""
    with ThreadPoolExecutor(len(urls)) as pool:
        parts = list(pool.map(lambda u: load(u, lua, duration, connections // len(urls), False), urls))
    combined = {k: sum(p[k] for p in parts) for k in ("rps", "ok", "non2xx", "socket_errors")}
    return {**combined, "p50": max(p["p50"] for p in parts), "p99": max(p["p99"] for p in parts)}


def stored(server: Server) -> tuple[int, int]:
    """(deliveries taken, events) in a stopped receiver's store."""
    if server.database_url:
        return asyncio.run(_pg_counts(server.database_url))
    conn = sqlite3.connect(f"file:{server.data}/receiver.db?mode=ro", uri=True)
    try:
        deliveries = conn.execute("SELECT count(*) FROM deliveries WHERE status != 'rejected'").fetchone()[0]
        return deliveries, conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()


async def _pg_counts(url: str) -> tuple[int, int]:
    import asyncpg

    from receiver.store.postgres import PostgresStore

    store = PostgresStore(url)
    conn = await asyncpg.connect(store.dsn, server_settings={"search_path": store.schema or "public"})
    try:
        d = await conn.fetchval("SELECT count(*) FROM deliveries WHERE status != 'rejected'")
        return int(d), int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


async def _pg_drop(url: str) -> None:
    import asyncpg

    from receiver.store.postgres import PostgresStore

    store = PostgresStore(url)
    conn = await asyncpg.connect(store.dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE')
    finally:
        await conn.close()


@dataclass
class Figures:
    runs: list[dict[str, float]] = field(default_factory=list)
    impl: set[str] = field(default_factory=set)
    checks: list[str] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs)


def check_stored(server: Server, acknowledged: int, in_flight: int) -> str:
    """Every 2xx answer is a delivery in the store, mapped to its one event. Requests still
    in flight when wrk stopped (``in_flight`` at most) may be stored, their answer unseen."""
    deliveries, events = stored(server)
    ok = acknowledged <= deliveries <= acknowledged + in_flight and events == deliveries
    verdict = "ok" if ok else "MISSING OR UNMAPPED"
    return f"{verdict}: {acknowledged} acknowledged, {deliveries} stored, {events} events"


def run_one(
    kind: str, work: Path, lua: Path, args: argparse.Namespace, ceiling: Path | None, figures: Figures
) -> dict[str, float]:
    server = start(kind, work, ceiling)
    try:
        figures.impl.add(implementations(server.proc.pid))
        warm = load(server.url, lua, 2, args.connections)
        before = cpu_seconds(server.proc.pid)
        res = load(server.url, lua, args.duration, args.connections)
        after = cpu_seconds(server.proc.pid)
    finally:
        stop(server)
    # CPU per answered request: what a busy shared machine disturbs least.
    for k in ("loop", "all"):
        res[f"cpu_{k}_us"] = (after[k] - before[k]) / max(res["ok"], 1) * 1e6
    res["non2xx"] += warm["non2xx"]
    if kind == "receiver":
        figures.checks.append(check_stored(server, int(warm["ok"] + res["ok"]), 2 * args.connections))
    figures.runs.append(res)
    return res


def report(r: int, name: str, res: dict[str, float]) -> None:
    print(
        f"round {r + 1} {name:12} {res['rps']:9.0f} req/s  p50 {res['p50']:7.2f} ms"
        f"  p99 {res['p99']:7.2f} ms  non-2xx {int(res['non2xx'])}"
        f"  socket errors {int(res['socket_errors'])}",
        flush=True,
    )


def table(figures: dict[str, Figures]) -> None:
    """Medians over the rounds, the non-2xx answers of all of them, what ran them."""
    print(
        f"\n{'server':12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
        f" {'loop µs':>8} {'all µs':>8}  loop+http"
    )
    for name, f in figures.items():
        non2xx = int(sum(x["non2xx"] for x in f.runs))
        rps, p50, p99 = f.median("rps"), f.median("p50"), f.median("p99")
        cpu = [
            f"{statistics.median(r[k] for r in f.runs):8.0f}" if all(k in r for r in f.runs) else f"{'-':>8}"
            for k in ("cpu_loop_us", "cpu_all_us")
        ]
        impl = ",".join(sorted(f.impl))
        print(f"{name:12} {rps:9.0f} {p50:8.2f} {p99:8.2f} {non2xx:8} {' '.join(cpu)}  {impl}")
    print("(loop µs, all µs: the server's CPU per answered request, event-loop thread and all threads)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--ceiling", metavar="PATH", help=f"ceiling_app.py (or ${CEILING_ENV})")
    parser.add_argument("--postgres", metavar="URL", help="instead: receiver on SQLite and PostgreSQL")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: sudo apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="receiver-ingest-bench-"))
    lua = work / "mix.lua"
    write_lua(lua)
    try:
        if args.postgres:
            postgres_figures(args, work, lua)
        else:
            side_by_side(args, work, lua)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def side_by_side(args: argparse.Namespace, work: Path, lua: Path) -> None:
    ceiling = find_ceiling(args.ceiling)
    kinds = ["starlette", "ceiling", "typical", "receiver"]
    if ceiling is None:
        print(f"no ceiling app: give --ceiling PATH or ${CEILING_ENV}; skipping that server")
        kinds.remove("ceiling")
    figures = {k: Figures() for k in kinds}
    for r in range(args.rounds):
        for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:  # who goes first changes
            report(r, kind, run_one(kind, work, lua, args, ceiling, figures[kind]))
    table(figures)
    for line in figures["receiver"].checks:
        print(f"receiver store check: {line}")
    rps = {k: figures[k].median("rps") for k in kinds}
    ceiling_ratio = f"{rps['receiver'] / rps['ceiling']:.2f}" if "ceiling" in rps else "n/a"
    print(
        f"ratio_vs_ceiling={ceiling_ratio} ratio_vs_typical={rps['receiver'] / rps['typical']:.2f}"
        f" ratio_vs_starlette={rps['receiver'] / rps['starlette']:.2f}"
        f" p99_ms={figures['receiver'].median('p99'):.1f}"
    )


def postgres_figures(args: argparse.Namespace, work: Path, lua: Path) -> None:
    """The SQLite receiver, one receiver on PostgreSQL (pinned like it), two on PostgreSQL
    (free to use both cores, as PostgreSQL and wrk are), alternating over the rounds."""
    setups = ["sqlite", "postgres x1", "postgres x2"]
    figures = {s: Figures() for s in setups}
    for r in range(args.rounds):
        for setup in setups[r % 3 :] + setups[: r % 3]:
            schema = f"bench_ingest_{os.getpid()}_{r}_{setup[-1]}"
            url = None
            if setup != "sqlite":
                url = f"{args.postgres}{'&' if '?' in args.postgres else '?'}schema={schema}"
            n = 2 if setup == "postgres x2" else 1
            core = 0 if n == 1 else None
            servers = [start("receiver", work, database_url=url, core=core) for _ in range(n)]
            try:
                for s in servers:
                    figures[setup].impl.add(implementations(s.proc.pid))
                urls = [s.url for s in servers]
                warm = load_many(urls, lua, 2, args.connections)
                res = load(urls[0], lua, args.duration, args.connections) if n == 1 else None
                res = res or load_many(urls, lua, args.duration, args.connections)
            finally:
                for s in servers:
                    stop(s)
            res["non2xx"] += warm["non2xx"]
            figures[setup].runs.append(res)
            acknowledged = int(warm["ok"] + res["ok"])
            figures[setup].checks.append(check_stored(servers[0], acknowledged, 2 * args.connections))
            if url:
                asyncio.run(_pg_drop(url))
            report(r, setup, res)
    table(figures)
    for setup in setups:
        for line in figures[setup].checks:
            print(f"{setup} store check: {line}")
    base = figures["sqlite"].median("rps")
    print(
        f"ratio_pg1_vs_sqlite={figures['postgres x1'].median('rps') / base:.2f}"
        f" ratio_pg2_vs_sqlite={figures['postgres x2'].median('rps') / base:.2f}"
    )


if __name__ == "__main__":
    main()
