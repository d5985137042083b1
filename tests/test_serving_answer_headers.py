"""``serving``'s protocol checks every answer header as uvicorn does (a name or value with
a control character is refused: the connection is closed, nothing malformed is sent),
while remembering the names and values it found valid: what it remembers must never let
an invalid one through, however often valid ones came before. A real uvicorn server, on
a real socket, with the receiver's protocol class."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import free_port

from receiver import serving

HEADERS: dict[str, list[tuple[bytes, bytes]]] = {
    "/ok": [(b"x-answer", b"fine"), (b"content-type", b"text/plain")],
    "/bad-value": [(b"x-answer", b"fine\x01")],
    "/bad-name": [(b"x-ans wer", b"fine")],
    "/mixed": [(b"x-answer", b"fine"), (b"x-other", b"no\nline")],
}
#: A framing header twice: the second must not be remembered as a plain line.
FRAMING = {"/chunked-then-length": [(b"transfer-encoding", b"chunked")]}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    path = scope["path"]
    headers = [*HEADERS.get(path, FRAMING.get(path, [])), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def url() -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="critical",
        http=serving.protocol(32768, 10.0),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def status(url: str) -> int | str:
    try:
        r = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return "closed"
    return r.status_code


def test_invalid_answer_headers_are_refused_every_time_valid_ones_pass(url: str) -> None:
    seen = [status(url + path) for _ in range(3) for path in HEADERS]
    assert seen == [200, "closed", "closed", "closed"] * 3
    r = httpx.get(url + "/ok")
    assert r.headers["x-answer"] == "fine" and r.text == "ok"


def test_the_remembered_values_stay_bounded_and_follow_what_answers_carry_now() -> None:
    """A value that changes (the ``date`` of each second, a length) fills the set; a full
    set is emptied, so what answers carry now is remembered again, never more than the
    bound, and never a value too long or not bytes."""
    valid: set[bytes] = set()
    for n in range(3 * serving._MAX_VALID + 7):
        serving._remember(valid, b"Sun, 29 Nov 2026 11:%02d:%02d GMT" % divmod(n, 60))
        assert len(valid) <= serving._MAX_VALID
    assert b"Sun, 29 Nov 2026 11:%02d:%02d GMT" % divmod(3 * serving._MAX_VALID + 6, 60) in valid
    serving._remember(valid, b"x" * (serving._MAX_VALID_LENGTH + 1))
    serving._remember(valid, bytearray(b"mutable"))  # type: ignore[arg-type]
    assert b"x" * (serving._MAX_VALID_LENGTH + 1) not in valid and b"mutable" not in valid


def test_a_framing_header_is_acted_on_every_time_it_is_sent(url: str) -> None:
    """An answer carrying content-length after transfer-encoding must not teach the
    protocol to write ``content-length: 2`` as a plain line: the next answer with that
    length is framed by it, never also chunked."""
    with httpx.Client() as client:  # one connection: what the first answer left, the next meets
        client.get(url + "/chunked-then-length")
        for _ in range(3):
            r = client.get(url + "/plain")
            assert r.status_code == 200 and r.content == b"ok"
            assert "transfer-encoding" not in r.headers and r.headers["content-length"] == "2"
