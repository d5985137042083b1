"""Shared fixtures: a real app on a real SQLite file, and a real server process."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings.from_env(make_env(data_dir))


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


@pytest.fixture
def db(settings: Settings) -> DB:
    assert settings.sqlite_path is not None
    return DB(settings.sqlite_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``receiver serve`` as a child process."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env if env is not None else make_env(data_dir))}
        self.proc: subprocess.Popen[str] | None = None
        self.output = ""

    def start(self) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
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
def server(data_dir: Path) -> Iterator[Server]:
    s = Server(data_dir).start()
    yield s
    s.stop()
