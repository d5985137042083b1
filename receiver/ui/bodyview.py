"""How the inspector shows a body: pretty JSON or a form table, with reasons pinned to it.

Everything here produces plain data (lines, rows, strings); the templates escape it.
JSON is laid out iteratively, never recursively, because a rejected delivery may be
nested far deeper than a recursive printer (or template) could follow.

A reason's pointer is relative to the event as the vendor documents it (``/goalId``),
which may sit under an envelope (``/payload/goalId`` in a Croct SDK beacon, inside
``data`` for Convead) and behind a batch index (``/1/goalId``). ``locate`` finds it
in the body the way the mapping engine does: first the batch item, then the first
event root of the mapping that holds an object.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from ..ingest.envelope import decode_inner, parse_form
from ..mapping.paths import escape
from ..mapping.spec import Envelope
from ..problems import Problem
from .describe import pointer_tokens

MAX_LINES = 4000
_MISSING = object()


@dataclass
class Line:
    depth: int
    key: str | None
    """The member name as JSON text (``"email"``), or None inside arrays and on closers."""
    text: str
    pointer: str | None = None
    hit: bool = False
    anchor: str | None = None


@dataclass
class Row:
    name: str
    value: str
    lines: list[Line] | None = None
    """A field holding JSON text (Convead's ``data``), laid out as JSON."""
    hit: bool = False
    anchor: str | None = None


@dataclass
class Reason:
    path: str
    message: str
    anchor: str | None = None
    found: bool = False
    """The pointer names a value present in the body (else the anchor is its nearest parent)."""


@dataclass
class BodyView:
    kind: str
    """json, form, text, withheld, binary or empty."""
    lines: list[Line] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    text: str = ""
    truncated: int = 0
    reasons: list[Reason] = field(default_factory=list)


def _encode(value: Any) -> str:
    try:
        return msgspec.json.encode(value).decode("utf-8")
    except (TypeError, msgspec.EncodeError, RecursionError):
        return repr(value)


def json_lines(value: Any, marks: dict[str, str] | None = None, base: str = "") -> tuple[list[Line], int]:
    """Indented lines of a JSON value; ``marks`` maps pointers to anchors to set on them.
    Returns the lines and how many were left out past MAX_LINES."""
    marks = marks or {}
    out: list[Line] = []
    dropped = 0
    # A task is (key, value, pointer, depth, comma) or a closer (None, text, None, depth, comma).
    tasks: list[tuple[Any, ...]] = [("value", None, value, base, 0, False)]
    while tasks:
        kind, key, v, ptr, depth, comma = tasks.pop()
        if len(out) >= MAX_LINES:
            dropped += 1
            continue
        if kind == "close":
            out.append(Line(depth, None, v + ("," if comma else "")))
            continue
        anchor = marks.get(ptr)
        line = Line(depth, None if key is None else _encode(key), "", ptr, anchor is not None, anchor)
        out.append(line)
        children: list[tuple[str | None, Any]]
        if isinstance(v, dict) and v:
            children = [(str(k), c) for k, c in v.items()]
            line.text, closer = "{", "}"
        elif isinstance(v, list) and v:
            children = [(None, c) for c in v]
            line.text, closer = "[", "]"
        else:
            line.text = _encode(v) + ("," if comma else "")
            continue
        tasks.append(("close", None, closer, None, depth, comma))
        n = len(children)
        for i in range(n - 1, -1, -1):
            k, child = children[i]
            token = k if k is not None else str(i)
            tasks.append(("value", k, child, f"{ptr}/{escape(token)}", depth + 1, i < n - 1))
    return out, dropped


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token, _MISSING)
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    return _MISSING


def _exists(node: Any, tokens: list[str]) -> bool:
    for t in tokens:
        node = _child(node, t)
        if node is _MISSING:
            return False
    return True


def locate(document: Any, path: str, event_roots: list[list[str]], batch: bool) -> tuple[str, bool]:
    """Where a reason's pointer lands in the body: (pointer, present). When the value is
    absent (a required field), the pointer of its nearest present parent."""
    tokens = pointer_tokens(path)
    prefix: list[str] = []
    item = document
    if batch and isinstance(document, list) and tokens and tokens[0].isdigit():
        prefix, tokens = tokens[:1], tokens[1:]
        item = _child(document, prefix[0])
    candidates: list[list[str]] = []
    for root in event_roots:
        node = item
        for t in root:
            node = _child(node, t)
        if isinstance(node, dict):
            candidates.append([*root, *tokens])
            break
    candidates.append(tokens)  # item-level reasons (Convead's /data not being JSON)
    for c in candidates:
        if _exists(item, c):
            return "".join("/" + escape(t) for t in prefix + c), True
    best = candidates[0]
    while best and not _exists(item, best):
        best = best[:-1]
    return "".join("/" + escape(t) for t in prefix + best), False


def _reasons(
    reasons: list[dict[str, Any]], document: Any, event_roots: list[list[str]], batch: bool
) -> tuple[list[Reason], dict[str, str]]:
    out: list[Reason] = []
    marks: dict[str, str] = {}
    for r in reasons:
        path, message = str(r.get("path", "")), str(r.get("message", ""))
        if document is _MISSING:
            out.append(Reason(path, message))
            continue
        where, found = locate(document, path, event_roots, batch)
        anchor = marks.setdefault(where, f"at-{len(marks) + 1}")
        out.append(Reason(path, message, anchor, found))
    return out, marks


def _form_tokens(name: str) -> list[str]:
    """``lead[first_name]`` -> ``["lead", "first_name"]``, as the form parser reads it."""
    base, bracket, rest = name.partition("[")
    if bracket and rest.endswith("]"):
        return [base, *rest[:-1].split("][")]
    return [name]


def body_view(
    body: str | None,
    body_format: str,
    envelope: Envelope | None,
    event_roots: list[list[str]],
    reasons: list[dict[str, Any]],
) -> BodyView:
    """The stored body as the inspector shows it, with every reason located in it."""
    if body_format == "withheld":
        return BodyView(
            "withheld", reasons=[Reason(str(r.get("path", "")), str(r.get("message", ""))) for r in reasons]
        )
    if body is None:
        return BodyView(
            "binary", reasons=[Reason(str(r.get("path", "")), str(r.get("message", ""))) for r in reasons]
        )
    batch = bool(envelope and envelope.batch)
    head = body.lstrip()[:1]
    as_json = (
        body_format == "document" or head in ("{", "[") or (envelope is not None and envelope.body == "json")
    )
    if not body.strip():
        rs, _ = _reasons(reasons, _MISSING, event_roots, batch)
        return BodyView("empty", reasons=rs)
    if as_json:
        try:
            document = msgspec.json.decode(body.encode("utf-8"))
        except (msgspec.DecodeError, RecursionError):
            rs, _ = _reasons(reasons, _MISSING, event_roots, batch)
            return BodyView("text", text=body, reasons=rs)
        if envelope is not None:
            with contextlib.suppress(Problem):  # Convead's data, when it is still JSON text
                decode_inner(envelope, document)
        rs, marks = _reasons(reasons, document, event_roots, batch)
        lines, dropped = json_lines(document, marks)
        return BodyView("json", lines=lines, truncated=dropped, reasons=rs)
    try:
        document = parse_form(body)
        if envelope is not None:
            decode_inner(envelope, document)
    except Problem:
        document = _MISSING
    rs, marks = _reasons(reasons, document, event_roots, batch)
    json_fields = set(envelope.json_fields) if envelope else set()
    rows = []
    for name, value in parse_qsl(body, keep_blank_values=True)[:MAX_LINES]:
        tokens = _form_tokens(name)
        ptr = "".join("/" + escape(t) for t in tokens)
        row = Row(name, value, anchor=marks.get(ptr), hit=ptr in marks)
        if name in json_fields:
            try:
                inner = msgspec.json.decode(value.encode("utf-8"))
            except (msgspec.DecodeError, RecursionError):
                inner = _MISSING
            if inner is not _MISSING:
                row.lines, _ = json_lines(inner, marks, ptr)
        if not row.hit and row.lines is None:
            # A reason under this field (lead[phone] holds /lead/phone/...).
            under = [a for p, a in marks.items() if p.startswith(ptr + "/")]
            if under:
                row.hit, row.anchor = True, under[0]
        rows.append(row)
    return BodyView("form", rows=rows, reasons=rs)
