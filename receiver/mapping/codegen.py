"""Generate one Python function per event type from its compiled outputs.

Closures cost a call per field and per path step; a mapping with 60 fields spent
~250 µs an event that way. The generated function reads every shared path prefix
once into a local, inlines simple fields as dict lookups, builds the output dicts
directly, and calls back into closures only for what cannot be inlined (arrays item
by item, switches, privacy, non-event namespaces).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import transforms as tf
from .paths import Ctx

Privacy = str


@dataclass
class Simple:
    """A field that is only: event paths (first non-null wins) + transforms + default/required."""

    paths: list[list[str]]
    pointers: list[str]
    chain: list[tf.Fn]
    default: Any
    required: bool


@dataclass
class OutputPlan:
    tokens: tuple[str, ...]
    fn: Callable[[Any, Ctx, str], Any]
    privacy: tuple[str, ...]
    simple: Simple | None


@dataclass
class _Gen:
    lines: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    prefixes: dict[tuple[str, ...], str] = field(default_factory=dict)

    def const(self, value: Any, stem: str = "K") -> str:
        name = f"{stem}{len(self.env)}"
        self.env[name] = value
        return name

    def prefix(self, tokens: tuple[str, ...]) -> str:
        """A local holding the dict at ``tokens`` (or None), declared on first use."""
        if not tokens:
            return "event"
        var = self.prefixes.get(tokens)
        if var is None:
            parent = self.prefix(tokens[:-1])
            var = f"p{len(self.prefixes)}"
            self.prefixes[tokens] = var
            self.lines.append(f"    {var} = {parent}.get({tokens[-1]!r}) if {parent} is not None else None")
            self.lines.append(f"    if {var}.__class__ is not dict: {var} = None")
        return var


def generate(outputs: list[OutputPlan], name: str) -> Callable[[Any, Ctx, str], dict[str, Any]]:
    g = _Gen()
    g.env["TransformError"] = tf.TransformError
    g.env["_assign"] = _assign_ref()
    # Output containers: every non-leaf output path, created up front, attached at the end.
    leaves = {o.tokens for o in outputs}
    containers: dict[tuple[str, ...], str] = {(): "out"}
    for o in outputs:
        for i in range(1, len(o.tokens)):
            containers.setdefault(o.tokens[:i], f"c{len(containers)}")
    conflict = any(t in containers for t in leaves)
    late: list[str] = []
    body: list[str] = []
    for o in outputs:
        simple = o.simple if not conflict else None
        if (
            simple is not None
            and not o.privacy
            and not any(any(t.isdigit() for t in p) for p in simple.paths)
        ):
            _emit_simple(g, body, o, simple, containers)
        else:
            closure = g.const(o.fn, "F")
            toks = g.const(o.tokens, "T")
            priv = g.const(o.privacy, "P")
            late.append(f"    v = {closure}(event, ctx, base)")
            late.append(f"    if v is not None: _assign(out, {toks}, v, {priv})")
    src = [f"def {name}(event, ctx, base):", "    out = {}", "    if event.__class__ is not dict: return out"]
    src += [f"    {var} = {{}}" for tokens, var in containers.items() if tokens]
    # prefix lines were appended to g.lines while emitting; they must come first
    src += g.lines
    src += body
    for tokens in sorted((t for t in containers if t), key=len, reverse=True):
        parent = containers[tokens[:-1]]
        var = containers[tokens]
        src.append(f"    if {var}: {parent}[{tokens[-1]!r}] = {var}")
    src += late
    src.append("    return out")
    code = "\n".join(src)
    namespace = dict(g.env)
    exec(compile(code, f"<mapping {name}>", "exec"), namespace)  # noqa: S102 - our own generated code
    fn: Callable[[Any, Ctx, str], dict[str, Any]] = namespace[name]
    fn.__source__ = code  # type: ignore[attr-defined]
    return fn


def _emit_simple(
    g: _Gen, body: list[str], o: OutputPlan, s: Simple, containers: dict[tuple[str, ...], str]
) -> None:
    first = True
    for path, ptr in zip(s.paths, s.pointers, strict=True):
        indent = "    " if first else "        "
        if not first:
            body.append("    if v is None:")
        if not path:
            body.append(f"{indent}v = event")
        else:
            parent = g.prefix(tuple(path[:-1]))
            body.append(f"{indent}v = {parent}.get({path[-1]!r}) if {parent} is not None else None")
        body.append(f"{indent}if v == '': v = None")
        if s.chain:
            body.append(f"{indent}if v is not None:")
            body.append(f"{indent}    try:")
            for t in s.chain:
                inline = _INLINE.get(getattr(t, "__qualname__", ""))
                if inline is not None:
                    body.append(f"{indent}        if v is not None: {inline}")
                else:
                    tn = g.const(t, "X")
                    body.append(f"{indent}        if v is not None: v = {tn}(v, event, ctx)")
            body.append(f"{indent}    except TransformError as e:")
            body.append(f"{indent}        ctx.error(base + {ptr!r}, str(e)); v = None")
            body.append(f"{indent}    if v == '': v = None")
        first = False
    if s.default is not None:
        body.append(f"    if v is None: v = {g.const(s.default)}")
    if s.required:
        body.append(f"    if v is None: ctx.error(base + {s.pointers[0]!r}, 'is required')")
    target = containers[o.tokens[:-1]]
    body.append(f"    if v is not None: {target}[{o.tokens[-1]!r}] = v")


#: Transforms simple enough to write inline (by the qualified name of their function).
_INLINE = {
    "t_trim.<locals>.<lambda>": "v = (v.strip() or None) if v.__class__ is str else v",
    "t_lower.<locals>.<lambda>": "v = v.lower() if v.__class__ is str else v",
    "t_upper.<locals>.<lambda>": "v = v.upper() if v.__class__ is str else v",
}


def _assign_ref() -> Any:
    from .engine import _assign

    return _assign
