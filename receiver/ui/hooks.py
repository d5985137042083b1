"""How a vendor reaches ``/hooks/{source}``: the URL to paste, and a delivery as curl.

Secrets appear only where the marketer asks for them (the overview's reveal); a
delivery copied as curl names the environment variable instead of the secret.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..mapping import CompiledMapping
from .describe import locations

#: Headers a client sets for itself: copying them would only get in the way.
_OWN_HEADERS = frozenset({"host", "content-length", "connection", "accept-encoding", "transfer-encoding"})


@dataclass(frozen=True)
class WebhookURL:
    source: str
    url: str
    """Without the secret."""
    setting: str
    placement: str
    """Where the secret goes: ``query``, ``header``, ``bearer`` or ``field``."""
    name: str
    """The query parameter, header or field that carries it."""
    secret: str

    @property
    def paste(self) -> str:
        """What to paste into the vendor: the URL, with the secret when it rides in it."""
        if self.placement == "query":
            return f"{self.url}?{urlencode({self.name: self.secret})}"
        return self.url


def _credential(m: CompiledMapping, usable: tuple[str, ...]) -> tuple[str, str]:
    for kind, name in locations(m):
        if kind in usable:
            return kind, name
    return "", ""


def webhook_urls(
    mappings: dict[str, CompiledMapping], secrets: dict[str, str], base: str
) -> list[WebhookURL]:
    out = []
    for name, m in sorted(mappings.items()):
        route = next((r for r in m.envelope.routes if r.responder == "ingest"), None)
        path = "" if route is None or route.path in ("", "/") else route.path
        kind, field = _credential(m, ("query", "header", "bearer", "field"))
        setting = m.envelope.credential.setting
        out.append(WebhookURL(name, f"{base}/hooks/{name}{path}", setting, kind, field, secrets[setting]))
    return out


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
