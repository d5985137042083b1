"""Shared fixtures: a real app on a real SQLite file, and a real server process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from starlette.testclient import TestClient

from receiver import Settings, create_app

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "RECEIVER_KARTRA_TOKEN": "kartra-secret-token",
    "RECEIVER_CONVEAD_APP_KEY": "convead-app-key",
    "RECEIVER_CROCT_APP_ID": "croct-app-id",
    "RECEIVER_AFFITOR_TOKEN": "affitor-token",
    "RECEIVER_API_KEY": "read-api-key",
}
#: Credentials as each source's client sends them.
AUTH: dict[str, dict[str, Any]] = {
    "kartra": {"params": {"token": SECRETS["RECEIVER_KARTRA_TOKEN"]}},
    "convead": {"headers": {"X-App-Key": SECRETS["RECEIVER_CONVEAD_APP_KEY"]}},
    "croct": {"headers": {"X-App-Id": SECRETS["RECEIVER_CROCT_APP_ID"]}},
    "affitor": {"headers": {"Authorization": f"Bearer {SECRETS['RECEIVER_AFFITOR_TOKEN']}"}},
}


def make_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {"RECEIVER_DATA_DIR": str(data_dir), **SECRETS, **extra}


PG_URL = os.environ.get("RECEIVER_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgres"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: the test is about SQLite's own files or locks")
    config.addinivalue_line("markers", "postgres_only: the test is about several processes on PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that touches the store runs on both backends, each on a clean schema."""
    if "backend" in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("sqlite_only"):
            metafunc.parametrize("backend", ["sqlite"])
        elif metafunc.definition.get_closest_marker("postgres_only"):
            metafunc.parametrize("backend", ["postgres"])
        else:
            metafunc.parametrize("backend", BACKENDS)


def _pg(sql: str, *args: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(PG_URL)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def database_url(backend: str) -> Iterator[str | None]:
    if backend == "sqlite":
        yield None
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{PG_URL}?schema={schema}"
    _pg(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    extra = {"RECEIVER_DATABASE_URL": database_url} if database_url else {}
    return make_env(data_dir, **extra)


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


class DB:
    """Read-only view of the SQLite file, to check what was really stored."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        conn = sqlite3.connect(self.path)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, args)]
        finally:
            conn.close()

    def execute(self, sql: str) -> None:
        """Run one statement and commit it (``rows`` does not commit on SQLite): e.g. to
        take a store back to an older schema."""
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            conn.execute(sql)

    def deliveries(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM deliveries ORDER BY id")

    def events(self, delivery_id: str | None = None) -> list[dict[str, Any]]:
        if delivery_id is None:
            rows = self.rows("SELECT data FROM events ORDER BY id")
        else:
            rows = self.rows("SELECT data FROM events WHERE delivery_id = ? ORDER BY id", delivery_id)
        return [msgspec.json.decode(r["data"]) for r in rows]

    def count(self, table: str) -> int:
        return int(self.rows(f"SELECT count(*) AS n FROM {table}")[0]["n"])

    @property
    def backend(self) -> str:
        return "sqlite"

    def files(self) -> dict[str, bytes]:
        """Every database file (the database, its WAL and its shared-memory index)."""
        out = {}
        for suffix in ("", "-wal", "-shm"):
            f = self.path.with_name(self.path.name + suffix)
            if f.exists():
                out[f.name] = f.read_bytes()
        return out

    def dump(self) -> bytes:
        """Every byte of the database files (WAL and shared memory included)."""
        return b"".join(self.files().values())


class PgDB(DB):
    """The same questions, asked of a PostgreSQL schema."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.schema = url.rsplit("schema=", 1)[1]

    def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        from receiver.store.postgres import pg

        async def run() -> list[dict[str, Any]]:
            conn = await asyncpg.connect(PG_URL, server_settings={"search_path": self.schema})
            try:
                return [dict(r) for r in await conn.fetch(pg(sql), *args)]
            finally:
                await conn.close()

        return asyncio.run(run())

    def execute(self, sql: str) -> None:
        self.rows(sql)  # each statement commits on its own

    @property
    def backend(self) -> str:
        return "postgres"

    def dump(self) -> bytes:
        """Every stored value of every table of the schema (PostgreSQL's files keep dead row
        versions until VACUUM: on this backend the guarantee is about what can be read)."""
        out = []
        tables = self.rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", self.schema
        )
        assert tables
        for t in tables:
            for row in self.rows(f'SELECT * FROM "{t["table_name"]}"'):
                for v in row.values():
                    out.append(v if isinstance(v, bytes) else str(v).encode())
        return b"\n".join(out)


@pytest.fixture
def db(settings: Settings) -> DB:
    if settings.sqlite_path is None:
        return PgDB(settings.database_url)
    return DB(settings.sqlite_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``receiver serve`` as a child process."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        cwd: Path = ROOT,
        args: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.command = command or [sys.executable, "-m", "receiver"]
        self.cwd = cwd
        self.args = args or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env if env is not None else make_env(data_dir))}
        self.proc: subprocess.Popen[str] | None = None
        self.output = ""

    def start(self) -> Server:
        self.proc = subprocess.Popen(
            [*self.command, "serve", "--port", str(self.port), *self.args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.cwd,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.stop()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.stop()}")

    def stop(self, kill: bool = False) -> str:
        if self.proc is not None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                out, _ = self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, _ = self.proc.communicate()
            self.output += out or ""
            self.proc = None
        return self.output


@pytest.fixture
def server(data_dir: Path, env: dict[str, str]) -> Iterator[Server]:
    s = Server(data_dir, env=env).start()
    yield s
    s.stop()
