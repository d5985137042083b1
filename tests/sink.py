"""A real HTTP destination for the forwarding tests: a threaded ``http.server`` on a free
loopback port that checks every request's Standard Webhooks signature with the
``standardwebhooks`` library, and can be told to answer 500s, 429 with Retry-After,
410, to hang past the caller's timeout, or to go away (stop listening) and come back.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
from standardwebhooks import Webhook, WebhookVerificationError

SECRET = "whsec_" + base64.b64encode(b"forwarding-test-secret-0123456789").decode()


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int | str

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


@dataclass
class Sink:
    """``script[path]``: answers to give, in order, to requests on that path (then 204).
    An answer is a status, ``(429, "2")`` (status, Retry-After), or ``"hang"``."""

    secret: str = SECRET
    port: int = 0
    received: list[Received] = field(default_factory=list)
    script: dict[str, collections.deque[Any]] = field(default_factory=dict)
    always: dict[str, Any] = field(default_factory=dict)
    hang_seconds: float = 3.0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _connections: set[socket.socket] = field(default_factory=set)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def plan(self, path: str, *answers: Any) -> None:
        self.script.setdefault(path, collections.deque()).extend(answers)

    def start(self) -> Sink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with sink._lock:
                    sink._connections.add(self.connection)

            def finish(self) -> None:
                with sink._lock:
                    sink._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(sink.secret).verify(body, headers, json_parse=False)
                    verified = True
                except (WebhookVerificationError, ValueError, KeyError):
                    verified = False
                with sink._lock:
                    queue = sink.script.get(self.path)
                    answer = queue.popleft() if queue else sink.always.get(self.path, 204)
                    sink.received.append(Received(time.time(), self.path, headers, body, verified, answer))
                if answer == "hang":
                    time.sleep(sink.hang_seconds)
                    answer = 204
                retry_after = None
                if isinstance(answer, tuple):
                    answer, retry_after = answer
                self.send_response(answer)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Go away: nothing listens on the port until ``start`` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            with self._lock:  # kept-alive connections too
                for c in list(self._connections):
                    with contextlib.suppress(OSError):
                        c.shutdown(socket.SHUT_RDWR)

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait(self, path: str, n: int, timeout: float = 15.0, ok_only: bool = True) -> list[Received]:
        """Wait until ``n`` distinct messages were answered 2xx on ``path`` (or any answer)."""
        deadline = time.monotonic() + timeout
        while True:
            got = [r for r in self.on(path) if not ok_only or r.answered == 204]
            if len({r.id for r in got}) >= n:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{len({r.id for r in got})} of {n} messages arrived on {path}")
            time.sleep(0.02)


def destinations_yaml(*destinations: dict[str, Any]) -> str:
    out = ["destinations:"]
    for d in destinations:
        first = True
        for k, v in d.items():
            out.append(f"  {'- ' if first else '  '}{k}: {msgspec.json.encode(v).decode()}")
            first = False
    return "\n".join(out) + "\n"


def destination(name: str, url: str, **extra: Any) -> dict[str, Any]:
    """A destination as the tests use it: local (allow_private), quick timeouts and retries."""
    return {
        "name": name,
        "url": url,
        "secret_env": "SINK_SECRET",
        "allow_private": True,
        "timeout": "1s",
        "retry": {"first": "200ms", "max_interval": "1s"},
        **extra,
    }
