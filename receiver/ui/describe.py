"""What the inspector shows of a mapping: where events sit, its type table, its private fields.

The one place in the inspector that reads a mapping's file (``CompiledMapping.spec``);
pages use this description only, so a change in how mappings are compiled touches
this function and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..mapping import CompiledMapping
from ..mapping.paths import parse
from ..mapping.spec import Field, FieldInput, TypeSpec


@dataclass(frozen=True)
class MappingView:
    event_roots: list[list[str]]
    """Where the event sits in each item, first object wins (Croct SDK: ``payload``)."""
    types: list[tuple[str, str]]
    """Vendor type -> canonical type, sorted by vendor type."""
    private: list[tuple[str, str, str]]
    """Fields kept only hashed or masked, or dropped: (canonical field, vendor path, how)."""


def locations(m: CompiledMapping) -> list[tuple[str, str]]:
    """Where a request carries the credential, in order: (kind, name), kind being
    ``query``, ``header``, ``bearer`` or ``field``."""
    out = []
    for loc in m.envelope.credential.locations:
        if isinstance(loc, str):  # "query:token", "bearer"
            kind, _, name = loc.partition(":")
        else:  # a parsed location
            kind, name = str(getattr(loc, "kind", "")), str(getattr(loc, "name", "") or "")
        out.append((kind, name))
    return out


def _private(fields: dict[str, FieldInput]) -> list[tuple[str, str, str]]:
    return [
        (canonical, ", ".join(f.from_), " + ".join(f.privacy))
        for canonical, f in fields.items()
        if isinstance(f, Field) and f.privacy
    ]


def describe(m: CompiledMapping) -> MappingView:
    spec = m.spec
    private = _private(spec.fields)
    for t in spec.types.values():
        if isinstance(t, TypeSpec):
            private += _private(t.fields)
    return MappingView(
        event_roots=[parse(r)[1] for r in spec.event_root],
        types=sorted((vendor, t if isinstance(t, str) else t.type) for vendor, t in spec.types.items()),
        private=sorted(set(private)),
    )
