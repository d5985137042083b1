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

Two costs of uvicorn's protocol are cut on the way, each paid on every request: an
answer's head and body leave in one ``write`` (uvicorn writes the head as soon as the app
starts its answer: two system calls and two TCP segments for every small answer), and
the header and keep-alive deadlines are kept by sweeping tasks (``timers.Sweeper``), not
a timer scheduled and cancelled twice per request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from . import accesslog
from .timers import Sweeper

LINGER_SECONDS = 5.0
LINGER_BYTES = 1024 * 1024


class _HeadersTooLarge(Exception):
    pass


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


class _OneWrite:
    """The connection's transport, holding an answer's head until its body is written, so
    that the head and a body written in the same step of the loop (every answer but a
    stream) leave in one ``write``, one system call, one TCP segment. What is held is
    written at the latest at the end of the loop's current step (``call_soon``)."""

    __slots__ = ("_held", "_hold", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._hold = False
        self._held: bytes | None = None

    def hold_next(self) -> None:
        self._hold = True

    def write(self, data: bytes) -> None:
        if self._held is not None:  # always first: what is held goes out before anything
            data, self._held = self._held + data, None
        elif self._hold:
            self._hold = False
            self._held = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol with the limits above (set by ``protocol``)."""

    max_header_bytes = 32 * 1024
    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True
        self._header_bytes = 0
        self._headers_read = 0
        self._message_complete = False
        self._lingering = False
        self._linger_left = 0
        self._linger_timer: asyncio.TimerHandle | None = None

    # -- connection --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._one_write = _OneWrite(transport, self.loop)
        self.transport = self._one_write  # type: ignore[assignment]
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._linger_left -= len(data)
            if self._linger_left < 0:
                self._close()
                return
        elif self._in_headers:
            room = self.max_header_bytes - self._header_bytes
            if len(data) > room:
                # Feed only what fits: if the headers end inside it, go on with the rest.
                head, data = data[:room], data[room:]
                self._header_bytes += len(head)
                before = self._headers_read
                if head:
                    super().data_received(head)
                if self._headers_read == before:
                    self._reject(431, "Request Header Fields Too Large", "the headers are too large")
                    return
            else:
                self._header_bytes += len(data)
        super().data_received(data)

    # -- parser callbacks --------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._message_complete = False
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._headers_read += 1
        _header_deadlines.disarm(self)
        self._one_write.hold_next()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._message_complete = True
        self._in_headers = True
        self._header_bytes = 0
        if self._lingering:
            # The rest arrived in time: the connection is as good as after any answer.
            self._lingering = False
            if self._linger_timer is not None:
                self._linger_timer.cancel()
                self._linger_timer = None
            if not self.transport.is_closing() and not _keepalive_deadlines.armed(self):
                _keepalive_deadlines.arm(self, self.loop, self.timeout_keep_alive)

    def on_response_complete(self) -> None:
        if not self._message_complete and not self.transport.is_closing():
            # Answered before the body was read: drain a bounded rest, then close.
            self._lingering = True
            self._linger_left = LINGER_BYTES
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, self._close)
        # Uvicorn's own, but for the keep-alive deadline, armed on the sweeper.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            _keepalive_deadlines.arm(self, self.loop, self.timeout_keep_alive)

    def _unset_keepalive_if_required(self) -> None:  # on every read, and when answered
        _keepalive_deadlines.disarm(self)
        super()._unset_keepalive_if_required()

    # -- helpers -----------------------------------------------------------------------
    def _arm_header_timer(self) -> None:
        if not _header_deadlines.armed(self):
            _header_deadlines.arm(self, self.loop, self.header_timeout)

    def _headers_timed_out(self) -> None:
        if self.transport.is_closing():
            return
        if self._header_bytes:
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
        _header_deadlines.disarm(self)
        _keepalive_deadlines.disarm(self)
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
