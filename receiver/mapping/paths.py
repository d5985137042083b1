"""Paths into a vendor payload: JSON Pointers (RFC 6901) plus a few namespaces.

``/a/b``          the event (the part of an item the vendor documents as the event)
``@item/a``       the whole item (an SDK beacon around the event, a form envelope)
``@header/name``  a request header (lower-case name)
``@route/name``   a property of the route the delivery came in on (``source_type``)
``@meta/name``    delivery facts: ``received_at``, ``source``
``*``             as a token, every element of an array (constraints and privacy only)

Getters treat ``null`` and ``""`` as absent (docs/webhooks.md: empty strings are
absent values) and return None for anything absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..problems import FieldError

NAMESPACES = ("", "item", "header", "route", "meta")


class PathError(ValueError):
    pass


@dataclass(slots=True)
class Ctx:
    """What a compiled mapping sees besides the event itself."""

    item: Any
    headers: dict[str, str]
    route: dict[str, Any]
    meta: dict[str, Any]
    prefix: str = ""
    """Pointer prefix of this event within its delivery (``/1`` in a batch)."""
    errors: list[FieldError] = field(default_factory=list)

    def error(self, pointer: str, message: str) -> None:
        self.errors.append(FieldError(self.prefix + pointer, message))


Getter = Callable[[Any, Ctx], Any]


def unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def parse(path: str) -> tuple[str, list[str]]:
    """Split a path into its namespace and its unescaped tokens."""
    if path == "":
        return "", []
    if path.startswith("/"):
        return "", [unescape(t) for t in path[1:].split("/")]
    if path.startswith("@"):
        ns, _, rest = path[1:].partition("/")
        if ns not in NAMESPACES[1:]:
            raise PathError(f"unknown path namespace @{ns} in {path!r}")
        if ns in ("header", "route", "meta") and (not rest or "/" in rest):
            raise PathError(f"@{ns} takes exactly one name, got {path!r}")
        tokens = [unescape(t) for t in rest.split("/")] if rest else []
        if ns == "header":
            tokens = [tokens[0].lower()]
        return ns, tokens
    raise PathError(f"a path starts with '/' or '@', got {path!r}")


def pointer(tokens: list[str]) -> str:
    return "".join("/" + escape(t) for t in tokens)


def walk(node: Any, tokens: list[str]) -> Any:
    for t in tokens:
        if isinstance(node, dict):
            node = node.get(t)
        elif isinstance(node, list):
            if not t.isdigit():
                return None
            i = int(t)
            node = node[i] if i < len(node) else None
        else:
            return None
        if node is None:
            return None
    return None if node == "" else node


def compile_getter(path: str) -> Getter:
    ns, tokens = parse(path)
    if "*" in tokens:
        raise PathError(f"'*' is not allowed in a field source path: {path!r}")
    if ns == "":
        if len(tokens) == 1:
            (k,) = tokens

            def get1(node: Any, ctx: Ctx) -> Any:
                v = node.get(k) if isinstance(node, dict) else None
                return None if v == "" else v

            return get1
        if len(tokens) == 2 and not any(t.isdigit() for t in tokens):
            k1, k2 = tokens

            def get2(node: Any, ctx: Ctx) -> Any:
                if isinstance(node, dict):
                    n = node.get(k1)
                    if isinstance(n, dict):
                        v = n.get(k2)
                        return None if v == "" else v
                return walk(node, tokens) if isinstance(node, list) else None

            return get2
        return lambda node, ctx: walk(node, tokens)
    if ns == "item":
        return lambda node, ctx: walk(ctx.item, tokens)
    name = tokens[0]
    if ns == "header":
        return lambda node, ctx: ctx.headers.get(name) or None
    if ns == "route":
        return lambda node, ctx: ctx.route.get(name)
    return lambda node, ctx: ctx.meta.get(name)


def expand(path: str, roots: dict[str, list[str]]) -> list[str]:
    """Expand ``@alias/rest`` into one path per root of the alias."""
    if path.startswith("@"):
        ns, sep, rest = path[1:].partition("/")
        if ns in roots:
            return [r + (sep + rest if sep else "") for r in roots[ns]]
    return [path]


def parent_of(doc: dict[str, Any], tokens: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The object that holds ``tokens[-1]``, creating objects on the way."""
    node = doc
    for t in tokens[:-1]:
        nxt = node.get(t)
        if not isinstance(nxt, dict):
            nxt = node[t] = {}
        node = nxt
    return node


def set_in(doc: dict[str, Any], tokens: list[str], value: Any) -> None:
    parent_of(doc, tokens)[tokens[-1]] = value


def pop_in(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for t in tokens[:-1]:
        node = node.get(t) if isinstance(node, dict) else None
        if node is None:
            return None
    if isinstance(node, dict):
        return node.pop(tokens[-1], None)
    return None


def find_all(node: Any, tokens: list[str], at: list[str] | None = None) -> list[tuple[list[str], Any]]:
    """Every (concrete tokens, value) a path with ``*`` wildcards reaches; absent leaves included
    as None where their parent exists (so a required check can name them)."""
    at = at or []
    if not tokens:
        return [(at, node)]
    head, rest = tokens[0], tokens[1:]
    if head == "*":
        if not isinstance(node, list):
            return []
        out: list[tuple[list[str], Any]] = []
        for i, v in enumerate(node):
            out.extend(find_all(v, rest, [*at, str(i)]))
        return out
    if isinstance(node, dict):
        return find_all(node.get(head), rest, [*at, head])
    if isinstance(node, list) and head.isdigit() and int(head) < len(node):
        return find_all(node[int(head)], rest, [*at, head])
    return [(at + tokens, None)] if node is not None and not rest else []
