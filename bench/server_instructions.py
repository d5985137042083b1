"""Instructions per delivery of a real server process, by thread, counted by callgrind.

    sudo apt-get install valgrind
    .venv/bin/python bench/server_instructions.py [--ceiling PATH] [--checkout DIR]

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


def count(python: str, ceiling: Path | None, deliveries: int, connections: int) -> dict[str, int]:
    """Instructions per thread of one server process that answered ``deliveries``."""
    work = Path(tempfile.mkdtemp(prefix="instructions-"))
    port = free_port()
    env = {
        **os.environ,
        **SECRETS,
        "RECEIVER_DATA_DIR": str(work / "data"),
        "DB_PATH": str(work / "ceiling.db"),
    }
    if ceiling is None:
        server = [python, "-m", "receiver", "serve", "--port", str(port)]
    else:
        server = [python, "-m", "uvicorn", "--app-dir", str(ceiling.parent), "ceiling_app:app"]
        server += ["--port", str(port), *UVICORN, "--log-level", "warning"]
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
    threads: dict[str, int] = {}
    for name in sorted(glob.glob(f"{out}*")):
        for line in Path(name).read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                threads[name.rsplit("-", 1)[-1]] = int(line.split()[1])
                break
    return threads


def per_delivery(python: str, ceiling: Path | None, n1: int, n2: int, connections: int) -> dict[str, float]:
    a = count(python, ceiling, n1, connections)
    b = count(python, ceiling, n2, connections)
    return {t: (b[t] - a.get(t, 0)) / (n2 - n1) for t in b if b[t] - a.get(t, 0) > 100 * (n2 - n1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ceiling", type=Path, help="ceiling_app.py (or $RECEIVER_BENCH_CEILING)")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the receiver checkout to measure")
    parser.add_argument("--deliveries", type=int, nargs=2, default=[400, 1200], metavar=("N1", "N2"))
    parser.add_argument("--connections", type=int, default=16)
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


if __name__ == "__main__":
    main()
