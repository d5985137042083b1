"""Side-by-side ingest benchmark: bare Starlette vs a typical FastAPI receiver vs receiver.

    sudo apt-get install wrk            # the load generator (Debian package)
    .venv/bin/pip install -e '.[bench]' # fastapi + sqlalchemy for the reference receiver
    .venv/bin/python bench/ingest.py [--rounds 3] [--duration 10] [--connections 64]

Each server runs pinned to core 0 (taskset), wrk to core 1, with the same realistic mix
of the four vendors' deliveries (every request distinct, people drawn from a pool of
5,000). The three servers alternate over the rounds; figures are medians over rounds.
Only ratios measured in one run mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def _templates() -> list[dict[str, object]]:
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
        headers = ", ".join(f'["{k}"] = [==[{v}]==]' for k, v in t["headers"].items())  # type: ignore[attr-defined]
        parts.append(f"{{path = [==[{t['path']}]==], headers = {{{headers}}}, body = [==[{t['body']}]==]}}")
    path.write_text(
        "local reqs = {" + ",\n".join(parts) + "}\n"
        "local counter = 0\n"
        "local run = tostring(os.time()) .. tostring(math.random(100000))\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        "  local r = reqs[(counter % #reqs) + 1]\n"
        "  local body = string.gsub(r.body, '__N__', run .. '-' .. counter)\n"
        "  body = string.gsub(body, '__P__', tostring(counter % 5000))\n"
        "  return wrk.format('POST', r.path, r.headers, body)\n"
        "end\n"
        "local non2xx = 0\n"
        "response = function(status, headers, body)\n"
        "  if status >= 300 then non2xx = non2xx + 1 end\n"
        "end\n"
        "done = function(summary, latency, requests)\n"
        "  io.write(string.format('NON2XX %d\\n', non2xx))\n"
        "end\n"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def start(kind: str, port: int, work: Path, database_url: str | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, **SECRETS}
    if kind.startswith("receiver"):
        data = work / f"receiver-{port}"
        env["RECEIVER_DATA_DIR"] = str(data)
        if database_url:
            env["RECEIVER_DATABASE_URL"] = database_url
        cmd = [sys.executable, "-m", "receiver", "serve", "--port", str(port)]
    else:
        env["RECEIVER_TYPICAL_DB"] = str(work / f"typical-{port}.db")
        module = "bare_app:app" if kind == "starlette" else "typical_app:app"
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(ROOT / "bench"),
            module,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    log = (work / f"{kind}-{port}.log").open("wb")
    cores = [] if database_url else pin(0)  # several processes: let the OS place them
    proc = subprocess.Popen(cores + cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(url + ("/healthz" if kind.startswith("receiver") else "/"), timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} did not start; see {work}")


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load_many(ports: list[int], lua: Path, duration: int, connections: int) -> dict[str, float]:
    """One wrk per process (the connections split between them), figures combined."""
    with ThreadPoolExecutor(len(ports)) as pool:
        parts = list(
            pool.map(lambda p: load(p, lua, duration, connections // len(ports), pinned=False), ports)
        )
    return {
        "rps": sum(p["rps"] for p in parts),
        "p50": max(p["p50"] for p in parts),
        "p99": max(p["p99"] for p in parts),
        "non2xx": sum(p["non2xx"] for p in parts),
        "total": sum(p["total"] for p in parts),
    }


def load(port: int, lua: Path, duration: int, connections: int, pinned: bool = True) -> dict[str, float]:
    cmd = [
        *(pin(1) if pinned else []),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(lua),
        f"http://127.0.0.1:{port}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    non2xx = int(re.search(r"NON2XX (\d+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": p50, "p99": p99, "non2xx": non2xx, "total": total}


def postgres_figures(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="receiver-ingest-bench-"))
    lua = work / "mix.lua"
    write_lua(lua)
    for n in (1, 2):
        schema = f"bench_{n}_{int(time.time())}"
        url = f"{args.postgres}{'&' if '?' in args.postgres else '?'}schema={schema}"
        ports = [free_port() for _ in range(n)]
        procs = [start("receiver", p, work, url) for p in ports]
        try:
            load_many(ports, lua, 2, args.connections)  # warm-up
            res = load_many(ports, lua, args.duration, args.connections)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        print(
            f"postgres processes={n} {res['rps']:9.0f} req/s  p50 {res['p50']:7.2f} ms  "
            f"p99 {res['p99']:7.2f} ms  non-2xx {int(res['non2xx'])}/{int(res['total'])}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--postgres", metavar="URL", help="instead: receiver on PostgreSQL, 1 and 2 processes"
    )
    args = parser.parse_args()
    if args.postgres:
        postgres_figures(args)
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: sudo apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="receiver-ingest-bench-"))
    lua = work / "mix.lua"
    write_lua(lua)
    kinds = ["starlette", "typical", "receiver"]
    results: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    for r in range(args.rounds):
        order = kinds[r % 3 :] + kinds[: r % 3]  # alternate who runs first
        for kind in order:
            port = free_port()
            proc = start(kind, port, work)
            try:
                load(port, lua, 2, args.connections)  # warm-up
                res = load(port, lua, args.duration, args.connections)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
            results[kind].append(res)
            print(
                f"round {r + 1} {kind:9} {res['rps']:9.0f} req/s  p50 {res['p50']:7.2f} ms  "
                f"p99 {res['p99']:7.2f} ms  non-2xx {int(res['non2xx'])}/{int(res['total'])}",
                flush=True,
            )
    print()
    print(f"{'server':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    med = {}
    for kind in kinds:
        rows = results[kind]
        med[kind] = {k: statistics.median(x[k] for x in rows) for k in ("rps", "p50", "p99")}
        print(f"{kind:10} {med[kind]['rps']:9.0f} {med[kind]['p50']:8.2f} {med[kind]['p99']:8.2f}")
    ratio_s = med["receiver"]["rps"] / med["starlette"]["rps"]
    ratio_t = med["receiver"]["rps"] / med["typical"]["rps"]
    print(f"ratio_vs_starlette={ratio_s:.2f} ratio_vs_typical={ratio_t:.2f}")


if __name__ == "__main__":
    main()
