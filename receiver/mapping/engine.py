"""Compile a mapping file into plain functions, and run them on a parsed delivery.

Compilation happens once, at start-up: every path becomes a getter, every transform
chain a list of functions, every constraint a check, and the set of placed paths a
tree that ``extra`` is cut from. Nothing in a mapping file is interpreted per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..events import EventType, Identity
from ..problems import FieldError
from . import transforms as tf
from .codegen import OutputPlan, Simple, generate
from .constraints import Check, compile_constraints
from .paths import (
    Ctx,
    PathError,
    compile_getter,
    expand,
    find_all,
    parent_of,
    parse,
    pointer,
    pop_in,
    set_in,
)
from .spec import Field, FieldInput, MappingFile, Privacy, TypeRule

FieldFn = Callable[[Any, Ctx, str], Any]
OUTPUT_ROOTS = ("occurred_at", "anonymous_id", "lead", "properties", "context")
CANONICAL_TYPES = frozenset(t.value for t in EventType)


class MappingError(ValueError):
    """A mapping file that cannot be used: names the file, the key and the reason."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class Redacted(msgspec.Struct, frozen=True):
    """A privacy-marked value as stored: only its hash and/or mask."""

    sha256: str | None = None
    masked: str | None = None


REDACTED_KEY = "$redacted"


def redaction_marker(value: Any, ops: list[Privacy]) -> dict[str, Any] | None:
    if "drop" in ops or value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    marker: dict[str, Any] = {REDACTED_KEY: sorted(ops)}
    if "hash" in ops:
        marker["sha256"] = tf.sha256_hex(text)
    if "mask" in ops:
        marker["masked"] = tf.mask(text)
    return marker


@dataclass(slots=True)
class MappedEvent:
    source_type: str
    type: str
    occurred_at: str | None
    anonymous_id: str | None
    lead: dict[str, Any] | None
    properties: dict[str, Any]
    context: dict[str, Any]
    extra: dict[str, Any]
    identities: list[Identity]


@dataclass(slots=True)
class MapOutcome:
    events: list[MappedEvent] = field(default_factory=list)
    unmapped: list[dict[str, Any]] = field(default_factory=list)
    """``{"index", "source_type"}`` of items whose type has no mapping."""
    errors: list[FieldError] = field(default_factory=list)


@dataclass(slots=True)
class _Output:
    tokens: tuple[str, ...]
    fn: FieldFn
    privacy: tuple[Privacy, ...]
    guard: frozenset[str] | None
    """Top-level event keys the field reads; None when it reads anything else."""


@dataclass(slots=True)
class _Type:
    source_type: str
    type: str
    outputs: list[_Output]
    checks: list[Check]
    extra_trees: list[Any]
    """Per event root: the tree of placed paths, relative to the item."""
    run: Callable[[Any, Ctx, str], dict[str, Any]]
    """The generated function that builds the canonical parts of the event."""


@dataclass(slots=True)
class _Identity:
    kind: str
    known: bool
    fn: FieldFn


class _Compiler:
    def __init__(self, spec: MappingFile, where: str) -> None:
        self.spec = spec
        self.where = where
        self.roots = {k: v for k, v in spec.roots.items()}

    def expand(self, path: str) -> list[str]:
        return expand(path, self.roots)

    def fail(self, key: str, reason: str) -> MappingError:
        return MappingError(f"{self.where}: {key}", reason)

    # -- fields -----------------------------------------------------------------------
    def paths(self, key: str, raw: list[str]) -> list[str]:
        out: list[str] = []
        for p in raw:
            out.extend(expand(p, self.roots))
        for p in out:
            try:
                parse(p)
            except PathError as e:
                raise self.fail(key, str(e)) from None
        return out

    def field(
        self, key: str, spec: FieldInput, placed: list[list[str]]
    ) -> tuple[FieldFn, tuple[Privacy, ...]]:
        if isinstance(spec, str):
            spec = Field(from_=[spec])
        elif isinstance(spec, list):
            spec = Field(from_=list(spec))
        return self._field(key, spec, placed), tuple(spec.privacy)

    def _field(self, key: str, spec: Field, placed: list[list[str]]) -> FieldFn:
        if spec.switch is not None:
            return self._switch(key, spec, placed)
        if spec.each is not None:
            return self._each(key, spec, placed)
        if spec.fields or spec.key or spec.value or spec.cases:
            raise self.fail(key, "'fields', 'key' and 'value' need 'each'; 'cases' needs 'switch'")
        if not spec.from_ and spec.default is None:
            raise self.fail(key, "a field needs 'from' or 'default'")
        paths = self.paths(key, spec.from_)
        sources: list[tuple[Callable[[Any, Ctx], Any], str]] = []
        for p in paths:
            ns, tokens = parse(p)
            try:
                sources.append((compile_getter(p), pointer(tokens) if ns in ("", "item") else p))
            except PathError as e:
                raise self.fail(key, str(e)) from None
            if ns == "":
                placed.append(tokens)
            else:
                placed.append([f"@{ns}", *tokens])
        if spec.default is not None:
            placed.append(["@default"])
        try:
            chain = [tf.build(t, self.expand) for t in spec.transforms]
        except tf.SpecError as e:
            raise self.fail(key, str(e)) from None
        default, required, private = spec.default, spec.required, bool(spec.privacy)
        first_ptr = sources[0][1] if sources else ""

        def fn(node: Any, ctx: Ctx, base: str) -> Any:
            for get, ptr in sources:
                v = get(node, ctx)
                if v is None:
                    continue
                if private and isinstance(v, dict) and REDACTED_KEY in v:
                    return Redacted(v.get("sha256"), v.get("masked"))
                try:
                    for t in chain:
                        v = t(v, node, ctx)
                        if v is None:
                            break
                except tf.TransformError as e:
                    ctx.error(base + ptr if ptr.startswith("/") or ptr == "" else ptr, str(e))
                    return None
                if v is not None and v != "":
                    return v
            if default is not None:
                return default
            if required:
                ctx.error(base + first_ptr, "is required")
            return None

        event_paths = [parse(p) for p in paths]
        if all(ns == "" for ns, _ in event_paths) and paths:
            fn.simple = Simple(  # type: ignore[attr-defined]
                [t for _, t in event_paths], [ptr for _, ptr in sources], chain, default, required
            )
        return fn

    def _switch(self, key: str, spec: Field, placed: list[list[str]]) -> FieldFn:
        assert spec.switch is not None
        sel = self.paths(key, [spec.switch])
        getters = [compile_getter(p) for p in sel]
        for p in sel:
            ns, tokens = parse(p)
            if ns == "":
                placed.append(tokens)
        cases = {str(k): self.field(f"{key}.cases.{k}", v, placed)[0] for k, v in (spec.cases or {}).items()}
        fallback = cases.pop("*", None)

        def fn(node: Any, ctx: Ctx, base: str) -> Any:
            sw = None
            for g in getters:
                sw = g(node, ctx)
                if sw is not None:
                    break
            case = cases.get(str(sw), fallback) if sw is not None else fallback
            return case(node, ctx, base) if case is not None else None

        return fn

    def _each(self, key: str, spec: Field, placed: list[list[str]]) -> FieldFn:
        assert spec.each is not None
        ns, each_tokens = parse(self.paths(key, [spec.each])[0])
        if ns != "":
            raise self.fail(key, "'each' takes an event path")
        get_list = compile_getter(spec.each)
        each_ptr = pointer(each_tokens)
        inner: list[list[str]] = []
        key_fn = self.field(f"{key}.key", spec.key, inner)[0] if spec.key is not None else None
        value_fn = self.field(f"{key}.value", spec.value, inner)[0] if spec.value is not None else None
        subs = [
            (tuple(k.split(".")), *self.field(f"{key}.fields.{k}", v, inner))
            for k, v in (spec.fields or {}).items()
        ]
        if not subs and value_fn is None:
            raise self.fail(key, "'each' needs 'fields' or 'value'")
        placed.extend(t if t and t[0].startswith("@") else [*each_tokens, "*", *t] for t in inner)

        def elements(node: Any, ctx: Ctx) -> list[tuple[int, Any]]:
            v = get_list(node, ctx)
            if isinstance(v, dict):  # PHP-style form arrays arrive as {"0": …, "1": …}
                return [(int(k) if k.isdigit() else i, x) for i, (k, x) in enumerate(v.items())]
            return list(enumerate(v)) if isinstance(v, list) else []

        if value_fn is not None:
            vfn = value_fn

            def fn(node: Any, ctx: Ctx, base: str) -> Any:
                els = elements(node, ctx)
                if key_fn is None:
                    out_list = [vfn(x, ctx, f"{base}{each_ptr}/{i}") for i, x in els]
                    return [x for x in out_list if x is not None] or None
                out_obj: dict[str, Any] = {}
                for i, x in els:
                    b = f"{base}{each_ptr}/{i}"
                    k = key_fn(x, ctx, b)
                    v = vfn(x, ctx, b) if k is not None else None
                    if v is not None:  # an empty value is no entry (docs/webhooks.md)
                        out_obj[str(k)] = v
                return out_obj or None

            return fn

        item_fn = generate(
            [OutputPlan(t, f, privacy, getattr(f, "simple", None)) for t, f, privacy in subs],
            "map_item",
        )

        def fn_fields(node: Any, ctx: Ctx, base: str) -> Any:
            if not isinstance(get_list(node, ctx), list | dict):
                return None  # absent stays absent; an empty array stays []
            out: list[Any] = []
            for i, x in elements(node, ctx):
                obj = item_fn(x, ctx, f"{base}{each_ptr}/{i}")
                if obj:
                    out.append(obj)
            return out

        return fn_fields

    # -- types ------------------------------------------------------------------------
    def outputs(self, fields: dict[str, FieldInput], where: str, placed: list[list[str]]) -> list[_Output]:
        outs = []
        for key, spec in fields.items():
            tokens = tuple(key.split("."))
            if tokens[0] not in OUTPUT_ROOTS or "" in tokens:
                raise self.fail(f"{where}.{key}", f"output must start with one of {', '.join(OUTPUT_ROOTS)}")
            mine: list[list[str]] = []
            fn, privacy = self.field(f"{where}.{key}", spec, mine)
            placed.extend(mine)
            # A field whose every source lies under event keys that are absent can be
            # skipped without running it: most lead fields, on most events.
            event_only = mine and all(p and not p[0].startswith("@") for p in mine)
            guard = frozenset(p[0] for p in mine) if event_only else None
            outs.append(_Output(tokens, fn, privacy, guard))
        return outs

    def checks(self, constraints: dict[str, Any], where: str) -> list[Check]:
        if not constraints:
            return []
        for path, c in constraints.items():
            try:
                compile_constraints({path: c})
            except (PathError, ValueError) as e:  # name the offending key
                raise self.fail(f"{where}.{path}", str(e)) from None
        return [compile_constraints(constraints)]


def _assign(obj: dict[str, Any], tokens: tuple[str, ...], v: Any, privacy: tuple[Privacy, ...]) -> None:
    node = parent_of(obj, tokens)
    last = tokens[-1]
    if isinstance(v, Redacted):
        if v.sha256:
            node[f"{last}_sha256"] = v.sha256
        if v.masked:
            node[f"{last}_masked"] = v.masked
        return
    if privacy:
        if "drop" in privacy:
            return
        text = v if isinstance(v, str) else str(v)
        if "hash" in privacy:
            node[f"{last}_sha256"] = tf.sha256_hex(text)
        if "mask" in privacy:
            node[f"{last}_masked"] = tf.mask(text)
        return
    if isinstance(v, dict) and isinstance(node.get(last), dict):
        node[last].update(v)
    else:
        node[last] = v


def _tree(paths: list[list[str]]) -> dict[str, Any]:
    """A prefix tree of placed paths; ``True`` marks a placed subtree."""
    root: dict[str, Any] = {}
    for p in paths:
        if not p:
            continue
        node = root
        for t in p[:-1]:
            nxt = node.get(t)
            if nxt is True:
                break
            if nxt is None:
                nxt = node[t] = {}
            node = nxt
        else:
            node[p[-1]] = True
    return root


_GONE = object()


def prune(node: Any, tree: Any) -> Any:
    """What of ``node`` the tree does not cover (``_GONE`` when nothing is left)."""
    if tree is True:
        return _GONE
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            sub = tree.get(k)
            if sub is None:
                out[k] = v
            elif sub is not True:
                r = prune(v, sub)
                if r is not _GONE:
                    out[k] = r
        return out if out else _GONE
    if isinstance(node, list):
        sub = tree.get("*")
        if sub is None:
            return node
        if not node:
            return _GONE  # an empty array the mapping reads item by item is placed
        items = [prune(x, sub) for x in node]
        if all(x is _GONE for x in items):
            return _GONE
        return [None if x is _GONE else x for x in items]
    return node


class CompiledMapping:
    """One source's mapping, ready to run."""

    def __init__(self, spec: MappingFile, where: str) -> None:
        c = _Compiler(spec, where)
        self.spec = spec
        self.source = spec.source
        self.version = spec.version
        self.name = f"{spec.source}@{spec.version}"
        self.envelope = spec.envelope
        self.batch = spec.envelope.batch

        self._event_roots = []
        for r in spec.event_root:
            ns, tokens = parse(r)
            if ns != "":
                raise c.fail("event_root", f"must be an item path, got {r!r}")
            self._event_roots.append(tokens)

        type_placed: list[list[str]] = []
        self._type_rules: list[tuple[Callable[[Any, Ctx], Any], Any, str | None]] = []
        for i, rule in enumerate(spec.type_from):
            tr = rule if isinstance(rule, TypeRule) else TypeRule(path=rule)
            for p in c.paths(f"type_from[{i}]", [tr.path]):
                ns, tokens = parse(p)
                if ns == "":
                    type_placed.append(tokens)
                self._type_rules.append((compile_getter(p), tr.equals, tr.value))

        self._rewrites: list[tuple[list[str], list[str], list[tf.Fn], frozenset[str]]] = []
        for i, rw in enumerate(spec.rewrite):
            (ns1, t1), (ns2, t2) = parse(rw.from_), parse(rw.to)
            if ns1 or ns2 or not t1 or not t2:
                raise c.fail(f"rewrite[{i}]", "'from' and 'to' are event paths")
            try:
                chain = [tf.build(t, c.expand) for t in rw.transforms]
            except tf.SpecError as e:
                raise c.fail(f"rewrite[{i}]", str(e)) from None
            self._rewrites.append((t1, t2, chain, frozenset(rw.only)))

        common_placed: list[list[str]] = []
        common = c.outputs(spec.fields, "fields", common_placed)
        c.checks(spec.constraints, "constraints")

        self._identities = []
        for i, ident in enumerate(spec.identities):
            f = Field(from_=ident.from_, transforms=[*ident.transforms])
            self._identities.append(
                # Identity paths are not "placed": the event keeps them in extra, since
                # the canonical event has no identities field of its own.
                _Identity(ident.kind, ident.known, c._field(f"identities[{i}]", f, []))
            )

        self._privacy_paths: list[tuple[list[str], list[Privacy]]] = []
        self._collect_privacy(c, spec.fields, "")
        self._types: dict[str, _Type] = {}
        for name, tspec in spec.types.items():
            if isinstance(tspec, str):
                canonical, fields, constraints = tspec, {}, {}
            else:
                canonical, fields, constraints = tspec.type, tspec.fields, tspec.constraints
            if canonical not in CANONICAL_TYPES:
                raise c.fail(f"types.{name}", f"unknown canonical type {canonical!r}")
            placed: list[list[str]] = []
            own = c.outputs(fields, f"types.{name}.fields", placed)
            own_keys = {o.tokens for o in own}
            outputs = [o for o in common if o.tokens not in own_keys] + own
            self._collect_privacy(c, fields, "")
            all_placed = type_placed + common_placed + placed
            trees = []
            for root in self._event_roots:
                item_paths = [
                    p[1:] if p[0] == "@item" else [*root, *p]
                    for p in all_placed
                    if p and (p[0] == "@item" or not p[0].startswith("@"))
                ]
                trees.append(_tree(item_paths))
            c.checks(constraints, f"types.{name}.constraints")  # names a bad key
            merged = _merge_constraints(spec.constraints, constraints)
            plans = [OutputPlan(o.tokens, o.fn, o.privacy, getattr(o.fn, "simple", None)) for o in outputs]
            run = generate(plans, f"map_{len(self._types)}")
            self._types[name] = _Type(name, canonical, outputs, c.checks(merged, f"types.{name}"), trees, run)

        self._routes: dict[str, tuple[str, list[tuple[list[str], str]]]] = {}
        for route in spec.envelope.routes:
            if route.source_type is not None:
                reqs = []
                for p in route.require:
                    ns, tokens = parse(p)
                    if ns != "":
                        raise c.fail(f"envelope.routes[{route.path}].require", f"bad path {p!r}")
                    reqs.append((tokens, pointer(tokens)))
                self._routes[route.path] = (route.source_type, reqs)

        self._credential_fields = [
            loc.split(":", 1)[1] for loc in spec.envelope.credential.locations if loc.startswith("field:")
        ]

    def _collect_privacy(self, c: _Compiler, fields: dict[str, FieldInput], at: str) -> None:
        for key, spec in fields.items():
            if not isinstance(spec, Field):
                continue
            if spec.privacy:
                for p in c.paths(key, spec.from_):
                    ns, tokens = parse(p)
                    if ns != "":
                        raise c.fail(key, "privacy applies to event paths only")
                    for root in self._event_roots:
                        self._privacy_paths.append(([*root, *tokens], list(spec.privacy)))
            if spec.fields:
                # Nested privacy inside 'each' is redacted under every element.
                each = parse(spec.each or "")[1]
                for sub_key, sub in spec.fields.items():
                    if isinstance(sub, Field) and sub.privacy:
                        for p in c.paths(sub_key, sub.from_):
                            for root in self._event_roots:
                                self._privacy_paths.append(
                                    ([*root, *each, "*", *parse(p)[1]], list(sub.privacy))
                                )

    @property
    def has_privacy(self) -> bool:
        return bool(self._privacy_paths)

    @property
    def source_types(self) -> list[str]:
        return list(self._types)

    # -- per delivery -----------------------------------------------------------------
    def redact(self, document: Any) -> bool:
        """Remove credentials and apply hash/mask/drop to the document in place, so that
        what is stored (and later replayed) never holds them in the clear. True if changed."""
        changed = False
        items = document if isinstance(document, list) else [document]
        for item in items:
            if not isinstance(item, dict):
                continue
            for name in self._credential_fields:
                if item.pop(name, None) is not None:
                    changed = True
                for jf in self.envelope.json_fields:
                    inner = item.get(jf)
                    if isinstance(inner, dict) and inner.pop(name, None) is not None:
                        changed = True
            for tokens, ops in self._privacy_paths:
                for at, v in find_all(item, tokens):
                    if v is None or (isinstance(v, dict) and REDACTED_KEY in v):
                        continue
                    marker = redaction_marker(v, ops)
                    if marker is None:
                        pop_in(item, at)
                    else:
                        set_in(item, at, marker)
                    changed = True
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
        source_type, requires = self._routes.get(route, (None, []))
        route_vars = {"source_type": source_type, "path": route}
        meta = {"received_at": received_at, "source": self.source}
        for index, item in enumerate(items):
            ctx = Ctx(item, headers, route_vars, meta, f"/{index}" if is_batch else "")
            ctx.errors = outcome.errors
            self._map_item(item, index, ctx, requires, outcome)
        return outcome

    def identities_in(
        self, document: Any, headers: dict[str, str], route: str, received_at: str
    ) -> list[Identity]:
        """The declared identities a document carries, whatever its type and errors: a
        delivery that maps to nothing (or is rejected) still names people, and erasure
        must find it by them."""
        source_type, _ = self._routes.get(route, (None, []))
        route_vars = {"source_type": source_type, "path": route}
        meta = {"received_at": received_at, "source": self.source}
        found: list[Identity] = []
        for item in document if isinstance(document, list) else [document]:
            if not isinstance(item, dict):
                continue
            for root in self._event_roots:
                event = _get(item, root)
                if isinstance(event, dict):
                    # A scratch context: what fails to transform here is reported by map().
                    for ident in self._identities_of(event, Ctx(item, headers, route_vars, meta)):
                        if ident not in found:
                            found.append(ident)
                    break
        return found

    def _identities_of(self, event: dict[str, Any], ctx: Ctx) -> list[Identity]:
        identities: list[Identity] = []
        for ident in self._identities:
            v = ident.fn(event, ctx, "")
            if v is not None and not isinstance(v, dict | list):
                found = Identity(ident.kind, tf._to_string(v, None, ctx), ident.known)
                if found not in identities:
                    identities.append(found)
        return identities

    def _map_item(
        self, item: Any, index: int, ctx: Ctx, requires: list[tuple[list[str], str]], outcome: MapOutcome
    ) -> None:
        if not isinstance(item, dict):
            ctx.error("", "must be an object")
            return
        event: Any = None
        root_index = 0
        for root_index, root in enumerate(self._event_roots):  # noqa: B007
            event = item
            for t in root:
                event = event.get(t) if isinstance(event, dict) else None
            if isinstance(event, dict):
                break
        if not isinstance(event, dict):
            ctx.error(pointer(self._event_roots[-1]), "must be an object")
            return
        st = None
        for get, equals, value in self._type_rules:
            v = get(event, ctx)
            if v is None:
                continue
            if equals is None:
                st = v if isinstance(v, str) else str(v)
                break
            if v == equals:
                st = value
                break
        tspec = self._types.get(st) if st is not None else None
        if tspec is None or st is None:
            outcome.unmapped.append({"index": index, "source_type": st})
            return
        for src, dst, chain, only in self._rewrites:
            if (only and st not in only) or _walk_exists(event, dst):
                continue  # a target already there wins; the source stays (and lands in extra)
            moved = pop_in(event, src)
            if len(src) > 1 and _get(event, src[:-1]) == {}:
                pop_in(event, src[:-1])  # leave no empty shell behind in extra
            if moved is None or moved == "":
                continue
            try:
                for step in chain:
                    moved = step(moved, event, ctx)
            except tf.TransformError as e:
                ctx.error(pointer(src), str(e))
                continue
            set_in(event, dst, moved)
        n_errors = len(outcome.errors)
        for check in tspec.checks:
            check(event, ctx)
        if st == ctx.route.get("source_type"):
            for tokens, ptr in requires:
                v = _get(event, tokens)
                if v is None or v == "":
                    ctx.error(ptr, "is required")
        if len(outcome.errors) > n_errors:
            return  # the event breaks the vendor's rules: report each field once, map nothing
        out = tspec.run(event, ctx, "")
        identities = self._identities_of(event, ctx)
        if len(outcome.errors) > n_errors:
            return
        lead = out.get("lead") or None
        if lead is not None:
            _normalize_lead(lead)
            if lead.get("email_sha256"):
                identities.append(Identity("email_sha256", lead["email_sha256"], True))
        anonymous_id = out.get("anonymous_id")
        if anonymous_id is None:
            anonymous_id = next((i.value for i in identities if not i.known), None)
        extra = prune(item, tspec.extra_trees[root_index])
        outcome.events.append(
            MappedEvent(
                source_type=st,
                type=tspec.type,
                occurred_at=out.get("occurred_at"),
                anonymous_id=None if anonymous_id is None else str(anonymous_id),
                lead=lead,
                properties=out.get("properties") or {},
                context=out.get("context") or {},
                extra={} if extra is _GONE else extra,
                identities=identities,
            )
        )


def _merge_constraints(common: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """One constraint per path; a type's own constraint replaces the common one."""
    return {**common, **own}


def _get(node: Any, tokens: list[str]) -> Any:
    for t in tokens:
        node = node.get(t) if isinstance(node, dict) else None
    return node


def _walk_exists(node: Any, tokens: list[str]) -> bool:
    v = _get(node, tokens)
    return v is not None and v != ""


def _normalize_lead(lead: dict[str, Any]) -> None:
    """Rules every source shares (docs/events.md): the email's hash and mask."""
    email = lead.get("email")
    if isinstance(email, str):
        email = email.strip().lower()
        if email:
            lead["email"] = email
            lead["email_sha256"] = tf.sha256_hex(email)
            lead["email_masked"] = tf.mask(email)
        else:
            del lead["email"]
