"""The OpenAPI 3.1 document of the whole HTTP API.

Schemas are generated from msgspec Structs (``msgspec.json.schema_components``): the
canonical event and the replay result as the service encodes them, and the Structs below
for the answers it writes as plain objects. The ``/hooks`` operations are generated from
each mapping's plan: its routes, methods, body formats, credential locations and answer
style. The read API is the table at the end.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

import msgspec

from .events import Event, EventType
from .mapping import CompiledMapping
from .mapping.spec import Answer, Route
from .problems import FieldError
from .replay import ReplayResult
from .store.base import Erasure
from .store.reads import LeadRecord

T = TypeVar("T")


class ProblemDetails(msgspec.Struct):
    """An error answer (RFC 9457), as ``application/problem+json``."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError]
    """Every offending field, as a JSON Pointer into the event as the vendor documents it."""


class EventRef(msgspec.Struct):
    id: str
    type: str


class UnmappedItem(msgspec.Struct):
    index: int
    source_type: str | None


class Accepted(msgspec.Struct):
    """A stored delivery: its events, or the items whose type has no mapping yet."""

    delivery_id: str
    status: Literal["accepted", "unmapped"]
    events: list[EventRef]
    unmapped: list[UnmappedItem] = []


class Duplicate(msgspec.Struct):
    """The same delivery again: nothing new was stored."""

    status: Literal["duplicate"]
    delivery_id: str


class SuccessFlag(msgspec.Struct):
    """A vendor's own success answer; the route's ``echo`` fields are copied from the body."""

    success: Literal[True]
    message: str


class FailureFlag(msgspec.Struct):
    """A vendor's own error answer."""

    success: Literal[False]
    error: str
    errors: list[FieldError]


class Page(msgspec.Struct, Generic[T]):
    """One page, newest first; ``next_cursor`` is the ``cursor`` of the next page."""

    data: list[T]
    next_cursor: str | None


class DeliverySummary(msgspec.Struct):
    """A request a vendor sent, as logged."""

    id: str
    source: str
    received_at: str
    method: str
    path: str
    content_type: str
    status: Literal["accepted", "unmapped", "rejected"]
    idempotency_key: str | None
    mapping: str | None
    body_format: Literal["original", "document", "withheld"]
    reasons: list[FieldError]


class Delivery(DeliverySummary):
    """One delivery with its body (as redacted), headers (credentials removed) and events."""

    query: dict[str, str]
    headers: dict[str, str]
    body: str | None
    events: list[EventRef]


class ReplaySummary(msgspec.Struct):
    replayed: int
    by_status: dict[str, int]
    events: int


SCHEMAS: list[Any] = [
    ProblemDetails,
    Accepted,
    Duplicate,
    SuccessFlag,
    FailureFlag,
    Event,
    Page[Event],
    LeadRecord,
    Page[LeadRecord],
    Delivery,
    Page[DeliverySummary],
    ReplayResult,
    ReplaySummary,
    Erasure,
]


REFS, COMPONENTS = msgspec.json.schema_components(SCHEMAS, ref_template="#/components/schemas/{name}")
SCHEMA = {ref["$ref"].rsplit("/", 1)[1]: ref for ref in REFS}
"""Schema references by component name (``Page_Event_`` for ``Page[Event]``)."""


def _content(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": schema}}


def _response(
    description: str, schema: dict[str, Any] | None = None, media: str = "application/json"
) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = _content(schema, media)
    return out


def _problem(description: str) -> dict[str, Any]:
    return _response(description, SCHEMA["ProblemDetails"], "application/problem+json")


# -- /hooks, from the mappings ------------------------------------------------------------

_ERRORS = {
    "400": "the body cannot be parsed (bad JSON or form, a JSON-text field that is not JSON, not UTF-8)",
    "401": "missing or wrong credential",
    "413": "body over the size limit",
    "415": "the content type cannot carry the payload",
    "422": "breaks the vendor's documented constraints (every offending field is listed)",
    "503": "storage unavailable or overloaded; retry after Retry-After seconds",
}


_STORED = "stored (accepted, or unmapped: replayable once its type is mapped)"

#: Answers of the edge, before any route's own work: any operation may get them.
_EDGE = {
    "408": "the headers (or a delivery's body) did not arrive in time; the connection is closed",
    "431": "the request line and headers are over RECEIVER_MAX_HEADER_BYTES",
}


def _answers(answer: Answer) -> dict[str, Any]:
    """The responses of an ingest route, by its answer style."""
    out: dict[str, Any]
    if answer.style == "success_flag":
        out = {"200": _response("tracked, or a duplicate of an earlier delivery", SCHEMA["SuccessFlag"])}
    elif answer.style == "ok":
        either = {"oneOf": [SCHEMA["Accepted"], SCHEMA["Duplicate"]]}
        out = {"200": _response(f"{_STORED}, or a duplicate of an earlier delivery", either)}
    else:
        out = {
            "202": _response(_STORED, SCHEMA["Accepted"]),
            "200": _response("a duplicate of an earlier delivery", SCHEMA["Duplicate"]),
        }
    errors = dict(_ERRORS)
    invalid = str(answer.invalid_status)
    if invalid != "422":
        errors[invalid] = f"{errors.get(invalid, 'rejected')}; or {errors.pop('422')}"
    for status, description in sorted(errors.items()):
        if answer.style == "success_flag":
            out[status] = _response(description, SCHEMA["FailureFlag"])
        else:
            out[status] = _problem(description)
    if answer.style == "success_flag":
        # A slow body is the route's answer; slow headers are the edge's, before any route.
        timeout = _response(_EDGE["408"], SCHEMA["FailureFlag"])
        timeout["content"].update(_content(SCHEMA["ProblemDetails"], "application/problem+json"))
        out["408"] = timeout
    return out


def _security(m: CompiledMapping) -> list[dict[str, list[str]]]:
    alternatives: list[dict[str, list[str]]] = [
        {_scheme_name(m.source, str(loc)): []} for loc in m.credential.locations if loc.kind != "field"
    ]
    if m.credential.field:
        alternatives.append({})  # the credential may ride in the body instead
    return alternatives


def _scheme_name(source: str, location: str) -> str:
    return f"{source}_" + "".join(c if c.isalnum() else "_" for c in location)


def security_schemes(mappings: dict[str, CompiledMapping]) -> dict[str, Any]:
    schemes: dict[str, Any] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "RECEIVER_API_KEY"}
    }
    for name, m in sorted(mappings.items()):
        for loc in m.credential.locations:
            description = f"equals {m.credential.setting}"
            if loc.kind == "bearer":
                scheme: dict[str, Any] = {"type": "http", "scheme": "bearer"}
            elif loc.kind in ("query", "header"):
                scheme = {"type": "apiKey", "in": loc.kind, "name": loc.name}
            else:
                continue
            schemes[_scheme_name(name, str(loc))] = {**scheme, "description": description}
    return schemes


def _body(m: CompiledMapping) -> dict[str, Any]:
    document: dict[str, Any] = {"type": "object"}
    if m.batch:
        document = {"oneOf": [document, {"type": "array", "items": {"type": "object"}}]}
    content: dict[str, Any] = {}
    if m.envelope.body in ("json", "json_or_form"):
        content["application/json"] = {"schema": document}
    if m.envelope.body in ("form", "json_or_form"):
        content["application/x-www-form-urlencoded"] = {"schema": {"type": "object"}}
    note = ""
    if m.envelope.body == "json_or_form":
        note = " The body decides between JSON and a form, whatever its Content-Type says."
    if m.envelope.json_fields:
        note += f" Fields holding JSON text: {', '.join(m.envelope.json_fields)}."
    return {"description": f"The vendor's {m.envelope.body} body.{note}", "content": content}


def _operation(name: str, m: CompiledMapping, route: Route, method: str) -> dict[str, Any]:
    slug = "".join(c if c.isalnum() else "_" for c in route.path).strip("_") or "root"
    op: dict[str, Any] = {"operationId": f"{name}_{method.lower()}_{slug}", "tags": [f"hooks: {name}"]}
    if route.responder == "client_id":
        return {
            **op,
            "summary": f"{name}: a new anonymous client id (echoes a valid ?cid=)",
            "security": [],
            "parameters": [{"name": "cid", "in": "query", "schema": {"type": "string"}}],
            "responses": {
                "200": _response(
                    "32 hex characters", {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "text/plain"
                )
            },
        }
    what = (
        f"events of type {route.source_type}" if route.source_type else f"{len(m.source_types)} event types"
    )
    credential = ", ".join(map(str, m.credential.locations))
    op.update(
        summary=f"{name}: ingest a delivery ({what})",
        description=f"Mapping {m.name}. Credential ({credential}) equals {m.credential.setting}.",
        security=_security(m),
        parameters=[
            {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
            {"name": "webhook-id", "in": "header", "schema": {"type": "string"}},
        ],
        responses=_answers(route.answer),
    )
    if method != "GET":
        op["requestBody"] = _body(m)
    return op


def hook_paths(mappings: dict[str, CompiledMapping]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name, m in sorted(mappings.items()):
        for route in m.envelope.routes:
            url = f"/hooks/{name}" + ("" if route.path in ("", "/") else "/" + route.path.strip("/"))
            paths[url] = {method.lower(): _operation(name, m, route, method) for method in route.methods}
    return paths


# -- the read API ----------------------------------------------------------------------------


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A query parameter; an empty value is the same as none (``?until=`` filters nothing)."""
    if schema is None:
        schema = {"type": "string"}
    elif "enum" in schema:
        schema = {"enum": [*schema["enum"], ""]}
    else:
        schema = {"anyOf": [schema, {"const": ""}]}
    return {"name": name, "in": "query", "description": description, "schema": schema}


def _id(what: str) -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": f"the {what} id",
        "schema": {"type": "string"},
    }


_TIME = {"type": "string", "format": "date-time"}
_PAGING = [
    _query("limit", "page size, 1..1000 (default 100)", {"type": "integer", "minimum": 1, "maximum": 1000}),
    _query("cursor", "next_cursor of the previous page"),
]
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_STATUS = _query("status", "accepted, unmapped or rejected", {"enum": ["accepted", "unmapped", "rejected"]})


def _event_filters(sources: list[str]) -> list[dict[str, Any]]:
    return [
        _query("source", "a source name", {"enum": sources}),
        _query("type", "canonical type, e.g. order.placed", {"enum": [t.value for t in EventType]}),
        _query("since", "received_at >= (RFC 3339)", _TIME),
        _query("until", "received_at < (RFC 3339)", _TIME),
    ]


def _listing(page: str) -> dict[str, Any]:
    return {
        "description": "a page; or every match as NDJSON / CSV (by the Accept header)",
        "content": {
            "application/json": {"schema": SCHEMA[page]},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }


def read_api_paths(sources: list[str], destinations: list[str]) -> dict[str, Any]:
    """``/v1``: every route with its parameters (docs/read-api.md). Parameters that name a
    source or destination list the configured ones: any other is a 400."""
    source = _query("source", "a source name", {"enum": sources})
    event_filters = _event_filters(sources)
    unauthorized = _problem("missing or wrong API key")
    bad = _problem("a query parameter is invalid (named in errors[].path)")
    missing = _problem("not found")
    erased = _response("erased, and purged from the store's files (see caveat)", SCHEMA["Erasure"])

    unavailable = _problem("storage unavailable; retry after Retry-After seconds")

    def op(summary: str, parameters: list[Any], ok: tuple[str, Any], *more: str) -> dict[str, Any]:
        # Every call refuses unknown or repeated query parameters (400), whatever it declares.
        responses = {ok[0]: ok[1], "400": bad, "401": unauthorized, "503": unavailable}
        for status in more:
            if status != "400":
                responses[status] = missing
        return {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": parameters,
            "responses": responses,
        }

    return {
        "/v1/events": {
            "get": op(
                "events, newest first",
                [
                    *event_filters,
                    _query("lead_id", "events of this lead (merged-away ids resolve)"),
                    *_PAGING,
                ],
                ("200", _listing("Page_Event_")),
                "400",
            )
        },
        "/v1/events/{id}": {
            "get": op("one event", [_id("event")], ("200", _response("the event", SCHEMA["Event"])), "404")
        },
        "/v1/leads": {
            "get": op(
                "leads, newest first",
                [
                    _query("email", "exact email, matched through its hash"),
                    _query("source", "leads seen from this source", {"enum": sources}),
                    _query("updated_since", "updated_at >= (RFC 3339)", _TIME),
                    *_PAGING,
                ],
                ("200", _listing("Page_LeadRecord_")),
                "400",
            )
        },
        "/v1/leads/{id}": {
            "get": op(
                "one lead (a merged-away id answers the surviving lead)",
                [_id("lead")],
                ("200", _response("the lead", SCHEMA["LeadRecord"])),
                "404",
            ),
            "delete": {
                **op(
                    "erase the person: the lead, its merged ids, its identities, every delivery"
                    " naming them and their events",
                    [_id("lead")],
                    ("200", erased),
                ),
                "responses": {
                    "200": erased,
                    "202": _response(
                        "erased; old copies are still being purged from the files (follow Location)",
                        SCHEMA["Erasure"],
                    ),
                    "400": bad,
                    "401": unauthorized,
                    "404": missing,
                    "503": _problem("storage unavailable; nothing was erased (Retry-After)"),
                },
            },
        },
        "/v1/erasures/{id}": {
            "get": op(
                "one erasure: pending or complete, and what it removed (counts; it names nobody)",
                [_id("erasure")],
                ("200", _response("the erasure", SCHEMA["Erasure"])),
                "404",
            )
        },
        "/v1/leads/{id}/events": {
            "get": op(
                "a lead's timeline, newest first",
                [_id("lead"), *event_filters, *_PAGING],
                ("200", _listing("Page_Event_")),
                "400",
                "404",
            )
        },
        "/v1/deliveries": {
            "get": op(
                "the raw delivery log, newest first",
                [_STATUS, source, *_PAGING],
                ("200", _listing("Page_DeliverySummary_")),
                "400",
            )
        },
        "/v1/deliveries/{id}": {
            "get": op(
                "one delivery: body (as redacted), headers (credentials removed), reasons, events",
                [_id("delivery")],
                ("200", _response("the delivery", SCHEMA["Delivery"])),
                "404",
            )
        },
        "/v1/deliveries/{id}/replay": {
            "post": op(
                "map one delivery again (its events are replaced)",
                [_id("delivery")],
                ("200", _response("the new outcome", SCHEMA["ReplayResult"])),
                "404",
            )
        },
        "/v1/replay": {
            "post": op(
                "map every matching delivery again",
                [_STATUS, source],
                ("200", _response("how many, by status", SCHEMA["ReplaySummary"])),
                "400",
            )
        },
        # -- forwarding (docs/forwarding.md) --
        "/v1/destinations": {
            "get": op(
                "the configured destinations: messages by state, oldest pending age, circuit",
                [],
                ("200", _response("{data: [destination]}")),
                "404",  # no destinations are configured
            )
        },
        "/v1/destinations/{name}/retry-failed": {
            "post": op(
                "send every failed message of the destination again (fresh max_age)",
                [_NAME],
                ("200", _response("{destination, retried}")),
                "404",
            )
        },
        "/v1/destinations/{name}/enable": {
            "post": op(
                "re-enable a destination that answered 410 Gone; its pending messages are due now",
                [_NAME],
                ("200", _response("the destination")),
                "404",
            )
        },
        "/v1/messages": {
            "get": op(
                "forwarded messages with every attempt, newest first",
                [
                    _query("destination", "a configured destination name", {"enum": destinations}),
                    _query(
                        "state", "pending, delivered or failed", {"enum": ["pending", "delivered", "failed"]}
                    ),
                    _query("event_id", "messages of this event"),
                    *_PAGING,
                ],
                ("200", _response("a page: {data, next_cursor}")),
                "404",  # no destinations are configured
            )
        },
        "/v1/messages/{id}": {
            "get": op(
                "one message with its attempts", [_id("message")], ("200", _response("the message")), "404"
            )
        },
        "/v1/messages/{id}/retry": {
            "post": {
                **op(
                    "send a failed (or waiting) message now, with a fresh max_age",
                    [_id("message")],
                    ("200", _response("the message")),
                    "404",
                ),
            }
        },
    }


def build_openapi(
    mappings: dict[str, CompiledMapping], version: str = "0+unknown", destinations: list[str] | None = None
) -> dict[str, Any]:
    paths = hook_paths(mappings)
    paths["/healthz"] = {
        "get": {"summary": "process up", "security": [], "responses": {"200": _response("ok")}}
    }
    paths["/readyz"] = {
        "get": {
            "summary": "a real write succeeded just now (answers within a second)",
            "security": [],
            "responses": {"200": _response("ready"), "503": _problem("not writable (Retry-After)")},
        }
    }
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics",
            "security": [],
            "responses": {"200": _response("text format", {"type": "string"}, "text/plain")},
        }
    }
    paths["/openapi.json"] = {
        "get": {"summary": "this document", "security": [], "responses": {"200": _response("OpenAPI 3.1")}}
    }
    paths.update(read_api_paths(sorted(mappings), sorted(destinations or [])))
    for item in paths.values():
        for operation in item.values():
            for status, description in _EDGE.items():
                operation["responses"].setdefault(status, _problem(description))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "receiver",
            "version": version,
            "description": "Webhook receiver and normalizer for marketing platforms.",
        },
        "paths": paths,
        "components": {"schemas": COMPONENTS, "securitySchemes": security_schemes(mappings)},
    }
