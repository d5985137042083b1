"""Versioned schema migrations: numbered ``.sql`` files, applied in order, once each."""

from __future__ import annotations

from importlib import resources


def migrations(backend: str) -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` for every migration file of a backend, in order."""
    folder = resources.files("receiver.store") / "migrations" / backend
    out = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql"):
            out.append((int(name.split("_", 1)[0]), name, entry.read_text("utf-8")))
    return sorted(out)
