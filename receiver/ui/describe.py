"""What the inspector shows of a mapping: where events sit, its type table, its private
fields, where its credential goes.

The one place in the inspector that looks inside a compiled mapping; pages use this
description only. It reads the mapping file as typed (``CompiledMapping.spec``) or, where
a mapping carries its compiled plan instead (``CompiledMapping.plan``), the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..mapping import CompiledMapping
from ..mapping.paths import unescape


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
    out = []
    for loc in m.envelope.credential.locations:
        if isinstance(loc, str):  # "query:token", "bearer"
            kind, _, name = loc.partition(":")
        else:  # a parsed location
            kind, name = str(getattr(loc, "kind", "")), str(getattr(loc, "name", "") or "")
        out.append((kind, name))
    return out


def _how(privacy: Any) -> str:
    return " + ".join(privacy)


def _from_spec(spec: Any) -> MappingView:
    private = []
    field_sets = [spec.fields, *(t.fields for t in spec.types.values() if not isinstance(t, str))]
    for fields in field_sets:
        for canonical, f in fields.items():
            if getattr(f, "privacy", None):
                private.append((canonical, ", ".join(f.from_), _how(f.privacy)))
    return MappingView(
        event_roots=[pointer_tokens(r) for r in spec.event_root],
        types=sorted((vendor, t if isinstance(t, str) else t.type) for vendor, t in spec.types.items()),
        private=sorted(set(private)),
    )


def _from_plan(plan: Any) -> MappingView:
    private = []
    for _, output in plan.outputs():
        node = output.node
        if getattr(node, "privacy", None):
            sources = ", ".join(getattr(s, "text", str(s)) for s in node.sources)
            private.append((".".join(output.tokens), sources, _how(node.privacy)))
    return MappingView(
        event_roots=[list(r) for r in plan.event_roots],
        types=sorted((vendor, t.canonical) for vendor, t in plan.types.items()),
        private=sorted(set(private)),
    )


def describe(m: CompiledMapping) -> MappingView:
    plan = getattr(m, "plan", None)
    return _from_plan(plan) if plan is not None else _from_spec(getattr(m, "spec"))  # noqa: B009
