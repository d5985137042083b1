"""SDK patch operations folded into the object they describe (the ``apply_patch`` transform).

The Croct SDK sends a profile or a lead as ``{operations: [{type, path, value}]}`` instead of
the object itself; folding them back lets both wire formats map (and be checked) alike.
"""

from __future__ import annotations

import re
from typing import Any


class PatchError(ValueError):
    pass


def _split_path(path: str) -> list[str]:
    path = path.strip().strip(".")
    if not path:
        return []
    return [p for p in re.split(r"\.|\[|\]", path) if p != ""]


def apply_patch(operations: Any) -> dict[str, Any]:
    """Fold ``{type, path, value}`` operations (set, merge, add, combine, unset, clear, remove,
    increment, decrement) into a new object."""
    if not isinstance(operations, list):
        raise PatchError("must be a list of patch operations")
    doc: dict[str, Any] = {}
    for op in operations:
        if not isinstance(op, dict):
            raise PatchError("each patch operation must be an object")
        kind, value = op.get("type"), op.get("value")
        path = op.get("path")
        tokens = _split_path(str(path) if isinstance(path, str | int | float) and path else "")
        parent: Any = doc
        for t in tokens[:-1]:
            nxt = parent.get(t)
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
            raise PatchError(f"unknown patch operation {str(kind)[:40]!r}")
    return doc
