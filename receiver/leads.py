"""Backend-neutral lead logic (docs/events.md): traits merged newest-first.

Traits are kept flat (``address.city``) beside the ``occurred_at`` of the event that
set each one, so a late-arriving older event never overwrites a newer value, and a
missing or null value never erases one.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

import msgspec

#: Canonical event types that never create or touch a lead.
NO_LEAD_TYPES = frozenset({"lead.test"})


def flatten(traits: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in traits.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif v is not None and v != "" and v != []:
            out[key] = v
    return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(flat):
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        node[parts[-1]] = flat[key]
    return out


_flat_raw = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_Template = tuple[bytes, Callable[[dict[str, msgspec.Raw]], tuple[msgspec.Raw, ...]]]
_templates: dict[tuple[str, ...], _Template] = {}
_TEMPLATES_MAX = 4096  # distinct key sets: leads of one mapping share a handful


def unflattened_json(flat: bytes) -> bytes:
    """``msgspec.json.encode(unflatten(msgspec.json.decode(flat)))``, for stored flat traits,
    without decoding a value. The nesting depends only on the keys, and leads filled by the
    same mappings share a few key sets: each set becomes once a ``%b`` template of the
    nested document (keys encoded, values as holes), filled in C with the stored values."""
    traits = _flat_raw(flat)
    keys = tuple(traits)
    template = _templates.get(keys)
    if template is None:
        if len(_templates) >= _TEMPLATES_MAX:
            _templates.clear()
        template = _templates[keys] = _template(keys)
    text, values = template
    return text % values(traits)


def _template(keys: tuple[str, ...]) -> _Template:
    # Unflatten the key set itself (each leaf holds its flat key), then write it out.
    shape = unflatten({k: k for k in keys})
    order: list[str] = []

    def write(node: dict[str, Any]) -> bytes:
        parts = []
        for name, value in node.items():
            key = msgspec.json.encode(name).replace(b"%", b"%%") + b":"
            if isinstance(value, dict):
                parts.append(key + write(value))
            else:
                order.append(value)
                parts.append(key + b"%b")
        return b"{" + b",".join(parts) + b"}"

    text = write(shape)
    if len(order) == 1:
        only = order[0]
        return text, lambda traits: (traits[only],)
    return text, itemgetter(*order) if order else (lambda traits: ())


def merge_traits(traits: dict[str, Any], times: dict[str, str], new: dict[str, Any], at: str) -> bool:
    """Merge flat ``new`` traits observed at ``at`` into ``traits``/``times``, in place.
    A value wins when it is at least as recent as the one it would replace."""
    changed = False
    for key, value in new.items():
        seen = times.get(key)
        newer = seen is None or at >= seen
        if newer and (traits.get(key) != value or seen != at):
            traits[key] = value
            times[key] = at
            changed = True
    return changed


def merge_lead(traits: dict[str, Any], times: dict[str, str], lead: dict[str, Any], at: str) -> bool:
    """``merge_traits(traits, times, flatten(lead), at)`` without building the flat copy:
    the writer merges an event's (nested) lead per delivery, and walking it once, merging
    each value where it is found, is half the work. Same order, same result."""
    return _merge_under(traits, times, lead, at, "")


def _merge_under(
    traits: dict[str, Any], times: dict[str, str], node: dict[str, Any], at: str, prefix: str
) -> bool:
    changed = False
    seen_at = times.get
    for k, value in node.items():
        key = prefix + k
        # Most values are a non-empty string: told by their class, without a call. The
        # three empty values are looked for only among the false ones (0 and False are
        # values).
        if value.__class__ is str:
            if not value:
                continue
        elif isinstance(value, dict):
            changed = _merge_under(traits, times, value, at, key + ".") or changed
            continue
        elif not value and (value is None or value == "" or value == []):
            continue
        seen = seen_at(key)
        if seen is None or at > seen or (at == seen and traits.get(key) != value):
            traits[key] = value
            times[key] = at
            changed = True
    return changed


def merge_leads(
    traits: dict[str, Any], times: dict[str, str], other: dict[str, Any], other_times: dict[str, str]
) -> None:
    """Fold another lead's traits in, key by key, newest wins."""
    for key, value in other.items():
        at = other_times.get(key, "")
        seen = times.get(key)
        if seen is None or at > seen:
            traits[key] = value
            times[key] = at
