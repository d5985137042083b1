"""The OpenAPI document of the whole HTTP API, built from the loaded mappings."""

from __future__ import annotations

from typing import Any

from .mapping import CompiledMapping

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
