"""Stage markers for ``server_instructions.py --stages``: which stage a callgrind count is.

CPython 3.11 runs every Python function in one C function, so callgrind cannot tell
them apart. This makes it able to: a tiny C extension (compiled here with gcc, in the
bench's temp dir) holds one C function ``stg_K_in_J`` per (stage K, enclosing stage J)
that only calls its argument. Named Python functions (and coroutines: each step of
them) are re-pointed, in place (their ``__code__``, so every reference sees it), to
call their original body through the marker of their stage; sqlite3 connections are
opened with a subclass whose ``execute``/``executemany`` go through a marker named
after the statement (``sql: INSERT events``, ``sql: COMMIT``...). Callgrind's cost of
the calls into ``stg_K_in_J`` is then stage K's inclusive count inside stage J, and
exclusive(K) = sum_J incl(K in J) - sum_I incl(I in K): the stages and each thread's
unmarked rest sum to the thread's total. A stage entered again inside itself (a
recursive function, two functions of one stage) is not marked again.

Run as the server's main: ``python stage_marks.py NAMES_FILE TARGET -m MODULE ARGS``,
``TARGET`` being ``receiver`` or the ceiling app's path. ``NAMES_FILE`` gets one line
per stage, ``index<TAB>name``, as stages are made.
"""

from __future__ import annotations

import asyncio
import collections.abc
import importlib
import inspect
import os
import re
import runpy
import sqlite3
import subprocess
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any

SLOTS = 48  # stages at most; stg_K_in_SLOTS is "K at the top"

# (module, qualified name, stage). Functions of one stage share its marker.
UVICORN = "uvicorn.protocols.http.httptools_impl"
HTTP = [
    (UVICORN, "HttpToolsProtocol.data_received", "http: parse (httptools, callbacks)"),
    ("receiver.serving", "LimitedHttpToolsProtocol.data_received", "http: parse (httptools, callbacks)"),
    (UVICORN, "RequestResponseCycle.run_asgi", "app task (ASGI; rest of the framework)"),
    (UVICORN, "RequestResponseCycle.send", "http: send (answer head, transport write)"),
    ("receiver.serving", "_Cycle.send", "http: send (answer head, transport write)"),
    (UVICORN, "RequestResponseCycle.receive", "http: receive (body events)"),
    ("receiver.serving", "_Cycle.receive", "http: receive (body events)"),
    ("starlette.responses", "Response.__init__", "answer (build)"),
]
RECEIVER = [
    ("receiver.ingest.endpoint", "Ingest.ingest", "ingest (lean path: rest)"),
    ("receiver.ingest.body", "read_body", "body read"),
    ("receiver.ingest.envelope", "decode_outer", "body decode"),
    ("receiver.ingest.envelope", "decode_inner", "body decode"),
    ("receiver.ingest.envelope", "check_content_type", "body decode"),
    ("receiver.credentials", "matches", "authentication"),
    ("receiver.ingest.endpoint", "Ingest._credential", "authentication"),
    ("receiver.ingest.endpoint", "_split_headers", "headers, query (stored copies)"),
    ("receiver.ingest.endpoint", "_stored_query", "headers, query (stored copies)"),
    ("receiver.ids", "new_id", "id generation"),
    ("receiver.ids", "event_id", "id generation"),
    ("receiver.pipeline", "map_document", "mapping (+ identities)"),
    ("receiver.mapping.engine", "CompiledMapping.redact", "privacy (redaction)"),
    ("receiver.ingest.endpoint", "Ingest._keep_document", "privacy (redaction)"),  # + the redacted copy
    ("receiver.ingest.answers", "success", "answer (build)"),
    ("receiver.ingest.answers", "failure", "answer (build)"),
    ("receiver.accesslog", "write", "access log (loop side)"),
    ("receiver.writer", "Writer.enqueue", "writer hand-off (loop side)"),
    ("receiver.writer", "Writer._run", "writer task (loop side)"),
    # the writer thread
    ("receiver.store.sqlite", "SQLiteStore._write_batch_sync", "w: batch (transaction plumbing)"),
    ("receiver.store.sqlite", "SQLiteTransactions.prefetch", "w: lead resolution"),
    ("receiver.store.sqlite", "dedup_keys", "w: dedup (lookup, keys)"),
    ("receiver.store.sql", "find_duplicate", "w: dedup (lookup, keys)"),
    ("receiver.store.sql", "DedupKeys.duplicate", "w: dedup (lookup, keys)"),
    ("receiver.store.sql", "DedupKeys.claim", "w: dedup (lookup, keys)"),
    ("receiver.store.keys", "delivery_keys", "w: dedup (lookup, keys)"),
    ("receiver.store.sql", "write_one", "w: delivery + event rows (write_one)"),
    ("receiver.store.resolve", "resolve", "w: lead resolution"),
    ("receiver.store.sql", "SQLLeadRepo.resolve_cached", "w: lead resolution"),
    ("receiver.store.sql", "Pending.flush", "w: flush (lead summary rows)"),
]
CEILING = [
    ("ceiling_app", "hook", "ceiling handler (rest)"),
    ("starlette.applications", "Starlette.__call__", "framework (Starlette stack)"),
    ("starlette.requests", "Request.body", "body read"),
    ("json", "loads", "body decode"),
    ("urllib.parse", "parse_qsl", "body decode"),
    ("uuid", "uuid4", "id generation"),
]
SQL = [  # statement -> stage (first match); others: "sql: other " + the first word
    (r"^\s*(WITH .*)?SELECT .*\bdeliveries\b", "w: sql: SELECT deliveries (dedup)"),
    (r"^\s*INSERT INTO delivery_keys\b", "w: sql: INSERT delivery_keys (dedup)"),
    (r"^\s*INSERT INTO deliveries\b", "w: sql: INSERT deliveries"),
    (r"^\s*INSERT INTO events\b", "w: sql: INSERT events"),
    (r"^\s*INSERT INTO (leads|identities|lead_sources)\b", "w: sql: INSERT leads, identities, lead_sources"),
    (r"^\s*UPDATE leads\b", "w: sql: UPDATE leads (summary)"),
    (r"^\s*(WITH .*)?SELECT .*\b(identities|leads|lead_sources)\b", "w: sql: SELECT identities, leads"),
    (r"^\s*BEGIN", "w: sql: BEGIN"),
    (r"^\s*COMMIT", "w: sql: COMMIT (WAL write, fsync)"),
    (r"^\s*PRAGMA wal_checkpoint", "w: sql: PRAGMA wal_checkpoint"),
]

C_SOURCE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
typedef PyObject *(*stg_t)(PyObject *, PyObject *const *, size_t, PyObject *);
static _Thread_local int cur = %(slots)d;
static _Thread_local unsigned char active[%(slots)d];
%(functions)s
static stg_t table[%(slots)d][%(slots)d + 1] = {%(table)s};
static PyObject *dispatch(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    long k = PyLong_AsLong(args[0]);
    if (k < 0 || k >= %(slots)d) { PyErr_SetString(PyExc_ValueError, "stage"); return NULL; }
    if (active[k]) return PyObject_Vectorcall(args[1], args + 2, nargs - 2, kwnames);
    int prev = cur;
    active[k] = 1; cur = (int)k;
    PyObject *r = table[k][prev](args[1], args + 2, nargs - 2, kwnames);
    cur = prev; active[k] = 0;
    return r;
}
static PyMethodDef methods[] = {
    {"dispatch", (PyCFunction)(void (*)(void))dispatch, METH_FASTCALL | METH_KEYWORDS, ""}, {0}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_stagemark", "", -1, methods};
PyMODINIT_FUNC PyInit__stagemark(void) { return PyModule_Create(&mod); }
"""


def build(directory: Path) -> Path:
    """Compile the marker extension into ``directory``; return the directory."""
    funcs, rows = [], []
    for k in range(SLOTS):
        row = []
        for j in range(SLOTS + 1):
            name = f"stg_{k}_in_{j}"
            funcs.append(
                f"__attribute__((noinline, used)) PyObject *{name}(PyObject *f, PyObject *const *a, size_t n,"
                f" PyObject *kw) {{ PyObject *r = PyObject_Vectorcall(f, a, n, kw); return r; }}"
            )
            row.append(name)
        rows.append("{" + ", ".join(row) + "}")
    src = directory / "_stagemark.c"
    src.write_text(C_SOURCE % {"slots": SLOTS, "functions": "\n".join(funcs), "table": ",\n".join(rows)})
    out = directory / ("_stagemark" + sysconfig.get_config_var("EXT_SUFFIX"))
    inc = sysconfig.get_paths()["include"]
    subprocess.run(["gcc", "-O0", "-g", "-shared", "-fPIC", f"-I{inc}", str(src), "-o", str(out)], check=True)
    return directory


class Stages:
    def __init__(self, names_file: str) -> None:
        import _stagemark

        self.dispatch = _stagemark.dispatch
        self.index: dict[str, int] = {}
        self.names = open(names_file, "a", buffering=1)  # noqa: SIM115 - open for the process's life

    def of(self, name: str) -> int:
        if name not in self.index:
            if len(self.index) >= SLOTS:
                raise RuntimeError("too many stages")
            self.index[name] = len(self.index)
            self.names.write(f"{self.index[name]}\t{name}\n")
        return self.index[name]


def coroutine_class(dispatch: Any) -> type:
    class Marked(collections.abc.Coroutine):  # type: ignore[type-arg]
        """A coroutine each of whose steps runs through its stage's marker."""

        __slots__ = ("c", "k")

        def __init__(self, k: int, c: Any) -> None:
            self.k, self.c = k, c

        def send(self, v: Any) -> Any:
            return dispatch(self.k, self.c.send, v)

        def throw(self, *a: Any) -> Any:
            return dispatch(self.k, self.c.throw, *a)

        def close(self) -> None:
            self.c.close()

        def __await__(self) -> Any:
            return self

        def __iter__(self) -> Any:
            return self

        def __next__(self) -> Any:
            return dispatch(self.k, self.c.send, None)

    return Marked


_serial = 0


def mark(stages: Stages, marked: type, fn: types.FunctionType, stage: str) -> None:
    """Point ``fn`` (in place) at a wrapper that runs its original body through the marker."""
    global _serial
    _serial += 1
    code = fn.__code__
    orig = types.FunctionType(code, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    orig.__kwdefaults__ = fn.__kwdefaults__
    g = fn.__globals__
    g[f"_stg_o_{_serial}"], g["_stg_dispatch"], g["_stg_marked"] = orig, stages.dispatch, marked
    free = code.co_freevars
    if inspect.iscoroutinefunction(fn):
        body = f"return _stg_marked({stages.of(stage)}, _stg_o_{_serial}(*a, **kw))"
        # Still a coroutine function to asyncio.iscoroutinefunction (uvicorn's ASGI 3 test)
        fn._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    elif inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(f"{fn.__qualname__}: a generator cannot be marked")
    else:
        body = f"return _stg_dispatch({stages.of(stage)}, _stg_o_{_serial}, *a, **kw)"
    src = "def _f():\n"
    src += "".join(f"    {v} = None\n" for v in free)
    src += "    def _w(*a, **kw):\n"
    if free:
        src += f"        if a is None: ({', '.join(free)},)\n"
    src += f"        {body}\n    return _w\n"
    ns: dict[str, Any] = {}
    exec(compile(src, f"<stage {stage}>", "exec"), g, ns)
    wrapper = ns["_f"]()
    if wrapper.__code__.co_freevars != free:
        raise RuntimeError(f"{fn.__qualname__}: free variables {free} vs {wrapper.__code__.co_freevars}")
    fn.__code__ = wrapper.__code__


def install(stages: Stages, spec: list[tuple[str, str, str]]) -> None:
    marked = coroutine_class(stages.dispatch)
    for module, qualname, stage in spec:
        try:
            obj: Any = importlib.import_module(module)
        except ImportError:
            continue
        for part in qualname.split("."):
            obj = inspect.getattr_static(obj, part, None)
            if isinstance(obj, (staticmethod, classmethod)):
                obj = obj.__func__
        if not isinstance(obj, types.FunctionType):
            print(f"stage_marks: {module}.{qualname} not found, not marked", file=sys.stderr)
            continue
        mark(stages, marked, obj, stage)
    classify: dict[str, int] = {}

    def stage_of(sql: str) -> int:
        k = classify.get(sql)
        if k is None:
            name = next((s for p, s in SQL if re.search(p, sql, re.S | re.I)), None)
            name = name or "w: sql: other " + (sql.split() or [""])[0].upper()[:10]
            k = classify[sql] = stages.of(name)
        return k

    dispatch = stages.dispatch
    execute, executemany = sqlite3.Connection.execute, sqlite3.Connection.executemany

    class Connection(sqlite3.Connection):
        def execute(self, sql: str, *a: Any) -> Any:  # type: ignore[override]
            return dispatch(stage_of(sql), execute, self, sql, *a)

        def executemany(self, sql: str, *a: Any) -> Any:  # type: ignore[override]
            return dispatch(stage_of(sql), executemany, self, sql, *a)

    connect = sqlite3.connect

    def connect_marked(*a: Any, **kw: Any) -> Any:
        kw.setdefault("factory", Connection)
        return connect(*a, **kw)

    sqlite3.connect = connect_marked  # type: ignore[assignment]


def mark_fingerprint(stages: Stages) -> None:
    """The endpoint's ``hashlib.sha256`` (the body's fingerprint, for dedup): C, so its
    module's ``hashlib`` is given a stand-in whose hash objects run through a marker."""
    import hashlib

    endpoint = importlib.import_module("receiver.ingest.endpoint")
    k, dispatch = stages.of("fingerprint (SHA-256, dedup)"), stages.dispatch

    class Hash:
        __slots__ = ("h",)

        def __init__(self, data: bytes = b"") -> None:
            self.h = dispatch(k, hashlib.sha256, data)

        def update(self, data: bytes) -> None:
            dispatch(k, self.h.update, data)

        def hexdigest(self) -> str:
            return dispatch(k, self.h.hexdigest)  # type: ignore[no-any-return]

    endpoint.hashlib = types.SimpleNamespace(sha256=Hash)  # type: ignore[attr-defined]


def main() -> None:
    names_file, target, dash_m, module, *rest = sys.argv[1:]
    assert dash_m == "-m"
    sys.path.insert(0, os.environ["STAGES_BUILD_DIR"])
    stages = Stages(names_file)
    spec = list(HTTP)
    if target == "receiver":
        spec += RECEIVER
        mark_fingerprint(stages)
    else:
        sys.path.insert(0, str(Path(target).parent))
        spec += CEILING
    install(stages, spec)
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
