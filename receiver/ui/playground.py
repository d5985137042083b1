"""The mappings playground: a pasted body through the same steps as ingest, stored nowhere.

Parse (as the source's envelope says), redact (credentials and privacy-marked fields),
map with ``pipeline.map_document``: what a delivery with this body would have become,
and the body that would have been kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import msgspec

from ..clock import now_rfc3339
from ..ids import new_id
from ..ingest.endpoint import SECRET_HEADERS, SECRET_QUERY
from ..ingest.envelope import check_content_type, decode_inner, decode_outer
from ..mapping import CompiledMapping
from ..pipeline import map_document
from ..problems import Problem


@dataclass
class Preview:
    status: str
    """accepted, unmapped or rejected (as it would be stored), or refused (nothing stored)."""
    http_status: int
    detail: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[dict[str, str]] = field(default_factory=list)
    unmapped: list[dict[str, Any]] = field(default_factory=list)
    stored_body: str | None = None
    body_format: str = "original"


def parse_headers(text: str) -> dict[str, str]:
    """``Name: value`` lines, names lower-cased as a server sees them."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            out[name.strip().lower()] = value.strip()
    return out


def preview(
    m: CompiledMapping, body: bytes, content_type: str, path: str, query: str, headers: dict[str, str]
) -> Preview:
    routes = {r.path.rstrip("/") or "/": r for r in m.envelope.routes if r.responder == "ingest"}
    sub = "/" + path.strip().strip("/")
    if sub not in routes:
        return Preview("refused", 404, f"{m.source} has no path {sub!r}; it has {', '.join(sorted(routes))}")
    env = m.envelope
    # As at the edge: a credential in the query is never part of the payload.
    query = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in SECRET_QUERY])
    try:
        check_content_type(env, content_type)
    except Problem as p:
        return Preview("refused", p.status, p.detail)
    stored: bytes | None = body
    body_format = "original"
    document: Any = None
    try:
        document = decode_outer(env, body, content_type, query)
        try:
            decode_inner(env, document)
        finally:
            if m.redact(document):
                stored, body_format = msgspec.json.encode(document), "document"
    except Problem as p:
        if document is None and m.has_privacy:
            stored, body_format = None, "withheld"
        return Preview(
            "rejected",
            p.status,
            p.detail,
            reasons=[{"path": e.path, "message": e.message} for e in p.errors],
            stored_body=None if stored is None else stored.decode("utf-8", "replace"),
            body_format=body_format,
        )
    seen = {k: v for k, v in headers.items() if k not in SECRET_HEADERS}
    if content_type:
        seen["content-type"] = content_type
    mapped = map_document(m, document, seen, sub, now_rfc3339(), new_id())
    answer = routes[sub].answer
    status = 202 if answer.style == "standard" else 200  # vendor-compatible routes answer 200
    if mapped.status == "rejected":
        status = answer.invalid_status
    return Preview(
        mapped.status,
        status,
        "the body breaks the vendor's documented constraints" if mapped.status == "rejected" else "",
        events=[msgspec.to_builtins(e) for e in mapped.events],
        reasons=[{"path": e.path, "message": e.message} for e in mapped.reasons],
        unmapped=mapped.unmapped,
        stored_body=None if stored is None else stored.decode("utf-8", "replace"),
        body_format=body_format,
    )
