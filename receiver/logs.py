"""What the service logs, and how: never a body, a query value, a secret or personal data.

An exception's message can quote what it choked on (``KeyError: 'ana@example.com'``), so
failures are logged as the exception's type and where it happened (the traceback's
frames), never its message. Records are written by a listener thread, so a request
pays for a queue put, not for a write to the terminal or pipe.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.handlers
import queue
import threading
import time
import traceback
from typing import Any

from . import accesslog

#: Libraries that log what they are handed at DEBUG (aiosqlite logs every statement with
#: its parameters, that is bodies and emails): kept at WARNING whatever the level.
_CHATTY = ("aiosqlite", "asyncpg", "multipart", "httpx", "httpcore")


def failure(exc: BaseException) -> str:
    """``TypeName`` and the frames it went through, without the exception's message."""
    lines = [type(exc).__qualname__]
    for frame in traceback.extract_tb(exc.__traceback__):
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
    cause = exc.__cause__ or exc.__context__
    if cause is not None and not exc.__suppress_context__:
        lines.append(f"  caused by {type(cause).__qualname__}")
    return "\n".join(lines)


FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class _Writer:
    """The log thread: writes the records (and the access log's fields, made into lines
    here) queued by every other thread, in order; what is queued together is written
    and flushed together."""

    BATCH = 1024
    GATHER_SECONDS = 0.01

    def __init__(self, handler: logging.StreamHandler[Any]) -> None:
        self.handler = handler
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="receiver-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.queue.put(None)
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            items = [self.queue.get()]
            # Let the lines of the next moment gather: a thread woken for every line costs
            # every request a wake-up (a system call, and a switch on its core) and
            # itself a write per line.
            time.sleep(self.GATHER_SECONDS)
            while len(items) < self.BATCH:
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            lines: list[str] = []
            for item in items:
                if item is None:
                    self._write(lines)
                    return
                if isinstance(item, tuple):
                    lines.append(accesslog.line(item))
                else:
                    self._write(lines)
                    lines = []
                    self.handler.handle(item)
            self._write(lines)

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        # Like logging: output trouble never takes the thread down.
        with contextlib.suppress(Exception), self.handler.lock or contextlib.nullcontext():
            self.handler.stream.write("".join(lines))
            self.handler.flush()


def setup(level: str = "info") -> None:
    """Root logging for ``receiver serve``: one line per record, written off the event loop
    by a thread of its own; an access line costs the request a queue put."""
    stream = logging.StreamHandler()
    stream.setFormatter(logging.Formatter(FORMAT))
    writer = _Writer(stream)
    writer.start()
    atexit.register(writer.stop)
    root = logging.getLogger()
    root.setLevel(level.upper())
    root.addHandler(logging.handlers.QueueHandler(writer.queue))
    # The access log's fields are queued as they are, made into a line by the writer,
    # unless a handler of its own was added to it (then it is an ordinary logger).
    if not accesslog.log.handlers:
        accesslog.sink = writer.queue.put
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
