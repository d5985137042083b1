"""Generate the Python code that runs a plan: one function per event type.

A closure per field and per path step cost ~250 µs an event on a 60-field mapping. The
generated function reads every shared path prefix once into a local, writes paths and
simple transforms inline, loops over arrays and chooses switch cases in place, and
builds the output objects directly. It follows the node semantics written in
``plan.py``; ``interpret.py`` is the plain reading of the same semantics, and a test
runs every fixture through both.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from .constraints import generate_constraints
from .output import place_at, put_member
from .paths import Ctx, Path, elements, pointer, walk
from .plan import Each, Node, Output, Switch, Value
from .privacy import Failure, Redacted, protect, settle
from .transforms import TransformError, to_text

OutputsFn = Callable[[Any, Ctx, str], dict[str, Any]]
ValuesFn = Callable[[Any, Ctx, str], list[Any]]

#: Steps written inline, by transform name (``v`` is known not to be None).
_INLINE = {
    "trim": "{v} = ({v}.strip() or None) if {v}.__class__ is str else {v}",
    "lower": "{v} = {v}.lower() if {v}.__class__ is str else {v}",
    "upper": "{v} = {v}.upper() if {v}.__class__ is str else {v}",
}

#: The same steps applied to a text, as method calls chained after it.
_INLINE_TEXT = {"trim": ".strip()", "lower": ".lower()", "upper": ".upper()"}

#: Transforms that return a value unchanged when it passes this test (``{v}`` the value):
#: ``number`` keeps an int and a finite float (a float is finite when it lies between the
#: infinities; NaN does not).
_UNCHANGED = {
    "string": "{v}.__class__ is str",
    "number": "{v}.__class__ is int or ({v}.__class__ is float and -INF < {v} < INF)",
}

_FAILED = object()
"""A value whose transforms failed (the error is reported; no default, no required)."""


@dataclass
class _Scope:
    """Where paths start: the event, or the element of an array being mapped."""

    node: str
    base: str
    is_dict: bool
    """``node`` is known to be an object (the event is; an element may be anything)."""
    decls: list[str] = field(default_factory=list)
    prefixes: dict[tuple[str, ...], str] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    """Prefix locals known to hold an object where the code is being written."""


class _Code:
    def __init__(self) -> None:
        self.env: dict[str, Any] = {
            "TransformError": TransformError,
            "FAILED": _FAILED,
            "Failure": Failure,
            "Redacted": Redacted,
            "settle": settle,
            "walk": walk,
            "elements": elements,
            "to_text": to_text,
            "place_at": place_at,
            "put_member": put_member,
            "deepcopy": copy.deepcopy,
            "INF": math.inf,
        }
        self.names = 0

    def const(self, value: Any, stem: str = "K") -> str:
        self.names += 1
        name = f"{stem}{self.names}"
        self.env[name] = value
        return name

    def var(self, stem: str) -> str:
        self.names += 1
        return f"{stem}{self.names}"

    # -- reading -----------------------------------------------------------------------
    def prefix(self, scope: _Scope, tokens: tuple[str, ...]) -> str:
        """A local holding the object at ``tokens`` below the scope's node (or None)."""
        var = scope.prefixes.get(tokens)
        if var is not None:
            return var
        var = self.var("p")
        if not tokens:
            if scope.is_dict:
                return scope.node
            scope.decls.append(f"{var} = {scope.node} if {scope.node}.__class__ is dict else None")
        else:
            parent = self.prefix(scope, tokens[:-1])
            if parent == scope.node:  # known to be an object
                scope.decls.append(f"{var} = {parent}.get({tokens[-1]!r})")
            else:
                scope.decls.append(f"{var} = {parent}.get({tokens[-1]!r}) if {parent} is not None else None")
            scope.decls.append(f"if {var}.__class__ is not dict: {var} = None")
        scope.prefixes[tokens] = var
        return var

    def read(self, scope: _Scope, path: Path, v: str) -> list[str]:
        """Lines that set ``v`` to the value at ``path`` (None when absent or "")."""
        if path.ns == "":
            if not path.tokens:
                return [f"{v} = {scope.node}", f"if {v} == '': {v} = None"]
            if any(t.isdigit() for t in path.tokens):
                return [f"{v} = walk({scope.node}, {self.const(path.tokens, 'T')})"]
            parent = self.prefix(scope, path.tokens[:-1])
            get = f"{parent}.get({path.tokens[-1]!r})"
            known = parent == scope.node or parent in scope.known
            return [
                f"{v} = {get}" if known else f"{v} = {get} if {parent} is not None else None",
                f"if {v} == '': {v} = None",
            ]
        if path.ns == "item":
            if len(path.tokens) == 1 and not path.tokens[0].isdigit():  # the item is an object
                return [f"{v} = ctx.item.get({path.tokens[0]!r})", f"if {v} == '': {v} = None"]
            return [f"{v} = walk(ctx.item, {self.const(path.tokens, 'T')})"]
        if path.ns == "header":
            return [f"{v} = ctx.headers.get({path.tokens[0]!r}) or None"]
        return [f"{v} = ctx.{path.ns}.get({path.tokens[0]!r})", f"if {v} == '': {v} = None"]

    def where(self, scope: _Scope, path: Path) -> str:
        """An expression for the pointer a problem with this path's value is reported at."""
        if path.ns == "":
            return f"{scope.base} + {pointer(path.tokens)!r}"
        return repr(path.error_pointer(""))

    # -- nodes -------------------------------------------------------------------------
    def node(self, scope: _Scope, node: Node, v: str) -> list[str]:
        if isinstance(node, Value):
            return self.value(scope, node, v)
        if isinstance(node, Switch):
            return self.switch(scope, node, v)
        return self.each(scope, node, v)

    def value(self, scope: _Scope, node: Value, v: str) -> list[str]:
        if node.dropped:
            return [f"{v} = None"]
        private = bool(node.privacy)
        inline_only = all(step.name in _INLINE for step in node.steps)
        fallible = private or not inline_only
        out: list[str] = []
        for i, src in enumerate(node.sources):
            block = self.read(scope, src, v)
            if node.steps and inline_only and not private:
                # These steps cannot fail, and none turns text into "".
                block.append(f"if {v} is not None:")
                for j, step in enumerate(node.steps):
                    guard = "" if j == 0 else f"if {v} is not None: "
                    block.append(f"    {guard}{_INLINE[step.name].format(v=v)}")
            elif private:
                block += [
                    f"if {v} is not None:",
                    f"    {v} = settle({self.const(node, 'N')}, {v}, {scope.node}, ctx)",
                    f"    if {v}.__class__ is Failure:",
                    f"        ctx.error({self.where(scope, src)}, {v}.message); {v} = FAILED",
                ]
            elif node.steps:
                block += [f"if {v} is not None:", "    try:"]
                for j, step in enumerate(node.steps):
                    guard = "" if j == 0 else f"if {v} is not None: "
                    inline = _INLINE.get(step.name)
                    if inline is not None:
                        block.append(f"        {guard}{inline.format(v=v)}")
                        continue
                    call = f"{v} = {self.const(step.fn, 'S')}({v}, {scope.node}, ctx)"
                    unchanged = _UNCHANGED.get(step.name)
                    if unchanged is not None:  # skip the call for what it returns as is
                        call = f"if not ({unchanged.format(v=v)}): {call}"
                    block.append(f"        {guard}{call}")
                block += [
                    "    except TransformError as e:",
                    f"        ctx.error({self.where(scope, src)}, str(e)); {v} = FAILED",
                    "    else:",
                    f"        if {v} == '': {v} = None",
                ]
            out += block if i == 0 else [f"if {v} is None:", *_indent(block)]
        if not node.sources:
            out.append(f"{v} = None")
        tail: list[str] = []
        if node.default is not None:
            default = protect(node.default, node.privacy) if private else node.default
            if default.__class__ in (dict, list):
                tail.append(f"    {v} = deepcopy({self.const(default)})")
            else:
                tail.append(f"    {v} = {self.const(default)}")
        elif node.required:
            tail.append(f"    ctx.error({self.where(scope, node.sources[0])}, 'is required')")
        if fallible:
            out.append(f"if {v} is FAILED: {v} = None")
            if tail:
                out += [f"elif {v} is None:", *tail]
        elif tail:
            out += [f"if {v} is None:", *tail]
        return out

    def switch(self, scope: _Scope, node: Switch, v: str) -> list[str]:
        sel = self.var("sel")
        out: list[str] = []
        for i, p in enumerate(node.selector):
            block = self.read(scope, p, sel)
            out += block if i == 0 else [f"if {sel} is None:", *_indent(block)]
        out.append(_as_text(sel))
        first = True
        for name, case in node.cases:
            out.append(f"{'if' if first else 'elif'} {sel} == {name!r}:")
            out += _indent(self.node(scope, case, v))
            first = False
        fallback = self.node(scope, node.fallback, v) if node.fallback is not None else [f"{v} = None"]
        if first:
            return out + fallback
        return [*out, "else:", *_indent(fallback)]

    def each(self, scope: _Scope, node: Each, v: str) -> list[str]:
        items, i, el = self.var("items"), self.var("i"), self.var("el")
        # The element's pointer, built only when a problem is reported.
        base = f"({scope.base} + {pointer(node.items.tokens) + '/'!r} + str({i}))"
        inner = _Scope(el, base, is_dict=node.fields is not None)
        out = self.read(scope, node.items, items)
        loop = f"for {i}, {el} in (enumerate({items}) if {items}.__class__ is list else elements({items})):"
        if node.fields is not None:
            acc, obj = self.var("acc"), self.var("obj")
            body = self.outputs(inner, node.fields, obj)
            body = [*inner.decls, *body]
            out += [
                f"if {items}.__class__ is list or {items}.__class__ is dict:",
                f"    {acc} = []",
                f"    {loop}",
                f"        if {el}.__class__ is not dict: continue",
            ]
            out += _indent(body, 2)
            out += [f"        if {obj}: {acc}.append({obj})", f"    {v} = {acc}", "else:", f"    {v} = None"]
            return out
        assert node.value is not None
        acc, x = self.var("acc"), self.var("x")
        if node.name is None:
            body = self.node(inner, node.value, x)
            body = [*inner.decls, *body, f"if {x} is not None: {acc}.append({x})"]
            out += [f"{acc} = []", f"for {i}, {el} in elements({items}):"]
        else:
            k = self.var("k")
            put = f"put_member({acc}, {k}, {x})" if _may_be_private(node.value) else f"{acc}[{k}] = {x}"
            value = [*self.node(inner, node.value, x), f"if {x} is not None: {put}"]
            name = self.node(inner, node.name, k)
            body = [
                *inner.decls,
                *name,
                _as_text(k),
                f"if {k} is not None:",
                *_indent(value),
            ]
            out += [f"{acc} = {{}}", f"for {i}, {el} in elements({items}):"]
        return [*out, *_indent(body), f"{v} = {acc} or None"]

    def simple_put(self, scope: _Scope, node: Node, v: str, target: str, last: str) -> list[str] | None:
        """The common output written in one piece: one path read from an object, inline
        steps only, nothing private, no default, not required. An absent value then costs
        one test, and a text the steps leave whole is put without testing it again (the
        general form tests for "" at the read, for None after each step and at the put)."""
        if (
            not isinstance(node, Value)
            or node.dropped
            or node.privacy
            or node.default is not None
            or node.required
            or len(node.sources) != 1
        ):
            return None
        one_call = len(node.steps) == 1 and node.steps[0].name not in _INLINE_TEXT
        if not one_call and not all(step.name in _INLINE_TEXT for step in node.steps):
            return None
        read = self.read(scope, node.sources[0], v)
        if len(read) != 2 or read[1] != f"if {v} == '': {v} = None":
            return None  # not a plain member read (a header, an array index)
        put = f"{target}[{last!r}] = {v}"
        lines = [read[0], f"if {v} is not None and {v} != '':"]
        if one_call:
            # One transform (``string``, ``number``, ``date``…): a value it returns as is
            # is put at once; what it fails on is reported and left out (there is no
            # default to fall back to), what it makes absent ("" or None) is left out.
            step = node.steps[0]
            call = [
                "try:",
                f"    {v} = {self.const(step.fn, 'S')}({v}, {scope.node}, ctx)",
                "except TransformError as e:",
                f"    ctx.error({self.where(scope, node.sources[0])}, str(e))",
                "else:",
                f"    if {v} is not None and {v} != '': {put}",
            ]
            unchanged = _UNCHANGED.get(step.name)
            if unchanged is None:
                return [*lines, *_indent(call)]
            test = unchanged.format(v=v)
            return [*lines, f"    if {test}:", f"        {put}", "    else:", *_indent(call, 2)]
        if not node.steps:
            return [*lines, f"    {put}"]
        # The steps change text only; "trim" alone can make it "" (then it is absent).
        steps = [_INLINE_TEXT[step.name].format(v=v) for step in node.steps]
        trimmed = any(step.name == "trim" for step in node.steps)
        return [
            *lines,
            f"    if {v}.__class__ is str:",
            f"        {v} = {v}" + "".join(steps),
            f"        if {v}: {put}" if trimmed else f"        {put}",
            "    else:",
            f"        {put}",
        ]

    # -- outputs -----------------------------------------------------------------------
    def outputs(self, scope: _Scope, outputs: tuple[Output, ...], out: str) -> list[str]:
        """Lines that build the object ``out`` from the outputs (declarations of the scope
        are left in ``scope.decls``)."""
        leaves = {o.tokens for o in outputs}
        containers: dict[tuple[str, ...], str] = {(): out}
        for o in outputs:
            for n in range(1, len(o.tokens)):
                containers.setdefault(o.tokens[:n], self.var("c"))
        lines = [f"{var} = {{}}" for var in containers.values()]
        conflict = any(t in containers for t in leaves)
        # Neighbouring values read under one absent object are skipped by one test.
        for under, run in groupby(outputs, key=lambda o: _under(o.node)):
            block: list[str] = []
            prefix = self.prefix(scope, under) if under is not None else None
            if prefix is not None:
                scope.known.add(prefix)
            for o in run:
                v = self.var("v")
                if not conflict:
                    simple = self.simple_put(scope, o.node, v, containers[o.tokens[:-1]], o.tokens[-1])
                    if simple is not None:
                        block += simple
                        continue
                block += self.node(scope, o.node, v)
                if conflict:
                    block.append(f"if {v} is not None: place_at({out}, {self.const(o.tokens, 'T')}, {v})")
                    continue
                target, last = containers[o.tokens[:-1]], o.tokens[-1]
                if _may_be_private(o.node):
                    block.append(f"if {v} is not None: put_member({target}, {last!r}, {v})")
                else:
                    block.append(f"if {v} is not None: {target}[{last!r}] = {v}")
            if prefix is None or prefix == scope.node:
                lines += block
            else:
                scope.known.discard(prefix)
                lines += [f"if {prefix} is not None:", *_indent(block)]
        if not conflict:
            for tokens in sorted((t for t in containers if t), key=len, reverse=True):
                var, parent = containers[tokens], containers[tokens[:-1]]
                lines.append(f"if {var}: {parent}[{tokens[-1]!r}] = {var}")
        return lines


def _under(node: Node) -> tuple[str, ...] | None:
    """The object a value reads its one source under, when nothing comes of it when that
    object is absent (no default, nothing required)."""
    if not isinstance(node, Value) or len(node.sources) != 1 or node.default is not None or node.required:
        return None
    src = node.sources[0]
    if src.ns != "" or len(src.tokens) < 2 or any(t.isdigit() for t in src.tokens):
        return None
    return src.tokens[:-1]


def _may_be_private(node: Node) -> bool:
    """The node's own value may come out as a Redacted (not a value nested in an array)."""
    if isinstance(node, Value):
        return bool(node.privacy) and not node.dropped
    if isinstance(node, Switch):
        return any(_may_be_private(c) for _, c in node.cases) or (
            node.fallback is not None and _may_be_private(node.fallback)
        )
    return False


def _as_text(v: str) -> str:
    """``v`` as text, or None; a text (the usual case) without calling ``to_text``."""
    return f"if {v}.__class__ is not str: {v} = to_text({v}) if {v} is not None else None"


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    pad = "    " * levels
    return [pad + line for line in lines]


def _function(code: _Code, name: str, body: list[str], scope: _Scope, result: str) -> Callable[..., Any]:
    src = "\n".join([f"def {name}(event, ctx, base):", *_indent([*scope.decls, *body, f"return {result}"])])
    namespace = dict(code.env)
    exec(compile(src, f"<mapping {name}>", "exec"), namespace)  # noqa: S102 - our own generated code
    fn = namespace[name]
    fn.__source__ = src
    return fn  # type: ignore[no-any-return]


def generate_outputs(outputs: tuple[Output, ...], name: str) -> OutputsFn:
    """``(event, ctx, base) -> the canonical parts of the event``; ``event`` is an object."""
    code = _Code()
    scope = _Scope("event", "base", is_dict=True)
    body = code.outputs(scope, outputs, "out")
    return _function(code, name, body, scope, "out")


def generate_values(nodes: tuple[Value, ...], name: str) -> ValuesFn:
    """``(event, ctx, base) -> [value of each node]``."""
    code = _Code()
    scope = _Scope("event", "base", is_dict=True)
    body: list[str] = []
    names = []
    for node in nodes:
        v = code.var("v")
        body += code.value(scope, node, v)
        names.append(v)
    return _function(code, name, body, scope, "[" + ", ".join(names) + "]")


class CodeGenerator:
    """The executor interface ``engine.CompiledMapping`` takes (see ``interpret``)."""

    outputs = staticmethod(generate_outputs)
    values = staticmethod(generate_values)
    constraints = staticmethod(generate_constraints)


generated_code = CodeGenerator()
