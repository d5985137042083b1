"""The access log line, made cheaply: the same text as written plainly."""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any

from receiver import accesslog

_NAME = re.compile(rb"[A-Za-z0-9_.\[\]-]{1,40}")


def _names(query: bytes) -> str:
    """The query's names as documented: sorted, unique, "?" for a name not shown."""
    names = {p.partition(b"=")[0] for p in query.split(b"&") if p}
    shown = sorted({n.decode("ascii") if _NAME.fullmatch(n) else "?" for n in names})
    if len(shown) > 20:
        shown = [*shown[:20], "…"]
    return "[" + ",".join(shown) + "]"


def _message(fields: accesslog.Fields) -> str:
    _, method, path, status, seconds, source, delivery, query = fields
    path = path.decode("latin-1") if isinstance(path, bytes) else str(path)
    return (
        f"{accesslog.printable(str(method))} {accesslog.printable(path)} {status} {seconds * 1000:.1f}ms"
        f" source={source} delivery={delivery} query={_names(query)}"
    )


def test_the_line_is_the_plain_reading_of_its_fields() -> None:
    rng = random.Random(13)
    methods = ["GET", "POST", "PUT", "DELETE", "BREW", "GE\nT", "PÖST", "OPTIONS", "HEAD", "PATCH"]
    paths: list[Any] = [
        b"/hooks/kartra", b"/hooks/croct/client/web/track", b"/a%0Ab", b"/\xff\x00x", b"/x y",
        "/str\tpath", "/é",
    ]  # fmt: skip
    queries = [
        b"", b"token=abc", b"=x", b"token", b"a@b.c=1", b"&", b"a=1&b=2&a=3", b"x=1&", b"&y",
        b"\xff=1", b"%41=1", b"a=1&" * 30, b"name[0]=1",
    ]  # fmt: skip
    for _ in range(3000):
        fields = (
            time.time() + rng.random() * 1000,
            rng.choice(methods),
            rng.choice(paths),
            rng.choice([200, 202, 404, 422]),
            rng.random() * rng.choice([0.001, 1, 100]),
            rng.choice(["-", "kartra"]),
            rng.choice(["-", "0190c3a5-1234-7abc-8def-0123456789ab"]),
            rng.choice(queries),
        )
        assert accesslog.message(fields) == _message(fields), fields
        line = accesslog.line(fields)
        record = logging.LogRecord("receiver.access", logging.INFO, "", 0, "%s", (_message(fields),), None)
        record.created = when = fields[0]
        record.msecs = int((when - int(when)) * 1000) + 0.0  # as LogRecord takes them
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        assert line == formatter.format(record) + "\n", fields
