"""The HTTP server's own limits, where only the server can enforce them.

Uvicorn's httptools protocol reads headers without a size limit and without a deadline,
and keeps draining a body nobody reads after the answer. Its protocol class is extended
here (uvicorn accepts a protocol class as ``http=``):

- **431** once the request line and headers pass ``max_header_bytes``, counted while
  reading (before they are in memory, before any work), then the connection is closed;
- **408** when the headers are not complete ``header_timeout`` seconds after the
  request's first byte (an idle new connection is closed silently); the body's own
  deadline is the ingest edge's (``ingest/body.py``);
- after an answer sent before its request's body was read in full (413, 401…), the rest
  is drained for at most ``LINGER_SECONDS`` and ``LINGER_BYTES``: a client that sends it
  keeps its connection, one that trickles or streams a chunked body without end is
  closed (it reads the answer first, rather than a reset).

Some costs of uvicorn's protocol are cut on the way, each paid on every request:

- an answer that declares its length leaves, head and body, in one ``write`` (uvicorn
  writes the head as soon as the app starts its answer: two system calls and two TCP
  segments for every small answer);
- the header and keep-alive deadlines are kept by sweeping tasks (``timers.Sweeper``),
  not a timer scheduled and cancelled twice per request;
- the per-request methods are uvicorn's with the limits folded in, not wrappers that
  call them, and the cycle is built without uvicorn's keyword arguments: in instructions
  counted by callgrind, per request, this protocol costs less than uvicorn's own.

These methods repeat uvicorn 0.54's (``pyproject.toml`` bounds the version; the real-server
tests in ``tests/test_server_edge.py`` cover pipelining, HEAD, keep-alive and the limits).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import httptools
import msgspec
from uvicorn._types import ASGIReceiveEvent, ASGISendEvent, HTTPRequestEvent
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from . import accesslog
from .edge import HEADER_LIMIT_KEY
from .timers import Sweeper

LINGER_SECONDS = 5.0
LINGER_BYTES = 1024 * 1024


class _HeadersTooLarge(Exception):
    pass


#: Answer header names and values found valid by uvicorn's checks (two regular expression
#: searches per header, on every answer): mostly the same few come with every answer.
#: Only ``bytes`` (hashable, immutable) of at most ``_MAX_VALID_LENGTH`` bytes, at most
#: ``_MAX_VALID`` of each: a few hundred kilobytes at worst. Some values change (the
#: ``date`` of each second, lengths), so a full set is emptied and fills again with
#: what answers carry now, rather than keeping the first ones seen for good.
_VALID_NAMES: set[bytes] = set()
_VALID_VALUES: set[bytes] = set()
_MAX_VALID = 512
_MAX_VALID_LENGTH = 256


def _remember(valid: set[bytes], item: bytes) -> None:
    if item.__class__ is bytes and len(item) <= _MAX_VALID_LENGTH:
        if len(valid) >= _MAX_VALID:
            valid.clear()
        valid.add(item)


#: Answer headers (the ``(name, value)`` tuples as sent) that passed the checks above and
#: need no more than their line in the head (not ``content-length``, ``transfer-encoding``
#: or ``connection``, which the cycle acts on) -> that line: the ``date`` and the content
#: type and security headers of every answer cost one lookup each. Bounded and emptied
#: as the sets above are.
_LINES: dict[tuple[bytes, bytes], bytes] = {}


#: Headers the cycle acts on (framing, keep-alive): always checked, never remembered.
_ACTED_ON = frozenset((b"content-length", b"transfer-encoding", b"connection"))


def _remember_line(header: object, name: bytes, value: bytes) -> None:
    # ``name`` is lower-cased. A second content-length, or one after transfer-encoding,
    # reaches the caller's ``else`` branch too: remembered, it would later skip the
    # framing that its first occurrence in another answer must set.
    if (
        name not in _ACTED_ON
        and header.__class__ is tuple
        and name.__class__ is bytes
        and value.__class__ is bytes
        and len(name) + len(value) <= _MAX_VALID_LENGTH
    ):
        if len(_LINES) >= _MAX_VALID:
            _LINES.clear()
        _LINES[header] = b"%s: %s\r\n" % (name, value)


def _raw_problem(status: int, reason: str, detail: str) -> bytes:
    body = msgspec.json.encode(
        {
            "type": f"https://receiver.dev/problems/{reason.lower().replace(' ', '-')}",
            "title": reason,
            "status": status,
            "detail": detail,
            "errors": [],
        }
    )
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/problem+json\r\n"
        "x-content-type-options: nosniff\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Cycle(RequestResponseCycle):
    """Uvicorn's request/response cycle, made for the protocol below in fewer steps, and
    with one change: an answer that declares its length has its head held until its
    first body message, so that head and body leave in one ``write`` (one system call,
    one TCP segment); a stream's head (no length: chunked) is written at once."""

    disconnected = False
    more_body = True
    response_started = False
    response_complete = False
    chunked_encoding: bool | None = None
    expected_content_length = 0
    head: bytes | None = None

    def __init__(self, protocol: LimitedHttpToolsProtocol, keep_alive: bool) -> None:
        # The attributes uvicorn's cycle sets, without the keyword arguments.
        self.scope = protocol.scope
        self.transport = protocol.transport
        self.flow = protocol.flow
        self.logger = protocol.logger
        self.access_logger = protocol.access_logger
        self.access_log = protocol.access_log
        self.default_headers = protocol.server_state.default_headers
        self.message_event = asyncio.Event()
        self.on_response = protocol.on_response_complete
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = protocol.expect_100_continue
        self.body = bytearray()
        # The other attributes uvicorn's cycle starts with are the class's below until set.

    def receive_ready(self) -> HTTPRequestEvent | None:
        """The message ``receive`` would hand over now without waiting (the body, or the
        part of it read so far, when uvicorn has signalled it), else None: uvicorn's
        ``receive`` for that case, without its coroutine and its ``Event.wait``. The
        ingest edge takes a body that came whole with its headers (the usual delivery)
        this way, with no deadline to arm for it (``ingest/body.py``)."""
        if (
            self.waiting_for_100_continue
            or self.disconnected
            or self.response_complete
            or not self.message_event.is_set()
        ):
            return None
        flow = self.flow
        if flow.read_paused:
            flow.resume_reading()
        self.message_event.clear()
        message: HTTPRequestEvent = {
            "type": "http.request",
            "body": bytes(self.body),
            "more_body": self.more_body,
        }
        self.body = bytearray()
        return message

    async def receive(self) -> ASGIReceiveEvent:
        message = self.receive_ready()
        if message is None:  # a wait, a 100 Continue or a disconnect: uvicorn's own
            return await super().receive()
        return message

    async def send(self, message: ASGISendEvent) -> None:
        # uvicorn 0.54's, but for the held head.
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected 'http.response.start', got '{message['type']}'.")
            self.response_started = True
            self.waiting_for_100_continue = False
            status_code = message["status"]
            headers = self.default_headers + list(message.get("headers", []))
            if self.access_log:
                self.access_logger.info(
                    '%s - "%s %s HTTP/%s" %d',
                    get_client_addr(self.scope),
                    self.scope["method"],
                    get_path_with_query_string(self.scope),
                    self.scope["http_version"],
                    status_code,
                )
            content = [STATUS_LINE[status_code]]
            has_connection_close = False
            lines = _LINES
            for header in headers:
                try:
                    line = lines.get(header)
                except TypeError:  # not hashable: checked below like any other
                    line = None
                if line is not None:  # checked before, and no header this loop acts on
                    content.append(line)
                    continue
                name, value = header
                # uvicorn's checks, each name and value searched once (then remembered).
                if name.__class__ is not bytes or name not in _VALID_NAMES:
                    if HEADER_RE.search(name):
                        raise RuntimeError("Invalid HTTP header name.")
                    _remember(_VALID_NAMES, name)
                if value.__class__ is not bytes or value not in _VALID_VALUES:
                    if HEADER_VALUE_RE.search(value):
                        raise RuntimeError("Invalid HTTP header value.")
                    _remember(_VALID_VALUES, value)
                name = name.lower()
                if name == b"content-length" and self.chunked_encoding is None:
                    self.expected_content_length = int(value.decode())
                    self.chunked_encoding = False
                elif name == b"transfer-encoding" and value.lower() == b"chunked":
                    self.expected_content_length = 0
                    self.chunked_encoding = True
                elif name == b"connection":
                    connection = [token.lower().strip() for token in value.split(b",")]
                    if b"close" in connection:
                        self.keep_alive = False
                        has_connection_close = True
                else:
                    _remember_line(header, name, value)
                content.extend([name, b": ", value, b"\r\n"])
            if not self.keep_alive and not has_connection_close:
                content.append(b"connection: close\r\n")
            no_body = self.scope["method"] == "HEAD" or status_code in (204, 304)
            if self.chunked_encoding is None and not no_body:
                self.chunked_encoding = True
                content.append(b"transfer-encoding: chunked\r\n")
            content.append(b"\r\n")
            if self.chunked_encoding:
                self.transport.write(b"".join(content))
            else:
                self.head = b"".join(content)
        elif not self.response_complete:
            if message["type"] != "http.response.body":
                raise RuntimeError(f"Expected 'http.response.body', got '{message['type']}'.")
            body = message.get("body", b"")
            more_body = message.get("more_body", False)
            head, self.head = self.head or b"", None
            if self.scope["method"] == "HEAD":
                self.expected_content_length = 0
                if head:
                    self.transport.write(head)
            elif self.chunked_encoding:
                content = [b"%x\r\n" % len(body), body, b"\r\n"] if body else []
                if not more_body:
                    content.append(b"0\r\n\r\n")
                self.transport.write(b"".join(content))
            else:
                num_bytes = len(body)
                if num_bytes > self.expected_content_length:
                    raise RuntimeError("Response content longer than Content-Length")
                self.expected_content_length -= num_bytes
                self.transport.write(head + body if head else body)
            if not more_body:
                if self.expected_content_length != 0:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:
                    self.transport.close()
                self.on_response()
        else:
            raise RuntimeError(f"Unexpected '{message['type']}' after the response was completed.")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol with the limits above (set by ``protocol``). The
    methods run for every request are uvicorn 0.54's own with the limits folded in, rather
    than wrappers around them: each call is paid on every request."""

    max_header_bytes = 32 * 1024
    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0  # of the request being read; -1 once its headers are in
        self._headers_read = 0
        self._message_complete = False
        self._lingering = False
        self._linger_left = 0
        self._linger_timer: asyncio.TimerHandle | None = None

    # -- connection --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _header_deadlines.arm(self, self.loop, self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        _keepalive_deadlines.due.pop(self, None)
        if self._lingering:
            self._linger_left -= len(data)
            if self._linger_left < 0:
                self._close()
                return
        elif self._header_bytes >= 0:
            room = self.max_header_bytes - self._header_bytes
            if len(data) > room:
                # Feed only what fits: if the headers end inside it, go on with the rest.
                head, data = data[:room], data[room:]
                self._header_bytes += len(head)
                before = self._headers_read
                if head and not self._feed(head):
                    return
                if self._headers_read == before:
                    self._reject(431, "Request Header Fields Too Large", "the headers are too large")
                    return
            else:
                self._header_bytes += len(data)
        self._feed(data)

    def _feed(self, data: bytes) -> bool:
        """uvicorn's ``data_received``; False once the connection is given up."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return True

    # -- parser callbacks --------------------------------------------------------------
    def on_message_begin(self) -> None:
        # uvicorn's, and the header deadline.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.scope = {  # type: ignore[typeddict-item]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        self.scope[HEADER_LIMIT_KEY] = self.max_header_bytes  # type: ignore[literal-required]
        self._message_complete = False
        if self not in _header_deadlines.due:
            _header_deadlines.arm(self, self.loop, self.header_timeout)

    def on_headers_complete(self) -> None:
        # uvicorn's, with the header deadline disarmed and a leaner cycle.
        self._header_bytes = -1
        self._headers_read += 1
        _header_deadlines.due.pop(self, None)
        parser = self.parser
        http_version = parser.get_http_version()
        scope = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path if self.root_path else raw_path
        scope["query_string"] = parsed_url.query or b""
        app = self.app
        if self.limit_concurrency is not None and (
            len(self.connections) >= self.limit_concurrency or len(self.tasks) >= self.limit_concurrency
        ):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        existing_cycle = self.cycle
        self.cycle = _Cycle(self, http_version != "1.0" and parser.should_keep_alive())
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:
            # Pipelined HTTP requests need to be queued up.
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if cycle.response_complete or (self.parser.should_upgrade() and self._should_upgrade()):
            pass  # uvicorn's: nothing more to tell an answered (or upgraded) request
        else:
            cycle.more_body = False
            cycle.message_event.set()
        self._message_complete = True
        self._header_bytes = 0
        if self._lingering:
            # The rest arrived in time: the connection is as good as after any answer.
            self._lingering = False
            if self._linger_timer is not None:
                self._linger_timer.cancel()
                self._linger_timer = None
            if not self.transport.is_closing() and self not in _keepalive_deadlines.due:
                _keepalive_deadlines.arm(self, self.loop, self.timeout_keep_alive)

    def on_response_complete(self) -> None:
        transport = self.transport
        if not self._message_complete and not transport.is_closing():
            # Answered before the body was read: drain a bounded rest, then close.
            self._lingering = True
            self._linger_left = LINGER_BYTES
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, self._close)
        # Uvicorn's own, but for the keep-alive deadline, armed on the sweeper.
        self.server_state.total_requests += 1
        if transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            _keepalive_deadlines.arm(self, self.loop, self.timeout_keep_alive)

    def _unset_keepalive_if_required(self) -> None:  # uvicorn calls it when the connection goes
        _keepalive_deadlines.due.pop(self, None)

    # -- helpers -----------------------------------------------------------------------
    def _headers_timed_out(self) -> None:
        if self.transport.is_closing():
            return
        if self._header_bytes > 0:
            seconds = f"{self.header_timeout:g}"
            self._reject(408, "Request Timeout", f"the headers did not arrive within {seconds} seconds")
        else:
            self._close()  # idle: nothing was asked, nothing to answer

    def _reject(self, status: int, reason: str, detail: str) -> None:
        busy = self.cycle is not None and not self.cycle.response_complete  # an answer is due
        if not busy and not self.transport.is_closing():
            self.transport.write(_raw_problem(status, reason, detail))
            # The request was never read: no method, path or duration to show.
            accesslog.log.info("- - %d - source=- delivery=- query=[] (%s)", status, detail)
        self._close()

    def _close(self) -> None:
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_timers(self) -> None:
        _header_deadlines.due.pop(self, None)
        _keepalive_deadlines.due.pop(self, None)
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None


#: The headers' deadlines of every connection (the first byte of a request, or a new
#: connection, arms one; the end of the headers disarms it).
_header_deadlines: Sweeper[LimitedHttpToolsProtocol] = Sweeper(
    0.1, LimitedHttpToolsProtocol._headers_timed_out
)
#: The keep-alive deadlines of every idle connection (an answer arms one; a read disarms it).
_keepalive_deadlines: Sweeper[LimitedHttpToolsProtocol] = Sweeper(
    0.1, LimitedHttpToolsProtocol.timeout_keep_alive_handler
)


def protocol(max_header_bytes: int, header_timeout: float) -> type[LimitedHttpToolsProtocol]:
    """A protocol class with these limits, for ``uvicorn.run(http=…)``."""
    return type(
        "ReceiverHttpProtocol",
        (LimitedHttpToolsProtocol,),
        {"max_header_bytes": max_header_bytes, "header_timeout": header_timeout},
    )
