"""Forwarding figures, in one run:

    sudo apt-get install wrk
    .venv/bin/python bench/forward.py [--rounds 3] [--duration 10] [--connections 64]

- the ingest rate with one destination configured, as a ratio to the ingest rate
  without destinations (target: >= 0.8): the receiver pinned to core 0, wrk and the
  destination (a small Starlette app that checks every signature) on core 1, the same
  four-vendor mix as bench/ingest.py, the two set-ups alternating over the rounds;
- the forwarding throughput to that local destination: messages delivered per second
  while ingest runs flat out, then while the backlog left by the load drains.

Figures vary with the machine; compare the ratio, measured within one run.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import ROOT, SECRETS, free_port, load, pin, start, write_lua

SINK_SECRET = "whsec_" + base64.b64encode(b"bench-forward-secret-0123456789").decode()
API = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}


def start_sink(port: int, work: Path) -> subprocess.Popen[bytes]:
    cmd = [
        *pin(1),
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(ROOT / "bench"),
        "forward_sink:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    env = {**os.environ, "BENCH_SINK_SECRET": SINK_SECRET}
    proc = subprocess.Popen(cmd, env=env, stdout=(work / "sink.log").open("wb"), stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/count", timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the sink did not start")


def sink_count(port: int) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"http://127.0.0.1:{port}/count", timeout=5).json()
    return counts


def backlog(url: str) -> dict[str, int]:
    d = httpx.get(f"{url}/v1/destinations", headers=API, timeout=30).json()["data"][0]
    messages: dict[str, int] = d["messages"]
    return messages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: sudo apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="receiver-forward-bench-"))
    lua = work / "mix.lua"
    write_lua(lua)
    sink_port = free_port()
    sink = start_sink(sink_port, work)
    destinations = work / "destinations.yaml"
    destinations.write_text(
        "destinations:\n"
        "  - name: bench\n"
        f"    url: http://127.0.0.1:{sink_port}/hook\n"
        "    secret_env: BENCH_SINK_SECRET\n"
        "    allow_private: true\n"
    )
    os.environ["BENCH_SINK_SECRET"] = SINK_SECRET
    rates: dict[str, list[float]] = {"none": [], "one": []}
    during: list[float] = []
    drain: list[float] = []
    bad = 0
    try:
        for r in range(args.rounds):
            for kind in ("none", "one") if r % 2 == 0 else ("one", "none"):
                if kind == "one":
                    os.environ["RECEIVER_DESTINATIONS_FILE"] = str(destinations)
                else:
                    os.environ.pop("RECEIVER_DESTINATIONS_FILE", None)
                port = free_port()
                proc = start("receiver", port, work)  # a fresh data directory each time
                url = f"http://127.0.0.1:{port}"
                try:
                    load(port, lua, 2, args.connections)  # warm-up
                    if kind == "one":  # start from an empty backlog
                        while backlog(url)["pending"]:
                            time.sleep(0.2)
                    before = sink_count(sink_port)["received"]
                    res = load(port, lua, args.duration, args.connections)
                    line = f"round {r + 1} {kind:4} destination(s) {res['rps']:8.0f} req/s"
                    line += f"  p99 {res['p99']:7.2f} ms"
                    if kind == "one":
                        loaded = sink_count(sink_port)["received"]
                        during.append((loaded - before) / args.duration)
                        t0 = time.monotonic()
                        while (b := backlog(url))["pending"]:
                            time.sleep(0.1)
                        elapsed = time.monotonic() - t0
                        done = sink_count(sink_port)["received"]
                        if done > loaded and elapsed > 0.5:
                            drain.append((done - loaded) / elapsed)
                        line += (
                            f"  forwarded during load {during[-1]:7.0f}/s,"
                            f" backlog {done - loaded} drained in {elapsed:5.1f} s; failed {b['failed']}"
                        )
                    rates[kind].append(res["rps"])
                    print(line, flush=True)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(30)
        bad = sink_count(sink_port)["bad_signature"]
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(30)
    none, one = statistics.median(rates["none"]), statistics.median(rates["one"])
    print()
    print(f"ingest without destinations {none:8.0f} req/s")
    print(f"ingest with one destination {one:8.0f} req/s")
    # Each round's two runs are adjacent in time: their ratio suffers least from a machine
    # whose load drifts (other work on it).
    pairs = [o / n for o, n in zip(rates["one"], rates["none"], strict=True)]
    print(f"ingest_ratio={one / none:.2f} (target >= 0.8); per round {' '.join(f'{r:.2f}' for r in pairs)},")
    print(f"  median of the rounds {statistics.median(pairs):.2f}")
    print(f"forwarded while ingesting   {statistics.median(during):8.0f} msg/s")
    if drain:
        print(f"forwarded, backlog draining {statistics.median(drain):8.0f} msg/s")
    print(f"signatures that failed the destination's check: {bad}")


if __name__ == "__main__":
    main()
