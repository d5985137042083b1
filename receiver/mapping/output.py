"""Placing values into the canonical event: at dotted output paths, as object members."""

from __future__ import annotations

from typing import Any

from .paths import parent_of
from .privacy import Redacted, place


def place_at(out: dict[str, Any], tokens: tuple[str, ...], v: Any) -> None:
    """Put ``v`` at ``tokens`` below ``out``, creating objects on the way. An object placed
    where an object already is merges into it; a private value becomes ``<name>_sha256`` /
    ``<name>_masked``."""
    node = parent_of(out, tokens)
    last = tokens[-1]
    if v.__class__ is Redacted:
        place(node, last, v)
    elif v.__class__ is dict and node.get(last).__class__ is dict:
        node[last].update(v)
    else:
        node[last] = v


def put_member(obj: dict[str, Any], name: str, v: Any) -> None:
    """One entry of an object built item by item (``each`` with a ``key``)."""
    if v.__class__ is Redacted:
        place(obj, name, v)
    else:
        obj[name] = v
