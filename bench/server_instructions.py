"""Instructions per delivery of a real server process, by thread, counted by callgrind.

    sudo apt-get install valgrind
    .venv/bin/python bench/server_instructions.py [--ceiling PATH] [--checkout DIR] [--stages]

Wall-clock ratios on a shared machine move with whatever else runs; the instructions a
process executes hardly do (two runs of one checkout agree to within about 1%; the
group commit's batch sizes vary a little with timing). So this runs
``receiver serve`` (and, with ``--ceiling``, the ceiling app under the same uvicorn)
under ``valgrind --tool=callgrind --separate-threads=yes``, sends the bench's four-vendor
mix (``bench/ingest.py``) over 16 keep-alive connections, N1 deliveries in one run and
N2 in another, and prints (run2 - run1) / (N2 - N1) per thread: start-up cancels out.
``--checkout`` measures another checkout (its own ``.venv``), to compare two versions.

It counts user-space instructions only: system calls, the kernel's network and disk
work, and waiting are not in it, so it is a guide to CPU work, not a throughput figure.
Last line: ``instructions_per_delivery receiver=R [ceiling=C ratio=C/R]``.

``--stages`` then runs both servers again (N1 and N2 again) with the stage markers of
``stage_marks.py``: named Python functions (uvicorn's parse/send/receive, the ASGI task,
Starlette's stack; the receiver's decode, credential checks, mapping, redaction, ids,
answer, access log, writer hand-off; in the writer thread dedup, write_one, lead
resolution, flush) and each SQL statement (by table: INSERT deliveries, events...,
BEGIN, COMMIT) run through a C function of their own, so callgrind counts each stage's
inclusive instructions; a stage's row is its exclusive count (its nested stages are
their own rows), each thread's unmarked rest is a row, and the rows sum to the totals.
A second table gives each library's self cost (the interpreter, SQLite, msgspec,
OpenSSL, httptools, uvloop, libc). The markers add a little (the marked totals are
printed, to compare with the unmarked ones above). Needs gcc and Python's headers.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import SECRETS, _templates, free_port

ROOT = Path(__file__).resolve().parent.parent
UVICORN = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--no-server-header"]


def request(template: dict[str, object], i: int) -> bytes:
    body = (
        str(template["body"]).replace("__N__", f"i{os.getpid()}-{i}").replace("__P__", str(i % 500)).encode()
    )
    headers = "".join(f"{k}: {v}\r\n" for k, v in dict(template["headers"]).items())  # type: ignore[call-overload]
    head = f"POST {template['path']} HTTP/1.1\r\nHost: bench\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


Counts = dict[str, dict[str, int]]
"""thread -> row -> instructions: row ``total``, a stage's name, or ``lib: ...``."""


def parse_callgrind(path: Path) -> tuple[int, dict[str, int], dict[str, int]]:
    """One callgrind.out file: its total, the inclusive cost of the calls into each
    function (by name, summed over its callers) and the self cost of each object file."""
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}}
    into: dict[str, int] = {}
    by_object: dict[str, int] = {}
    total, ob, callee, in_call = 0, "", "", False

    def name(kind: str, value: str) -> str:
        m = re.match(r"\((\d+)\)(?: (.*))?$", value)
        if m is None:
            return value
        if m[2] is not None:
            names[kind][m[1]] = m[2]
        return names[kind].get(m[1], value)

    for line in path.read_text(errors="replace").splitlines():
        if not line:
            continue
        c = line[0]
        if c.isdigit() or c in "+-*":
            parts = line.split()
            ir = int(parts[1]) if len(parts) > 1 else 0
            if in_call:
                into[callee] = into.get(callee, 0) + ir
                in_call = False
            else:
                by_object[ob] = by_object.get(ob, 0) + ir
        elif line.startswith("ob="):
            ob = name("ob", line[3:])
        elif line.startswith("fn="):
            name("fn", line[3:])
        elif line.startswith("cob="):
            name("ob", line[4:])
        elif line.startswith("cfn="):
            callee = name("fn", line[4:])
        elif line.startswith("calls="):
            in_call = True
        elif line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
    return total, into, by_object


LIBRARIES = [  # object file -> where the instructions ran
    (r"libpython|/bin/python", "CPython interpreter"),
    (r"libsqlite3", "SQLite library"),
    (r"_sqlite3\.", "sqlite3 module (binding)"),
    (r"msgspec", "msgspec (C)"),
    (r"libcrypto|libssl|_hashlib", "OpenSSL, hashlib"),
    (r"httptools", "httptools (C)"),
    (r"uvloop", "uvloop, libuv (C)"),
    (r"libc\.so|libc-|ld-linux|libm\.", "libc, ld.so"),
    (r"_stagemark", "stage markers"),
]


def stage_rows(path: Path, names: dict[int, str], slots: int) -> dict[str, int]:
    """A thread's total, each stage's exclusive count and the unmarked rest, and its self
    cost by library (``lib: ...``); see stage_marks.py."""
    total, into, by_object = parse_callgrind(path)
    rows: dict[str, int] = {"total": total, "unmarked": total}
    for fn, incl in into.items():
        m = re.fullmatch(r"stg_(\d+)_in_(\d+)", fn)
        if m is None:
            continue
        k, j = int(m[1]), int(m[2])
        rows[names[k]] = rows.get(names[k], 0) + incl
        parent = "unmarked" if j == slots else names[j]
        rows[parent] = rows.get(parent, 0) - incl
    for ob, ir in by_object.items():
        lib = next((label for p, label in LIBRARIES if re.search(p, ob)), "other")
        rows["lib: " + lib] = rows.get("lib: " + lib, 0) + ir
    return rows


def count(
    python: str, ceiling: Path | None, deliveries: int, connections: int, stages: Path | None = None
) -> Counts:
    """Instructions per thread of one server process that answered ``deliveries``; with
    ``stages`` (the built markers' directory), by stage too."""
    work = Path(tempfile.mkdtemp(prefix="instructions-"))
    port = free_port()
    env = {
        **os.environ,
        **SECRETS,
        "RECEIVER_DATA_DIR": str(work / "data"),
        "DB_PATH": str(work / "ceiling.db"),
    }
    if stages is not None:
        env["STAGES_BUILD_DIR"] = str(stages)
    if ceiling is None:
        server = [python, "-m", "receiver", "serve", "--port", str(port)]
    else:
        server = [python, "-m", "uvicorn", "--app-dir", str(ceiling.parent), "ceiling_app:app"]
        server += ["--port", str(port), *UVICORN, "--log-level", "warning"]
    if stages is not None:
        target = "receiver" if ceiling is None else str(ceiling)
        marks = str(Path(__file__).resolve().parent / "stage_marks.py")
        server[1:1] = [marks, str(work / "stages.txt"), target]
    out = work / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}", *server]
    proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):  # start-up under valgrind takes a while
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                if proc.poll() is not None:
                    sys.exit(f"the server did not start; see {work}")
                time.sleep(0.2)
        templates = _templates()
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
        sent = 0
        while sent < deliveries:
            for c in conns:
                c.sendall(request(templates[sent % len(templates)], sent))
                sent += 1
            for c in conns:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += c.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 2"):
                    sys.exit(f"a delivery was not accepted: {head.splitlines()[0]!r}")
                length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])  # type: ignore[index]
                while len(rest) < length:
                    rest += c.recv(65536)
        for c in conns:
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(600)
    threads: Counts = {}
    for name in sorted(glob.glob(f"{out}*")):
        thread = name.rsplit("-", 1)[-1]
        if stages is not None:
            from stage_marks import SLOTS

            lines = (work / "stages.txt").read_text().splitlines()
            names = {int(i): n for i, n in (x.split("\t", 1) for x in lines)}
            threads[thread] = stage_rows(Path(name), names, SLOTS)
            continue
        for line in Path(name).read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                threads[thread] = {"total": int(line.split()[1])}
                break
    return threads


def per_delivery_rows(
    python: str, ceiling: Path | None, n1: int, n2: int, connections: int, stages: Path | None = None
) -> dict[str, dict[str, float]]:
    """(run2 - run1) / (N2 - N1) for each row of each thread that does work per delivery."""
    a = count(python, ceiling, n1, connections, stages)
    b = count(python, ceiling, n2, connections, stages)
    out = {}
    for t, rows in b.items():
        if rows["total"] - a.get(t, {}).get("total", 0) > 100 * (n2 - n1):
            out[t] = {r: (v - a.get(t, {}).get(r, 0)) / (n2 - n1) for r, v in rows.items()}
    return out


def per_delivery(python: str, ceiling: Path | None, n1: int, n2: int, connections: int) -> dict[str, float]:
    return {t: rows["total"] for t, rows in per_delivery_rows(python, ceiling, n1, n2, connections).items()}


def _order(row: str) -> tuple[bool, bool, str]:
    return (row.startswith("w: "), row.startswith("unmarked"), row)


def stage_table(sides: dict[str, dict[str, dict[str, float]]]) -> str:
    """Side by side, thousands of instructions per delivery: each stage (summed over the
    threads), each thread's unmarked rest, the totals; then the self cost by library."""
    def merged(threads: dict[str, dict[str, float]], libs: bool) -> dict[str, float]:
        out: dict[str, float] = {}
        for t, rows in threads.items():
            for r, v in rows.items():
                if r == "total" or r.startswith("lib: ") != libs:
                    continue
                key = f"unmarked, thread {t}" if r == "unmarked" else r
                out[key] = out.get(key, 0) + v
        return out

    heads = list(sides)
    lines = []
    for libs in (False, True):
        cols = {h: merged(sides[h], libs) for h in heads}
        keys = sorted({k for c in cols.values() for k in c}, key=_order)
        head = "stage (self cost by library)" if libs else "stage"
        lines.append(f"{head:<52}" + "".join(f"{h:>12}" for h in heads))
        for k in keys:
            if all(abs(cols[h].get(k, 0)) < 50 for h in heads):
                continue
            lines.append(f"{k:<52}" + "".join(f"{cols[h].get(k, 0) / 1000:>11.1f}k" for h in heads))
        lines.append(
            f"{'all threads':<52}"
            + "".join(f"{sum(r['total'] for r in sides[h].values()) / 1000:>11.1f}k" for h in heads)
        )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ceiling", type=Path, help="ceiling_app.py (or $RECEIVER_BENCH_CEILING)")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the receiver checkout to measure")
    parser.add_argument("--deliveries", type=int, nargs=2, default=[400, 1200], metavar=("N1", "N2"))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--stages", action="store_true", help="also attribute the instructions to stages (runs again, marked)"
    )
    args = parser.parse_args()
    ceiling = args.ceiling or (
        Path(os.environ["RECEIVER_BENCH_CEILING"]) if "RECEIVER_BENCH_CEILING" in os.environ else None
    )
    n1, n2 = args.deliveries
    python = str(args.checkout.resolve() / ".venv" / "bin" / "python")
    receiver = per_delivery(python, None, n1, n2, args.connections)
    total = sum(receiver.values())
    print(
        "receiver: "
        + ", ".join(f"thread {t} {v / 1000:.1f}k" for t, v in receiver.items())
        + f"; all {total / 1000:.1f}k"
    )
    line = f"instructions_per_delivery receiver={total:.0f}"
    if ceiling is not None:
        ceil = per_delivery(sys.executable, ceiling.resolve(), n1, n2, args.connections)
        ctotal = sum(ceil.values())
        print(
            "ceiling: "
            + ", ".join(f"thread {t} {v / 1000:.1f}k" for t, v in ceil.items())
            + f"; all {ctotal / 1000:.1f}k"
        )
        line += f" ceiling={ctotal:.0f} ratio={ctotal / total:.2f}"
    print(line)
    if args.stages:
        from stage_marks import build

        built = build(Path(tempfile.mkdtemp(prefix="stagemarks-")))
        sides = {"receiver": per_delivery_rows(python, None, n1, n2, args.connections, built)}
        if ceiling is not None:
            sides["ceiling"] = per_delivery_rows(
                sys.executable, ceiling.resolve(), n1, n2, args.connections, built
            )
        print(stage_table(sides), end="")
        print(
            "stages_instructions_per_delivery "
            + " ".join(f"{h}={sum(r['total'] for r in t.values()):.0f}" for h, t in sides.items())
        )


if __name__ == "__main__":
    main()
