"""``/readyz`` tells whether a write would succeed right now (README, Operations), and never
hangs: a full disk, a read-only store and a lock held elsewhere all answer 503 with
Retry-After within about a second, and readiness returns when the store does."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from conftest import AUTH, PG_URL, make_env
from starlette.testclient import TestClient

from receiver import Settings, create_app
from receiver.app import service_of

VISIT = {"lead": {"id": "1", "email": "ana@example.com"}, "action": "kartra_page_visit"}


def deliver(client: TestClient, n: int) -> Any:
    body = {**VISIT, "action_details": {"kartra_page": {"kartra_page_id": str(n)}}}
    return client.post("/hooks/kartra", json=body, **AUTH["kartra"])


def not_ready(client: TestClient) -> None:
    started = time.monotonic()
    r = client.get("/readyz")
    assert time.monotonic() - started < 2, "readiness must never hang"
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] and r.headers["content-type"].startswith("application/problem+json")


def ready_again(client: TestClient, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "readiness did not come back"
        time.sleep(0.05)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs the test can fill."""
    where = tmp_path / "small"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (to fill a file system for real)")
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(where)]
    done = subprocess.run(mount, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(fs: Path) -> Path:
    """Use every byte left."""
    filler = fs / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return filler


@pytest.mark.sqlite_only
def test_disk_full_makes_readyz_503_and_space_makes_it_ready(small_fs: Path, backend: str) -> None:
    settings = Settings.from_env(make_env(small_fs / "data"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/readyz").status_code == 200
        assert deliver(client, 1).status_code == 202
        filler = fill(small_fs)
        time.sleep(0.6)  # past the moment a success stands for
        not_ready(client)
        r = deliver(client, 2)
        assert r.status_code == 503 and r.headers["retry-after"]
        filler.unlink()
        ready_again(client)
        assert deliver(client, 3).status_code == 202


@pytest.mark.sqlite_only
def test_read_only_store_makes_readyz_503(data_dir: Path, backend: str) -> None:
    """A file system cannot be remounted read-only while the database is open for writing
    (the kernel answers "busy"), so the store is made read-only at the SQLite layer:
    ``PRAGMA query_only`` makes SQLite refuse writes as a read-only file would."""
    settings = Settings.from_env(make_env(data_dir))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        store: Any = service_of(client.app).store
        assert client.get("/readyz").status_code == 200

        def read_only(on: bool) -> None:
            async def run() -> None:
                await store._run(store._writer().execute, f"PRAGMA query_only={int(on)}")

            client.portal.call(run)  # type: ignore[union-attr]

        read_only(True)
        time.sleep(0.6)
        not_ready(client)
        assert deliver(client, 1).status_code == 503
        read_only(False)
        ready_again(client)
        assert deliver(client, 2).status_code == 202


def test_readyz_never_hangs_when_another_process_holds_the_store(
    client: TestClient, settings: Settings, backend: str
) -> None:
    """A writer elsewhere holds the lock longer than the store's own timeouts (SQLite's
    busy timeout is 5 s by default): readiness answers 503 in about a second, then comes
    back once the lock is gone."""
    assert client.get("/readyz").status_code == 200
    time.sleep(0.6)
    if backend == "sqlite":
        assert settings.sqlite_path is not None
        blocker = sqlite3.connect(settings.sqlite_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            not_ready(client)
            not_ready(client)  # a second probe meanwhile shares the first, still waiting
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    else:
        schema = settings.database_url.rsplit("schema=", 1)[1]

        async def hold(release: asyncio.Event, held: asyncio.Event) -> None:
            conn = await asyncpg.connect(PG_URL, server_settings={"search_path": schema})
            try:
                async with conn.transaction():
                    await conn.execute("LOCK TABLE readiness IN ACCESS EXCLUSIVE MODE")
                    held.set()
                    await release.wait()
            finally:
                await conn.close()

        async def scenario() -> None:
            release, held = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(hold(release, held))
            await held.wait()
            try:
                await asyncio.to_thread(not_ready, client)
            finally:
                release.set()
                await task

        asyncio.run(scenario())
    ready_again(client)
