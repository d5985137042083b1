"""The plan: what a mapping file means, as a tree of small typed nodes.

``compile.py`` builds one plan per mapping file; everything else reads it: the generated
code (``codegen.py``) and the reference interpreter (``interpret.py``) that run it,
redaction of the raw body (``privacy.py``), the constraint walk, ``extra`` (what the plan
does not read), ``receiver mappings check`` and the OpenAPI document. The meaning of each
node is written here once; both executors follow it and a test holds them to it.

A **Value** reads its sources in order; the first non-empty one (``null`` and ``""`` are
absent) runs through the steps. A step that raises reports an error at that source's
pointer and the value is absent (no other source, no default). A step that returns absent
(or ``""``) moves on to the next source. When no source gives a value: the ``default``,
else an error "is required" at the first source when ``required``, else absent. A private
value (``privacy``) comes out as a ``Redacted`` (its hash and/or mask), or not at all
for ``drop``; a redaction marker already in the payload stands for the value it replaced.

A **Switch** reads its selector (first non-empty path), compares it as text with the case
names and evaluates the matching case, else the ``*`` case, else is absent.

An **Each** reads an array (or a PHP-style ``{"0": …}`` object) at ``items`` and maps its
elements, each in its own scope (paths relative to the element, errors below
``items/<index>``): with ``fields``, into a list of objects (elements that are not objects,
or give an empty object, are left out; an absent array stays absent, an empty one stays
``[]``); with ``name`` and ``value``, into an object (entries whose name or value is absent
are left out; empty is absent); with ``value`` only, into a list of the values (absent
ones left out; empty is absent).

**Outputs** are placed in order at dotted paths. A value placed where an object already
is merges into it; a private value is placed as ``<name>_sha256`` / ``<name>_masked``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from .paths import Path, get_in
from .spec import Constraint, Envelope, Privacy
from .transforms import Step


@dataclass(frozen=True, slots=True, eq=False)
class Value:
    key: str
    """Where the node is written in the mapping file (for messages)."""
    sources: tuple[Path, ...]
    steps: tuple[Step, ...] = ()
    default: Any = None
    required: bool = False
    privacy: tuple[Privacy, ...] = ()

    @property
    def dropped(self) -> bool:
        return "drop" in self.privacy


@dataclass(frozen=True, slots=True, eq=False)
class Switch:
    key: str
    selector: tuple[Path, ...]
    cases: tuple[tuple[str, Node], ...]
    fallback: Node | None


@dataclass(frozen=True, slots=True, eq=False)
class Each:
    key: str
    items: Path
    fields: tuple[Output, ...] | None = None
    name: Node | None = None
    value: Node | None = None


Node: TypeAlias = Value | Switch | Each


@dataclass(frozen=True, slots=True, eq=False)
class Output:
    tokens: tuple[str, ...]
    node: Node


@dataclass(frozen=True, slots=True, eq=False)
class Constrained:
    """A vendor constraint on the event, at a path that may hold ``*`` (every element)."""

    key: str
    tokens: tuple[str, ...]
    rule: Constraint


@dataclass(frozen=True, slots=True, eq=False)
class TypeRule:
    source: Path
    equals: Any
    value: str | None
    """The source type when ``source`` equals ``equals``; without ``equals``, the value read."""


@dataclass(frozen=True, slots=True, eq=False)
class Rewrite:
    """Move a value inside the event before mapping; a target already there wins."""

    source: tuple[str, ...]
    target: tuple[str, ...]
    steps: tuple[Step, ...]
    only: frozenset[str]


@dataclass(frozen=True, slots=True, eq=False)
class IdentityRule:
    kind: str
    known: bool
    value: Value


@dataclass(frozen=True, slots=True, eq=False)
class RouteRule:
    """The event type of every delivery on a route, and what it requires."""

    path: str
    source_type: str
    require: tuple[Path, ...]


@dataclass(frozen=True, slots=True, eq=False)
class TypePlan:
    name: str
    """The vendor's type."""
    canonical: str
    outputs: tuple[Output, ...]
    """The mapping's common fields (the same Output objects, unless the type overrides
    them), then the type's own."""
    constraints: tuple[Constrained, ...]


@dataclass(frozen=True, slots=True, eq=False)
class MappingPlan:
    source: str
    version: int
    envelope: Envelope
    event_roots: tuple[tuple[str, ...], ...]
    type_rules: tuple[TypeRule, ...]
    rewrites: tuple[Rewrite, ...]
    identities: tuple[IdentityRule, ...]
    common: tuple[Output, ...]
    types: dict[str, TypePlan]
    routes: dict[str, RouteRule]

    def event_of(self, item: Any) -> tuple[int, dict[str, Any]] | None:
        """The event in an item, with the index of its root: the first root at which the
        item holds an object."""
        if self.event_roots == ((),):  # the item is the event (most vendors)
            return (0, item) if item.__class__ is dict else None
        for i, root in enumerate(self.event_roots):
            event = get_in(item, root)
            if event.__class__ is dict:
                return i, event
        return None

    def outputs(self) -> Iterator[tuple[str, Output]]:
        """Every output of the plan once, with the name of the type that holds it
        (``""`` for the common fields)."""
        for o in self.common:
            yield "", o
        common = {id(o) for o in self.common}
        for name, t in self.types.items():
            for o in t.outputs:
                if id(o) not in common:
                    yield name, o


def children(node: Node) -> Iterator[Node]:
    """The nodes directly inside ``node``."""
    if isinstance(node, Switch):
        for _, case in node.cases:
            yield case
        if node.fallback is not None:
            yield node.fallback
    elif isinstance(node, Each):
        for o in node.fields or ():
            yield o.node
        if node.name is not None:
            yield node.name
        if node.value is not None:
            yield node.value


def values(node: Node) -> Iterator[Value]:
    """Every Value at or below ``node``."""
    if isinstance(node, Value):
        yield node
    for child in children(node):
        yield from values(child)
