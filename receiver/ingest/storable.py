"""JSON that no store can keep or no code should walk: nesting deeper than ``MAX_DEPTH``
(mapping, redaction and encoding would run out of stack) and NUL characters (PostgreSQL
text cannot hold one) are 400s naming the field; more than ``MAX_CONTAINERS`` objects
and arrays or ``MAX_MEMBERS`` members is a 413 (the decoder holds the process while it
builds them: a tenth of a second for a megabyte of ``[{},{},…]``).

The checks read the raw text at C speed (a hostile megabyte of ``[{},{},…]`` must not
cost a Python loop per element); only a document that fails is descended, one level at
a time through ``msgspec.Raw``, to name the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec

from ..problems import FieldError, Problem, bad_request

#: Deepest nesting accepted (PHP's own limit for form keys is 64).
MAX_DEPTH = 64
#: Most objects and arrays in one document: each costs the decoder an allocation, and a
#: megabyte of ``[{},{},…]`` holds 340,000 (a Croct batch of 100 events holds a few thousand).
MAX_CONTAINERS = 20_000
#: Most object members in one document (a megabyte can hold ~130,000; no vendor event
#: comes near: a Croct batch of 100 events holds a few thousand).
MAX_MEMBERS = 20_000

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_NUL = b"\\u0000"
_RawObject = dict[str, msgspec.Raw]
_RawArray = list[msgspec.Raw]


def shown(name: str) -> str:
    """A vendor-given name as it may appear in a problem: short, control characters escaped."""
    if len(name) > 64:
        name = name[:64] + "…"
    if not name.isprintable():
        name = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in name)
    return name


def pointer(tokens: list[str]) -> str:
    return "".join("/" + shown(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def _outside_strings(raw: bytes) -> bytes:
    if raw.find(b'\\"') < 0:  # no escaped quote: every other piece between quotes is a string
        return b"".join(raw.split(b'"')[0::2])
    return _STRING.sub(b"", raw)


def _depth(raw: bytes, limit: int, stripped: bool = False) -> int:
    """Deepest nesting of a valid JSON text, counted up to ``limit + 1``: its brackets
    (outside strings, as one kind) lose their innermost level per pass, in C."""
    brackets = (raw if stripped else _outside_strings(raw)).translate(_ONE_KIND, _NOT_BRACKETS)
    depth = 0
    while brackets and depth <= limit:
        brackets = brackets.replace(b"[]", b"")
        depth += 1
    return depth


def _children(raw: bytes) -> Iterator[tuple[str, bytes]] | None:
    head = raw.lstrip()[:1]
    if head == b"{":
        return ((k, bytes(v)) for k, v in msgspec.json.decode(raw, type=_RawObject).items())
    if head == b"[":
        return ((str(i), bytes(v)) for i, v in enumerate(msgspec.json.decode(raw, type=_RawArray)))
    return None


def _too_deep_at(raw: bytes) -> list[str]:
    """The path to the first container nested more than MAX_DEPTH levels deep."""
    tokens: list[str] = []
    allowed = MAX_DEPTH
    while allowed > 0:
        allowed -= 1
        for name, child in _children(raw) or ():
            # A child n levels deep is at least 2n bytes long: most are skipped unread.
            if len(child) >= 2 * (allowed + 1) and _depth(child, allowed) > allowed:
                tokens.append(name)
                raw = child
                break
        else:
            break
    return tokens


def _nul_at(raw: bytes, tokens: list[str]) -> tuple[list[str], str] | None:
    """The path to a member name or string value holding U+0000, if any (an escaped
    backslash can spell ``\\u0000`` without one)."""
    children = _children(raw)
    if children is None:
        value = msgspec.json.decode(raw)
        return (tokens, "contains") if isinstance(value, str) and "\x00" in value else None
    for name, child in children:
        if "\x00" in name:
            return [*tokens, name], "name"
        if child.find(_NUL) >= 0:
            found = _nul_at(child, [*tokens, name])
            if found is not None:
                return found
    return None


def check_shape(raw: bytes, where: str = "") -> None:
    """Before decoding (C speed, on the text): 400 naming the field for nesting deeper
    than ``MAX_DEPTH``; 413 for more than ``MAX_CONTAINERS`` objects and arrays or
    ``MAX_MEMBERS`` object members."""
    brackets = raw.count(b"[") + raw.count(b"{")
    # A text no longer than MAX_MEMBERS bytes cannot hold more ':' than that: not counted.
    if brackets <= MAX_DEPTH and (len(raw) <= MAX_MEMBERS or raw.count(b":") <= MAX_MEMBERS):
        return  # too few, even counting those inside strings
    if raw.count(b'":') > MAX_MEMBERS:  # '"' then ':' ends a member name (or one in JSON text)
        raise _too_many(where)
    outside = _outside_strings(raw)
    if brackets > MAX_DEPTH and _depth(outside, MAX_DEPTH, stripped=True) > MAX_DEPTH:
        try:
            tokens = _too_deep_at(raw)
        except (msgspec.DecodeError, RecursionError):
            tokens = []  # not even valid JSON: the decoder would refuse it anyway
        raise _unstorable(where + pointer(tokens), f"is nested more than {MAX_DEPTH} levels deep")
    if outside.count(b"[") + outside.count(b"{") > MAX_CONTAINERS or outside.count(b":") > MAX_MEMBERS:
        raise _too_many(where)


def _too_many(where: str) -> Problem:
    limits = f"at most {MAX_CONTAINERS} objects and arrays and {MAX_MEMBERS} members"
    return Problem(
        413,
        "Content Too Large",
        f"the document is too large: {limits} are accepted",
        [FieldError(where, f"must hold {limits}")],
    )


def check_nul(raw: bytes, where: str = "") -> None:
    """After decoding (the text is valid JSON): 400 naming the field holding U+0000."""
    if raw.find(_NUL) >= 0:  # not ``in``: see envelope._pct
        found = _nul_at(raw, [])
        if found is not None:
            tokens, kind = found
            nul = "a NUL character (U+0000)"
            message = f"has {nul} in its name" if kind == "name" else f"contains {nul}"
            raise _unstorable(where + pointer(tokens), message)


def _unstorable(path: str, message: str) -> Problem:
    return bad_request(
        f"the document cannot be stored: {path or 'it'} {message}", [FieldError(path, message)]
    )


def nested_too_deeply(where: str) -> Problem:
    """For a document deeper than even the decoder goes (it raises RecursionError)."""
    message = f"is nested more than {MAX_DEPTH} levels deep"
    return bad_request("the JSON is nested too deeply", [FieldError(where, message)])
