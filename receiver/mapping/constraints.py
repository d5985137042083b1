"""The vendor's documented constraints (lengths, patterns, ranges, enums, required ids),
compiled once into checks that report every offending JSON Pointer."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from .paths import Ctx, PathError, find_all, parse, pointer
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


def compile_constraint(path: str, c: Constraint) -> Check:
    ns, tokens = parse(path)
    if ns != "":
        raise PathError(f"constraints apply to event paths, got {path!r}")
    rx = re.compile(c.pattern) if c.pattern else None
    item_rx = re.compile(c.items.pattern) if c.items and c.items.pattern else None

    def check(event: Any, ctx: Ctx) -> None:
        for at, v in find_all(event, tokens):
            if v is None or v == "":
                if c.required:
                    ctx.error(pointer(at), "is required")
                continue
            for msg in value_problems(c, v, rx):
                ctx.error(pointer(at), msg)
            if c.items is not None and isinstance(v, list):
                for i, x in enumerate(v):
                    for msg in value_problems(c.items, x, item_rx):
                        ctx.error(pointer([*at, str(i)]), msg)

    return check
