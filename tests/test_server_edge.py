"""``receiver serve`` as a real process, at its edge: what its output never holds (at any
log level), the modes of its files, and the server-level limits (header size, header
and body deadlines, bodies without end, slow clients)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import DB, SECRETS, Server, make_env
from test_ingest import CROCT_BEACON, KARTRA_VISIT

TOKEN = {"token": SECRETS["RECEIVER_KARTRA_TOKEN"]}


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


# -- files ------------------------------------------------------------------------------
def test_store_files_are_readable_by_their_owner_only(data_dir: Path) -> None:
    env = {"RECEIVER_DATA_DIR": str(data_dir)}  # every credential generated: credentials.json
    server = Server(data_dir, env=env).start()
    try:
        token = json.loads((data_dir / "credentials.json").read_text())["RECEIVER_KARTRA_TOKEN"]
        r = httpx.post(f"{server.url}/hooks/kartra", params={"token": token}, json=KARTRA_VISIT)
        assert r.status_code == 202
        files = sorted(p.name for p in data_dir.iterdir())
        assert {"receiver.db", "receiver.db-wal", "receiver.db-shm", "credentials.json"} <= set(files)
        assert mode(data_dir) == "0o700"
        for name in files:
            assert mode(data_dir / name) == "0o600", name
    finally:
        server.stop()


def test_an_open_data_directory_is_narrowed_on_start_with_a_log_line(
    data_dir: Path, request: pytest.FixtureRequest
) -> None:
    Server(data_dir).start().stop()
    data_dir.chmod(0o755)
    (data_dir / "receiver.db").chmod(0o644)
    (data_dir / "old-backup.db").write_bytes(b"")
    (data_dir / "old-backup.db").chmod(0o664)
    server = Server(data_dir).start()
    request.addfinalizer(server.stop)  # stop() is idempotent: no orphan if an assert fails
    out = server.stop()
    assert mode(data_dir) == "0o700"
    assert mode(data_dir / "receiver.db") == "0o600" and mode(data_dir / "old-backup.db") == "0o600"
    assert f"data directory {data_dir} was mode 0755" in out
    assert f"store file {data_dir / 'receiver.db'} was mode 0644" in out


# -- logs -------------------------------------------------------------------------------
PERSON = {
    "email": "leak.person@example.com",
    "first_name": "Zorblaxia",
    "last_name": "Quenthorpe",
    "phone": "+15550009876",
}


def _jwt(sub: str) -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'sub': sub})}.c2lnbmF0dXJlLW1hcmtlcg"


@pytest.mark.parametrize("level", ["debug", "info"])
def test_server_output_holds_no_credential_and_no_personal_data(
    data_dir: Path, env: dict[str, str], level: str, request: pytest.FixtureRequest
) -> None:
    """Every credential in every place it is accepted (and wrong ones), marker personal data
    through every source (Convead's query-borne event included), read-API lookups by email,
    bad bodies and a forged log line: none of it may reach the process's output, on either
    backend. DEBUG logs everything the other levels do, and more."""
    server = Server(data_dir, env={**env, "RECEIVER_LOG_LEVEL": level}).start()
    request.addfinalizer(server.stop)
    url = server.url
    k, c, x, a = (
        SECRETS["RECEIVER_KARTRA_TOKEN"],
        SECRETS["RECEIVER_CONVEAD_APP_KEY"],
        SECRETS["RECEIVER_CROCT_APP_ID"],
        SECRETS["RECEIVER_AFFITOR_TOKEN"],
    )
    jwt = _jwt("leak-user-sub-77")
    lead = {"id": "9001", **PERSON}
    kartra = {**KARTRA_VISIT, "lead": lead}
    convead_data = {
        "type": "update_info",
        "app_key": c,
        "visitor_info": {**PERSON, "date_of_birth": "1984-06-16"},
    }
    croct_lead = {
        "type": "leadGenerated",
        "lead": {"firstName": PERSON["first_name"], "email": PERSON["email"], "phone": PERSON["phone"]},
    }
    affitor = {"customer_code": "cc-1", "user_id": "u-1", "name": PERSON["first_name"], **PERSON}
    form = "&".join(f"lead[{f}]={v.replace('+', '%2B')}" for f, v in lead.items()) + "&action=filled_form"
    with httpx.Client(base_url=url, timeout=10) as h:
        answers = [
            # Kartra: token in the query, a header, a bearer; JSON and form bodies
            h.post("/hooks/kartra", params={"token": k}, json=kartra),
            h.post("/hooks/kartra", headers={"X-Webhook-Token": k}, json={**kartra, "n": 1}),
            h.post("/hooks/kartra", headers={"Authorization": f"Bearer {k}"}, content=form.encode()),
            h.post("/hooks/kartra", params={"token": "wrong-" + k}, json=kartra),
            h.post("/hooks/kartra", params={"token": k, "email": PERSON["email"]}, content=b'{"lead":'),
            # Convead: app_key as a form field, in the query (with the event in the query too),
            # as a header; the key inside data as well
            h.post(
                "/hooks/convead",
                data={"app_key": c, "visitor_uid": "v-1", "data": json.dumps(convead_data)},
            ),
            h.post(
                "/hooks/convead/watch/event",
                params={"app_key": c, "visitor_uid": "v-2", "data": json.dumps(convead_data)},
            ),
            h.post(
                "/hooks/convead/integration/common/webhook",
                headers={"X-App-Key": c, "X-Webhook-Topic": "events/order_update"},
                json={"visitor_uid": "v-3", "visitor_info": PERSON, "order_id": "1", "revenue": 1},
            ),
            h.post("/hooks/convead", data={"app_key": "wrong", "data": json.dumps(convead_data)}),
            # Croct: header, query token, a JWT user token
            h.post("/hooks/croct", headers={"X-App-Id": x, "X-Token": jwt}, json=croct_lead),
            h.post("/hooks/croct/client/web/track", params={"token": x}, json={**CROCT_BEACON}),
            h.post("/hooks/croct", headers={"X-App-Id": x}, json={"type": "goalCompleted", "goalId": "x"}),
            # Affitor: bearer; the email in the query too
            h.post(
                "/hooks/affitor/api/tracking/lead",
                headers={"Authorization": f"Bearer {a}"},
                params={"email": PERSON["email"]},
                json=affitor,
            ),
            h.post(
                "/hooks/affitor/api/tracking/lead", headers={"Authorization": "Bearer nope"}, json=affitor
            ),
            # The read API, looked up by email, by a bad key, with a bad parameter
            h.get(
                "/v1/leads",
                params={"email": PERSON["email"]},
                headers={"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"},
            ),
            h.get("/v1/leads", params={"email": PERSON["email"]}, headers={"Authorization": "Bearer wrong"}),
            h.get(
                "/v1/events",
                params={"sorce": PERSON["email"]},
                headers={"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"},
            ),
            # A path that tries to write a line of its own, and a NUL
            h.get("/hooks/kartra%0a2026-01-01 00:00:00,000 INFO receiver.access FORGED%00"),
        ]
    statuses = [r.status_code for r in answers]
    assert statuses[:4] == [202, 202, 202, 401] and 500 not in statuses, statuses
    out = server.stop()

    markers = [*SECRETS.values(), *PERSON.values(), jwt, "leak-user-sub-77", "c2lnbmF0dXJlLW1hcmtlcg"]
    markers += [hashlib.sha256(PERSON["email"].encode()).hexdigest(), "Zorblaxia", "5550009876"]
    for marker in markers:
        assert marker not in out, marker
    assert "\x00" not in out
    lines = out.splitlines()
    assert not any(
        line.startswith(("2026-01-01 00:00:00,000 INFO receiver.access FORGED", "FORGED")) for line in lines
    )
    access = [line for line in lines if " receiver.access " in line]
    assert len(access) >= len(answers)
    assert any("/hooks/kartra%0a2026-01-01" in line for line in access)
    for line in access:
        assert "127.0.0.1" not in line  # no client address
    assert any(
        "POST /hooks/convead/watch/event 200" in line and "query=[app_key,data,visitor_uid]" in line
        for line in access
    )


# -- server-level limits ----------------------------------------------------------------------
def _raw(port: int, data: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(data)
    return s


def _answer_then_close(s: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        s.close()
    return got, time.monotonic() - started


@pytest.fixture
def limited(data_dir: Path) -> Any:
    """A server (on SQLite: these limits are the HTTP server's) with 1-second deadlines."""
    env = make_env(
        data_dir,
        RECEIVER_HEADER_TIMEOUT_SECONDS="1",
        RECEIVER_BODY_TIMEOUT_SECONDS="1",
        RECEIVER_KEEPALIVE_SECONDS="1",
    )
    server = Server(data_dir, env=env).start()
    yield server
    server.stop()


@pytest.fixture
def stored(data_dir: Path) -> DB:
    return DB(data_dir / "receiver.db")


def test_headers_over_the_limit_are_431_and_nothing_is_stored(limited: Server, stored: DB) -> None:
    r = httpx.post(
        f"{limited.url}/hooks/kartra", params=TOKEN, json=KARTRA_VISIT, headers={"X-Big": "x" * 60_000}
    )
    assert r.status_code == 431 and r.headers["content-type"] == "application/problem+json"
    many = {f"X-H{i}": "v" * 100 for i in range(400)}
    assert (
        httpx.post(f"{limited.url}/hooks/kartra", params=TOKEN, json=KARTRA_VISIT, headers=many).status_code
        == 431
    )
    # A header streamed without end is cut off at the limit, not read in full.
    s = _raw(limited.port, b"POST /hooks/kartra HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    for _ in range(10):
        try:
            s.sendall(b"x" * 10_000)
        except OSError:
            break
    got, _ = _answer_then_close(s)
    assert got.startswith(b"HTTP/1.1 431 ")
    assert stored.count("deliveries") == 0
    assert httpx.get(f"{limited.url}/healthz").status_code == 200


def test_slow_headers_and_slow_bodies_get_408_and_are_closed(limited: Server, stored: DB) -> None:
    results: list[tuple[bytes, float]] = []

    def slow(first: bytes) -> None:
        s = _raw(limited.port, first)
        results.append(_answer_then_close(s))

    heads = (
        b"POST /hooks/kartra?token=" + SECRETS["RECEIVER_KARTRA_TOKEN"].encode() + b" HTTP/1.1\r\nHost: x\r\n"
    )
    threads = [threading.Thread(target=slow, args=(heads,)) for _ in range(25)]
    body = heads + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    threads += [threading.Thread(target=slow, args=(body,)) for _ in range(25)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    assert httpx.get(f"{limited.url}/healthz", timeout=5).status_code == 200  # still answering
    for t in threads:
        t.join(timeout=20)
    assert len(results) == 50
    for got, seconds in results:
        assert got.startswith(b"HTTP/1.1 408 "), got[:80]
        assert b"application/problem+json" in got
        assert seconds < 8  # the deadline (1 s) and the lingering close (at most 5 s)
    assert stored.count("deliveries") == 0


def test_a_chunked_body_without_end_gets_413_and_the_connection_is_closed(
    limited: Server, stored: DB
) -> None:
    s = _raw(
        limited.port,
        b"POST /hooks/kartra?token=" + SECRETS["RECEIVER_KARTRA_TOKEN"].encode() + b" HTTP/1.1\r\n"
        b"Host: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    sent = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < 10:
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass  # closed by the server: the point
    got, _ = _answer_then_close(s)
    assert got.startswith(b"HTTP/1.1 413 "), got[:80]
    assert time.monotonic() - started < 10
    assert sent < 20 * 1024 * 1024  # the limit (1 MiB) and a bounded drain, then closed
    assert stored.count("deliveries") == 0


def test_serving_every_interface_prints_a_hint_not_unusable_urls(data_dir: Path) -> None:
    env = {k: v for k, v in make_env(data_dir).items()}
    env["RECEIVER_PUBLIC_URL"] = ""
    server = Server(data_dir, env={**os.environ, **env}, args=["--host", "0.0.0.0"]).start()
    out = server.stop()
    assert "RECEIVER_PUBLIC_URL" in out
    assert "/hooks/kartra?token=" in out
    banner = out.split("INFO:", 1)[0]
    assert "http://0.0.0.0:" not in banner


# -- one write per answer ---------------------------------------------------------------------
class _Recording:
    """A transport that keeps what is written to it, call by call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


def _cycle(method: str) -> tuple[Any, _Recording, list[int]]:
    """A request/response cycle of the server's protocol, writing to a recording transport."""
    from types import SimpleNamespace

    from uvicorn.protocols.http.flow_control import FlowControl

    from receiver.serving import _Cycle

    rec = _Recording()
    completed: list[int] = []
    protocol = SimpleNamespace(
        scope={"method": method, "http_version": "1.1"},
        transport=rec,
        flow=FlowControl(rec),  # type: ignore[arg-type]
        logger=None,
        access_logger=None,
        access_log=False,
        server_state=SimpleNamespace(default_headers=[]),
        on_response_complete=lambda: completed.append(1),
        expect_100_continue=False,
    )
    return _Cycle(protocol, keep_alive=True), rec, completed  # type: ignore[arg-type]


def test_an_answer_of_known_length_leaves_in_one_write_a_stream_at_once() -> None:
    import asyncio

    async def run() -> None:
        # Known length: the head waits for the body, and both leave in one write.
        cycle, rec, completed = _cycle("POST")
        start = {"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"2")]}
        await cycle.send(start)
        assert rec.writes == []
        await cycle.send({"type": "http.response.body", "body": b"ok"})
        assert rec.writes == [b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok"]
        assert completed == [1] and not rec.closed

        # HEAD: the head alone, when the (empty) body message comes.
        cycle, rec, completed = _cycle("HEAD")
        await cycle.send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"9")]}
        )
        await cycle.send({"type": "http.response.body", "body": b""})
        assert rec.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n"] and completed == [1]

        # A stream (no length): the head at once, then each chunk as it comes.
        cycle, rec, completed = _cycle("GET")
        await cycle.send({"type": "http.response.start", "status": 200, "headers": []})
        assert rec.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
        await cycle.send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await cycle.send({"type": "http.response.body", "body": b""})
        assert rec.writes[1:] == [b"3\r\nabc\r\n", b"0\r\n\r\n"] and completed == [1]

        # A header that would split the answer is refused, as uvicorn does.
        cycle, rec, _ = _cycle("GET")
        bad = {"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1\r\nx-b: 2")]}
        with pytest.raises(RuntimeError):
            await cycle.send(bad)
        assert rec.writes == []

    asyncio.run(run())


def test_pipelined_requests_head_and_keep_alive_answer_complete_and_in_order(
    limited: Server, stored: DB
) -> None:
    def post(n: int) -> bytes:
        body = json.dumps({**KARTRA_VISIT, "n": n}).encode()
        return (
            b"POST /hooks/kartra?token=" + SECRETS["RECEIVER_KARTRA_TOKEN"].encode() + b" HTTP/1.1\r\n"
            b"Host: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    head = b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    get = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    s = _raw(limited.port, post(1) + head + post(2) + get)
    got, _ = _answer_then_close(s)
    answers = got.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"202", b"200", b"202", b"200"], got
    for a, is_head in zip(answers, [False, True, False, False], strict=True):
        headers, _, rest = a.partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in headers.split(b"\r\n")[1:])
        length = int(fields[b"content-length"])
        assert length > 0 and len(rest) == (0 if is_head else length)  # whole, none run into the next
    assert json.loads(answers[-1].partition(b"\r\n\r\n")[2]) == {"status": "ok"}
    assert stored.count("deliveries") == 2


def test_an_idle_keep_alive_connection_is_closed_after_its_deadline_a_busy_one_is_not(
    limited: Server,
) -> None:
    get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    busy = _raw(limited.port, get)
    idle = _raw(limited.port, get)
    for s in (busy, idle):
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    started = time.monotonic()
    while time.monotonic() - started < 2.5:  # one request every 0.3 s: never idle for 1 s
        time.sleep(0.3)
        busy.sendall(get)
        assert busy.recv(65536).startswith(b"HTTP/1.1 200 ")
    got, seconds = _answer_then_close(idle)  # closed by the server, silently
    assert got == b"" and seconds < 0.5  # (it was idle for 2.5 s already)
    busy.sendall(get)
    assert busy.recv(65536).startswith(b"HTTP/1.1 200 ")
    busy.close()
