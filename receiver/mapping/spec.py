"""The mapping file, as typed structures (decoded and validated by msgspec).

A mapping file describes one source completely: its envelope (how bodies are
parsed, where its credential is, its vendor-compatible routes) and how each of
its event types becomes a canonical event. See README "Mapping files".
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec

Privacy = Literal["hash", "mask", "drop"]


class Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Location:
    """One place a request may carry a source's credential, written in a mapping file as
    ``query:NAME``, ``header:NAME``, ``field:NAME`` (a form or JSON body field) or ``bearer``."""

    __slots__ = ("kind", "name")
    KINDS = ("query", "header", "field", "bearer")

    def __init__(self, kind: Literal["query", "header", "field", "bearer"], name: str = "") -> None:
        self.kind = kind
        self.name = name

    @classmethod
    def parse(cls, text: str) -> Location:
        kind, sep, name = text.partition(":")
        if kind == "bearer" and not sep:
            return cls("bearer")
        if kind == "query" and name:
            return cls("query", name)
        if kind == "field" and name:
            return cls("field", name)
        if kind == "header" and name:
            return cls("header", name.lower())  # header names are case-insensitive
        raise ValueError(
            f"a credential location is query:NAME, header:NAME, field:NAME or bearer, got {text!r}"
        )

    def __str__(self) -> str:
        return self.kind if self.kind == "bearer" else f"{self.kind}:{self.name}"

    def __repr__(self) -> str:
        return f"Location({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and (self.kind, self.name) == (other.kind, other.name)

    def __hash__(self) -> int:
        return hash((self.kind, self.name))


def decode_hook(type_: type, obj: Any) -> Any:
    """msgspec's hook for the types of a mapping file that are written as text."""
    if type_ is Location:
        if not isinstance(obj, str):
            raise TypeError("a credential location is text, e.g. query:token")
        return Location.parse(obj)
    raise NotImplementedError(type_)


class Credential(Base, kw_only=True):
    setting: str
    """Environment variable holding the secret, e.g. RECEIVER_KARTRA_TOKEN."""
    locations: list[Location]
    """Where a request carries it, in order of preference (the first is the one the start-up
    banner shows)."""
    generate: Literal["token", "uuid"] = "token"
    """The form of a generated secret: a random URL-safe token, or a random UUID where the
    vendor's client accepts nothing else (Croct's SDK validates its appId as a UUID)."""

    def __post_init__(self) -> None:
        if not self.locations:
            raise ValueError("a credential needs at least one location")

    def _names(self, kind: str) -> tuple[str, ...]:
        return tuple(loc.name for loc in self.locations if loc.kind == kind)

    @property
    def query(self) -> tuple[str, ...]:
        """Query parameter names."""
        return self._names("query")

    @property
    def header(self) -> tuple[str, ...]:
        """Header names, lower-case."""
        return self._names("header")

    @property
    def field(self) -> tuple[str, ...]:
        """Body field names (a form field, or a top-level JSON member)."""
        return self._names("field")

    @property
    def bearer(self) -> bool:
        """``Authorization: Bearer <secret>``."""
        return any(loc.kind == "bearer" for loc in self.locations)


class Answer(Base, kw_only=True):
    style: Literal["standard", "ok", "success_flag"] = "standard"
    """standard: 202/200 JSON of docs/webhooks.md. ok: the same bodies, always 200.
    success_flag: ``{"success": true, "message", …echo}`` / ``{"success": false, "error"}``."""
    message: str = ""
    echo: list[str] = []
    """Document fields copied into a success_flag answer (e.g. customer_code)."""
    invalid_status: int = 422
    """Status for a delivery that breaks the vendor's constraints."""


class Route(Base, kw_only=True):
    path: str = "/"
    methods: list[str] = msgspec.field(default_factory=lambda: ["POST"])
    responder: Literal["ingest", "client_id"] = "ingest"
    """ingest: authenticate, parse, map, store. client_id: answer a new anonymous id."""
    answer: Answer = msgspec.field(default_factory=Answer)
    source_type: str | None = None
    """The vendor event type of deliveries on this route (available as ``@route/source_type``)."""
    require: list[str] = []
    """Paths that must be present when the event's type is this route's source_type."""


class Envelope(Base, kw_only=True):
    body: Literal["json", "form", "json_or_form"] = "json"
    json_fields: list[str] = []
    """Form/JSON fields that hold JSON text (Convead ``data``); a bad one is a 400."""
    query_fields: bool = False
    """Query parameters are part of the payload (merged under the body's fields)."""
    batch: bool = False
    """A top-level JSON array carries several events."""
    credential: Credential
    dedup_window_seconds: int | None = None
    routes: list[Route] = msgspec.field(default_factory=lambda: [Route()])


class Field(Base, kw_only=True):
    from_: list[str] = msgspec.field(default_factory=list, name="from")
    transforms: list[str | dict[str, Any]] = []
    default: Any = None
    required: bool = False
    privacy: list[Privacy] = []
    # Arrays and objects built item by item.
    each: str | None = None
    fields: dict[str, FieldInput] | None = None
    key: FieldInput | None = None
    value: FieldInput | None = None
    # Choice of a field spec by a value.
    switch: str | None = None
    cases: dict[str, FieldInput] | None = None


FieldInput: TypeAlias = str | list[str] | Field


class Constraint(Base, kw_only=True):
    required: bool = False
    type: Literal["string", "number", "integer", "boolean", "object", "array", "primitive"] | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    minimum: float | None = None
    exclusive_minimum: float | None = None
    enum: list[Any] | None = None
    format: Literal["url", "date"] | None = None
    max_items: int | None = None
    max_properties: int | None = None
    items: Constraint | None = None
    """For every element of an array."""
    keys: Constraint | None = None
    """For every member name of an object (reported at the member's pointer)."""
    values: Constraint | None = None
    """For every member value of an object."""


class TypeRule(Base, kw_only=True):
    path: str
    equals: Any = None
    value: str | None = None
    """The source type to use when ``path`` equals ``equals`` (else the value at path)."""


class Rewrite(Base, kw_only=True):
    """Move a value inside the event before mapping (e.g. an SDK patch into a profile)."""

    from_: str = msgspec.field(name="from")
    to: str
    transforms: list[str | dict[str, Any]] = []
    only: list[str] = []
    """Source types this rewrite applies to (all when empty)."""


class IdentityDecl(Base, kw_only=True):
    kind: str
    from_: list[str] = msgspec.field(name="from")
    known: bool = True
    transforms: list[str | dict[str, Any]] = []


class TypeSpec(Base, kw_only=True):
    type: str
    fields: dict[str, FieldInput] = {}
    constraints: dict[str, Constraint] = {}


class MappingFile(Base, kw_only=True):
    source: str
    version: int
    envelope: Envelope
    event_root: list[str] = msgspec.field(default_factory=lambda: [""])
    """Where the event sits in each item, first match wins (Croct SDK: ``/payload``)."""
    type_from: list[str | TypeRule]
    roots: dict[str, list[str]] = {}
    """Path aliases: ``@person/email`` expands to each listed root + ``/email``."""
    rewrite: list[Rewrite] = []
    identities: list[IdentityDecl] = []
    fields: dict[str, FieldInput] = {}
    constraints: dict[str, Constraint] = {}
    types: dict[str, str | TypeSpec]
