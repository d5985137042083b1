"""The destinations file (``RECEIVER_DESTINATIONS_FILE``), decoded and validated by msgspec.

A file that cannot be used stops the start with a message naming the key, e.g.
``destinations[0].secret_env: CRM_WEBHOOK_SECRET is not set in the environment``.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import ipaddress
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec

from ..config import ConfigError
from ..events import EventType

Format = Literal["canonical", "cloudevents"]
Duration = Annotated[str, msgspec.Meta(pattern=r"^\d+(\.\d+)?(ms|s|m|h|d)$")]
Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
EnvName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
#: Canonical types that are never forwarded: a test is not a lead.
NEVER_FORWARDED = frozenset({EventType.LEAD_TEST.value})
CANONICAL_TYPES = sorted(t.value for t in EventType)


class ForwardConfigError(ConfigError):
    """The destinations file cannot be used; the message names the file and the key."""


def seconds(duration: str) -> float:
    """``"24h"`` -> 86400.0 (units ms, s, m, h, d)."""
    m = _DURATION.match(duration)
    if m is None:
        raise ValueError(f"{duration!r} is not a duration like 500ms, 10s, 5m, 24h, 7d")
    return float(m.group(1)) * _UNITS[m.group(2)]


class _Spec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class RetrySpec(_Spec, kw_only=True):
    first: Duration = "5s"
    """Longest wait before the first retry (each wait is random up to its bound: full jitter)."""
    max_interval: Duration = "1h"
    """The bound doubles after every failed attempt, up to this."""


class DestinationSpec(_Spec, kw_only=True):
    name: Name
    url: str
    secret_env: EnvName
    format: Format = "canonical"
    sources: list[str] | None = None
    types: list[str] | None = None
    max_age: Duration = "24h"
    timeout: Duration = "10s"
    allow_private: bool = False
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8
    retry: RetrySpec = msgspec.field(default_factory=RetrySpec)


class DestinationsFile(_Spec, kw_only=True):
    destinations: list[DestinationSpec] = []


@dataclass(frozen=True)
class Destination:
    """One destination, ready to use: durations in seconds, the secret decoded."""

    name: str
    url: str
    secret: bytes
    format: Format
    sources: frozenset[str] | None
    types: tuple[str, ...] | None
    max_age: float
    timeout: float
    allow_private: bool
    concurrency: int
    retry_first: float
    retry_max: float

    def matches(self, source: str, event_type: str) -> bool:
        if event_type in NEVER_FORWARDED:
            return False
        if self.sources is not None and source not in self.sources:
            return False
        return self.types is None or any(fnmatch.fnmatchcase(event_type, g) for g in self.types)

    @property
    def shown_url(self) -> str:
        """The URL without what may be a credential (user info, query)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


def decode_secret(value: str) -> bytes:
    """A Standard Webhooks secret, ``whsec_`` + base64, as key bytes."""
    raw = value.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError('is not "whsec_" followed by base64') from None
    if len(key) < 16:
        raise ValueError("is too short: use at least 16 random bytes (24 to 64 recommended)")
    return key


def _check_url(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise ValueError("has an invalid port") from None
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return  # a name: resolved and checked before every connection
    if not allow_private and not is_public(literal):
        raise ValueError(f"points at a private or loopback address ({literal}); set allow_private: true")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _build(
    i: int, spec: DestinationSpec, env: Mapping[str, str], sources: Collection[str] | None
) -> Destination:
    key = f"destinations[{i}]"

    def fail(field: str, message: str) -> ForwardConfigError:
        return ForwardConfigError(f"{key}.{field}: {message}")

    try:
        _check_url(spec.url, spec.allow_private)
    except ValueError as e:
        raise fail("url", str(e)) from None
    secret_value = env.get(spec.secret_env, "")
    if not secret_value:
        raise fail("secret_env", f"{spec.secret_env} is not set in the environment")
    try:
        secret = decode_secret(secret_value)
    except ValueError as e:
        raise fail("secret_env", f"the value of {spec.secret_env} {e}") from None
    if spec.sources is not None:
        for j, s in enumerate(spec.sources):
            if sources is not None and s not in sources:
                raise fail(f"sources[{j}]", f"unknown source {s!r}; known: {', '.join(sorted(sources))}")
    if spec.types is not None:
        for j, glob in enumerate(spec.types):
            if not any(fnmatch.fnmatchcase(t, glob) for t in CANONICAL_TYPES):
                raise fail(f"types[{j}]", f"{glob!r} matches no canonical type (e.g. lead.captured, order.*)")
    durations = {}
    for field, value in (
        ("max_age", spec.max_age),
        ("timeout", spec.timeout),
        ("retry.first", spec.retry.first),
        ("retry.max_interval", spec.retry.max_interval),
    ):
        durations[field] = seconds(value)
        if durations[field] <= 0:
            raise fail(field, "must be more than zero")
    if durations["retry.max_interval"] < durations["retry.first"]:
        raise fail("retry.max_interval", "must not be shorter than retry.first")
    return Destination(
        name=spec.name,
        url=spec.url,
        secret=secret,
        format=spec.format,
        sources=frozenset(spec.sources) if spec.sources is not None else None,
        types=tuple(spec.types) if spec.types is not None else None,
        max_age=durations["max_age"],
        timeout=durations["timeout"],
        allow_private=spec.allow_private,
        concurrency=spec.concurrency,
        retry_first=durations["retry.first"],
        retry_max=durations["retry.max_interval"],
    )


def load_destinations(
    path: Path, env: Mapping[str, str], sources: Collection[str] | None = None
) -> list[Destination]:
    """Read and check a destinations file. ``sources``: the known source names, when known."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ForwardConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        spec = msgspec.yaml.decode(raw, type=DestinationsFile)
    except msgspec.ValidationError as e:
        # msgspec says "... - at `$.destinations[0].url`": lead with the key.
        message, _, where = str(e).partition(" - at `$.")
        raise ForwardConfigError(f"{path}: {where.rstrip('`') + ': ' if where else ''}{message}") from None
    except msgspec.DecodeError as e:
        raise ForwardConfigError(f"{path}: not valid YAML: {e}") from None
    out: list[Destination] = []
    seen: set[str] = set()
    for i, d in enumerate(spec.destinations):
        if d.name in seen:
            raise ForwardConfigError(f"{path}: destinations[{i}].name: {d.name!r} is used twice")
        seen.add(d.name)
        try:
            out.append(_build(i, d, env, sources))
        except ForwardConfigError as e:
            raise ForwardConfigError(f"{path}: {e}") from None
    return out
