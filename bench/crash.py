"""Crash test: kill -9 the receiver mid-load, restart, and check that every delivery it
acknowledged (2xx) is stored and the database opens cleanly.

    .venv/bin/python bench/crash.py [--kills 10] [--concurrency 32]

Prints, per kill and in total, how many deliveries were acknowledged, found and lost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "crash-croct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RECEIVER_DATA_DIR": str(data), "RECEIVER_CROCT_APP_ID": APP_ID}
    proc = subprocess.Popen(
        [sys.executable, "-m", "receiver", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.025)
    raise RuntimeError("receiver did not start")


async def load(port: int, acked: set[str], concurrency: int, stop: asyncio.Event, run: int) -> int:
    sent = 0

    # One client for all workers: building a client (its SSL context) takes ~50 ms here.
    limits = httpx.Limits(max_connections=concurrency)
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5, limits=limits)

    async def worker(w: int) -> None:
        nonlocal sent
        i = 0
        while not stop.is_set():
            i += 1
            sent += 1
            body = {"type": "goalCompleted", "goalId": f"goal-{run}-{w}-{i}", "value": i}
            try:
                r = await client.post("/hooks/croct", json=body, headers={"X-App-Id": APP_ID})
            except httpx.HTTPError:
                return  # the server is gone
            if r.status_code in (200, 202):
                acked.add(r.json()["delivery_id"])

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    await client.aclose()
    return sent


async def one_kill(data: Path, run: int, concurrency: int) -> tuple[int, int]:
    port = free_port()
    proc = start(data, port)
    acked: set[str] = set()
    stop = asyncio.Event()
    task = asyncio.create_task(load(port, acked, concurrency, stop, run))
    await asyncio.sleep(random.uniform(0.5, 2.0))
    proc.send_signal(signal.SIGKILL)  # mid-load, no warning
    proc.wait()
    stop.set()
    await task
    return len(acked), len(acked & stored(data))


def stored(data: Path) -> set[str]:
    conn = sqlite3.connect(data / "receiver.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {r[0] for r in conn.execute("SELECT id FROM deliveries")}
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="receiver-crash-"))
    total_acked = total_found = 0
    for run in range(args.kills):
        acked, found = asyncio.run(one_kill(data, run, args.concurrency))
        total_acked += acked
        total_found += found
        print(f"kill {run + 1:2}: acknowledged {acked:5}  found {found:5}  lost {acked - found}")
    # A final clean start must open the same database and keep everything.
    proc = start(data, free_port())
    proc.terminate()
    proc.wait(30)
    print(f"acknowledged={total_acked} found={total_found} lost={total_acked - total_found}")
    sys.exit(1 if total_found != total_acked else 0)


if __name__ == "__main__":
    main()
