"""The plan read plainly: a walk over its nodes, following the semantics in ``plan.py``.

This is the reference the generated code is held to (a test maps every fixture both
ways and requires the same events, errors and redacted bodies). It is slower, and
simple enough to check by reading; ``CompiledMapping(…, executor=interpreter)`` runs it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .constraints import compile_constraints
from .output import place_at, put_member
from .paths import Ctx, elements, read, read_first
from .plan import Constrained, Each, Node, Output, Switch, Value
from .privacy import Failure, choose, protect, settle
from .transforms import TransformError, to_text

_FAILED = object()


def evaluate(node: Node, at: Any, ctx: Ctx, base: str) -> Any:
    if isinstance(node, Value):
        v = _value(node, at, ctx, base)
        return None if v is _FAILED else v
    if isinstance(node, Switch):
        case = choose(node, read_first(node.selector, at, ctx))
        return None if case is None else evaluate(case, at, ctx, base)
    return _each(node, at, ctx, base)


def _value(node: Value, at: Any, ctx: Ctx, base: str) -> Any:
    if node.dropped:
        return None
    for src in node.sources:
        v = read(src, at, ctx)
        if v is None:
            continue
        if node.privacy:
            v = settle(node, v, at, ctx)
            if isinstance(v, Failure):
                ctx.error(src.error_pointer(base), v.message)
                return _FAILED
        else:
            try:
                for step in node.steps:
                    v = step.fn(v, at, ctx)
                    if v is None:
                        break
            except TransformError as e:
                ctx.error(src.error_pointer(base), str(e))
                return _FAILED
        if v is not None and v != "":
            return v
    if node.default is not None:
        return copy.deepcopy(protect(node.default, node.privacy) if node.privacy else node.default)
    if node.required:
        ctx.error(node.sources[0].error_pointer(base), "is required")
    return None


def _each(node: Each, at: Any, ctx: Ctx, base: str) -> Any:
    items = read(node.items, at, ctx)
    here = base + node.items.error_pointer("") + "/"
    if node.fields is not None:
        if not isinstance(items, list | dict):
            return None
        objects = []
        for i, element in elements(items):
            if isinstance(element, dict):
                obj = build(node.fields, element, ctx, f"{here}{i}")
                if obj:
                    objects.append(obj)
        return objects
    assert node.value is not None
    if node.name is None:
        found = [evaluate(node.value, element, ctx, f"{here}{i}") for i, element in elements(items)]
        return [v for v in found if v is not None] or None
    entries: dict[str, Any] = {}
    for i, element in elements(items):
        name = evaluate(node.name, element, ctx, f"{here}{i}")
        name = to_text(name) if name is not None else None
        if name is not None:
            v = evaluate(node.value, element, ctx, f"{here}{i}")
            if v is not None:
                put_member(entries, name, v)
    return entries or None


def build(outputs: tuple[Output, ...], at: Any, ctx: Ctx, base: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for o in outputs:
        v = evaluate(o.node, at, ctx, base)
        if v is not None:
            place_at(out, o.tokens, v)
    return out


class Interpreter:
    """The executor interface ``engine.CompiledMapping`` takes (see ``codegen``)."""

    @staticmethod
    def outputs(outputs: tuple[Output, ...], name: str) -> Callable[[Any, Ctx, str], dict[str, Any]]:
        return lambda event, ctx, base: build(outputs, event, ctx, base)

    @staticmethod
    def values(nodes: tuple[Value, ...], name: str) -> Callable[[Any, Ctx, str], list[Any]]:
        return lambda event, ctx, base: [evaluate(n, event, ctx, base) for n in nodes]

    @staticmethod
    def constraints(constraints: tuple[Constrained, ...], name: str) -> Callable[[Any, Ctx], None]:
        return compile_constraints(constraints)


interpreter = Interpreter()
