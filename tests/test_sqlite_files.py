"""SQLite's own files: readable by their owner only, and a WAL that stays bounded although
the writer never checkpoints (a checkpointer beside it does)."""

from __future__ import annotations

import os
import time

import pytest
from conftest import AUTH, DB
from starlette.testclient import TestClient

from receiver.store.sqlite import Checkpointer


@pytest.mark.sqlite_only
def test_store_files_are_owner_only(client: TestClient, db: DB) -> None:
    assert client.post("/hooks/croct", json={"type": "pageOpened"}, **AUTH["croct"]).status_code == 202
    for suffix in ("", "-wal", "-shm"):
        path = db.path.with_name(db.path.name + suffix)
        assert oct(os.stat(path).st_mode & 0o777) == "0o600", path.name


@pytest.mark.sqlite_only
def test_the_wal_stays_bounded_without_the_writer_checkpointing(client: TestClient, db: DB) -> None:
    pad = "x" * 200_000
    for i in range(60):  # 12 MB of bodies, and as much again in the events' extra
        r = client.post("/hooks/croct", json={"type": "pageOpened", "n": i, "pad": pad}, **AUTH["croct"])
        assert r.status_code == 202, r.text
        time.sleep(0.01)
    wal = db.path.with_name(db.path.name + "-wal").stat().st_size
    assert wal < 2.5 * Checkpointer.THRESHOLD_BYTES < db.path.stat().st_size, wal
