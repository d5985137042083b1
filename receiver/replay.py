"""Run stored deliveries through today's mappings again (docs/read-api.md).

The stored body is what the first run mapped (credentials and privacy-marked fields
already removed), so a replay sees exactly that; the writer replaces the events an
earlier run produced instead of adding to them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import msgspec

from .ingest.envelope import decode_inner, decode_outer
from .mapping import CompiledMapping
from .pipeline import map_document
from .problems import FieldError, Problem
from .store.base import Delivery, WriteRequest, WriteResult
from .writer import Writer


class ReplayResult(msgspec.Struct):
    delivery_id: str
    status: str
    events: list[dict[str, str]] = []
    reasons: list[FieldError] = []


def _document(m: CompiledMapping, row: Any) -> Any:
    if row["body_format"] == "withheld" or row["body"] is None:
        raise Problem(
            400,
            "Bad Request",
            "the body was withheld (privacy) and cannot be replayed",
            [FieldError("", "body withheld")],
        )
    body = bytes(row["body"])
    if row["body_format"] == "document":
        return msgspec.json.decode(body)
    query = urlencode(list(msgspec.json.decode(row["query"]).items()))
    doc = decode_outer(m.envelope, body, row["content_type"], query)
    decode_inner(m.envelope, doc)
    m.redact(doc)
    return doc


async def replay_delivery(mappings: dict[str, CompiledMapping], writer: Writer, row: Any) -> ReplayResult:
    m = mappings.get(row["source"])
    if m is None:
        return ReplayResult(
            row["id"], row["status"], reasons=[FieldError("", "no mapping for this source now")]
        )
    delivery = Delivery(
        id=row["id"],
        source=row["source"],
        received_at=row["received_at"],
        method=row["method"],
        path=row["path"],
        content_type=row["content_type"],
        query={},
        headers={},
        body=None,
        body_format=row["body_format"],
        status="rejected",
        mapping=m.name,
    )
    try:
        document = _document(m, row)
    except Problem as p:
        delivery.reasons = p.errors
        await writer.submit(WriteRequest(delivery=delivery, replace=True))
        return ReplayResult(row["id"], "rejected", reasons=p.errors)
    headers = msgspec.json.decode(row["headers"])
    mapped = map_document(m, document, headers, row["path"], row["received_at"], row["id"])
    delivery.status = mapped.status
    delivery.reasons = mapped.reasons
    result: WriteResult = await writer.submit(
        WriteRequest(delivery=delivery, events=mapped.events, identities=mapped.identities, replace=True)
    )
    return ReplayResult(
        result.delivery_id,
        mapped.status,
        events=[{"id": e.id, "type": e.type} for e in mapped.events],
        reasons=mapped.reasons,
    )
