"""The OpenAPI document of the whole HTTP API, built from the loaded mappings."""

from __future__ import annotations

from typing import Any

import msgspec

from .mapping import CompiledMapping
from .store.base import Erasure

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _resp(
    description: str, schema: dict[str, Any] | None = None, media: str = "application/json"
) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    return out


def _problem(description: str) -> dict[str, Any]:
    return _resp(description, _PROBLEM, "application/problem+json")


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema or {"type": "string"}}


def _id(what: str) -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": f"the {what} id",
        "schema": {"type": "string"},
    }


_PAGING = [
    _q("limit", "page size, 1..1000 (default 100)", {"type": "integer", "minimum": 1, "maximum": 1000}),
    _q("cursor", "next_cursor of the previous page"),
]
_LIST = _resp("a page: {data, next_cursor}; or every match as NDJSON / CSV by Accept header")
_LIST["content"] = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {
                "data": {"type": "array", "items": {"type": "object"}},
                "next_cursor": {"type": ["string", "null"]},
            },
        }
    },
    "application/x-ndjson": {"schema": {"type": "string"}},
    "text/csv": {"schema": {"type": "string"}},
}
_SECURED: dict[str, Any] = {"security": [{"bearer": []}]}
_ERASURE = {"$ref": "#/components/schemas/Erasure"}


def read_api_paths() -> dict[str, Any]:
    """``/v1``: every route with its parameters (docs/read-api.md)."""
    event_filters = [
        _q("source", "kartra, convead, croct, affitor, …"),
        _q("type", "canonical type, e.g. order.placed"),
        _q("lead_id", "events of this lead (merged-away ids resolve)"),
        _q("since", "received_at >= (RFC 3339)", {"type": "string", "format": "date-time"}),
        _q("until", "received_at < (RFC 3339)", {"type": "string", "format": "date-time"}),
    ]
    unauthorized = _problem("missing or wrong API key")
    bad = _problem("a query parameter is invalid (named in errors[].path)")
    missing = _problem("not found")
    return {
        "/v1/events": {
            "get": {
                **_SECURED,
                "summary": "events, newest first",
                "parameters": event_filters + _PAGING,
                "responses": {"200": _LIST, "400": bad, "401": unauthorized},
            }
        },
        "/v1/events/{id}": {
            "get": {
                **_SECURED,
                "summary": "one event",
                "parameters": [_id("event")],
                "responses": {"200": _resp("the event"), "401": unauthorized, "404": missing},
            }
        },
        "/v1/leads": {
            "get": {
                **_SECURED,
                "summary": "leads, newest first",
                "parameters": [
                    _q("email", "exact email, matched through its hash"),
                    _q("source", "leads seen from this source"),
                    _q(
                        "updated_since", "updated_at >= (RFC 3339)", {"type": "string", "format": "date-time"}
                    ),
                    *_PAGING,
                ],
                "responses": {"200": _LIST, "400": bad, "401": unauthorized},
            }
        },
        "/v1/leads/{id}": {
            "get": {
                **_SECURED,
                "summary": "one lead (a merged-away id answers the surviving lead)",
                "parameters": [_id("lead")],
                "responses": {"200": _resp("the lead"), "401": unauthorized, "404": missing},
            },
            "delete": {
                **_SECURED,
                "summary": "erase the lead, its merged ids, its events and every delivery that names it",
                "parameters": [_id("lead")],
                "responses": {
                    "200": _resp("erased and purged from the files (see caveat)", _ERASURE),
                    "202": _resp("erased; the files still hold old copies, purged as soon as possible"
                                 " (poll Location)", _ERASURE),
                    "401": unauthorized,
                    "404": missing,
                    "503": _problem("storage unavailable (Retry-After)"),
                },
            },
        },
        "/v1/erasures/{id}": {
            "get": {
                **_SECURED,
                "summary": "one erasure: pending or complete, and what it removed (counts)",
                "parameters": [_id("erasure")],
                "responses": {"200": _resp("the erasure", _ERASURE), "401": unauthorized, "404": missing},
            }
        },
        "/v1/leads/{id}/events": {
            "get": {
                **_SECURED,
                "summary": "a lead's timeline, newest first",
                "parameters": [_id("lead"), *event_filters[:2], *event_filters[3:], *_PAGING],
                "responses": {"200": _LIST, "401": unauthorized, "404": missing},
            }
        },
        "/v1/deliveries": {
            "get": {
                **_SECURED,
                "summary": "the raw delivery log, newest first",
                "parameters": [
                    _q("status", "accepted, unmapped or rejected"),
                    _q("source", "source name"),
                    *_PAGING,
                ],
                "responses": {"200": _LIST, "400": bad, "401": unauthorized},
            }
        },
        "/v1/deliveries/{id}": {
            "get": {
                **_SECURED,
                "summary": "one delivery: body (as redacted), headers (credentials removed), reasons, events",
                "parameters": [_id("delivery")],
                "responses": {"200": _resp("the delivery"), "401": unauthorized, "404": missing},
            }
        },
        "/v1/deliveries/{id}/replay": {
            "post": {
                **_SECURED,
                "summary": "map one delivery again (replaces its events)",
                "parameters": [_id("delivery")],
                "responses": {"200": _resp("the new outcome"), "401": unauthorized, "404": missing},
            }
        },
        "/v1/replay": {
            "post": {
                **_SECURED,
                "summary": "map every matching delivery again",
                "parameters": [_q("status", "accepted, unmapped or rejected"), _q("source", "source name")],
                "responses": {"200": _resp("{replayed, by_status, events}"), "400": bad, "401": unauthorized},
            }
        },
    }


_, _ERASURE_SCHEMAS = msgspec.json.schema_components([Erasure], ref_template="#/components/schemas/{name}")


def build_openapi(
    mappings: dict[str, CompiledMapping], extra_paths: dict[str, Any] | None = None
) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name, m in sorted(mappings.items()):
        cred = m.envelope.credential
        for route in m.envelope.routes:
            url = f"/hooks/{name}" + ("" if route.path in ("", "/") else route.path)
            ops: dict[str, Any] = {}
            for method in route.methods:
                if route.responder == "client_id":
                    ops[method.lower()] = {
                        "summary": f"{name}: a new anonymous client id (echoes ?cid=)",
                        "parameters": [{"name": "cid", "in": "query", "schema": {"type": "string"}}],
                        "responses": {"200": _resp("32 hex characters", {"type": "string"}, "text/plain")},
                    }
                    continue
                ok = "200" if route.answer.style != "standard" else "202"
                ops[method.lower()] = {
                    "summary": f"{name}: ingest a delivery ({m.envelope.body} body)",
                    "description": f"Credential: {', '.join(cred.locations)} equals {cred.setting}.",
                    "parameters": [
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
                        {"name": "webhook-id", "in": "header", "schema": {"type": "string"}},
                    ],
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {}},
                            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                        }
                    },
                    "responses": {
                        ok: _resp("stored (accepted or unmapped)", {"$ref": "#/components/schemas/Accepted"}),
                        "200": _resp("stored, or a duplicate of an earlier delivery"),
                        "400": _problem("the body cannot be parsed"),
                        "401": _problem("missing or wrong credential"),
                        "413": _problem("body over the limit"),
                        "415": _problem("content type cannot carry the payload"),
                        "422": _problem("breaks the vendor's documented constraints"),
                        "503": _problem("storage unavailable or overloaded; see Retry-After"),
                    },
                }
            paths[url] = ops
    paths["/healthz"] = {"get": {"summary": "process up", "responses": {"200": _resp("ok")}}}
    paths["/readyz"] = {
        "get": {
            "summary": "storage writable",
            "responses": {"200": _resp("ready"), "503": _problem("not ready")},
        }
    }
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics",
            "responses": {"200": _resp("text format", {"type": "string"}, "text/plain")},
        }
    }
    paths["/openapi.json"] = {"get": {"summary": "this document", "responses": {"200": _resp("OpenAPI 3.1")}}}
    paths.update(read_api_paths())
    paths.update(extra_paths or {})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "receiver",
            "version": "0.1.0",
            "description": "Webhook receiver and normalizer for marketing platforms.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                            },
                        },
                    },
                },
                **_ERASURE_SCHEMAS,
                "Accepted": {
                    "type": "object",
                    "properties": {
                        "delivery_id": {"type": "string"},
                        "status": {"type": "string", "enum": ["accepted", "unmapped", "duplicate"]},
                        "events": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"id": {"type": "string"}, "type": {"type": "string"}},
                            },
                        },
                    },
                },
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
