"""Declarative mappings: one file per source, compiled once into a plan and its code.

spec (the file, typed) -> compile -> plan (typed nodes) -> codegen (the functions that run)
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from .compile import MappingError, compile_plan
from .engine import CompiledMapping, MapOutcome, MappedEvent
from .spec import MappingFile, decode_hook

__all__ = [
    "CompiledMapping",
    "MapOutcome",
    "MappedEvent",
    "MappingError",
    "load_dir",
    "load_file",
    "load_text",
]


def load_text(text: bytes | str, where: str) -> CompiledMapping:
    """A mapping from its YAML text; ``where`` names it in errors (a file name)."""
    try:
        spec = msgspec.yaml.decode(text, type=MappingFile, dec_hook=decode_hook)
    except msgspec.ValidationError as e:
        raise MappingError(where, str(e)) from None
    except msgspec.DecodeError as e:
        raise MappingError(where, f"cannot read: {e}") from None
    return CompiledMapping(compile_plan(spec, where))


def load_file(path: Path) -> CompiledMapping:
    try:
        text = path.read_bytes()
    except OSError as e:
        raise MappingError(str(path), f"cannot read: {e}") from None
    return load_text(text, str(path))


def load_dir(directory: Path) -> dict[str, CompiledMapping]:
    """Every ``*.yaml`` / ``*.yml`` file of a directory, keyed by source name."""
    if not directory.is_dir():
        raise MappingError(str(directory), "is not a directory")
    out: dict[str, CompiledMapping] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        m = load_file(path)
        if m.source in out:
            raise MappingError(str(path), f"source {m.source!r} is already defined")
        out[m.source] = m
    if not out:
        raise MappingError(str(directory), "holds no mapping files (*.yaml)")
    return out
