"""A stored delivery as curl: the credential named as ``${RECEIVER_…}``, never the secret."""

from __future__ import annotations

import shlex
from typing import Any
from urllib.parse import urlencode

from ..mapping import CompiledMapping
from .describe import locations

#: Headers a client sets for itself: copying them would only get in the way.
_OWN_HEADERS = frozenset({"host", "content-length", "connection", "accept-encoding", "transfer-encoding"})


def _credential(m: CompiledMapping, usable: tuple[str, ...]) -> tuple[str, str]:
    for kind, name in locations(m):
        if kind in usable:
            return kind, name
    return "", ""


def _dq(text: str, variable: str = "") -> str:
    """``text`` inside shell double quotes, followed by ``${variable}`` left to expand."""
    escaped = "".join("\\" + c if c in '\\"$`' else c for c in text)
    return f'"{escaped}' + ("${" + variable + "}" if variable else "") + '"'


def curl(record: dict[str, Any], m: CompiledMapping | None, base: str) -> str:
    """A stored delivery as a curl command, with the credential as ``${RECEIVER_…}``."""
    path = record["path"] if record["path"] not in ("", "/") else ""
    url = f"{base}/hooks/{record['source']}{path}"
    query = list(record.get("query", {}).items())
    lines = ["curl"]
    if record["method"] != "POST" or record.get("body") is None:
        lines.append(f"-X {shlex.quote(record['method'])}")
    placement, name = _credential(m, ("query", "header", "bearer")) if m else ("", "")
    setting = m.envelope.credential.setting if m else ""
    if query:
        url += "?" + urlencode(query)
    if placement == "query":
        url = _dq(url + ("&" if query else "?") + urlencode({name: ""}), setting)
    else:
        url = shlex.quote(url)
    lines.append(url)
    for key, value in record.get("headers", {}).items():
        if key.lower() in _OWN_HEADERS or key.lower().startswith("x-forwarded-"):
            continue
        lines.append(f"-H {shlex.quote(f'{key}: {value}')}")
    if placement == "header":
        lines.append("-H " + _dq(f"{name}: ", setting))
    elif placement == "bearer":
        lines.append("-H " + _dq("Authorization: Bearer ", setting))
    if record.get("body") is not None:
        lines.append(f"--data-binary {shlex.quote(record['body'])}")
    return " \\\n  ".join(lines)
