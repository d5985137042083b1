"""Abuse: the limits hold against a running ``receiver serve`` and it keeps answering.

    .venv/bin/python bench/abuse.py [--slow 300] [--only slowloris,chunked,keys,deep,batch]

Starts a receiver (SQLite, default limits unless said otherwise) on loopback and runs,
one after the other, while a prober asks ``/healthz`` every 20 ms:

- slowloris: N connections sending their headers a byte every 0.5 s, and N sending
  their body that way (default limits: headers 10 s, body 30 s);
- chunked: 20 uploads of a chunked body without end;
- keys: a JSON document of 19,000 members (under the member limit: mapped and stored),
  one of as many small keys as fit under the size limit (~130k), then 1e6 keys with the
  size limit raised to 16 MiB (a second server);
- deep: 100k-deep JSON nesting and 100k-deep form keys;
- batch: 1 MiB Croct batches of ``[0,0,…]`` and ``[{},{},…]``.

For each: the answers (status counts), how long abusive connections were held, the
prober's /healthz latency (p50 and max), and the server's RSS before, at its peak and
after. The last line sums it up.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
KARTRA = "abuse-kartra-token"
CROCT = "abuse-croct-app-id"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Receiver:
    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix="receiver-abuse-"))
        full = {
            **os.environ,
            "RECEIVER_DATA_DIR": str(self.data),
            "RECEIVER_KARTRA_TOKEN": KARTRA,
            "RECEIVER_CROCT_APP_ID": CROCT,
            "RECEIVER_LOG_LEVEL": "warning",
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve", "--port", str(self.port)],
            env=full,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(400):
            try:
                if httpx.get(f"http://{HOST}:{self.port}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("receiver did not start")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _probe(port: int, pid: int, stop: Any, out: Any) -> None:
    """In its own process (the attackers' event loop must not delay it): GET /healthz
    every 20 ms on a kept-alive connection; latencies in ms, failures, peak server RSS."""
    latencies: list[float] = []
    failures = 0
    peak = 0.0
    page = os.sysconf("SC_PAGE_SIZE")
    client = httpx.Client(base_url=f"http://{HOST}:{port}", timeout=5)
    while not stop.is_set():
        t = time.perf_counter()
        try:
            ok = client.get("/healthz").status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            latencies.append((time.perf_counter() - t) * 1000)
        else:
            failures += 1
        with open(f"/proc/{pid}/statm") as f:
            peak = max(peak, int(f.read().split()[1]) * page / 2**20)
        time.sleep(0.02)
    client.close()
    out.put((latencies, failures, peak))


class Prober:
    def __init__(self, r: Receiver) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._out: Any = ctx.Queue()
        self._proc = ctx.Process(target=_probe, args=(r.port, r.proc.pid, self._stop, self._out))
        self.latencies: list[float] = []
        self.failures = 0
        self.peak_rss = 0.0

    def start(self) -> None:
        self._proc.start()

    def stop(self) -> None:
        self._stop.set()
        self.latencies, self.failures, self.peak_rss = self._out.get(timeout=30)
        self._proc.join(10)

    def summary(self) -> str:
        if not self.latencies:
            return f"healthz=none failures={self.failures}"
        p50 = statistics.median(self.latencies)
        return (
            f"healthz_p50_ms={p50:.1f} healthz_max_ms={max(self.latencies):.1f} "
            f"healthz_failures={self.failures} probes={len(self.latencies)}"
        )


async def _status(reader: asyncio.StreamReader) -> str:
    try:
        line = await asyncio.wait_for(reader.readline(), 60)
    except (TimeoutError, ConnectionError):
        return "timeout"
    return line.split(b" ")[1].decode() if line.startswith(b"HTTP/1.1 ") else ("closed" if not line else "?")


async def _held_until_closed(reader: asyncio.StreamReader) -> None:
    try:
        while await asyncio.wait_for(reader.read(65536), 60):
            pass
    except (TimeoutError, ConnectionError):
        pass


async def slow_client(port: int, head: bytes, drip: bytes, held: list[float], statuses: Counter[str]) -> None:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(head)
    status_task = asyncio.create_task(_status(reader))
    try:
        for _ in range(1000):
            if status_task.done():
                break
            writer.write(drip[:1])
            await writer.drain()
            await asyncio.sleep(0.5)
    except ConnectionError:
        pass
    status = await status_task
    await _held_until_closed(reader)
    held.append(time.monotonic() - started)
    statuses[status] += 1
    writer.close()


async def slowloris(r: Receiver, n: int) -> str:
    target = f"POST /hooks/kartra?token={KARTRA} HTTP/1.1\r\nHost: x\r\n".encode()
    held: list[float] = []
    statuses: Counter[str] = Counter()
    body_head = target + b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    await asyncio.gather(
        *(slow_client(r.port, target, b"X", held, statuses) for _ in range(n)),
        *(slow_client(r.port, body_head, b" ", held, statuses) for _ in range(n)),
    )
    return f"clients={2 * n} answers={dict(statuses)} held_max_s={max(held):.1f}"


async def chunked(r: Receiver, n: int = 20) -> str:
    statuses: Counter[str] = Counter()
    sent: list[int] = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection(HOST, r.port)
        writer.write(
            f"POST /hooks/kartra?token={KARTRA} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        status_task = asyncio.create_task(_status(reader))
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        total = 0
        try:
            for _ in range(2000):  # at most 128 MiB
                writer.write(chunk)
                await writer.drain()
                total += len(chunk)
        except ConnectionError:
            pass
        statuses[await status_task] += 1
        sent.append(total)
        writer.close()

    await asyncio.gather(*(one() for _ in range(n)))
    return f"uploads={n} answers={dict(statuses)} sent_before_close_mb_max={max(sent) / 2**20:.1f}"


async def post_many(r: Receiver, path: str, bodies: list[bytes], headers: dict[str, str]) -> str:
    statuses: Counter[int] = Counter()
    sizes: list[int] = []
    times: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{r.port}", timeout=120) as c:
        for body in bodies:
            t = time.perf_counter()
            resp = await c.post(path, content=body, headers=headers)
            times.append(time.perf_counter() - t)
            statuses[resp.status_code] += 1
            sizes.append(len(resp.content))
    return f"answers={dict(statuses)} answer_bytes_max={max(sizes)} request_s_max={max(times):.2f}"


def many_keys(n: int) -> bytes:
    keys = ",".join(f'"k{i:x}":0' for i in range(n))
    return b'{"lead":{"id":"1"},"action":"kartra_page_visit","x":{' + keys.encode() + b"}}"


def fitting_keys(limit: int) -> bytes:
    n = limit // 10
    while len(many_keys(n)) > limit:
        n = int(n * 0.95)
    return many_keys(n)


async def scenario(r: Receiver, name: str, work: object) -> str:
    baseline = r.rss_mb()
    prober = Prober(r)
    prober.start()
    await asyncio.sleep(1.0)  # the prober process starts
    t = time.perf_counter()
    result = await work  # type: ignore[misc]
    seconds = time.perf_counter() - t
    await asyncio.sleep(1.0)
    prober.stop()
    line = (
        f"{name}: {result} seconds={seconds:.1f} {prober.summary()} "
        f"rss_mb_before={baseline:.1f} rss_mb_peak={prober.peak_rss:.1f} rss_mb_after={r.rss_mb():.1f}"
    )
    print(line, flush=True)
    return line


async def main(args: argparse.Namespace) -> None:
    only = set(args.only.split(",")) if args.only else {"slowloris", "chunked", "keys", "deep", "batch"}
    kartra = f"/hooks/kartra?token={KARTRA}"
    json_h = {"Content-Type": "application/json"}
    form_h = {"Content-Type": "application/x-www-form-urlencoded"}
    r = Receiver()
    worst = 0.0
    try:
        start_rss = r.rss_mb()
        lines = []
        if "slowloris" in only:
            lines.append(await scenario(r, "slowloris", slowloris(r, args.slow)))
        if "chunked" in only:
            lines.append(await scenario(r, "chunked", chunked(r)))
        if "keys" in only:
            accepted = many_keys(19_000)  # just under the member limit: parsed, mapped, stored
            lines.append(await scenario(r, "keys_19k", post_many(r, kartra, [accepted] * 5, json_h)))
            body = fitting_keys(1024 * 1024)
            lines.append(await scenario(r, "keys_1mib", post_many(r, kartra, [body] * 5, json_h)))
        if "deep" in only:
            deep = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000]
            lines.append(await scenario(r, "deep_json", post_many(r, kartra, deep * 3, json_h)))
            form = [b"action=x&" + b"a" + b"[b]" * 100_000 + b"=1"]
            lines.append(await scenario(r, "deep_form", post_many(r, kartra, form * 3, form_h)))
        if "batch" in only:
            zeros = b"[" + b",".join([b"0"] * 500_000) + b"]"
            objects = b"[" + b",".join([b"{}"] * 340_000) + b"]"
            croct = {"Content-Type": "application/json", "X-App-Id": CROCT}
            lines.append(
                await scenario(r, "batch", post_many(r, "/hooks/croct", [zeros, objects] * 3, croct))
            )
        end_rss = r.rss_mb()
    finally:
        r.stop()
    if "keys" in only:
        big = Receiver(RECEIVER_MAX_BODY_BYTES=str(16 * 1024 * 1024))
        try:
            body = many_keys(1_000_000)
            lines.append(await scenario(big, "keys_1e6", post_many(big, kartra, [body] * 2, json_h)))
        finally:
            big.stop()
    for line in lines:
        worst = max(
            worst, float(line.split("healthz_max_ms=")[1].split()[0]) if "healthz_max_ms=" in line else 0
        )
    five_xx = sum(int(x) for line in lines for x in _five_xx(line))
    print(
        f"scenarios={len(lines)} five_xx={five_xx} healthz_max_ms={worst:.1f} "
        f"rss_mb_start={start_rss:.1f} rss_mb_end={end_rss:.1f}"
    )


def _five_xx(line: str) -> list[str]:
    answers = line.split("answers={", 1)[1].split("}", 1)[0] if "answers={" in line else ""
    out = []
    for part in answers.split(","):
        key, _, count = part.partition(":")
        if key.strip(" '").startswith("5"):
            out.append(count.strip())
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slow", type=int, default=300, help="slow-header and slow-body clients, each")
    parser.add_argument("--only", help="comma-separated scenarios")
    asyncio.run(main(parser.parse_args()))
