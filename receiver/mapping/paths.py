"""Paths into a vendor payload: JSON Pointers (RFC 6901) plus a few namespaces.

``/a/b``          the event (the part of an item the vendor documents as the event)
``@item/a``       the whole item (an SDK beacon around the event, a form envelope)
``@header/name``  a request header (lower-case name)
``@route/name``   a property of the route the delivery came in on (``source_type``)
``@meta/name``    delivery facts: ``received_at``, ``source``
``*``             as a token, every element of an array (constraints only)

Reads treat ``null`` and ``""`` as absent (docs/webhooks.md: empty strings are
absent values) and return None for anything absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from ..problems import FieldError

NAMESPACES = ("", "item", "header", "route", "meta")


class PathError(ValueError):
    pass


class Ctx(msgspec.Struct):
    """What a compiled mapping sees besides the event itself. (A Struct: made per item,
    its ``__init__`` is C, a dataclass's is Python.)"""

    item: Any
    headers: dict[str, str]
    route: dict[str, Any]
    meta: dict[str, Any]
    prefix: str = ""
    """Pointer prefix of this event within its delivery (``/1`` in a batch)."""
    errors: list[FieldError] = msgspec.field(default_factory=list)

    def error(self, pointer: str, message: str) -> None:
        self.errors.append(FieldError(self.prefix + pointer, message))


def unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def pointer(tokens: Iterable[str]) -> str:
    return "".join("/" + escape(t) for t in tokens)


@dataclass(frozen=True, slots=True)
class Path:
    """One parsed path: its namespace (``""`` for the event) and its unescaped tokens."""

    ns: str
    tokens: tuple[str, ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> Path:
        if text == "":
            return cls("", (), text)
        if text.startswith("/"):
            return cls("", tuple(unescape(t) for t in text[1:].split("/")), text)
        if text.startswith("@"):
            ns, _, rest = text[1:].partition("/")
            if ns not in NAMESPACES[1:]:
                raise PathError(f"unknown path namespace @{ns} in {text!r}")
            if ns in ("header", "route", "meta") and (not rest or "/" in rest):
                raise PathError(f"@{ns} takes exactly one name, got {text!r}")
            tokens = tuple(unescape(t) for t in rest.split("/")) if rest else ()
            if ns == "header":
                tokens = (tokens[0].lower(),)
            return cls(ns, tokens, text)
        raise PathError(f"a path starts with '/' or '@', got {text!r}")

    @property
    def in_payload(self) -> bool:
        """The path reads the delivery's body (the event or its item), not the request."""
        return self.ns in ("", "item")

    @property
    def absolute(self) -> tuple[str, ...] | None:
        """Tokens from the item for an ``@item`` path, None for the event's own paths."""
        return self.tokens if self.ns == "item" else None

    def error_pointer(self, base: str) -> str:
        """Where a problem with the value read here is reported: a JSON Pointer into the
        event (below ``base``, the element being mapped), else the path as written."""
        if self.ns == "":
            return base + pointer(self.tokens)
        if self.ns == "item":
            return pointer(self.tokens)
        return self.text


def as_index(token: str) -> int | None:
    """An array index written as text, or None. Only ASCII digits: ``int()`` also takes
    ``²`` or a 5,000-digit number and would raise on what a vendor (or a fuzzer) sends."""
    return int(token) if token.isascii() and token.isdigit() and len(token) <= 18 else None


def walk(node: Any, tokens: Iterable[str]) -> Any:
    for t in tokens:
        if node.__class__ is dict:
            node = node.get(t)
        elif node.__class__ is list:
            i = as_index(t)
            node = node[i] if i is not None and i < len(node) else None
        else:
            return None
        if node is None:
            return None
    return None if node == "" else node


def read(path: Path, node: Any, ctx: Ctx) -> Any:
    """The value at ``path`` (None when absent); ``node`` is what event paths start from."""
    ns = path.ns
    if ns == "":
        return walk(node, path.tokens)
    if ns == "item":
        return walk(ctx.item, path.tokens)
    name = path.tokens[0]
    if ns == "header":
        return ctx.headers.get(name) or None
    v = (ctx.route if ns == "route" else ctx.meta).get(name)
    return None if v == "" else v


def read_first(paths: Iterable[Path], node: Any, ctx: Ctx) -> Any:
    for p in paths:
        v = read(p, node, ctx)
        if v is not None:
            return v
    return None


def elements(value: Any) -> list[tuple[int, Any]]:
    """The elements of an array, with their indexes. PHP-style form arrays arrive as
    objects keyed ``"0"``, ``"1"``…; anything else has no elements."""
    if value.__class__ is list:
        return list(enumerate(value))
    if value.__class__ is dict:
        out = []
        for i, (k, x) in enumerate(value.items()):
            n = as_index(k)
            out.append((i if n is None else n, x))
        return out
    return []


def expand(path: str, roots: dict[str, list[str]]) -> list[str]:
    """Expand ``@alias/rest`` into one path per root of the alias."""
    if path.startswith("@"):
        ns, sep, rest = path[1:].partition("/")
        if ns in roots:
            return [r + (sep + rest if sep else "") for r in roots[ns]]
    return [path]


def parent_of(doc: dict[str, Any], tokens: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The object that holds ``tokens[-1]``, creating objects on the way."""
    node = doc
    for t in tokens[:-1]:
        nxt = node.get(t)
        if not isinstance(nxt, dict):
            nxt = node[t] = {}
        node = nxt
    return node


def set_in(doc: dict[str, Any], tokens: tuple[str, ...], value: Any) -> None:
    parent_of(doc, tokens)[tokens[-1]] = value


def get_in(node: Any, tokens: tuple[str, ...]) -> Any:
    """The value at object keys ``tokens`` (no array indexing), None when absent."""
    for t in tokens:
        node = node.get(t) if isinstance(node, dict) else None
    return node


def pop_in(doc: Any, tokens: tuple[str, ...]) -> Any:
    node = get_in(doc, tokens[:-1])
    return node.pop(tokens[-1], None) if isinstance(node, dict) else None


class Paths:
    """A transform argument that names paths (one, or a list), aliases expanded, each parsed;
    read in order, first non-empty value wins."""

    __slots__ = ("paths",)

    def __init__(self, paths: tuple[Path, ...] = ()) -> None:
        self.paths = paths

    @classmethod
    def decode(cls, obj: Any, roots: dict[str, list[str]]) -> Paths:
        texts = [obj] if isinstance(obj, str) else obj
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise TypeError("must be a path or a list of paths")
        try:
            return cls(tuple(Path.parse(e) for t in texts for e in expand(t, roots)))
        except PathError as e:
            raise ValueError(str(e)) from None

    def __repr__(self) -> str:
        return f"Paths({[p.text for p in self.paths]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Paths) and self.paths == other.paths

    def __hash__(self) -> int:
        return hash(self.paths)
