"""Backend-neutral lead logic (docs/events.md): traits merged newest-first.

Traits are kept flat (``address.city``) beside the ``occurred_at`` of the event that
set each one, so a late-arriving older event never overwrites a newer value, and a
missing or null value never erases one.
"""

from __future__ import annotations

from typing import Any

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
