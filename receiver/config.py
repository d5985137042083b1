"""Configuration from environment variables (docs/configuration.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path


class ConfigError(Exception):
    """A setting has a value the service cannot run with."""


def shipped_mappings_dir() -> Path:
    """Where the mapping files that ship with the service are: the one place that decides.

    An installed wheel (pip, pipx, the Docker image) carries them as package data,
    ``receiver/_mappings``. A source checkout (editable install, or ``python -m receiver``
    from the repository) reads the repository's own ``mappings/``, so edits there take
    effect without reinstalling. ``RECEIVER_MAPPINGS_DIR`` overrides both (``Settings``).
    """
    packaged = resources.files("receiver") / "_mappings"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parent.parent / "mappings"
    if checkout.is_dir():
        return checkout
    raise ConfigError(
        f"the shipped mapping files are missing from this installation ({packaged});"
        " reinstall receiver-hooks, or set RECEIVER_MAPPINGS_DIR to a directory of mapping files"
    )


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 3600:
        raise ConfigError(f"{name} must be more than 0 and at most 3600, got {raw}")
    return value


LOG_LEVELS = ("debug", "info", "warning", "error")


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    mappings_dir: Path
    max_body_bytes: int = 1024 * 1024
    dedup_window_seconds: int = 600
    queue_size: int = 10_000
    batch_max: int = 512
    busy_timeout_ms: int = 5000
    destinations_file: Path | None = None
    """Where events are forwarded (receiver/forward); None: nowhere."""
    #: Events one delivery may carry (a batch); more is a 413 and nothing is stored.
    max_events_per_delivery: int = 100
    #: Request line plus headers, in bytes; more is a 431 before any work.
    max_header_bytes: int = 32 * 1024
    #: From a request's first byte to the end of its headers; then 408 and close.
    header_timeout_seconds: float = 10.0
    #: For the whole body of a delivery; then 408 and close.
    body_timeout_seconds: float = 30.0
    #: An idle keep-alive connection is closed after this.
    keepalive_seconds: float = 5.0
    log_level: str = "info"
    #: Credentials given in the environment, by variable name (RECEIVER_KARTRA_TOKEN, ...).
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("RECEIVER_DATA_DIR") or "./data").resolve()
        database_url = env.get("RECEIVER_DATABASE_URL") or f"sqlite:///{data_dir / 'receiver.db'}"
        given = env.get("RECEIVER_MAPPINGS_DIR")
        mappings_dir = Path(given) if given else shipped_mappings_dir()
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            mappings_dir=mappings_dir,
            max_body_bytes=_int(env, "RECEIVER_MAX_BODY_BYTES", 1024 * 1024, minimum=1),
            dedup_window_seconds=_int(env, "RECEIVER_DEDUP_WINDOW_SECONDS", 600),
            queue_size=_int(env, "RECEIVER_QUEUE_SIZE", 10_000, minimum=1),
            batch_max=_int(env, "RECEIVER_BATCH_MAX", 512, minimum=1),
            busy_timeout_ms=_int(env, "RECEIVER_SQLITE_BUSY_TIMEOUT_MS", 5000),
            destinations_file=Path(env["RECEIVER_DESTINATIONS_FILE"])
            if env.get("RECEIVER_DESTINATIONS_FILE")
            else None,
            max_events_per_delivery=_int(env, "RECEIVER_MAX_EVENTS_PER_DELIVERY", 100, minimum=1),
            max_header_bytes=_int(env, "RECEIVER_MAX_HEADER_BYTES", 32 * 1024, minimum=1024),
            header_timeout_seconds=_seconds(env, "RECEIVER_HEADER_TIMEOUT_SECONDS", 10.0),
            body_timeout_seconds=_seconds(env, "RECEIVER_BODY_TIMEOUT_SECONDS", 30.0),
            keepalive_seconds=_seconds(env, "RECEIVER_KEEPALIVE_SECONDS", 5.0),
            log_level=_choice(env, "RECEIVER_LOG_LEVEL", LOG_LEVELS, "info"),
            env=env,
        )

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None when the database is not SQLite."""
        url = self.database_url
        if url.startswith("sqlite:///"):
            return Path(url[len("sqlite:///") :])
        if url.startswith("sqlite://"):
            return Path(url[len("sqlite://") :])
        return None
