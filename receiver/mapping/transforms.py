"""The closed set of named transforms a mapping file may chain on a field.

Each entry is a factory: it takes the transform's arguments from the mapping file
(checked once, at load) and returns a plain function ``(value, node, ctx) -> value``.
A function raises ``TransformError`` for a value it cannot convert; the engine turns
that into a 422 naming the field's pointer. Returning None means "absent".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from ..clock import _second, rfc3339, rfc3339_epoch
from .paths import Ctx, Getter, PathError, compile_getter

Fn = Callable[[Any, Any, Ctx], Any]


class TransformError(ValueError):
    pass


class SpecError(ValueError):
    """A transform named or configured wrongly in a mapping file."""


def _no_args(name: str, args: Any) -> None:
    if args not in (None, {}, True):
        raise SpecError(f"transform {name!r} takes no arguments")


def _getters(args: Any, key: str) -> list[Getter]:
    paths = args.get(key, []) if isinstance(args, dict) else []
    if isinstance(paths, str):
        paths = [paths]
    return [compile_getter(p) for p in paths]


def _first(getters: list[Getter], node: Any, ctx: Ctx) -> Any:
    for g in getters:
        v = g(node, ctx)
        if v is not None:
            return v
    return None


# --- text -------------------------------------------------------------------------------


def t_trim(args: Any) -> Fn:
    _no_args("trim", args)
    return lambda v, n, c: (v.strip() or None) if isinstance(v, str) else v


def t_lower(args: Any) -> Fn:
    _no_args("lower", args)
    return lambda v, n, c: v.lower() if isinstance(v, str) else v


def t_upper(args: Any) -> Fn:
    _no_args("upper", args)
    return lambda v, n, c: v.upper() if isinstance(v, str) else v


def _to_string(v: Any, n: Any, c: Ctx) -> Any:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    raise TransformError("must be a string")


def t_string(args: Any) -> Fn:
    _no_args("string", args)
    return _to_string


# --- numbers ----------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _to_number(v: Any, n: Any, c: Ctx) -> Any:
    if isinstance(v, bool):
        raise TransformError("must be a number")
    if isinstance(v, int | float):
        if isinstance(v, float) and not math.isfinite(v):
            raise TransformError("must be a finite number")
        return v
    if isinstance(v, str):
        s = v.strip()
        if not _NUMBER.fullmatch(s):
            raise TransformError(f"must be a number, got {v[:40]!r}")
        f = float(s)
        if not math.isfinite(f):
            raise TransformError("must be a finite number")
        return int(f) if f.is_integer() and abs(f) < 2**53 and "." not in s and "e" not in s.lower() else f
    raise TransformError("must be a number")


def t_number(args: Any) -> Fn:
    _no_args("number", args)
    return _to_number


def t_integer(args: Any) -> Fn:
    _no_args("integer", args)

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        x = _to_number(v, n, c)
        if isinstance(x, float):
            if not x.is_integer():
                raise TransformError("must be an integer")
            x = int(x)
        return x

    return fn


def t_boolean(args: Any) -> Fn:
    _no_args("boolean", args)
    truthy, falsy = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        if isinstance(v, bool):
            return v
        if isinstance(v, int | float):
            return v != 0
        s = str(v).strip().lower()
        if s in truthy:
            return True
        if s in falsy:
            return False
        raise TransformError("must be a boolean")

    return fn


# --- time -------------------------------------------------------------------------------


#: strptime formats that fromisoformat parses ten times faster, with a strict shape check.
_ISO_SHAPES = {
    "%Y-%m-%d %H:%M:%S": re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"),
    "%Y-%m-%dT%H:%M:%S": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"),
    "%Y-%m-%d": re.compile(r"\d{4}-\d\d-\d\d"),
}


def _zone(args: Any) -> Any:
    name = args.get("tz", "UTC") if isinstance(args, dict) else "UTC"
    try:
        return UTC if name == "UTC" else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpecError(f"unknown time zone {name!r}") from None


def t_datetime(args: Any) -> Fn:
    """Parse a date-time: ``format`` (strptime) in ``tz`` (default UTC); without a format,
    RFC 3339 / ISO 8601. Output: RFC 3339 UTC."""
    fmt = args.get("format") if isinstance(args, dict) else None
    tz = _zone(args)

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        if not isinstance(v, str):
            raise TransformError("must be a date-time string")
        try:
            shape = _ISO_SHAPES.get(fmt) if fmt else None
            if shape is not None and shape.fullmatch(v.strip()):
                dt = datetime.fromisoformat(v.strip())
            elif fmt:
                dt = datetime.strptime(v.strip(), fmt)
            else:
                dt = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
        except ValueError:
            raise TransformError(f"must be a date-time{' like ' + fmt if fmt else ''}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=tz)
        return rfc3339(dt)

    return fn


def _epoch(scale: float) -> Fn:
    def fn(v: Any, n: Any, c: Ctx) -> Any:
        x = _to_number(v, n, c)
        try:
            if scale == 1000.0 and isinstance(x, int):
                sec, ms = divmod(x, 1000)  # exact: no float rounding for the common case
                return f"{_second(sec)}.{ms:03d}Z"
            return rfc3339_epoch(x / scale)
        except (OverflowError, OSError, ValueError):
            raise TransformError("is not a representable time") from None

    return fn


def t_epoch_ms(args: Any) -> Fn:
    _no_args("epoch_ms", args)
    return _epoch(1000.0)


def t_epoch_s(args: Any) -> Fn:
    _no_args("epoch_s", args)
    return _epoch(1.0)


def t_date(args: Any) -> Fn:
    """A calendar date, output YYYY-MM-DD (input ISO date, or ``format``)."""
    fmt = args.get("format") if isinstance(args, dict) else None

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        if not isinstance(v, str):
            raise TransformError("must be a date string")
        try:
            d = datetime.strptime(v.strip(), fmt).date() if fmt else date.fromisoformat(v.strip()[:10])
        except ValueError:
            raise TransformError("must be a date like YYYY-MM-DD") from None
        return d.isoformat()

    return fn


# --- privacy ----------------------------------------------------------------------------


def sha256_hex(v: str) -> str:
    return hashlib.sha256(v.strip().lower().encode("utf-8")).hexdigest()


def mask(v: str) -> str:
    """``jane@example.com`` -> ``j***@example.com``; other text keeps its first character."""
    v = v.strip()
    local, at, domain = v.rpartition("@")
    if at and local:
        return f"{local[0].lower()}***@{domain.lower()}"
    return (v[:1] + "***") if v else v


def t_sha256(args: Any) -> Fn:
    _no_args("sha256", args)
    return lambda v, n, c: sha256_hex(_to_string(v, n, c))


def t_mask(args: Any) -> Fn:
    _no_args("mask", args)
    return lambda v, n, c: mask(_to_string(v, n, c))


# --- contact data -----------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _region(hint: str) -> str | None:
    h = hint.strip().upper().lstrip("+")
    if h.isdigit():
        region = phonenumbers.region_code_for_country_code(int(h))
        return None if region == "ZZ" else region
    return h if len(h) == 2 and h.isalpha() else None


@lru_cache(maxsize=16384)
def e164(number: str, region: str | None) -> str:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return number
    if not phonenumbers.is_possible_number(parsed):
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def t_phone(args: Any) -> Fn:
    """E.164 via phonenumbers; ``country``: paths to a calling code (``+34``, ``34``) or a
    region (``ES``). A number that cannot be parsed is kept as given."""
    countries = _getters(args, "country")

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        s = _to_string(v, n, c).strip()
        hint = _first(countries, n, c)
        region = _region(str(hint)) if hint is not None else None
        return e164(s, region)

    return fn


# --- lookups and structure --------------------------------------------------------------


def t_enum(args: Any) -> Fn:
    """Look the value up in ``map`` (keys compared as text); unknown values are an error
    unless ``passthrough: true``."""
    if not isinstance(args, dict) or not isinstance(args.get("map"), dict):
        raise SpecError("transform 'enum' needs a 'map'")
    table = {str(k): v for k, v in args["map"].items()}
    passthrough = bool(args.get("passthrough", False))

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        key = _to_string(v, n, c).strip().lower() if not isinstance(v, dict | list) else None
        if key is not None and key in table:
            return table[key]
        if passthrough:
            return v
        raise TransformError(f"must be one of {', '.join(table)}")

    return fn


_UTM = {
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_campaign": "name",
    "utm_term": "term",
    "utm_content": "content",
}


def t_campaign(args: Any) -> Fn:
    """utm_* query parameters of a URL -> ``{source, medium, name, term, content}``."""
    _no_args("campaign", args)

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        if not isinstance(v, str) or "utm_" not in v:
            return None
        query = parse_qs(urlsplit(v).query)
        out = {_UTM[k]: vals[0] for k, vals in query.items() if k in _UTM and vals[0]}
        return out or None

    return fn


def t_absolute_url(args: Any) -> Fn:
    """Resolve a relative URL against ``base`` (paths to a URL, e.g. the page URL)."""
    bases = _getters(args, "base")

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        s = _to_string(v, n, c).strip()
        if urlsplit(s).scheme:
            return s
        base = _first(bases, n, c)
        return urljoin(base, s) if isinstance(base, str) else s

    return fn


def t_pluck(args: Any) -> Fn:
    """A list of objects -> the list of their ``key`` values; a plain value stays as it is."""
    key = args.get("key") if isinstance(args, dict) else args
    if not isinstance(key, str):
        raise SpecError("transform 'pluck' needs a key")

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        if isinstance(v, dict):
            v = (
                [v[k] for k in sorted(v, key=lambda s: int(s) if s.isdigit() else 0)]
                if all(k.isdigit() for k in v)
                else [v]
            )
        if isinstance(v, list):
            return [x.get(key) for x in v if isinstance(x, dict) and x.get(key) not in (None, "")]
        return v

    return fn


def t_first(args: Any) -> Fn:
    _no_args("first", args)
    return lambda v, n, c: (v[0] if v else None) if isinstance(v, list) else v


def t_string_list(args: Any) -> Fn:
    """A list (or a single value) -> a list of strings."""
    _no_args("string_list", args)
    return lambda v, n, c: [_to_string(x, n, c) for x in (v if isinstance(v, list) else [v])]


def _split_path(path: str) -> list[str]:
    path = path.strip().strip(".")
    if not path:
        return []
    return [p for p in re.split(r"\.|\[|\]", path) if p != ""]


def apply_patch(operations: Any) -> Any:
    """Fold SDK patch operations (``{type, path, value}``: set, merge, add, combine, unset,
    clear, remove, increment, decrement) into the object they describe."""
    if not isinstance(operations, list):
        raise TransformError("must be a list of patch operations")
    doc: dict[str, Any] = {}
    for op in operations:
        if not isinstance(op, dict):
            raise TransformError("each patch operation must be an object")
        kind, value = op.get("type"), op.get("value")
        tokens = _split_path(str(op.get("path") or ""))
        parent: Any = doc
        for t in tokens[:-1]:
            nxt = parent.get(t) if isinstance(parent, dict) else None
            if not isinstance(nxt, dict):
                nxt = {}
                parent[t] = nxt
            parent = nxt
        if not tokens:
            if kind in ("set", "merge") and isinstance(value, dict):
                if kind == "set":
                    doc.clear()
                doc.update(value)
            elif kind in ("unset", "clear"):
                doc.clear()
            continue
        last = tokens[-1]
        if kind == "set":
            parent[last] = value
        elif kind == "merge" and isinstance(value, dict) and isinstance(parent.get(last), dict):
            parent[last].update(value)
        elif kind == "merge":
            parent[last] = value
        elif kind in ("add", "combine"):
            cur = parent.get(last)
            items = value if isinstance(value, list) else [value]
            parent[last] = (cur if isinstance(cur, list) else ([] if cur is None else [cur])) + items
        elif kind in ("unset", "clear", "remove"):
            parent.pop(last, None)
        elif kind in ("increment", "decrement"):
            cur = parent.get(last)
            step = value if isinstance(value, int | float) and not isinstance(value, bool) else 1
            base = cur if isinstance(cur, int | float) and not isinstance(cur, bool) else 0
            parent[last] = base + (step if kind == "increment" else -step)
        else:
            raise TransformError(f"unknown patch operation {kind!r}")
    return doc


def t_apply_patch(args: Any) -> Fn:
    _no_args("apply_patch", args)
    return lambda v, n, c: apply_patch(v)


def t_jwt_claim(args: Any) -> Fn:
    """A claim (``claim``, default ``sub``) read from a JWT's payload. The signature is not
    checked: the token identifies a visitor, it does not authorise anything here."""
    claim = args.get("claim", "sub") if isinstance(args, dict) else "sub"

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        if not isinstance(v, str) or v.count(".") != 2:
            return None
        part = v.split(".")[1]
        try:
            payload = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except (ValueError, binascii.Error):
            return None
        value = payload.get(claim) if isinstance(payload, dict) else None
        return value if isinstance(value, str | int) and value != "" else None

    return fn


REGISTRY: dict[str, Callable[[Any], Fn]] = {
    "trim": t_trim,
    "lower": t_lower,
    "upper": t_upper,
    "string": t_string,
    "number": t_number,
    "integer": t_integer,
    "boolean": t_boolean,
    "datetime": t_datetime,
    "epoch_ms": t_epoch_ms,
    "epoch_s": t_epoch_s,
    "date": t_date,
    "sha256": t_sha256,
    "mask": t_mask,
    "phone": t_phone,
    "enum": t_enum,
    "campaign": t_campaign,
    "absolute_url": t_absolute_url,
    "pluck": t_pluck,
    "first": t_first,
    "string_list": t_string_list,
    "apply_patch": t_apply_patch,
    "jwt_claim": t_jwt_claim,
}


#: Transform arguments that hold paths (expanded through the mapping's roots).
PATH_ARGS = ("country", "base")


def build(ref: str | dict[str, Any], expand: Callable[[str], list[str]] | None = None) -> Fn:
    """``"lower"`` or ``{"datetime": {"format": …}}`` -> a transform function."""
    if isinstance(ref, str):
        name, args = ref, None
    elif len(ref) == 1:
        ((name, args),) = ref.items()
    else:
        raise SpecError(f"a transform is a name or a one-key mapping, got {sorted(ref)}")
    factory = REGISTRY.get(name)
    if factory is None:
        raise SpecError(f"unknown transform {name!r} (known: {', '.join(sorted(REGISTRY))})")
    if expand is not None and isinstance(args, dict):
        args = dict(args)
        for key in PATH_ARGS:
            if key in args:
                paths = [args[key]] if isinstance(args[key], str) else list(args[key])
                args[key] = [q for p in paths for q in expand(p)]
    try:
        return factory(args)
    except (PathError, TypeError, AttributeError) as e:
        raise SpecError(f"transform {name!r}: {e}") from None
