"""What the service logs, and how: never a body, a query value, a secret or personal data.

An exception's message can quote what it choked on (``KeyError: 'ana@example.com'``), so
failures are logged as the exception's type and where it happened (the traceback's
frames), never its message. Records are written by a listener thread, so a request
pays for a queue put, not for a write to the terminal or pipe.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import traceback

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


def setup(level: str = "info") -> None:
    """Root logging for ``receiver serve``: one line per record, written off the event loop."""
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    stream = logging.StreamHandler()
    stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    listener = logging.handlers.QueueListener(records, stream)
    listener.start()
    atexit.register(listener.stop)
    root = logging.getLogger()
    root.setLevel(level.upper())
    root.addHandler(logging.handlers.QueueHandler(records))
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
