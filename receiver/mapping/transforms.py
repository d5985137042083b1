"""The closed set of named transforms a mapping file may chain on a field.

Each transform is registered once, in ``REGISTRY``, with the msgspec Struct of its
arguments: unknown arguments are refused, types are checked, and arguments that name
paths are typed ``Paths`` (expanded through the mapping's roots). Its factory takes the
decoded arguments and returns a plain function ``(value, node, ctx) -> value``, which
raises ``TransformError`` for a value it cannot convert (the engine reports it as a 422
naming the field's pointer) and returns None for "absent". ``mappings/README.md``
documents the registry (``receiver mappings docs``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote, urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import phonenumbers

from ..clock import _second, rfc3339_epoch
from .patch import PatchError, apply_patch
from .paths import Ctx, Paths, as_index, read_first

Fn = Callable[[Any, Any, Ctx], Any]


class TransformError(ValueError):
    pass


class SpecError(ValueError):
    """A transform named or configured wrongly in a mapping file."""


class Args(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A transform's arguments; this base takes none."""


NoArgs = Args


@dataclass(frozen=True)
class Transform:
    name: str
    args: type[Args]
    make: Callable[[Any], Fn]
    """Decoded arguments -> the function."""
    doc: str
    shorthand: str | None = None
    """The argument a bare value stands for: ``{pluck: option_value}``."""


REGISTRY: dict[str, Transform] = {}
A = TypeVar("A", bound=Args)


def transform(
    name: str,
    args: type[A] = NoArgs,  # type: ignore[assignment]
    shorthand: str | None = None,
) -> Callable[[Callable[[A], Fn]], Callable[[A], Fn]]:
    def register(make: Callable[[A], Fn]) -> Callable[[A], Fn]:
        REGISTRY[name] = Transform(name, args, make, inspect.cleandoc(make.__doc__ or ""), shorthand)
        return make

    return register


@dataclass(frozen=True, slots=True)
class Step:
    """One transform of a chain, as the plan holds it."""

    name: str
    args: Args
    fn: Fn


def build(ref: str | dict[str, Any], dec_hook: Callable[[type, Any], Any]) -> Step:
    """``"lower"`` or ``{"datetime": {"format": …}}`` -> a step. ``dec_hook`` decodes the
    argument types written as text (``Paths``)."""
    if isinstance(ref, str):
        name, raw = ref, None
    elif len(ref) == 1:
        ((name, raw),) = ref.items()
    else:
        raise SpecError(f"a transform is a name or a one-key mapping, got {sorted(ref)}")
    t = REGISTRY.get(name)
    if t is None:
        raise SpecError(f"unknown transform {name!r} (known: {', '.join(sorted(REGISTRY))})")
    fields = msgspec.structs.fields(t.args)
    if raw is None or raw is True or raw == {}:
        raw = {}
    elif not isinstance(raw, dict):
        if t.shorthand is None:
            if not fields:
                raise SpecError(f"transform {name!r} takes no arguments")
            raise SpecError(
                f"transform {name!r} takes a mapping of arguments ({', '.join(f.name for f in fields)})"
            )
        raw = {t.shorthand: raw}
    known = [f.encode_name for f in fields]
    for key in raw:
        if key not in known:
            takes = f"its arguments are {', '.join(known)}" if known else "it takes no arguments"
            raise SpecError(f"transform {name!r}: unknown argument {key!r} ({takes})")
    try:
        args = msgspec.convert(raw, t.args, dec_hook=dec_hook)
    except msgspec.ValidationError as e:
        raise SpecError(f"transform {name!r}: {e}") from None
    return Step(name, args, t.make(args))


# --- text -------------------------------------------------------------------------------


@transform("trim")
def t_trim(args: Args) -> Fn:
    """Strip surrounding white space; text that is only white space becomes absent."""
    return lambda v, n, c: (v.strip() or None) if isinstance(v, str) else v


@transform("lower")
def t_lower(args: Args) -> Fn:
    """Lower-case text."""
    return lambda v, n, c: v.lower() if isinstance(v, str) else v


@transform("upper")
def t_upper(args: Args) -> Fn:
    """Upper-case text."""
    return lambda v, n, c: v.upper() if isinstance(v, str) else v


def to_text(v: Any) -> str | None:
    """A scalar as text (``12`` -> ``"12"``, ``true`` -> ``"true"``); None for objects and arrays."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        try:
            return str(v)
        except ValueError:  # more digits than Python converts (sys.set_int_max_str_digits)
            return None
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    return None


def _to_string(v: Any, n: Any, c: Ctx) -> Any:
    text = to_text(v)
    if text is None:
        raise TransformError("must be a string")
    return text


@transform("string")
def t_string(args: Args) -> Fn:
    """Numbers and booleans as text: ``12`` -> ``"12"``, ``true`` -> ``"true"``."""
    return _to_string


# --- numbers ----------------------------------------------------------------------------

NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
"""A number written as text (what ``number`` and the constraints accept)."""


def _to_number(v: Any, n: Any, c: Ctx) -> Any:
    cls = v.__class__
    if cls is str:
        s = v.strip()
        if len(s) < 16 and s.isdigit() and s.isascii():  # what the rest makes of it, sooner
            return int(s)
        if NUMBER.fullmatch(s) is None:
            raise TransformError(f"must be a number, got {v[:40]!r}")
        f = float(s)
        if not math.isfinite(f):
            raise TransformError("must be a finite number")
        if f.is_integer() and abs(f) < 2**53 and "." not in s and "e" not in s and "E" not in s:
            return int(f)
        return f
    if cls is int:
        return v
    if cls is float:
        if not math.isfinite(v):
            raise TransformError("must be a finite number")
        return v
    raise TransformError("must be a number")


@transform("number")
def t_number(args: Args) -> Fn:
    """A number, also from text (``"199.8"`` -> ``199.8``); other text is an error (422)."""
    return _to_number


@transform("integer")
def t_integer(args: Args) -> Fn:
    """A whole number, also from text (``"3"`` -> ``3``); ``1.5`` is an error (422)."""

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        x = _to_number(v, n, c)
        if isinstance(x, float):
            if not x.is_integer():
                raise TransformError("must be an integer")
            x = int(x)
        return x

    return fn


_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


@transform("boolean")
def t_boolean(args: Args) -> Fn:
    """``1/0``, ``true/false``, ``yes/no``, ``on/off`` (any case) and numbers (non-zero is true)."""

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        if isinstance(v, bool):
            return v
        if isinstance(v, int | float):
            return v != 0
        s = v.strip().lower() if isinstance(v, str) else None
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise TransformError("must be a boolean")

    return fn


# --- time -------------------------------------------------------------------------------

#: Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: what RFC 3339 can write.
_FIRST_SECOND, _LAST_SECOND = -62135596800, 253402300799

#: strptime formats that fromisoformat parses ten times faster, with a strict shape check.
_ISO_SHAPES = {
    "%Y-%m-%d %H:%M:%S": re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"),
    "%Y-%m-%dT%H:%M:%S": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"),
    "%Y-%m-%d": re.compile(r"\d{4}-\d\d-\d\d"),
}

#: For a value of one of those shapes that ``fromisoformat`` takes, in UTC: its RFC 3339
#: text, as ``_instant`` writes it (years 0001-9999, no fraction of a second).
_ISO_UTC_TEXT: dict[str, Callable[[str], str]] = {
    "%Y-%m-%d %H:%M:%S": lambda s: f"{s[:10]}T{s[11:]}.000Z",
    "%Y-%m-%dT%H:%M:%S": lambda s: f"{s}.000Z",
    "%Y-%m-%d": lambda s: f"{s}T00:00:00.000Z",
}


def _zone(name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


class DatetimeArgs(Args, frozen=True):
    format: Annotated[
        str | None, msgspec.Meta(description="a strptime format, e.g. `%Y-%m-%d %H:%M:%S`; default ISO 8601")
    ] = None
    tz: Annotated[str, msgspec.Meta(description="time zone of a value that has none (IANA name)")] = "UTC"

    def __post_init__(self) -> None:
        _zone(self.tz)


def _instant(dt: datetime) -> str:
    """An aware date-time as RFC 3339 UTC with milliseconds; an error past year 9999."""
    try:
        seconds = dt.timestamp()
    except (OverflowError, ValueError, OSError):
        raise TransformError("is not a representable time") from None
    sec = math.floor(seconds)
    if not _FIRST_SECOND <= sec <= _LAST_SECOND:
        raise TransformError("is not a representable time")
    return f"{_second(sec)}.{dt.microsecond // 1000:03d}Z"


@transform("datetime", DatetimeArgs)
def t_datetime(args: DatetimeArgs) -> Fn:
    """A date-time as RFC 3339 UTC: parsed with `format` in `tz` (default UTC), or
    RFC 3339 / ISO 8601 without a format."""
    fmt, tz = args.format, _zone(args.tz)
    shape = _ISO_SHAPES.get(fmt) if fmt else None
    as_utc = _ISO_UTC_TEXT.get(fmt) if fmt and tz is UTC else None

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        if not isinstance(v, str):
            raise TransformError("must be a date-time string")
        s = v.strip()
        try:
            if shape is not None and shape.fullmatch(s):
                dt = datetime.fromisoformat(s)
                if as_utc is not None and s.isascii():  # a valid date-time, already in UTC
                    return as_utc(s)
            elif fmt:
                dt = datetime.strptime(s, fmt)
            else:
                dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise TransformError(f"must be a date-time{' like ' + fmt if fmt else ''}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=tz)
        return _instant(dt)

    return fn


def _epoch(scale: int) -> Fn:
    def fn(v: Any, n: Any, c: Ctx) -> Any:
        x = _to_number(v, n, c)
        if not _FIRST_SECOND * scale <= x <= (_LAST_SECOND + 1) * scale - 1:
            raise TransformError("is not a representable time")
        if scale == 1000 and isinstance(x, int):
            sec, ms = divmod(x, 1000)  # exact: no float rounding for the common case
            return f"{_second(sec)}.{ms:03d}Z"
        out = rfc3339_epoch(x / scale)
        if out.startswith("10000"):  # rounded up past the last millisecond
            raise TransformError("is not a representable time")
        return out

    return fn


@transform("epoch_ms")
def t_epoch_ms(args: Args) -> Fn:
    """Unix time in milliseconds -> RFC 3339 UTC."""
    return _epoch(1000)


@transform("epoch_s")
def t_epoch_s(args: Args) -> Fn:
    """Unix time in seconds -> RFC 3339 UTC."""
    return _epoch(1)


class DateArgs(Args, frozen=True):
    format: Annotated[str | None, msgspec.Meta(description="a strptime format, e.g. `%d/%m/%Y`")] = None


@transform("date", DateArgs)
def t_date(args: DateArgs) -> Fn:
    """A calendar date as `YYYY-MM-DD` (input ISO 8601, or `format`)."""
    fmt = args.format

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        if not isinstance(v, str):
            raise TransformError("must be a date string")
        try:
            d = datetime.strptime(v.strip(), fmt).date() if fmt else date.fromisoformat(v.strip()[:10])
        except ValueError:
            raise TransformError("must be a date like YYYY-MM-DD") from None
        return d.isoformat()

    return fn


# --- hashing and masking (the privacy markers use the same two functions) -----------------


def sha256_hex(v: str) -> str:
    """Hex SHA-256 of the trimmed, lower-cased text."""
    return hashlib.sha256(v.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()


def mask(v: str) -> str:
    """``jane@example.com`` -> ``j***@example.com``; other text keeps its first character."""
    v = v.strip()
    local, at, domain = v.rpartition("@")
    if at and local:
        return f"{local[0].lower()}***@{domain.lower()}"
    return (v[:1] + "***") if v else v


@transform("sha256")
def t_sha256(args: Args) -> Fn:
    """Hex SHA-256 of the trimmed, lower-cased text."""
    return lambda v, n, c: sha256_hex(_to_string(v, n, c))


@transform("mask")
def t_mask(args: Args) -> Fn:
    """`jane@example.com` -> `j***@example.com`; other text keeps its first character."""
    return lambda v, n, c: mask(_to_string(v, n, c))


# --- contact data -----------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _region(hint: str) -> str | None:
    h = hint.strip().upper().lstrip("+")
    if h.isascii() and h.isdigit() and len(h) <= 3:  # calling codes have 1 to 3 digits
        region = phonenumbers.region_code_for_country_code(int(h))
        return None if region == "ZZ" else region
    return h if len(h) == 2 and h.isascii() and h.isalpha() else None


@lru_cache(maxsize=16384)
def e164(number: str, region: str | None) -> str:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return number
    if not phonenumbers.is_possible_number(parsed):
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class PhoneArgs(Args, frozen=True):
    country: Annotated[
        Paths, msgspec.Meta(description="paths to a calling code (`+34`, `34`) or a region (`ES`)")
    ] = Paths()


@transform("phone", PhoneArgs)
def t_phone(args: PhoneArgs) -> Fn:
    """E.164 via phonenumbers (`+14155550123`); a number that cannot be parsed is kept as given."""
    countries = args.country.paths

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        s = _to_string(v, n, c).strip()
        hint = to_text(read_first(countries, n, c)) if countries else None
        return e164(s, _region(hint) if hint is not None else None)

    return fn


# --- lookups and structure --------------------------------------------------------------


class EnumArgs(Args, frozen=True):
    map: Annotated[
        dict[Any, Any],
        msgspec.Meta(description="vendor value -> value (keys compared as trimmed lower-case text)"),
    ]
    passthrough: Annotated[bool, msgspec.Meta(description="keep an unknown value instead of an error")] = (
        False
    )


def _key(v: Any) -> str | None:
    text = to_text(v)
    return None if text is None else text.strip().lower()


@transform("enum", EnumArgs)
def t_enum(args: EnumArgs) -> Fn:
    """Look the value up in `map`; a value not in it is an error (422) unless `passthrough`."""
    table = {_key(k): v for k, v in args.map.items()}
    table.pop(None, None)
    passthrough = args.passthrough
    known = ", ".join(str(k) for k in table)

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        key = _key(v)
        if key in table:
            return table[key]
        if passthrough:
            return v
        raise TransformError(f"must be one of {known}")

    return fn


_UTM = {
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_campaign": "name",
    "utm_term": "term",
    "utm_content": "content",
}


@transform("campaign")
def t_campaign(args: Args) -> Fn:
    """The utm_* query parameters of a URL as `{source, medium, name, term, content}`;
    absent when there are none (or the text is not a URL)."""

    return _campaign


def _campaign(v: Any, n: Any, c: Ctx) -> Any:
    """What ``parse_qs`` of the URL's query gives for the utm_* names, first value of each
    (``parse_qs`` drops blank values, decodes '+' and %-escapes in names and values, with
    ``errors="replace"``), without decoding or listing the other parameters: a page URL
    carries many (~4 µs a URL through ``parse_qs``)."""
    if not isinstance(v, str) or "utm_" not in v:
        return None
    try:
        query = urlsplit(v).query
    except ValueError:  # "http://[x?utm_source=a": not a URL, so no campaign
        return None
    out: dict[str, str] = {}
    for pair in query.split("&") if query else ():
        name, _, value = pair.partition("=")
        if not value:  # no '=' or a blank value: parse_qs leaves the pair out
            continue
        if "+" in name or "%" in name:
            name = unquote(name.replace("+", " "))
        key = _UTM.get(name)
        if key is not None and key not in out:
            out[key] = unquote(value.replace("+", " "))
    return out or None


class AbsoluteUrlArgs(Args, frozen=True):
    base: Annotated[Paths, msgspec.Meta(description="paths to the URL to resolve against (e.g. the page)")]


@transform("absolute_url", AbsoluteUrlArgs)
def t_absolute_url(args: AbsoluteUrlArgs) -> Fn:
    """Resolve a relative URL against `base`; an absolute URL stays as it is."""
    bases = args.base.paths

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        s = _to_string(v, n, c).strip()
        try:
            if urlsplit(s).scheme:
                return s
            base = read_first(bases, n, c)
            return urljoin(base, s) if isinstance(base, str) else s
        except ValueError:
            raise TransformError("must be a URL") from None

    return fn


class PluckArgs(Args, frozen=True):
    key: Annotated[str, msgspec.Meta(description="the member to take from each object")]


@transform("pluck", PluckArgs, shorthand="key")
def t_pluck(args: PluckArgs) -> Fn:
    """A list of objects -> the list of their `key` members; a plain value stays as it is."""
    key = args.key

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        if isinstance(v, dict):
            indexed = [(i, x) for k, x in v.items() if (i := as_index(k)) is not None]
            # A PHP-style form array ({"0": …, "1": …}) is a list; any other object is one item.
            v = [x for _, x in sorted(indexed, key=lambda p: p[0])] if len(indexed) == len(v) else [v]
        if isinstance(v, list):
            return [x.get(key) for x in v if isinstance(x, dict) and x.get(key) not in (None, "")]
        return v

    return fn


@transform("first")
def t_first(args: Args) -> Fn:
    """The first element of a list (absent for an empty one); a plain value stays as it is."""
    return lambda v, n, c: (v[0] if v else None) if isinstance(v, list) else v


@transform("string_list")
def t_string_list(args: Args) -> Fn:
    """A list (or a single value) -> a list of text."""
    return lambda v, n, c: [_to_string(x, n, c) for x in (v if isinstance(v, list) else [v])]


@transform("apply_patch")
def t_apply_patch(args: Args) -> Fn:
    """Fold SDK patch operations (`set`, `merge`, `add`, `combine`, `unset`, `clear`,
    `remove`, `increment`, `decrement`) into the object they describe."""

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        try:
            return apply_patch(v)
        except PatchError as e:
            raise TransformError(str(e)) from None

    return fn


class JwtClaimArgs(Args, frozen=True):
    claim: Annotated[str, msgspec.Meta(description="the claim to read")] = "sub"


@transform("jwt_claim", JwtClaimArgs, shorthand="claim")
def t_jwt_claim(args: JwtClaimArgs) -> Fn:
    """A claim read from a JWT's payload. The signature is not checked: the token
    identifies a visitor, it does not authorise anything here."""
    claim = args.claim

    def fn(v: Any, n: Any, c: Ctx) -> Any:
        if not isinstance(v, str) or v.count(".") != 2:
            return None
        part = v.split(".")[1]
        try:
            payload = msgspec.json.decode(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except (ValueError, binascii.Error, RecursionError):  # msgspec.DecodeError is a ValueError
            return None
        value = payload.get(claim) if isinstance(payload, dict) else None
        return value if isinstance(value, str | int) and value != "" else None

    return fn
