"""The mapping files as tables, and the playground that maps a pasted body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..mapping import CompiledMapping
from .bodyview import body_view, json_lines
from .describe import MappingView, locations
from .playground import parse_headers, preview
from .session import Session
from .web import UI

CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]


@dataclass
class SourceTable:
    name: str
    mapping: str
    body: str
    json_fields: list[str]
    setting: str
    locations: list[str]
    routes: list[dict[str, Any]]
    types: list[tuple[str, str]]
    private: list[tuple[str, str, str]]


def _where(kind: str, name: str) -> str:
    return {
        "query": f"query parameter {name}",
        "header": f"header {name}",
        "field": f"body field {name}",
        "bearer": "Authorization: Bearer",
    }.get(kind, f"{kind} {name}")


def _table(m: CompiledMapping, view: MappingView) -> SourceTable:
    env = m.envelope
    return SourceTable(
        name=m.source,
        mapping=m.name,
        body={"json": "JSON", "form": "url-encoded form", "json_or_form": "JSON or url-encoded form"}[
            env.body
        ],
        json_fields=list(env.json_fields),
        setting=env.credential.setting,
        locations=[_where(kind, name) for kind, name in locations(m)],
        routes=[
            {
                "path": r.path,
                "methods": ", ".join(r.methods),
                "source_type": r.source_type or "",
                "ingest": r.responder == "ingest",
                "answers": {"standard": "202 JSON", "ok": "200 JSON", "success_flag": "vendor shape"}[
                    r.answer.style
                ]
                if r.responder == "ingest"
                else "a new client id",
            }
            for r in env.routes
        ],
        types=view.types,
        private=view.private,
    )


def _context(ui: UI, form: dict[str, str], result: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "title": "Mappings",
        "nav": "mappings",
        "tables": [_table(ui.mappings[s], ui.described[s]) for s in ui.sources],
        "content_types": CONTENT_TYPES,
        "paths": sorted(
            {r.path for m in ui.mappings.values() for r in m.envelope.routes if r.responder == "ingest"}
        ),
        "form": {
            "source": ui.sources[0],
            "path": "/",
            "content_type": "application/json",
            "headers": "",
            "query": "",
            "body": "",
            **form,
        },
        "result": result,
    }


async def mappings(ui: UI, request: Request, session: Session) -> Response:
    return ui.render(request, "mappings.html", _context(ui, {}, None), session)


async def playground(ui: UI, request: Request, session: Session) -> Response:
    form = await ui.form(request)
    kept = {k: form.get(k, "") for k in ("source", "path", "content_type", "headers", "query", "body")}
    m = ui.mappings.get(kept["source"])
    if m is None:
        result: dict[str, Any] = {"error": f"source must be one of {', '.join(ui.sources)}"}
        return ui.render(request, "mappings.html", _context(ui, kept, result), session, 400)
    body = kept["body"].replace("\r\n", "\n").encode("utf-8")
    if len(body) > ui.max_body:
        result = {"error": f"the body exceeds the limit of {ui.max_body} bytes (413 at the edge)"}
        return ui.render(request, "mappings.html", _context(ui, kept, result), session, 400)
    p = preview(
        m, body, kept["content_type"], kept["path"] or "/", kept["query"], parse_headers(kept["headers"])
    )
    view = body_view(p.stored_body, p.body_format, m.envelope, ui.event_roots(m.source), p.reasons)
    events = []
    for e in p.events:
        lines, _ = json_lines(e)
        events.append({"type": e["type"], "source_type": e["source_type"], "lines": lines})
    result = {"error": "", "preview": p, "view": view, "events": events}
    return ui.render(request, "mappings.html", _context(ui, kept, result), session)
