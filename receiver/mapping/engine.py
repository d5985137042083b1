"""A compiled mapping: its plan, and the functions that run it on a delivery.

Compilation happens once, at start-up (``compile.py`` builds the plan, the executor turns
its outputs and its constraints into functions). Per delivery: ``redact`` the
raw document before it is stored, then ``map`` it: choose each item's event and type,
apply the rewrites, check the vendor's constraints, build the canonical event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from ..events import Identity
from ..problems import FieldError
from . import extra, privacy
from .codegen import generated_code
from .paths import Ctx, get_in, pointer, pop_in, read, set_in
from .plan import Constrained, MappingPlan, Output, RouteRule, TypePlan, Value
from .spec import Credential, Envelope
from .transforms import TransformError, mask, sha256_hex, to_text


class Executor(Protocol):
    """What turns a plan's nodes into functions: ``codegen.generated_code`` (the default)
    or ``interpret.interpreter`` (the reference)."""

    def outputs(
        self, outputs: tuple[Output, ...], name: str
    ) -> Callable[[Any, Ctx, str], dict[str, Any]]: ...

    def values(self, nodes: tuple[Value, ...], name: str) -> Callable[[Any, Ctx, str], list[Any]]: ...

    def constraints(self, constraints: tuple[Constrained, ...], name: str) -> Callable[[Any, Ctx], None]: ...


class MappedEvent(msgspec.Struct):  # a Struct: its __init__ is C (one per event)
    source_type: str
    type: str
    occurred_at: str | None
    anonymous_id: str | None
    lead: dict[str, Any] | None
    properties: dict[str, Any]
    context: dict[str, Any]
    extra: dict[str, Any]
    identities: list[Identity]


class MapOutcome(msgspec.Struct):
    events: list[MappedEvent] = msgspec.field(default_factory=list)
    unmapped: list[dict[str, Any]] = msgspec.field(default_factory=list)
    """``{"index", "source_type"}`` of items whose type has no mapping."""
    errors: list[FieldError] = msgspec.field(default_factory=list)


@dataclass(slots=True)
class _Type:
    plan: TypePlan
    check: Callable[[Any, Ctx], None]
    build: Callable[[Any, Ctx, str], dict[str, Any]]
    extra: list[extra.Pruner]
    """Per event root: what of an item the type does not read (``extra.pruner`` of the
    tree of the paths it reads, relative to the item)."""
    canonical: str
    constrained: bool


class CompiledMapping:
    """One source's mapping, ready to run."""

    def __init__(self, plan: MappingPlan, executor: Executor = generated_code) -> None:
        self.plan = plan
        self.source = plan.source
        self.version = plan.version
        self.name = f"{plan.source}@{plan.version}"
        self.envelope: Envelope = plan.envelope
        self.credential: Credential = plan.envelope.credential
        self._body_credentials = self.credential.field  # read per delivery by redact
        self.batch = plan.envelope.batch
        self._types: dict[str, _Type] = {}
        for i, (name, t) in enumerate(plan.types.items()):
            build = executor.outputs(t.outputs, f"map_{i}_{_identifier(name)}")
            check = executor.constraints(t.constraints, f"check_{i}_{_identifier(name)}")
            pruners = [extra.pruner(tr) for tr in extra.trees(plan, t)]
            self._types[name] = _Type(t, check, build, pruners, t.canonical, bool(t.constraints))
        # Each rule with the member of the event it reads, when it reads one (most do).
        self._type_rules = [
            (rule, rule.source.tokens[0] if rule.source.ns == "" and len(rule.source.tokens) == 1 else None)
            for rule in plan.type_rules
        ]
        self._item_is_event = plan.event_roots == ((),)
        """Each item is its event (most vendors): no ``event_of`` per item."""
        self._routes: dict[str, tuple[dict[str, Any], RouteRule | None]] = {}
        self._identities = executor.values(tuple(r.value for r in plan.identities), "identities")
        self._private = privacy.private_outputs(plan)

    @property
    def has_privacy(self) -> bool:
        return bool(self._private)

    @property
    def private(self) -> list[tuple[str, tuple[str, ...]]]:
        """(key, markers) of every value the mapping keeps private."""
        return list(privacy.marked(self.plan))

    @property
    def source_types(self) -> list[str]:
        return list(self._types)

    # -- per delivery -----------------------------------------------------------------
    def redact(self, document: Any) -> bool:
        """Remove credentials and replace private values in the document, in place, so that
        what is stored (and later replayed) never holds them in the clear. True if changed."""
        changed = False
        items = document if isinstance(document, list) else [document]
        for item in items:
            if not isinstance(item, dict):
                continue
            for name in self._body_credentials:
                if item.pop(name, None) is not None:
                    changed = True
                for jf in self.envelope.json_fields:
                    inner = item.get(jf)
                    if isinstance(inner, dict) and inner.pop(name, None) is not None:
                        changed = True
        if self._private:
            changed = privacy.redact(document, self.plan, self._private) or changed
        return changed

    def map(self, document: Any, headers: dict[str, str], route: str, received_at: str) -> MapOutcome:
        outcome = MapOutcome()
        is_batch = isinstance(document, list)
        if is_batch and not self.batch:
            outcome.errors.append(FieldError("", "must be an object, not an array"))
            return outcome
        items = document if is_batch else [document]
        if is_batch and not items:
            outcome.errors.append(FieldError("", "must not be an empty array"))
            return outcome
        found = self._routes.get(route)
        if found is None:
            found = self._route(route)
        route_vars, rule = found
        meta = {"received_at": received_at, "source": self.source}
        errors = outcome.errors
        for index, item in enumerate(items):
            ctx = Ctx(item, headers, route_vars, meta, f"/{index}" if is_batch else "", errors)
            self._map_item(item, index, ctx, outcome, rule)
        return outcome

    def _route(self, route: str) -> tuple[dict[str, Any], RouteRule | None]:
        """``@route`` values of a route path and its rule (kept for the declared routes)."""
        rule = self.plan.routes.get(route)
        found = ({"source_type": rule.source_type if rule else None, "path": route}, rule)
        if rule is not None:
            self._routes[route] = found
        return found

    def identities_in(
        self, document: Any, headers: dict[str, str], route: str, received_at: str
    ) -> list[Identity]:
        """The declared identities a document carries, whatever its type and errors: a
        delivery that maps to nothing (or is rejected) still names people, and erasure
        must find it by them."""
        rule = self.plan.routes.get(route)
        route_vars = {"source_type": rule.source_type if rule else None, "path": route}
        meta = {"received_at": received_at, "source": self.source}
        found: list[Identity] = []
        for item in document if isinstance(document, list) else [document]:
            event = self.plan.event_of(item)
            if event is None:
                continue
            # A scratch context: what fails to transform here is reported by map().
            for ident in self._identities_of(event[1], Ctx(item, headers, route_vars, meta)):
                if ident not in found:
                    found.append(ident)
        return found

    def _identities_of(self, event: dict[str, Any], ctx: Ctx) -> list[Identity]:
        identities: list[Identity] = []
        for rule, v in zip(self.plan.identities, self._identities(event, ctx, ""), strict=True):
            text = v if v.__class__ is str or v is None else to_text(v)
            if text is not None:
                found_id = Identity(rule.kind, text, rule.known)
                if found_id not in identities:
                    identities.append(found_id)
        return identities

    def _source_type(self, event: dict[str, Any], ctx: Ctx) -> str | None:
        for rule, member in self._type_rules:
            if member is not None:  # read(rule.source, event, ctx), without its calls
                v = event.get(member)
                if v == "":
                    v = None
            else:
                v = read(rule.source, event, ctx)
            if v is None:
                continue
            if rule.equals is None:
                return to_text(v)
            if v == rule.equals:
                return rule.value
        return None

    def _rewrite(self, event: dict[str, Any], source_type: str, ctx: Ctx) -> None:
        for rw in self.plan.rewrites:
            if rw.only and source_type not in rw.only:
                continue
            if get_in(event, rw.target) not in (None, ""):
                continue  # a target already there wins; the source stays (and lands in extra)
            moved = pop_in(event, rw.source)
            if len(rw.source) > 1 and get_in(event, rw.source[:-1]) == {}:
                pop_in(event, rw.source[:-1])  # leave no empty shell behind in extra
            if moved is None or moved == "":
                continue
            try:
                for step in rw.steps:
                    moved = step.fn(moved, event, ctx)
            except TransformError as e:
                ctx.error(pointer(rw.source), str(e))
                continue
            set_in(event, rw.target, moved)

    def _map_item(self, item: Any, index: int, ctx: Ctx, outcome: MapOutcome, rule: RouteRule | None) -> None:
        plan = self.plan
        if item.__class__ is dict and self._item_is_event:
            root_index, event = 0, item
        else:
            if not isinstance(item, dict):
                ctx.error("", "must be an object")
                return
            found = plan.event_of(item)
            if found is None:
                ctx.error(pointer(plan.event_roots[-1]), "must be an object")
                return
            root_index, event = found
        st = self._source_type(event, ctx)
        t = self._types.get(st) if st is not None else None
        if t is None or st is None:
            outcome.unmapped.append({"index": index, "source_type": st})
            return
        if plan.rewrites:
            self._rewrite(event, st, ctx)
        errors = outcome.errors
        n_errors = len(errors)
        if t.constrained:
            t.check(event, ctx)
        if rule is not None and st == rule.source_type:
            for p in rule.require:
                if read(p, event, ctx) is None:
                    ctx.error(p.error_pointer(""), "is required")
        if len(errors) > n_errors:
            return  # the event breaks the vendor's rules: report each field once, map nothing
        out = t.build(event, ctx, "")
        identities = self._identities_of(event, ctx)
        if len(errors) > n_errors:
            return
        lead = out.get("lead")
        if lead:
            _normalize_lead(lead)
            sha = lead.get("email_sha256")
            if sha:
                identities.append(Identity("email_sha256", sha, True))
        else:
            lead = None
        anonymous_id = out.get("anonymous_id")
        if anonymous_id is None:
            for i in identities:  # the first anonymous one (a loop: no generator per event)
                if not i.known:
                    anonymous_id = i.value
                    break
        elif anonymous_id.__class__ is not str:
            anonymous_id = to_text(anonymous_id)
        rest = t.extra[root_index](item)
        outcome.events.append(
            MappedEvent(  # positional, in MappedEvent's field order (cheaper than keywords)
                st,
                t.canonical,
                out.get("occurred_at"),
                anonymous_id,
                lead,
                out.get("properties") or {},
                out.get("context") or {},
                {} if rest is extra.GONE else rest,
                identities,
            )
        )


def _identifier(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)[:40]


def _normalize_lead(lead: dict[str, Any]) -> None:
    """Rules every source shares (docs/events.md): the email's hash and mask."""
    email = lead.get("email")
    if isinstance(email, str):
        email = email.strip().lower()
        if email:
            lead["email"] = email
            lead["email_sha256"] = sha256_hex(email)
            lead["email_masked"] = mask(email)
        else:
            del lead["email"]
