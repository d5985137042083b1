"""What one running service is made of (settings, mappings, credentials, store, writer,
metrics, forwarding): built by ``app.create_app`` and handed to the pages and commands that
need more than a route."""

from __future__ import annotations

from dataclasses import dataclass

from .config import ConfigError, Settings
from .credentials import Credentials
from .forward import Forwarding
from .mapping import CompiledMapping
from .metrics import Metrics
from .store.base import Store
from .store.sqlite import SQLiteStore
from .writer import Writer


@dataclass
class Service:
    settings: Settings
    mappings: dict[str, CompiledMapping]
    credentials: Credentials
    store: Store
    writer: Writer
    metrics: Metrics
    forwarding: Forwarding | None = None


def make_store(settings: Settings) -> Store:
    path = settings.sqlite_path
    if path is not None:
        return SQLiteStore(path, settings.busy_timeout_ms)
    if settings.database_url.startswith(("postgresql://", "postgres://")):
        from .store.postgres import PostgresStore

        return PostgresStore(settings.database_url)
    raise ConfigError(f"unsupported RECEIVER_DATABASE_URL {settings.database_url!r}")
