"""Small shared type aliases."""

from __future__ import annotations

from typing import Any, TypeAlias

JSON: TypeAlias = Any
"""A decoded JSON value: dict, list, str, int, float, bool or None."""

JSONObject: TypeAlias = dict[str, Any]
