"""From a mapping file (``spec.py``) to its plan (``plan.py``).

Every path is parsed and its root aliases expanded (in fields, transform arguments,
constraint keys, rewrites, identities, routes), every transform is built from its typed
arguments, every constraint compiled, every privacy marker checked. A mistake is a
``MappingError`` naming the file, the key and the reason; nothing in a mapping file is
interpreted per request.
"""

from __future__ import annotations

from typing import Any

from ..events import EventType
from .constraints import Rule
from .paths import NAMESPACES, Path, PathError, Paths, expand
from .plan import (
    Constrained,
    Each,
    IdentityRule,
    MappingPlan,
    Node,
    Output,
    Rewrite,
    RouteRule,
    Switch,
    TypePlan,
    TypeRule,
    Value,
)
from .privacy import problems as privacy_problems
from .spec import Constraint, Field, FieldInput, MappingFile
from .spec import TypeRule as TypeRuleSpec
from .transforms import SpecError, Step, build

OUTPUT_ROOTS = ("occurred_at", "anonymous_id", "lead", "properties", "context")
CANONICAL_TYPES = frozenset(t.value for t in EventType)


class MappingError(ValueError):
    """A mapping file that cannot be used: names the file, the key and the reason."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


def compile_plan(spec: MappingFile, where: str) -> MappingPlan:
    return _Compiler(spec, where).plan()


class _Compiler:
    def __init__(self, spec: MappingFile, where: str) -> None:
        self.spec = spec
        self.where = where
        self.roots = dict(spec.roots)

    def fail(self, key: str, reason: str) -> MappingError:
        return MappingError(f"{self.where}: {key}", reason)

    def dec_hook(self, type_: type, obj: Any) -> Any:
        if type_ is Paths:
            return Paths.decode(obj, self.roots)
        raise NotImplementedError(type_)

    # -- parts ------------------------------------------------------------------------
    def paths(self, key: str, texts: list[str], wildcard: bool = False) -> tuple[Path, ...]:
        out = []
        for text in texts:
            for expanded in expand(text, self.roots):
                try:
                    p = Path.parse(expanded)
                except PathError as e:
                    raise self.fail(key, str(e)) from None
                if "*" in p.tokens and not wildcard:
                    raise self.fail(key, f"'*' is only for constraints, not in {expanded!r}")
                out.append(p)
        return tuple(out)

    def event_path(self, key: str, text: str) -> Path:
        found = self.paths(key, [text])
        if len(found) != 1 or found[0].ns != "":
            raise self.fail(key, f"takes one event path (/…), got {text!r}")
        return found[0]

    def steps(self, key: str, refs: list[str | dict[str, Any]]) -> tuple[Step, ...]:
        try:
            return tuple(build(ref, self.dec_hook) for ref in refs)
        except SpecError as e:
            raise self.fail(key, str(e)) from None

    # -- fields -----------------------------------------------------------------------
    def node(self, key: str, spec: FieldInput) -> Node:
        if isinstance(spec, str):
            return Value(key, self.paths(key, [spec]))
        if isinstance(spec, list):
            return Value(key, self.paths(key, spec))
        if spec.switch is not None:
            return self.switch(key, spec)
        if spec.each is not None:
            return self.each(key, spec)
        if (
            spec.fields is not None
            or spec.key is not None
            or spec.value is not None
            or spec.cases is not None
        ):
            raise self.fail(key, "'fields', 'key' and 'value' need 'each'; 'cases' needs 'switch'")
        if not spec.from_ and spec.default is None:
            raise self.fail(key, "a field needs 'from' or 'default'")
        return Value(
            key,
            self.paths(key, spec.from_),
            self.steps(key, spec.transforms),
            spec.default,
            spec.required,
            tuple(dict.fromkeys(spec.privacy)),
        )

    def _value_keys(self, spec: Field) -> list[str]:
        given = {
            "from": bool(spec.from_),
            "transforms": bool(spec.transforms),
            "default": spec.default is not None,
            "required": spec.required,
            "privacy": bool(spec.privacy),
        }
        return [name for name, present in given.items() if present]

    def switch(self, key: str, spec: Field) -> Switch:
        assert spec.switch is not None
        if spec.each is not None or spec.fields is not None or spec.key is not None or spec.value is not None:
            raise self.fail(key, "a 'switch' takes 'cases' only: put an 'each' inside a case")
        misplaced = self._value_keys(spec)
        if misplaced:
            raise self.fail(key, f"{', '.join(misplaced)}: these belong on the cases of a 'switch'")
        if not spec.cases:
            raise self.fail(key, "a 'switch' needs 'cases'")
        cases = [(str(name), self.node(f"{key}.cases.{name}", case)) for name, case in spec.cases.items()]
        fallback = next((n for name, n in cases if name == "*"), None)
        return Switch(
            key, self.paths(key, [spec.switch]), tuple((n, c) for n, c in cases if n != "*"), fallback
        )

    def each(self, key: str, spec: Field) -> Each:
        assert spec.each is not None
        if spec.cases is not None:
            raise self.fail(key, "'cases' needs 'switch'")
        misplaced = self._value_keys(spec)
        if misplaced:
            raise self.fail(
                key, f"{', '.join(misplaced)}: these belong on the 'value' or 'fields' of an 'each'"
            )
        items = self.event_path(key, spec.each)
        if spec.fields is not None:
            if spec.key is not None or spec.value is not None:
                raise self.fail(key, "'each' takes 'fields', or 'value' (with an optional 'key'), not both")
            return Each(key, items, fields=self.outputs(spec.fields, f"{key}.fields", top=False))
        if spec.value is None:
            raise self.fail(key, "'each' needs 'fields' or 'value'")
        name = self.node(f"{key}.key", spec.key) if spec.key is not None else None
        return Each(key, items, name=name, value=self.node(f"{key}.value", spec.value))

    def outputs(self, fields: dict[str, FieldInput], where: str, top: bool = True) -> tuple[Output, ...]:
        out = []
        for name, spec in fields.items():
            tokens = tuple(name.split("."))
            if "" in tokens:
                raise self.fail(f"{where}.{name}", "an output name is dotted words, without empty parts")
            if top and tokens[0] not in OUTPUT_ROOTS:
                raise self.fail(f"{where}.{name}", f"output must start with one of {', '.join(OUTPUT_ROOTS)}")
            out.append(Output(tokens, self.node(f"{where}.{name}", spec)))
        return tuple(out)

    # -- constraints ------------------------------------------------------------------
    def constraints(self, raw: dict[str, Constraint], where: str) -> dict[tuple[str, ...], Constrained]:
        out: dict[tuple[str, ...], Constrained] = {}
        for text, rule in raw.items():
            key = f"{where}.{text}"
            for p in self.paths(key, [text], wildcard=True):
                if p.ns != "":
                    raise self.fail(key, f"constraints apply to event paths, got {p.text!r}")
                if not p.tokens:
                    raise self.fail(key, "a constraint needs a path below the event")
                if p.tokens in out:
                    raise self.fail(key, f"{p.text} is constrained twice (also by {out[p.tokens].key})")
                try:
                    Rule(rule)
                except ValueError as e:
                    raise self.fail(key, str(e)) from None
                out[p.tokens] = Constrained(p.text, p.tokens, rule)
        return out

    # -- the whole file ---------------------------------------------------------------
    def plan(self) -> MappingPlan:
        spec = self.spec
        for alias in self.roots:
            if alias in NAMESPACES:
                raise self.fail(f"roots.{alias}", f"would hide the @{alias} namespace")
        roots = tuple(
            self.event_path(f"event_root[{i}]", r).tokens if r else () for i, r in enumerate(spec.event_root)
        )
        type_rules = []
        for i, rule in enumerate(spec.type_from):
            r = rule if isinstance(rule, TypeRuleSpec) else TypeRuleSpec(path=rule)
            for p in self.paths(f"type_from[{i}]", [r.path]):
                type_rules.append(TypeRule(p, r.equals, r.value))
        rewrites = []
        for i, rw in enumerate(spec.rewrite):
            src, dst = (
                self.event_path(f"rewrite[{i}].from", rw.from_),
                self.event_path(f"rewrite[{i}].to", rw.to),
            )
            if not src.tokens or not dst.tokens:
                raise self.fail(f"rewrite[{i}]", "'from' and 'to' are paths below the event")
            steps = self.steps(f"rewrite[{i}]", rw.transforms)
            rewrites.append(Rewrite(src.tokens, dst.tokens, steps, frozenset(rw.only)))
        identities = tuple(
            IdentityRule(
                ident.kind,
                ident.known,
                Value(
                    f"identities[{i}]",
                    self.paths(f"identities[{i}]", ident.from_),
                    self.steps(f"identities[{i}]", ident.transforms),
                ),
            )
            for i, ident in enumerate(spec.identities)
        )
        common = self.outputs(spec.fields, "fields")
        common_constraints = self.constraints(spec.constraints, "constraints")
        types: dict[str, TypePlan] = {}
        for name, t in spec.types.items():
            if isinstance(t, str):
                canonical, fields, constraints = t, {}, {}
            else:
                canonical, fields, constraints = t.type, t.fields, t.constraints
            if canonical not in CANONICAL_TYPES:
                raise self.fail(f"types.{name}", f"unknown canonical type {canonical!r}")
            own = self.outputs(fields, f"types.{name}.fields")
            mine = {o.tokens for o in own}
            merged = {**common_constraints, **self.constraints(constraints, f"types.{name}.constraints")}
            types[name] = TypePlan(
                name,
                canonical,
                (*(o for o in common if o.tokens not in mine), *own),
                tuple(merged.values()),
            )
        routes: dict[str, RouteRule] = {}
        seen: set[str] = set()
        for route in spec.envelope.routes:
            where = f"envelope.routes[{route.path}]"
            path = route.path.rstrip("/") or "/"
            if path in seen:
                raise self.fail(where, "the path is listed twice")
            seen.add(path)
            if route.source_type is not None:
                require = tuple(self.event_path(f"{where}.require", p) for p in route.require)
                routes[route.path] = RouteRule(route.path, route.source_type, require)
            elif route.require:
                raise self.fail(f"{where}.require", "needs the route's 'source_type'")
        plan = MappingPlan(
            spec.source,
            spec.version,
            spec.envelope,
            roots,
            tuple(type_rules),
            tuple(rewrites),
            identities,
            common,
            types,
            routes,
        )
        for key, reason in privacy_problems(plan):
            raise self.fail(key, f"privacy: {reason}")
        return plan
