"""Fuzz: generated hostile requests against a running ``receiver serve``, then schemathesis.

    .venv/bin/python bench/fuzz.py [--requests 100000] [--seconds 900] [--concurrency 32]
                                   [--seed 1] [--schemathesis-examples 50]

Starts a receiver (SQLite in a temporary directory, loopback only) and sends ``--requests``
generated requests, ``--concurrency`` at a time, within ``--seconds``: the vendor fixtures
of ``tests/fixtures`` mutated (types swapped, hostile strings: NUL, lone surrogates, RTL
marks, 10k characters; extreme numbers, NaN, odd dates, broken URLs, deep nesting, odd
PHP-style form keys, duplicate keys, BOMs, invalid UTF-8) in every encoding each source
accepts, arbitrary bytes to every ingest route, and arbitrary queries to the read API.
A process that dies is restarted and counted. RSS is read from /proc after the first
1,000 requests and at the end.

Then ``schemathesis`` tests the read API (``/v1``) as ``/openapi.json`` describes it, with
the API key, every check but ``positive_data_acceptance`` (a ``cursor`` is an opaque token
only this API gives out; any other string is a 400 by design, which no schema can say).
It runs against a second, fresh receiver holding one delivery of every vendor fixture
(ids for its stateful phase to follow): it checks the contract, not how long a replay
or an erasure of the whole fuzzed store takes (``bench/erasure.py`` measures those). Any
5xx, schema violation or error it finds fails the run loudly.

The last line: ``requests=N five_xx=N server_restarts=N rss_growth_mb=M``. The exit status
is 1 when any 5xx was answered, the server died, or schemathesis failed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SECRETS = {
    "RECEIVER_KARTRA_TOKEN": "fuzz-kartra-token",
    "RECEIVER_CONVEAD_APP_KEY": "fuzz-convead-app-key",
    "RECEIVER_CROCT_APP_ID": "fuzz-croct-app-id",
    "RECEIVER_AFFITOR_TOKEN": "fuzz-affitor-token",
    "RECEIVER_API_KEY": "fuzz-read-api-key",
}
AUTH: dict[str, tuple[dict[str, str], str]] = {  # headers, query
    "kartra": ({}, "token=" + SECRETS["RECEIVER_KARTRA_TOKEN"]),
    "convead": ({"X-App-Key": SECRETS["RECEIVER_CONVEAD_APP_KEY"]}, ""),
    "croct": ({"X-App-Id": SECRETS["RECEIVER_CROCT_APP_ID"]}, ""),
    "affitor": ({"Authorization": "Bearer " + SECRETS["RECEIVER_AFFITOR_TOKEN"]}, ""),
}
KEY = {"Authorization": "Bearer " + SECRETS["RECEIVER_API_KEY"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Receiver:
    """``receiver serve`` as a child process, restarted (and counted) when it dies."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.data = Path(tempfile.mkdtemp(prefix="receiver-fuzz-"))
        self.env = {**os.environ, "RECEIVER_DATA_DIR": str(self.data / "data"), **SECRETS}
        self.log = open(self.data / "server.log", "w")  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve", "--host", HOST, "--port", str(self.port)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the receiver did not start")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> None:
        if not self.alive():
            self.restarts += 1
            self.start()

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)


# -- generated requests ----------------------------------------------------------------------
class Raw(str):
    """Written into JSON as is (5000-digit numbers, NaN, deep nesting)."""


HOSTILE_STRINGS = [
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u202eevil\u202c", "\u200f\u200e", "\ufeffbom",
    "x" * 10_000, "é" * 5000, "😀" * 50, "1e-320", "1" * 5000, "-0", "NaN", "Infinity", "²", "٣٤",
    "9999-99-99", "10000-01-01 00:00:00", "0000-00-00 00:00:00", "2024-02-30T25:61:61Z",
    "http://[x?utm_source=a", "http://[::1", "https://a.example/?utm_source=%ff%fe&utm_medium=[",
    "javascript:alert(1)", "%00%zz%", "a[b]", "<script>alert(1)</script>", "' OR 1=1 --", "a@", "@@@",
    "+00000000000000000000", "null", "[]", "{}", "\r\n\t",
]  # fmt: skip
HOSTILE_VALUES: list[Any] = [
    *HOSTILE_STRINGS, 0, -1, 1e-320, 5e-324, -0.0, 1.7976931348623157e308, 2**64, True, False, None,
    Raw("1" * 5000), Raw("-" + "9" * 5000), Raw("1e999"), Raw("NaN"), Raw("Infinity"), Raw("-Infinity"),
    Raw("0." + "0" * 5000 + "1"), 253402300800000, -62135596800001, [], {}, [None], {"": ""},
    Raw('{"a":' * 65 + "1" + "}" * 65), Raw("[" * 300 + "]" * 300), Raw("[" + ",".join(["{}"] * 150) + "]"),
]  # fmt: skip
ODD_FORM_KEYS = [
    "a[00]", "a[01]", "a[²]", "a[]", "a[][]", "a[-1]", "a[999999999999]", "a[", "a]", "[a]", "a[b]]",
    "lead", "lead[]", "lead[id][x]", "action[]", "0", "1", "0[a]", "x" + "[a]" * 64, "x" + "[]" * 80,
]  # fmt: skip
READ_PATHS = [
    "/v1/events", "/v1/events/{id}", "/v1/leads", "/v1/leads/{id}", "/v1/leads/{id}/events",
    "/v1/erasures/{id}", "/v1/deliveries", "/v1/deliveries/{id}", "/v1/destinations", "/v1/messages",
]  # fmt: skip
READ_PARAMS = ["source", "type", "lead_id", "since", "until", "limit", "cursor", "email", "updated_since",
               "status", "destination", "state", "event_id", "sorce", ""]  # fmt: skip


def to_json(node: Any, ascii_only: bool) -> str:
    if isinstance(node, Raw):
        return str(node)
    if isinstance(node, str | bool) or node is None:
        return json.dumps(node, ensure_ascii=ascii_only)
    if isinstance(node, int | float):
        return json.dumps(node)  # NaN/Infinity as the bare tokens
    if isinstance(node, dict):
        return (
            "{"
            + ",".join(f"{to_json(k, ascii_only)}:{to_json(v, ascii_only)}" for k, v in node.items())
            + "}"
        )
    if isinstance(node, tuple):  # a repeated key: (key, first, second)
        k, a, b = (to_json(x, ascii_only) for x in node)
        return "{" + f"{k}:{a},{k}:{b}" + "}"
    return "[" + ",".join(to_json(v, ascii_only) for v in node) + "]"


def utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def php_pairs(node: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict | list) and not isinstance(node, Raw):
        items = node.items() if isinstance(node, dict) else enumerate(node)
        out: list[tuple[str, str]] = []
        for k, v in items:
            out += php_pairs(v, f"{prefix}[{k}]" if prefix else str(k))
        return out
    if isinstance(node, tuple):
        return php_pairs({node[0]: node[1]}, prefix) + php_pairs({node[0]: node[2]}, prefix)
    text = (
        node if isinstance(node, str) else "" if node in (None, False) else "1" if node is True else str(node)
    )
    return [(prefix, text)]


def form(pairs: list[tuple[str, str]], rng: random.Random) -> bytes:
    safe = b"[]" if rng.random() < 0.5 else b""
    return b"&".join(
        quote_from_bytes(utf8(k), safe).encode() + b"=" + quote_from_bytes(utf8(v)).encode() for k, v in pairs
    )


def seeds() -> dict[str, list[tuple[str, dict[str, str], Any]]]:
    """Every POST fixture as (path, headers, document)."""
    from receiver.ingest.envelope import parse_form  # the fixtures' forms, read as the service reads them

    out: dict[str, list[tuple[str, dict[str, str], Any]]] = {}
    for f in sorted((ROOT / "tests" / "fixtures").glob("*/*.yaml")):
        req = yaml.safe_load(f.read_text())["request"]
        if req.get("method", "POST") != "POST":
            continue
        doc = (
            req["json"] if "json" in req else parse_form(req["form"]) if "form" in req else dict(req["query"])
        )
        if isinstance(doc, dict) and isinstance(doc.get("data"), str):
            doc["data"] = json.loads(doc["data"])
        out.setdefault(f.parent.name, []).append((req.get("path", ""), req.get("headers", {}), doc))
    return out


def _paths(node: Any, at: tuple[Any, ...] = ()) -> Any:
    yield at
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*at, i))


def hostile(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(HOSTILE_VALUES))  # a fresh copy: it may be mutated later


def mutate(doc: Any, rng: random.Random) -> Any:
    doc = json.loads(json.dumps(doc))
    for _ in range(rng.randint(1, 4)):
        paths = list(_paths(doc))
        path = rng.choice(paths)
        parent, target = None, doc
        for p in path:
            parent, target = target, target[p]
        how = rng.choice(["replace", "replace", "swap", "delete", "add", "duplicate", "wrap"])
        value = hostile(rng)
        if how == "swap":
            value = [target] if not isinstance(target, list) else {str(i): v for i, v in enumerate(target)}
            if isinstance(target, str):
                value = rng.choice([[target], {"v": target}, len(target)])
        elif how == "wrap":
            value = rng.choice([[target], {"": target}])
        elif how == "duplicate" and isinstance(target, dict) and target:
            k = rng.choice(sorted(target))
            value = (k, target[k], hostile(rng))
        elif how == "add" and isinstance(target, dict):
            target[rng.choice(["", "\x00", "a" * 1000, "__proto__", "0", "²", "a[b]"])] = value
            continue
        elif how == "delete" and parent is not None:
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
            continue
        if parent is None:
            doc = value
        else:
            parent[path[-1]] = value
    return doc


def ingest_request(
    source: str, seed: tuple[str, dict[str, str], Any], rng: random.Random
) -> tuple[str, str, dict[str, str], bytes]:
    path, seed_headers, doc = seed
    doc = mutate(doc, rng)
    headers = {**seed_headers}
    auth_headers, auth_query = AUTH[source]
    query = auth_query
    encodings = (
        ["json", "form", "query"]
        if source == "convead"
        else ["json", "form"]
        if source == "kartra"
        else ["json"]
    )
    how = rng.choice(encodings)
    if how == "json":
        body = utf8(to_json(doc, rng.random() < 0.5))
        body = rng.choice([body, body, b"\xef\xbb\xbf" + body, body + b"\xff", body[: len(body) // 2]])
        headers["Content-Type"] = rng.choice(["application/json", "text/plain", "application/x+json", ""])
    else:
        if isinstance(doc, dict) and not isinstance(doc.get("data", ""), str):
            doc = {**doc, "data": Raw(to_json(doc["data"], True))}
        pairs = php_pairs(doc) if isinstance(doc, dict | list) else [("", str(doc))]
        pairs += [
            (rng.choice(ODD_FORM_KEYS), rng.choice(HOSTILE_STRINGS[:12])) for _ in range(rng.randint(0, 3))
        ]
        body = form(pairs, rng)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        if how == "query":
            query = "&".join(filter(None, [body.decode(), query]))[:60_000]
            body = b""
    if source != "convead" or rng.random() < 0.8:  # else only the body's app_key can authenticate
        headers.update(auth_headers)
    return "POST", f"/hooks/{source}{path}" + ("?" + query if query else ""), headers, body


def random_bytes(rng: random.Random, seeds_: dict[str, list[Any]]) -> tuple[str, str, dict[str, str], bytes]:
    source = rng.choice(sorted(seeds_))
    path = rng.choice(seeds_[source])[0]
    auth_headers, auth_query = AUTH[source]
    headers = {
        **auth_headers,
        "Content-Type": rng.choice(
            [
                "",
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "application/xml",
            ]
        ),
    }
    body = rng.randbytes(rng.randint(0, 3000))
    return "POST", f"/hooks/{source}{path}" + ("?" + auth_query if auth_query else ""), headers, body


def read_request(rng: random.Random) -> tuple[str, str, dict[str, str], bytes]:
    path = rng.choice(READ_PATHS)
    ident = rng.choice(
        ["x", "0", "%00", "a" * 2000, "...", "\u202e", "None", "01a2228f-c5bf-7017-8cf3-ccc42cbfe0d7"]
    )
    path = path.replace("{id}", quote_from_bytes(utf8(ident), b""))
    if rng.random() < 0.3:
        query = quote_from_bytes(rng.randbytes(rng.randint(0, 200)), b"&=%[]:+,;/?@!$'()*")
    else:
        query = "&".join(
            quote_from_bytes(utf8(rng.choice(READ_PARAMS)), b"")
            + "="
            + quote_from_bytes(utf8(rng.choice(HOSTILE_STRINGS)), b"")
            for _ in range(rng.randint(0, 4))
        )
    headers = {**KEY} if rng.random() < 0.9 else {"Authorization": "Bearer wrong"}
    headers["Accept"] = rng.choice(["application/json", "application/x-ndjson", "text/csv", "*/*"])
    return "GET", path + ("?" + query if query else ""), headers, b""


def generate(n: int, seed: int) -> Any:
    rng = random.Random(seed)
    seeds_ = seeds()
    for _ in range(n):
        kind = rng.random()
        if kind < 0.7:
            source = rng.choice(sorted(seeds_))
            yield ingest_request(source, rng.choice(seeds_[source]), rng)
        elif kind < 0.8:
            yield random_bytes(rng, seeds_)
        else:
            yield read_request(rng)


# -- the run -------------------------------------------------------------------------------
async def hammer(
    server: Receiver, requests: int, seconds: float, concurrency: int, seed: int
) -> tuple[int, Counter[int], Counter[str], float]:
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=concurrency * 4)
    deadline = time.monotonic() + seconds
    rss_start = 0.0
    sent = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent, rss_start
        while True:
            item = await queue.get()
            if item is None:
                return
            method, url, headers, body = item
            raw_headers = [(k.encode(), utf8(v)) for k, v in headers.items() if v]
            try:
                r = await client.request(method, server.url + url, headers=raw_headers, content=body)
                statuses[r.status_code] += 1
                if r.status_code >= 500:
                    print(f"5xx: {r.status_code} {method} {url[:200]} {r.text[:300]}", file=sys.stderr)
            except httpx.HTTPError as e:  # 408/431 close the connection; a dead server refuses it
                errors[type(e).__name__] += 1
                if not server.alive():
                    print(f"the server died on: {method} {url[:200]}", file=sys.stderr)
                    await asyncio.to_thread(server.ensure)
            sent += 1
            if sent == 1000:
                rss_start = server.rss_mb()

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        workers = [asyncio.create_task(worker(client)) for _ in range(concurrency)]
        for item in generate(requests, seed):
            if time.monotonic() > deadline:
                break
            await queue.put(item)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    return sent, statuses, errors, rss_start


def seed_fixtures(server: Receiver) -> int:
    """One delivery of every vendor fixture, as JSON: leads, events and deliveries to read."""
    stored = 0
    for source, items in seeds().items():
        auth_headers, auth_query = AUTH[source]
        for path, headers, doc in items:
            url = f"{server.url}/hooks/{source}{path}" + ("?" + auth_query if auth_query else "")
            headers = {**headers, **auth_headers, "Content-Type": "application/json"}
            r = httpx.post(url, content=to_json(doc, True).encode(), headers=headers, timeout=30)
            if r.status_code not in (200, 202):
                raise RuntimeError(f"fixture not taken: {source}{path} {r.status_code} {r.text[:200]}")
            stored += 1
    return stored


def schemathesis(server: Receiver, examples: int, seed: int) -> tuple[int, str]:
    st = Path(sys.executable).with_name("schemathesis")
    command = [
        str(st), "run", server.url + "/openapi.json",
        "-H", f"Authorization: {KEY['Authorization']}",
        "--include-path-regex", "^/v1/",
        "--checks", "all", "--exclude-checks", "positive_data_acceptance",
        "--max-examples", str(examples), "--seed", str(seed), "--workers", "2", "--no-color",
        "--request-timeout", "30",
    ]  # fmt: skip
    # In the server's temporary directory: schemathesis keeps a cache where it runs.
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=server.data)
    return done.returncode, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=900)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--schemathesis-examples", type=int, default=50)
    args = parser.parse_args()
    server = Receiver()
    server.start()
    try:
        started = time.monotonic()
        sent, statuses, errors, rss_start = asyncio.run(
            hammer(server, args.requests, args.seconds, args.concurrency, args.seed)
        )
        elapsed = time.monotonic() - started
        server.ensure()
        rss_end = server.rss_mb()
        print(f"answers: {dict(sorted(statuses.items()))}; connection errors: {dict(errors)}")
        rate = sent / elapsed
        print(
            f"{sent} requests in {elapsed:.0f} s ({rate:.0f}/s); RSS {rss_start:.1f} MB after 1,000,", end=" "
        )
        print(f"{rss_end:.1f} MB at the end")
        five_xx = sum(n for s, n in statuses.items() if s >= 500)
        fresh = Receiver()
        try:
            fresh.start()
            print(f"schemathesis: a fresh receiver with {seed_fixtures(fresh)} fixture deliveries")
            code, output = schemathesis(fresh, args.schemathesis_examples, args.seed)
            fresh.ensure()
        finally:
            fresh.stop()
        lines = output.splitlines()
        cases = [lines[i + 1].strip() for i, line in enumerate(lines[:-1]) if line.startswith("Test cases:")]
        failures = [line.strip() for line in lines if line.startswith(("  ❌", "  🚫"))]
        verdict = "passed" if code == 0 else f"FAILED (exit {code})"
        print(f"schemathesis on /v1: {verdict}; {', '.join(cases)}; {'; '.join(failures) or 'no failures'}")
        if code != 0:
            print(output[-6000:], file=sys.stderr)
        server.ensure()
        restarts = server.restarts + fresh.restarts
        ok = code == 0 and five_xx == 0 and restarts == 0
    finally:
        server.stop()
    growth = rss_end - rss_start
    print(f"requests={sent} five_xx={five_xx} server_restarts={restarts} rss_growth_mb={growth:.1f}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
