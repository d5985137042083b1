"""The vendor's documented constraints (lengths, patterns, ranges, enums, required ids),
compiled once into checks that report every offending JSON Pointer."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from .paths import Ctx, PathError, parse, pointer
from .spec import Constraint
from .transforms import _NUMBER

Check = Callable[[Any, Ctx], None]


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int | float):
        return True
    return isinstance(v, str) and bool(_NUMBER.fullmatch(v.strip()))


def _num(v: Any) -> float:
    return float(v)


def value_problems(c: Constraint, v: Any, rx: re.Pattern[str] | None) -> list[str]:
    """Messages for one present value."""
    out: list[str] = []
    t = c.type
    if t == "string" and not isinstance(v, str):
        return ["must be a string"]
    if t in ("number", "integer") and not _is_number(v):
        return ["must be a number"]
    if t == "integer" and not float(v).is_integer():
        return ["must be an integer"]
    if t == "boolean" and not isinstance(v, bool):
        return ["must be a boolean"]
    if t == "object" and not isinstance(v, dict):
        return ["must be an object"]
    if t == "array" and not isinstance(v, list):
        return ["must be an array"]
    if t == "primitive" and isinstance(v, dict | list):
        return ["must be a string, number, boolean or null"]
    if isinstance(v, str):
        if c.min_length is not None and len(v) < c.min_length:
            out.append(f"must be at least {c.min_length} characters long")
        if c.max_length is not None and len(v) > c.max_length:
            out.append(f"must be at most {c.max_length} characters long")
        if rx is not None and not rx.fullmatch(v):
            out.append(f"must match {c.pattern}")
        if c.format == "url":
            parts = urlsplit(v)
            if not (parts.scheme in ("http", "https") and parts.netloc) or " " in v:
                out.append("must be a well-formed URL")
        elif c.format == "date":
            try:
                date.fromisoformat(v)
            except ValueError:
                out.append("must be a date like YYYY-MM-DD")
    if _is_number(v) and (c.minimum is not None or c.exclusive_minimum is not None):
        x = _num(v)
        if c.minimum is not None and x < c.minimum:
            out.append("must be non-negative" if c.minimum == 0 else f"must be >= {c.minimum:g}")
        if c.exclusive_minimum is not None and x <= c.exclusive_minimum:
            out.append(
                "must be positive" if c.exclusive_minimum == 0 else f"must be > {c.exclusive_minimum:g}"
            )
    if c.enum is not None and v not in c.enum:
        out.append("must be one of " + ", ".join(str(e) for e in c.enum))
    if isinstance(v, list) and c.max_items is not None and len(v) > c.max_items:
        out.append(f"must have at most {c.max_items} items")
    if isinstance(v, dict) and c.max_properties is not None and len(v) > c.max_properties:
        out.append(f"must have at most {c.max_properties} properties")
    return out


def fast_ok(c: Constraint) -> Callable[[Any], bool]:
    """A quick yes/no for one value; only a "no" pays for ``value_problems`` and its
    messages. Valid traffic is the common case."""
    t, mn, mx = c.type, c.min_length, c.max_length
    rx = re.compile(c.pattern) if c.pattern else None
    lo, xlo, enum, fmt = c.minimum, c.exclusive_minimum, c.enum, c.format
    mi, mp = c.max_items, c.max_properties
    item_ok = fast_ok(c.items) if c.items is not None else None
    numeric = lo is not None or xlo is not None
    members = c.keys is not None or c.values is not None

    def ok(v: Any) -> bool:
        cls = v.__class__
        if cls is str:
            if (t is not None and t != "string") and (
                t not in ("number", "integer") or not _NUMBER.fullmatch(v.strip())
            ):
                return False
            if (mn is not None and len(v) < mn) or (mx is not None and len(v) > mx):
                return False
            if rx is not None and not rx.fullmatch(v):
                return False
            if fmt is not None or (numeric and t in ("number", "integer")):
                return not value_problems(c, v, rx)
        elif cls is int or cls is float:
            if t is not None and t not in ("number", "integer"):
                return False
            if t == "integer" and cls is float and not v.is_integer():
                return False
            if (lo is not None and v < lo) or (xlo is not None and v <= xlo):
                return False
        elif cls is bool:
            if t is not None and t != "boolean":
                return False
        elif cls is dict:
            if (t is not None and t != "object") or members:
                return False  # member rules: the slow path checks (and names) each member
            if mp is not None and len(v) > mp:
                return False
        elif cls is list:
            if t is not None and t != "array":
                return False
            if mi is not None and len(v) > mi:
                return False
            if item_ok is not None and not all(item_ok(x) for x in v):
                return False
        if enum is not None:
            try:
                return v in enum
            except TypeError:
                return False
        return True

    return ok


def _check_members(c: Constraint, value: dict[str, Any], at: list[str], ctx: Ctx) -> None:
    keys_rx = re.compile(c.keys.pattern) if c.keys is not None and c.keys.pattern else None
    values_rx = re.compile(c.values.pattern) if c.values is not None and c.values.pattern else None
    for k, v in value.items():
        problems = value_problems(c.keys, k, keys_rx) if c.keys is not None else []
        if c.values is not None and v is not None:
            problems += value_problems(c.values, v, values_rx)
        for msg in problems:
            ctx.error(pointer([*at, k]), msg)


class _Node:
    """Constraints at one position of the event, and below it."""

    __slots__ = ("checks", "children", "required", "star")

    def __init__(self) -> None:
        self.checks: list[
            tuple[Constraint, re.Pattern[str] | None, re.Pattern[str] | None, Callable[[Any], bool]]
        ] = []
        self.children: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.required = False


def _walk(node: _Node, value: Any, at: list[str], ctx: Ctx) -> None:
    for c, rx, item_rx, ok in node.checks:
        if ok(value):
            continue
        for msg in value_problems(c, value, rx):
            ctx.error(pointer(at), msg)
        if c.items is not None and isinstance(value, list):
            for i, x in enumerate(value):
                for msg in value_problems(c.items, x, item_rx):
                    ctx.error(pointer([*at, str(i)]), msg)
        if isinstance(value, dict) and (c.keys is not None or c.values is not None):
            _check_members(c, value, at, ctx)
    if node.children and isinstance(value, dict):
        for key, child in node.children.items():
            v = value.get(key)
            if v is None or v == "":
                if child.required:
                    ctx.error(pointer([*at, key]), "is required")
                continue
            _walk(child, v, [*at, key], ctx)
    elif node.children and isinstance(value, list):
        for key, child in node.children.items():
            if key.isdigit() and int(key) < len(value):
                _walk(child, value[int(key)], [*at, key], ctx)
    if node.star is not None and isinstance(value, list):
        star = node.star
        for i, x in enumerate(value):
            if x is None or x == "":
                if star.required:
                    ctx.error(pointer([*at, str(i)]), "is required")
                continue
            _walk(star, x, [*at, str(i)], ctx)


def compile_constraints(constraints: dict[str, Constraint]) -> Check:
    """All constraints of an event type as one walk over the parts of the event that exist:
    cost follows the payload, not the number of documented constraints."""
    root = _Node()
    for path, c in constraints.items():
        ns, tokens = parse(path)
        if ns != "":
            raise PathError(f"constraints apply to event paths, got {path!r}")
        if not tokens:
            raise PathError("a constraint needs a path below the event")
        node = root
        for t in tokens:
            if t == "*":
                node.star = node.star or _Node()
                node = node.star
            else:
                node = node.children.setdefault(t, _Node())
        node.checks.append(
            (
                c,
                re.compile(c.pattern) if c.pattern else None,
                re.compile(c.items.pattern) if c.items and c.items.pattern else None,
                fast_ok(c),
            )
        )
        node.required = node.required or c.required

    def check(event: Any, ctx: Ctx) -> None:
        _walk(root, event, [], ctx)

    return check
