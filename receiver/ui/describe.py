"""What the inspector shows of a mapping: where events sit, its type table, its private
fields, where its credential goes.

The one place in the inspector that looks inside a compiled mapping (its plan); pages use
this description only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..mapping import CompiledMapping
from ..mapping.paths import unescape
from ..mapping.plan import values


@dataclass(frozen=True)
class MappingView:
    event_roots: list[list[str]]
    """Where the event sits in each item, first object wins (Croct SDK: ``payload``)."""
    types: list[tuple[str, str]]
    """Vendor type -> canonical type, sorted by vendor type."""
    private: list[tuple[str, str, str]]
    """Fields kept only hashed or masked, or dropped: (canonical field, vendor path, how)."""


def pointer_tokens(pointer: str) -> list[str]:
    """``/a/b~1c`` -> ``["a", "b/c"]`` (RFC 6901); ``""`` -> ``[]``."""
    return [unescape(t) for t in pointer[1:].split("/")] if pointer.startswith("/") else []


def locations(m: CompiledMapping) -> list[tuple[str, str]]:
    """Where a request carries the credential, in order: (kind, name), kind being
    ``query``, ``header``, ``bearer`` or ``field``."""
    return [(loc.kind, loc.name) for loc in m.credential.locations]


def describe(m: CompiledMapping) -> MappingView:
    plan = m.plan
    private = {
        (".".join(output.tokens), ", ".join(s.text for s in v.sources), " + ".join(v.privacy))
        for _, output in plan.outputs()
        for v in values(output.node)  # at any depth: switch cases, each values, nested fields
        if v.privacy
    }
    return MappingView(
        event_roots=[list(r) for r in plan.event_roots],
        types=sorted((vendor, t.canonical) for vendor, t in plan.types.items()),
        private=sorted(private),
    )
