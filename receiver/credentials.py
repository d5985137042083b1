"""Source credentials and the read-API key: from the environment, else generated once.

A credential that is not set in the environment is generated on first start and
kept in ``credentials.json`` in the data directory (mode 0600), so restarts keep
the URLs the marketer pasted. Only the start that generated a credential prints
it (see ``banner``); nothing else ever logs one.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

API_KEY_SETTING = "RECEIVER_API_KEY"


@dataclass(frozen=True)
class Credentials:
    values: Mapping[str, str]
    """Setting name -> secret value."""
    generated: frozenset[str]
    """Settings generated on this start (to be printed once)."""

    def get(self, setting: str) -> str:
        return self.values[setting]


def load_credentials(data_dir: Path, env: Mapping[str, str], settings: Iterable[str]) -> Credentials:
    path = data_dir / "credentials.json"
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text("utf-8"))
    values: dict[str, str] = {}
    generated: set[str] = set()
    for name in [API_KEY_SETTING, *settings]:
        if env.get(name):
            values[name] = env[name]
        elif name in stored:
            values[name] = stored[name]
        else:
            values[name] = secrets.token_urlsafe(24)
            generated.add(name)
    if generated:
        keep = {k: v for k, v in {**stored, **values}.items() if k in stored or k in generated}
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(keep, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return Credentials(values=values, generated=frozenset(generated))


def matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented credential with the expected one."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
