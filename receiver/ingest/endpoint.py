"""The ``/hooks/{source}`` edge: every source, every vendor-compatible path.

Order of work for a delivery: find the source and route (404/405), check a credential
carried in the query or headers (401), refuse a content type that cannot carry the
payload (415), read the body under the limit (413), decode it, check a credential
carried in the body, decode JSON-in-a-field (400), redact, map (422), store through
the group-commit writer (503 when it cannot), answer.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..clock import now_rfc3339
from ..credentials import Credentials, matches
from ..ids import new_id
from ..mapping import CompiledMapping
from ..mapping.spec import Route
from ..metrics import Metrics
from ..pipeline import map_document
from ..problems import Problem, unprocessable
from ..responses import problem_response
from ..store.base import Delivery, StorageError, WriteRequest
from ..writer import Overloaded, Writer
from . import answers
from .body import read_body
from .envelope import check_content_type, decode_inner, decode_outer

#: Headers never stored, whatever the source: credentials of any kind.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-webhook-token", "x-app-key", "x-app-id"}
)
#: Query parameters never stored (docs/webhooks.md: token, app_key).
SECRET_QUERY = frozenset({"token", "app_key", "api_key", "key"})
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def unavailable(detail: str) -> Problem:
    return Problem(503, "Service Unavailable", detail, headers={"Retry-After": "1"})


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
    secret_query: frozenset[str]


def build_sources(
    mappings: dict[str, CompiledMapping], credentials: Credentials, dedup_default: int
) -> dict[str, Source]:
    out = {}
    for name, m in mappings.items():
        q, h = list(m.credential.query), list(m.credential.header)
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
            secret_query=SECRET_QUERY | frozenset(q),
        )
    return out


def _stored_headers(request: Request, secret: frozenset[str]) -> dict[str, str]:
    out = {}
    for k, v in request.headers.items():
        if k in secret:
            continue
        if _JWT.match(v):  # keep a token's claims, never a usable token
            v = v.rsplit(".", 1)[0] + ".<signature removed>"
        out[k] = v
    return out


class Ingest:
    def __init__(
        self, sources: dict[str, Source], writer: Writer, metrics: Metrics, max_body_bytes: int
    ) -> None:
        self.sources = sources
        self.writer = writer
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def handle(self, request: Request) -> Response:
        name = request.path_params["source"]
        source = self.sources.get(name)
        if source is None:
            return problem_response(Problem(404, "Not Found", f"no source named {name!r}"))
        sub = "/" + request.path_params.get("rest", "").strip("/")
        route = source.routes.get(sub)
        if route is None:
            return problem_response(Problem(404, "Not Found", f"{name} has no path {sub!r}"))
        if request.method not in route.methods:
            p = Problem(405, "Method Not Allowed", f"{sub} accepts {', '.join(route.methods)}")
            p.headers["Allow"] = ", ".join(route.methods)
            return problem_response(p)
        if route.responder == "client_id":
            return self.client_id(request)
        started = time.perf_counter()
        status = "error"
        try:
            response, status = await self.ingest(request, source, route, sub)
        except Problem as p:
            status = {401: "unauthorized", 413: "too_large", 415: "unsupported", 503: "unavailable"}.get(
                p.status, str(p.status)
            )
            response = answers.failure(route.answer, p)
        self.metrics.observe(name, status, time.perf_counter() - started)
        return response

    def client_id(self, request: Request) -> Response:
        given = request.query_params.get("cid", "").lower()
        cid = given if _HEX32.match(given) else secrets.token_hex(16)
        return PlainTextResponse(cid, headers={"Cache-Control": "no-store"})

    def _credential(self, request: Request, source: Source) -> str | None:
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

    async def ingest(self, request: Request, source: Source, route: Route, sub: str) -> tuple[Response, str]:
        m = source.mapping
        env = m.envelope
        given = self._credential(request, source)
        if given is not None and not matches(given, source.secret):
            raise unauthorized("the credential is not valid")
        if given is None and not source.body_credentials:
            raise unauthorized("a credential is required")
        content_type = request.headers.get("content-type", "")
        check_content_type(env, content_type)
        body = await read_body(request, self.max_body)
        received_at = now_rfc3339()
        query = {k: v for k, v in request.query_params.items() if k not in source.secret_query}
        raw_query = urlencode(
            [(k, v) for k, v in request.query_params.multi_items() if k not in source.secret_query]
        )
        delivery = Delivery(
            id=new_id(),
            source=m.source,
            received_at=received_at,
            method=request.method,
            path=sub,
            content_type=content_type,
            query=query,
            headers=_stored_headers(request, source.secret_headers),
            body=body,
            body_format="original",
            status="rejected",
            idempotency_key=request.headers.get("idempotency-key") or request.headers.get("webhook-id"),
            fingerprint=hashlib.sha256(f"{sub}?{raw_query}\n".encode() + body).hexdigest(),
            mapping=m.name,
        )
        document: Any = None
        try:
            document = decode_outer(env, body, content_type, raw_query)
            if given is None:
                found = _body_credential(document, source.body_credentials)
                if found is None:
                    raise unauthorized("a credential is required")
                if not matches(found, source.secret):
                    raise unauthorized("the credential is not valid")
            try:
                decode_inner(env, document)
            finally:
                if m.redact(document):
                    delivery.body = msgspec.json.encode(document)
                    delivery.body_format = "document"
        except Problem as p:
            if p.status != 400:
                raise
            if document is None and m.has_privacy:
                delivery.body, delivery.body_format = None, "withheld"
            delivery.reasons = p.errors
            await self._store(WriteRequest(delivery=delivery, dedup=False))
            return answers.failure(route.answer, p), "rejected"

        headers = {k: v for k, v in request.headers.items() if k not in source.secret_headers}
        mapped = map_document(m, document, headers, sub, received_at, delivery.id)
        delivery.status = mapped.status
        delivery.reasons = mapped.reasons
        result = await self._store(
            WriteRequest(
                delivery=delivery,
                events=mapped.events,
                identities=mapped.identities,
                carried=mapped.carried,
                dedup_window_seconds=source.dedup_window,
            )
        )
        if mapped.status == "rejected":
            problem = unprocessable("the delivery breaks the vendor's documented constraints", mapped.reasons)
            return answers.failure(route.answer, problem), "rejected"
        if result.duplicate:
            body_out: dict[str, Any] = {"status": "duplicate", "delivery_id": result.delivery_id}
            return answers.success(route.answer, body_out, True, document), "duplicate"
        body_out = {
            "delivery_id": delivery.id,
            "status": mapped.status,
            "events": [{"id": e.id, "type": e.type} for e in mapped.events],
        }
        if mapped.unmapped:
            body_out["unmapped"] = mapped.unmapped
        return answers.success(route.answer, body_out, False, document), mapped.status

    async def _store(self, request: WriteRequest) -> Any:
        try:
            return await self.writer.submit(request)
        except Overloaded:
            raise unavailable("the write queue is full; retry shortly") from None
        except StorageError:
            raise unavailable("storage is unavailable; retry shortly") from None
        except Exception:
            raise unavailable("the delivery could not be stored; retry shortly") from None


def _body_credential(document: Any, names: list[str]) -> str | None:
    if not isinstance(document, dict):
        return None
    for n in names:
        v = document.get(n)
        if isinstance(v, str) and v:
            return v
    return None
