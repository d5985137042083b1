"""Declarative mappings: one file per source, compiled once into plain functions."""

from __future__ import annotations

from pathlib import Path

import msgspec

from .engine import CompiledMapping, MapOutcome, MappedEvent, MappingError
from .spec import MappingFile

__all__ = ["CompiledMapping", "MapOutcome", "MappedEvent", "MappingError", "load_dir", "load_file"]


def load_file(path: Path) -> CompiledMapping:
    try:
        spec = msgspec.yaml.decode(path.read_bytes(), type=MappingFile)
    except msgspec.ValidationError as e:
        raise MappingError(str(path), str(e)) from None
    except (msgspec.DecodeError, OSError) as e:
        raise MappingError(str(path), f"cannot read: {e}") from None
    return CompiledMapping(spec, str(path))


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
