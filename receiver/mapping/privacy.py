"""Privacy: a value a mapping marks ``hash``, ``mask`` or ``drop`` never reaches disk in the
clear, at whatever depth of the plan it sits (a field, a field of ``each``, a ``switch``
case, an ``each`` value).

- In the event and the lead it becomes ``<name>_sha256`` and/or ``<name>_masked`` (or
  nothing, for ``drop``): ``settle`` turns a value into a ``Redacted``, ``place`` writes it.
- In the stored raw body it is replaced, before anything is written, by a marker
  ``{"$redacted": [...], "sha256": …, "masked": …}`` (or removed, for ``drop``): ``redact``
  walks the plan (into array elements and the switch case each element selects). The marker
  holds what mapping the value gives, so mapping the redacted body (the first run, and every
  replay) gives the same event as mapping the value itself would.
- A marker the engine cannot honour is refused when the mapping is loaded: ``problems``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from .paths import Ctx, Path, as_index, elements, read, read_first
from .plan import Each, MappingPlan, Node, Output, Switch, Value, children, values
from .spec import Privacy
from .transforms import TransformError, mask, sha256_hex, to_text

REDACTED_KEY = "$redacted"


class Redacted:
    """A private value as it may be kept: its hash and/or its mask."""

    __slots__ = ("masked", "sha256")

    def __init__(self, sha256: str | None, masked: str | None) -> None:
        self.sha256 = sha256
        self.masked = masked

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Redacted) and (self.sha256, self.masked) == (other.sha256, other.masked)

    def __hash__(self) -> int:
        return hash((self.sha256, self.masked))

    def __repr__(self) -> str:
        return f"Redacted(sha256={self.sha256!r}, masked={self.masked!r})"


class Failure:
    """A private value whose transforms failed: the problem to report at its pointer."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def is_marker(v: Any) -> bool:
    return v.__class__ is dict and REDACTED_KEY in v


def _text(v: Any) -> str | None:
    """What is hashed and masked: scalars as text, objects and arrays as canonical JSON."""
    text = to_text(v)
    if text is not None or v.__class__ not in (dict, list):
        return text
    try:
        return msgspec.json.encode(v, order="sorted").decode()
    except (RecursionError, ValueError, TypeError):  # too deep to write: nothing is kept
        return None


def protect(v: Any, ops: tuple[Privacy, ...]) -> Redacted | None:
    """A clear value as it may be kept (None: nothing may be kept)."""
    if "drop" in ops:
        return None
    text = _text(v)
    if text is None:
        return None
    return Redacted(sha256_hex(text) if "hash" in ops else None, mask(text) if "mask" in ops else None)


def settle(value: Value, raw: Any, node: Any, ctx: Ctx) -> Redacted | Failure | None:
    """What one present source of a private value comes to: a Redacted, a Failure, or None
    (absent: the next source is read). ``raw`` may be a marker left by ``redact``."""
    if is_marker(raw):
        error = raw.get("error")
        if isinstance(error, str):
            return Failure(error)
        sha, masked = raw.get("sha256"), raw.get("masked")
        if sha is None and masked is None:
            return None
        return Redacted(sha if isinstance(sha, str) else None, masked if isinstance(masked, str) else None)
    v = raw
    try:
        for step in value.steps:
            v = step.fn(v, node, ctx)
            if v is None:
                return None
    except TransformError as e:
        return Failure(str(e))
    if v == "":
        return None
    return protect(v, value.privacy)


def place(container: dict[str, Any], name: str, r: Redacted) -> None:
    if r.sha256 is not None:
        container[f"{name}_sha256"] = r.sha256
    if r.masked is not None:
        container[f"{name}_masked"] = r.masked


def _marker(outcome: Redacted | Failure | None, ops: tuple[Privacy, ...]) -> dict[str, Any]:
    marker: dict[str, Any] = {REDACTED_KEY: sorted(ops)}
    if isinstance(outcome, Failure):
        marker["error"] = outcome.message
    elif outcome is not None:
        if outcome.sha256 is not None:
            marker["sha256"] = outcome.sha256
        if outcome.masked is not None:
            marker["masked"] = outcome.masked
    return marker


# -- the stored raw body ------------------------------------------------------------------


def marked(plan: MappingPlan) -> list[tuple[str, tuple[Privacy, ...]]]:
    """(key, markers) of every private value of the plan, in file order."""
    return [(v.key, v.privacy) for _, o in plan.outputs() for v in values(o.node) if v.privacy]


def private_outputs(plan: MappingPlan) -> tuple[Output, ...]:
    """Outputs of any type that hold a private value somewhere below them."""
    return tuple(o for _, o in plan.outputs() if any(v.privacy for v in values(o.node)))


def redact(document: Any, plan: MappingPlan, outputs: tuple[Output, ...]) -> bool:
    """Replace every private value of the document, in place, whatever the event's type
    (a value private in one type is redacted in all). True if anything changed."""
    changed = False
    items = document if isinstance(document, list) else [document]
    for item in items:
        if not isinstance(item, dict):
            continue
        for name in plan.envelope.json_fields:
            # JSON text that could not be decoded may hold private values: not kept.
            if isinstance(item.get(name), str) and item[name] != "":
                del item[name]
                changed = True
        found = plan.event_of(item)
        if found is None:
            continue
        ctx = Ctx(item, {}, {}, {})
        for o in outputs:
            changed = _redact(o.node, found[1], ctx) or changed
    return changed


def _redact(node: Node, at: Any, ctx: Ctx) -> bool:
    if isinstance(node, Value):
        return _redact_value(node, at, ctx) if node.privacy else False
    if isinstance(node, Switch):
        case = choose(node, read_first(node.selector, at, ctx))
        return case is not None and _redact(case, at, ctx)
    changed = False
    for _, element in elements(read(node.items, at, ctx)):
        for child in children(node):
            changed = _redact(child, element, ctx) or changed
    return changed


def _redact_value(value: Value, at: Any, ctx: Ctx) -> bool:
    changed = False
    for src in value.sources:
        holder: Any = at if src.ns == "" else ctx.item
        *parents, last = src.tokens
        for t in parents:
            holder = _child(holder, t)
        key: int | str
        if holder.__class__ is dict:
            raw, key = holder.get(last), last
        elif holder.__class__ is list:
            i = as_index(last)
            if i is None or i >= len(holder):
                continue
            raw, key = holder[i], i
        else:
            continue
        if raw is None or raw == "" or is_marker(raw):
            continue
        if value.dropped:
            if holder.__class__ is dict:
                del holder[key]
            else:
                holder[key] = None  # keep the indexes of the other elements
        else:
            holder[key] = _marker(settle(value, raw, at, ctx), value.privacy)
        changed = True
    return changed


def _child(node: Any, token: str) -> Any:
    if node.__class__ is dict:
        return node.get(token)
    i = as_index(token) if node.__class__ is list else None
    return node[i] if i is not None and i < len(node) else None


def choose(switch: Switch, selected: Any) -> Node | None:
    """The case a selector value picks (compared as text), else the ``*`` case."""
    key = to_text(selected) if selected is not None else None
    if key is not None:
        for name, case in switch.cases:
            if name == key:
                return case
    return switch.fallback


# -- what cannot be honoured ----------------------------------------------------------------


def problems(plan: MappingPlan) -> Iterator[tuple[str, str]]:
    """(key, reason) for every privacy marker of the plan that the engine cannot honour."""
    reads = list(_reads(plan))
    for _, o in plan.outputs():
        yield from _unnamed(o.node, private_ok=True, named=True)
    for value, scope in _private_values(plan):
        yield from _value_problems(value, scope, plan, reads)


def _unnamed(node: Node, private_ok: bool, named: bool) -> Iterator[tuple[str, str]]:
    """Markers in places that have no name to write a hash or mask under."""
    if isinstance(node, Value):
        if node.privacy and not private_ok:
            yield node.key, "an object member's name is written in the clear: it cannot be private"
        elif node.privacy and not named and not node.dropped:
            yield (
                node.key,
                (
                    "an array element has no name for <name>_sha256 / <name>_masked: "
                    "use [drop], or map the elements with 'fields' and mark a field"
                ),
            )
    elif isinstance(node, Switch):
        for child in children(node):
            yield from _unnamed(child, private_ok, named)
    else:
        for o in node.fields or ():
            yield from _unnamed(o.node, private_ok, named=True)
        if node.name is not None:
            yield from _unnamed(node.name, private_ok=False, named=True)
        if node.value is not None:
            yield from _unnamed(node.value, private_ok, named=node.name is not None)


Cases = tuple[tuple[int, str], ...]
"""The switch cases (switch id, case name) a node sits in: nodes in different cases of one
switch never read the same element."""


@dataclass(frozen=True, slots=True)
class _Scope:
    """Where a node reads: the event path of its element (``*`` per array level), the
    selectors of the switches around it, and the cases it sits in."""

    prefix: tuple[str, ...] = ()
    selectors: tuple[Path, ...] = ()
    cases: Cases = ()


@dataclass(frozen=True, slots=True)
class _Read:
    """A path some part of the plan reads, as item paths (one per event root)."""

    by: str
    item_paths: list[tuple[str, ...]]
    value: Value | None = None
    cases: Cases = ()


def _walk(node: Node, scope: _Scope) -> Iterator[tuple[Node, _Scope]]:
    """Every node below ``node`` (itself included), with where it reads."""
    yield node, scope
    if isinstance(node, Switch):
        for name, case in [*node.cases, *([("*", node.fallback)] if node.fallback is not None else [])]:
            inner = _Scope(scope.prefix, (*scope.selectors, *node.selector), (*scope.cases, (id(node), name)))
            yield from _walk(case, inner)
    elif isinstance(node, Each):
        inner = _Scope((*scope.prefix, *node.items.tokens, "*"), scope.selectors, scope.cases)
        for child in children(node):
            yield from _walk(child, inner)


def _private_values(plan: MappingPlan) -> Iterator[tuple[Value, _Scope]]:
    for _, o in plan.outputs():
        for node, scope in _walk(o.node, _Scope()):
            if isinstance(node, Value) and node.privacy:
                yield node, scope


def _item_paths(plan: MappingPlan, path: Path, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    if path.ns == "item":
        return [path.tokens]
    if path.ns == "":
        return [(*root, *prefix, *path.tokens) for root in plan.event_roots]
    return []


def _step_paths(value: Value) -> Iterator[tuple[str, Path]]:
    """(transform name, path) of every path argument of a value's transforms."""
    for step in value.steps:
        for f in msgspec.structs.fields(step.args):
            for p in getattr(getattr(step.args, f.name), "paths", ()):
                yield step.name, p


def _reads(plan: MappingPlan) -> Iterator[_Read]:
    for _, o in plan.outputs():
        for node, scope in _walk(o.node, _Scope()):
            own = (*scope.cases,)
            if isinstance(node, Value):
                for p in node.sources:
                    yield _Read(node.key, _item_paths(plan, p, scope.prefix), node, own)
                for name, p in _step_paths(node):
                    yield _Read(
                        f"{node.key} (transform {name})", _item_paths(plan, p, scope.prefix), None, own
                    )
            elif isinstance(node, Switch):
                for p in node.selector:
                    yield _Read(f"{node.key} (switch)", _item_paths(plan, p, scope.prefix), None, own)
            else:
                yield _Read(f"{node.key} (each)", _item_paths(plan, node.items, scope.prefix), None, own)
    for i, ident in enumerate(plan.identities):
        for p in ident.value.sources:
            yield _Read(f"identities[{i}]", _item_paths(plan, p, ()))
    for i, rule in enumerate(plan.type_rules):
        yield _Read(f"type_from[{i}]", _item_paths(plan, rule.source, ()))
    for route in plan.routes.values():
        for p in route.require:
            yield _Read(f"envelope.routes[{route.path}].require", _item_paths(plan, p, ()))
    for t in plan.types.values():
        for c in t.constraints:
            if c.rule.required:
                yield _Read(
                    f"constraints {c.key} (required)", _item_paths(plan, Path("", c.tokens, c.key), ())
                )


def _under(path: tuple[str, ...], top: tuple[str, ...]) -> bool:
    """``path`` is ``top`` or below it (``*`` matches any token)."""
    return len(path) >= len(top) and all(a == b or "*" in (a, b) for a, b in zip(top, path, strict=False))


def _exclusive(a: Cases, b: Cases) -> bool:
    """Two nodes in different cases of one switch."""
    chosen = dict(a)
    return any(switch in chosen and chosen[switch] != name for switch, name in b)


def _same_marking(a: Value, b: Value) -> bool:
    return a.privacy == b.privacy and [(s.name, s.args) for s in a.steps] == [
        (s.name, s.args) for s in b.steps
    ]


def _value_problems(
    value: Value, scope: _Scope, plan: MappingPlan, reads: list[_Read]
) -> Iterator[tuple[str, str]]:
    key = value.key
    if value.dropped and len(value.privacy) > 1:
        yield key, "drop removes the value: it cannot be combined with hash or mask"
    if value.dropped and value.required:
        yield key, "a dropped value is removed before mapping, so 'required' could never be met"
    if value.dropped and value.steps:
        yield key, "a dropped value is never converted: remove its transforms"
    for src in value.sources:
        if not src.in_payload:
            yield key, f"{src.text}: privacy applies to values in the body (event or @item paths)"
        elif not src.tokens:
            yield key, f"{src.text or '(the whole event)'}: privacy needs a path to a member"
    depends = [(f"{key} (switch)", p) for p in scope.selectors]
    depends += [(f"{key} (transform {name}: {p.text})", p) for name, p in _step_paths(value)]
    for by, p in depends:
        if not p.in_payload:
            yield (
                key,
                (
                    f"{by}: the body is redacted before the request's headers and route are known, "
                    "so a private value cannot depend on them"
                ),
            )
    mine = [q for src in value.sources for q in _item_paths(plan, src, scope.prefix)]
    moved = [
        (i, (*root, *tokens))
        for i, rw in enumerate(plan.rewrites)
        for root in plan.event_roots
        for tokens in (rw.source, rw.target)
    ]
    for i, path in moved:
        if any(_under(q, path) or _under(path, q) for q in mine):
            yield key, f"rewrite[{i}] moves this value, so the body cannot be redacted where it is read"
            break
    for r in reads:
        if r.value is value or _exclusive(scope.cases, r.cases):
            continue
        for q in mine:
            hit = next((p for p in r.item_paths if _under(p, q)), None)
            if hit is None:
                continue
            if r.value is not None and r.value.privacy and hit == q and _same_marking(r.value, value):
                continue  # the same value, marked the same way (in another type, say)
            if r.by.startswith(("envelope.routes", "constraints")) and hit == q and not value.dropped:
                continue  # a presence check: the marker is present
            yield key, f"is also read, not privately, by {r.by}"
            break
