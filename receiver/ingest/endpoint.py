"""The ``/hooks/{source}`` edge: every source, every vendor-compatible path.

Order of work for a delivery: find the source and route (404/405), check a credential
carried in the query or headers (401), refuse a content type that cannot carry the
payload (415), read the body under the size limit and the deadline (413/408), decode
it, check a credential carried in the body (401: until a credential is verified,
nothing is stored, whatever else is wrong), cap the events (413), decode JSON-in-a-field
(400), redact, map (422), store through the group-commit writer (503 when it cannot),
answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope

from ..clock import rfc3339_ns
from ..credentials import Credentials, matches
from ..ids import new_id
from ..logs import failure
from ..mapping import CompiledMapping
from ..mapping.spec import Location, Route
from ..metrics import Metrics
from ..pipeline import Mapped, map_document
from ..problems import FieldError, Problem, bounded, unprocessable
from ..responses import problem_response
from ..store.base import Delivery, StorageError, WriteRequest
from ..writer import Overloaded, Writer
from . import answers
from .body import read_body
from .envelope import (
    check_content_type,
    decode_inner,
    decode_outer,
    parse_form,
    withhold_unreadable,
)
from .request import HookRequest, IncomingRequest

log = logging.getLogger("receiver.ingest")

#: Headers never stored, whatever the source: credentials of any kind.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-webhook-token", "x-app-key", "x-app-id"}
)
#: Headers not stored either: hop-by-hop ones say nothing about the delivery, and the
#: forwarding ones hold the sender's IP address (a visitor's, for browser-borne sources).
UNSTORED_HEADERS = frozenset(
    {
        "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect",
        "content-length", "x-forwarded-for", "x-real-ip", "forwarded", "true-client-ip",
        "cf-connecting-ip",
    }
)  # fmt: skip
#: Most headers stored per delivery (their total size is bounded by the header limit).
MAX_STORED_HEADERS = 40
#: Query parameters never stored (docs/webhooks.md: token, app_key).
SECRET_QUERY = frozenset({"token", "app_key", "api_key", "key"})
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
#: Bodies larger than this are parsed and mapped in a worker thread.
OFFLOAD_BYTES = 64 * 1024
#: Longest vendor event type echoed in an answer's ``unmapped`` list.
_SHOWN_TYPE = 100
#: Scope keys read by the access log (see accesslog.py).
SOURCE_KEY = "receiver.source"
DELIVERY_KEY = "receiver.delivery_id"


def unavailable(detail: str) -> Problem:
    return Problem(503, "Service Unavailable", detail, headers={"Retry-After": "1"})


def _describe(location: Location) -> str:
    """Where a credential goes, as a 401 tells the newcomer."""
    kind, name = location.kind, location.name
    if kind == "query":
        return f"query parameter {name}"
    if kind == "header":
        return "header " + "-".join(p.capitalize() for p in name.split("-"))
    if kind == "field":
        return f"body field {name}"
    return "Authorization: Bearer <token>"


def _either(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


class Prepared(msgspec.Struct):
    document: Any
    mapped: Mapped | None
    problem: Problem | None
    """A 400 found after the credential was verified: the delivery is stored as rejected."""


@dataclass
class Source:
    mapping: CompiledMapping
    secret: str
    routes: dict[str, Route]
    dedup_window: int
    query_credentials: list[str]
    header_credentials: list[str]
    bearer: bool
    body_credentials: list[str]
    secret_headers: frozenset[str]
    unstored_headers: frozenset[str]
    """``secret_headers`` and ``UNSTORED_HEADERS``: one lookup per header."""
    secret_query: frozenset[str]
    #: "query parameter token, header X-Webhook-Token or Authorization: Bearer <token>"
    expects: str

    def unauthorized(self, detail: str) -> Problem:
        """401 saying where this source expects its credential; a bearer challenge only
        where a bearer token is accepted."""
        headers = {"WWW-Authenticate": "Bearer"} if self.bearer else {}
        return Problem(401, "Unauthorized", f"{detail}; send it as {self.expects}", headers=headers)


def build_sources(
    mappings: dict[str, CompiledMapping], credentials: Credentials, dedup_default: int
) -> dict[str, Source]:
    out = {}
    for name, m in mappings.items():
        q, h = list(m.credential.query), list(m.credential.header)
        described = [_describe(loc) for loc in m.credential.locations]
        out[name] = Source(
            mapping=m,
            secret=credentials.get(m.credential.setting),
            routes={r.path.rstrip("/") or "/": r for r in m.envelope.routes},
            dedup_window=(
                m.envelope.dedup_window_seconds
                if m.envelope.dedup_window_seconds is not None
                else dedup_default
            ),
            query_credentials=q,
            header_credentials=h,
            bearer=m.credential.bearer,
            body_credentials=list(m.credential.field),
            secret_headers=SECRET_HEADERS | frozenset(h),
            unstored_headers=SECRET_HEADERS | frozenset(h) | UNSTORED_HEADERS,
            secret_query=SECRET_QUERY | frozenset(q),
            expects=_either(described),
        )
    return out


def _split_headers(
    request: IncomingRequest, secret: frozenset[str], unstored: frozenset[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """In one pass: the headers the mapping sees (all but credentials) and those stored
    (no credentials, no hop-by-hop or forwarding ones, at most ``MAX_STORED_HEADERS``, a
    token's signature removed). ``secret`` is part of ``unstored``."""
    seen: dict[str, str] = {}
    stored: dict[str, str] = {}
    full = False
    for k, v in request.headers.items():
        if k in secret:
            continue
        seen[k] = v
        if full or k in unstored:
            continue
        if len(stored) >= MAX_STORED_HEADERS:
            full = True
            continue
        if v.count(".") == 2 and _JWT.match(v):  # keep a token's claims, never a usable token
            v = v.rsplit(".", 1)[0] + ".<signature removed>"
        stored[k] = v
    return seen, stored


def _stored_query(m: CompiledMapping, pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The query as stored: read as a form and redacted by the body's rules (credentials
    out, inside JSON-text fields too; privacy-marked fields hashed, masked or dropped).
    A JSON-text field that cannot be decoded cannot be redacted, so it is not kept."""
    if not pairs:
        return {}
    try:
        doc = parse_form(urlencode(pairs))
    except Problem:
        return {}  # unreadable (the delivery says why, when the query is its payload)
    try:
        decode_inner(m.envelope, doc)
    except Problem:
        withhold_unreadable(m.envelope, doc)
    m.redact(doc)
    return {k: v if isinstance(v, str) else msgspec.json.encode(v).decode() for k, v in doc.items()}


class Ingest:
    def __init__(
        self,
        sources: dict[str, Source],
        writer: Writer,
        metrics: Metrics,
        max_body_bytes: int,
        max_events: int = 100,
        body_timeout: float = 30.0,
    ) -> None:
        self.sources = sources
        self.writer = writer
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.max_events = max_events
        self.body_timeout = body_timeout

    def respond(self, scope: Scope, receive: Receive) -> Coroutine[Any, Any, Response]:
        """The answer to ``/hooks/{source}[/{rest}]``, for ``edge.LeanEdge`` to send (the
        lean path, see app.py)."""
        source, _, rest = scope["path"][7:].partition("/")
        return self.handle(HookRequest(scope, receive, {"source": source, "rest": rest}))

    async def handle(self, request: IncomingRequest) -> Response:
        name = request.path_params["source"]
        source = self.sources.get(name)
        if source is None:
            known = ", ".join(sorted(self.sources))
            return problem_response(Problem(404, "Not Found", f"no such source; the sources are {known}"))
        request.scope[SOURCE_KEY] = name
        sub = "/" + request.path_params.get("rest", "").strip("/")
        route = source.routes.get(sub)
        if route is None:
            paths = ", ".join(sorted(source.routes))
            return problem_response(Problem(404, "Not Found", f"{name} has no such path; it has {paths}"))
        if request.method not in route.methods:
            p = Problem(405, "Method Not Allowed", f"this path accepts {', '.join(route.methods)}")
            p.headers["Allow"] = ", ".join(route.methods)
            return problem_response(p)
        if route.responder == "client_id":
            return self.client_id(request)
        started = time.perf_counter()
        status = "error"
        try:
            response, status = await self.ingest(request, source, route, sub)
        except Problem as p:
            status = {
                401: "unauthorized",
                408: "timeout",
                413: "too_large",
                415: "unsupported",
                503: "unavailable",
            }.get(p.status, str(p.status))
            response = answers.failure(route.answer, p)
        except Exception as e:
            # A bug, not the vendor's fault and not storage trouble: say so (500, which the
            # vendor may retry later) and log where, never what (no body, no message).
            log.error(
                "ingest failed: source=%s delivery=%s %s",
                name,
                request.scope.get(DELIVERY_KEY, "-"),
                failure(e),
            )
            bug = Problem(500, "Internal Server Error", "the delivery could not be handled")
            response = answers.failure(route.answer, bug)
        self.metrics.observe(name, status, time.perf_counter() - started)
        return response

    def client_id(self, request: IncomingRequest) -> Response:
        given = request.query_params.get("cid", "").lower()
        cid = given if _HEX32.match(given) else secrets.token_hex(16)
        return PlainTextResponse(cid, headers={"Cache-Control": "no-store"})

    def _credential(self, request: IncomingRequest, source: Source) -> str | None:
        for q in source.query_credentials:
            v = request.query_params.get(q)
            if v:
                return v
        for h in source.header_credentials:
            v = request.headers.get(h)
            if v:
                return v
        if source.bearer:
            auth = request.headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        return None

    async def ingest(
        self, request: IncomingRequest, source: Source, route: Route, sub: str
    ) -> tuple[Response, str]:
        m = source.mapping
        env = m.envelope
        given = self._credential(request, source)
        if given is not None and not matches(given, source.secret):
            raise source.unauthorized("the credential is not valid")
        if given is None and not source.body_credentials:
            raise source.unauthorized("a credential is required")
        # From here on, with no credential outside the body, every failure is a 401: a
        # delivery whose credential cannot be found or verified is never stored.
        try:
            content_type = request.headers.get("content-type", "")
            check_content_type(env, content_type)
            body = await read_body(request, self.max_body, self.body_timeout)
        except Problem as p:
            if given is None and p.status in (413, 415):
                raise source.unauthorized(f"a credential is required ({p.detail})") from None
            raise
        now = time.time_ns()  # one clock read: the arrival time and the id's
        received_at = rfc3339_ns(now)
        pairs = [(k, v) for k, v in request.query_params.multi_items() if k not in source.secret_query]
        raw_query = urlencode(pairs) if pairs else ""
        headers, stored_headers = _split_headers(request, source.secret_headers, source.unstored_headers)
        fingerprint = hashlib.sha256(f"{sub}?{raw_query}\n".encode())
        fingerprint.update(body)
        delivery = Delivery(
            id=new_id(now),
            source=m.source,
            received_at=received_at,
            method=request.method,
            path=sub,
            content_type=content_type,
            query={},
            headers=stored_headers,
            body=body,
            body_format="original",
            status="rejected",
            idempotency_key=request.headers.get("idempotency-key") or request.headers.get("webhook-id"),
            fingerprint=fingerprint.hexdigest(),
            mapping=m.name,
        )
        args = (source, sub, delivery, content_type, pairs, raw_query, given, headers)
        try:
            # A large body costs tens of milliseconds to parse, check and map: off the event
            # loop, so every other request (and /healthz) keeps its usual latency.
            if len(body) > OFFLOAD_BYTES:
                prepared = await asyncio.to_thread(self._prepare, *args)
            else:
                prepared = self._prepare(*args)
        except Problem:
            raise
        except Exception:
            request.scope[DELIVERY_KEY] = delivery.id  # for the log line of the bug
            raise
        request.scope[DELIVERY_KEY] = delivery.id
        document, mapped = prepared.document, prepared.mapped
        if mapped is None:
            assert prepared.problem is not None
            delivery.reasons = bounded(prepared.problem.errors)
            try:  # the writer's future awaited here: no coroutine of its own per delivery
                await self.writer.enqueue(WriteRequest(delivery=delivery, dedup=False))
            except (Overloaded, StorageError) as e:
                raise _not_stored(e) from None
            return answers.failure(route.answer, prepared.problem), "rejected"
        delivery.status = mapped.status
        delivery.reasons = bounded(mapped.reasons)
        try:
            result = await self.writer.enqueue(
                WriteRequest(
                    delivery=delivery,
                    events=mapped.events,
                    identities=mapped.identities,
                    carried=mapped.carried,
                    dedup_window_seconds=source.dedup_window,
                )
            )
        except (Overloaded, StorageError) as e:
            raise _not_stored(e) from None
        if mapped.status == "rejected":
            problem = unprocessable("the delivery breaks the vendor's documented constraints", mapped.reasons)
            return answers.failure(route.answer, problem), "rejected"
        if result.duplicate:
            request.scope[DELIVERY_KEY] = result.delivery_id
            body_out: dict[str, Any] = {"status": "duplicate", "delivery_id": result.delivery_id}
            return answers.success(route.answer, body_out, True, document), "duplicate"
        body_out = {
            "delivery_id": delivery.id,
            "status": mapped.status,
            "events": [{"id": e.id, "type": e.type} for e in mapped.events],
        }
        if mapped.unmapped:
            body_out["unmapped"] = [_shown_unmapped(u) for u in mapped.unmapped]
        return answers.success(route.answer, body_out, False, document), mapped.status

    def _prepare(
        self,
        source: Source,
        sub: str,
        delivery: Delivery,
        content_type: str,
        pairs: list[tuple[str, str]],
        raw_query: str,
        given: str | None,
        headers: dict[str, str],
    ) -> Prepared:
        """Decode, authenticate what rides in the body, cap, redact, map: plain CPU work,
        run inline or in a worker thread. Raises the problems that store nothing (401,
        413); returns the 400s that are stored as rejected."""
        m = source.mapping
        env = m.envelope
        body = delivery.body or b""
        # What cannot be parsed cannot be redacted: from a source with secrets in its body or
        # privacy-marked fields, an unparseable body is not kept. A source with such fields
        # keeps the parsed, redacted document, never the bytes (a repeated JSON key or an
        # overwritten form field could hide a clear copy of a marked value in them).
        sensitive = m.has_privacy or bool(source.body_credentials)
        try:
            document = decode_outer(env, body, content_type, raw_query)
        except Problem as p:
            if given is None:
                raise source.unauthorized(f"a credential is required ({p.detail})") from None
            if p.status != 400:
                raise  # over a limit: nothing is stored
            if sensitive:
                delivery.body, delivery.body_format = None, "withheld"
            delivery.query = _stored_query(m, pairs)
            return Prepared(None, None, p)
        if given is None:
            found = _body_credential(document, source.body_credentials)
            if found is None:
                raise source.unauthorized("a credential is required")
            if not matches(found, source.secret):
                raise source.unauthorized("the credential is not valid")
        if isinstance(document, list):
            self._cap(len(document))
        delivery.query = _stored_query(m, pairs)
        try:
            decode_inner(env, document)
        except Problem as p:
            if p.status != 400:
                raise
            withhold_unreadable(env, document)
            self._keep_document(m, delivery, document, force=True)
            return Prepared(document, None, p)
        self._keep_document(m, delivery, document, force=m.has_privacy or (env.query_fields and bool(pairs)))
        mapped = map_document(m, document, headers, sub, delivery.received_at, delivery.id)
        return Prepared(document, mapped, None)

    def _cap(self, events: int) -> None:
        if events > self.max_events:
            raise Problem(
                413,
                "Content Too Large",
                f"the delivery holds {events} events; at most {self.max_events} are accepted in one",
                [FieldError("", f"must hold at most {self.max_events} events")],
            )

    @staticmethod
    def _keep_document(m: CompiledMapping, delivery: Delivery, document: Any, force: bool) -> None:
        """Store the parsed document, redacted, instead of the bytes when redaction changed
        it or ``force``: the bytes may hold what the document no longer does (a repeated
        key, a form key overwritten by a later one, the query's payload)."""
        if m.redact(document) or force:
            delivery.body = msgspec.json.encode(document)
            delivery.body_format = "document"


def _not_stored(e: Overloaded | StorageError) -> Problem:
    if isinstance(e, Overloaded):
        return unavailable("the write queue is full; retry shortly")
    return unavailable("storage is unavailable; retry shortly")


def _shown_unmapped(entry: dict[str, Any]) -> dict[str, Any]:
    st = entry.get("source_type")
    if isinstance(st, str) and len(st) > _SHOWN_TYPE:
        return {**entry, "source_type": st[:_SHOWN_TYPE] + "…"}
    return entry


def _body_credential(document: Any, names: list[str]) -> str | None:
    if not isinstance(document, dict):
        return None
    for n in names:
        v = document.get(n)
        if isinstance(v, str) and v:
            return v
    return None
