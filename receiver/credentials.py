"""Source credentials and the read-API key: from the environment, else generated once.

A credential that is not set in the environment is generated on first start and
kept in ``credentials.json`` in the data directory (mode 0600), so restarts keep
the URLs the marketer pasted. Only the start that generated a credential prints
it (see ``cli.banner``), and ``receiver credentials`` on request; nothing else ever
logs one.

The environment wins over the file. When it overrides a value the file holds, the file
is updated to the value in force: ``credentials.json`` always says what the service
last ran with, so ``receiver credentials`` run from a shell without the service's
environment still prints working URLs, and unsetting the variable later keeps that
value instead of silently going back to an old one the vendor no longer sends.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .mapping import CompiledMapping

API_KEY_SETTING = "RECEIVER_API_KEY"
FILE_NAME = "credentials.json"
Form = Literal["token", "uuid"]


@dataclass(frozen=True)
class Credentials:
    values: Mapping[str, str]
    """Setting name -> secret value."""
    generated: frozenset[str] = frozenset()
    """Settings generated on this start (to be printed once)."""
    from_env: frozenset[str] = frozenset()
    """Settings whose value comes from the environment."""
    overridden: frozenset[str] = frozenset()
    """Settings the environment set to another value than the one the file held (the
    file now holds the environment's)."""
    misshapen: frozenset[str] = frozenset()
    """Settings whose value does not have the form the vendor's client expects (a Croct
    app id that is no UUID, generated before 0.2): accepted, but worth a warning."""

    def get(self, setting: str) -> str:
        return self.values[setting]


class MissingCredentials(Exception):
    """Credentials asked for outside the service (``receiver credentials``) that are
    neither in the environment nor in the data directory."""

    def __init__(self, missing: list[str], path: Path) -> None:
        self.missing = missing
        self.path = path
        where = f"{path}" if path.exists() else f"{path}, which does not exist"
        super().__init__(f"{', '.join(missing)}: not in the environment, nor in {where}")


def required(mappings: Mapping[str, CompiledMapping]) -> dict[str, Form]:
    """Every credential the service needs, with the form a generated one takes."""
    out: dict[str, Form] = {API_KEY_SETTING: "token"}
    for m in mappings.values():
        cred = m.envelope.credential
        out[cred.setting] = cred.generate
    return dict(sorted(out.items()))


def _generate(form: Form) -> str:
    return str(uuid.uuid4()) if form == "uuid" else secrets.token_urlsafe(24)


def _has_form(value: str, form: Form) -> bool:
    if form == "token":
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _read(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    stored: dict[str, str] = json.loads(path.read_text("utf-8"))
    return stored


def _write(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(dict(values), f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_credentials(data_dir: Path, env: Mapping[str, str], settings: Mapping[str, Form]) -> Credentials:
    """What the service runs with: the environment, else the file, else generated (and
    kept). The file is rewritten when something was generated or overridden."""
    path = data_dir / FILE_NAME
    stored = _read(path)
    values: dict[str, str] = {}
    generated: set[str] = set()
    from_env: set[str] = set()
    overridden: set[str] = set()
    for name, form in settings.items():
        if env.get(name):
            values[name] = env[name]
            from_env.add(name)
            if name in stored and stored[name] != env[name]:
                overridden.add(name)
                stored[name] = env[name]
        elif name in stored:
            values[name] = stored[name]  # whatever its form: an id already in use keeps working
        else:
            values[name] = stored[name] = _generate(form)
            generated.add(name)
    if generated or overridden:
        _write(path, stored)
    return Credentials(
        values=values,
        generated=frozenset(generated),
        from_env=frozenset(from_env),
        overridden=frozenset(overridden),
        misshapen=frozenset(n for n, form in settings.items() if not _has_form(values[n], form)),
    )


def read_credentials(data_dir: Path, env: Mapping[str, str], settings: Mapping[str, Form]) -> Credentials:
    """What a running service uses, without generating or writing anything (for
    ``receiver credentials``). Raises ``MissingCredentials`` naming what is missing."""
    path = data_dir / FILE_NAME
    stored = _read(path)
    values: dict[str, str] = {}
    from_env: set[str] = set()
    missing = []
    for name in settings:
        if env.get(name):
            values[name] = env[name]
            from_env.add(name)
        elif name in stored:
            values[name] = stored[name]
        else:
            missing.append(name)
    if missing:
        raise MissingCredentials(missing, path)
    return Credentials(
        values=values,
        from_env=frozenset(from_env),
        misshapen=frozenset(n for n, form in settings.items() if not _has_form(values[n], form)),
    )


def matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented credential with the expected one."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
