"""The ``receiver`` command line: replay and export against a real data directory."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AUTH, DB, ROOT, SECRETS, make_env
from starlette.testclient import TestClient

from receiver import Settings, create_app


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **make_env(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_replay_and_export_commands(data_dir: Path) -> None:
    with TestClient(create_app(Settings.from_env(make_env(data_dir)))) as client:
        for i in range(5):
            r = client.post(
                "/hooks/croct", json={"type": "pageLoaded", "url": f"https://s.example/{i}"}, **AUTH["croct"]
            )
            assert r.status_code == 202
        client.post("/hooks/kartra", json={"action": "not_a_kartra_action"}, **AUTH["kartra"])
    out = run(data_dir, "replay", "--source", "croct", "--progress")
    assert out.returncode == 0, out.stderr
    assert "replayed 5 deliveries: accepted=5" in out.stdout
    out = run(data_dir, "replay", "--status", "unmapped")
    assert "replayed 1 deliveries: unmapped=1" in out.stdout
    nd = run(data_dir, "export", "--format", "ndjson")
    lines = nd.stdout.splitlines()
    assert len(lines) == 5 and all(json.loads(x)["source"] == "croct" for x in lines)
    c = run(data_dir, "export", "events", "--format", "csv")
    assert len(list(csv.DictReader(io.StringIO(c.stdout)))) == 5


def test_mappings_check_reports_file_key_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "source: x\n"
        "version: 1\n"
        "envelope: {credential: {setting: A, locations: [bearer]}}\n"
        "type_from: [/t]\n"
        "types: {a: {type: page.viewed, fields: {properties.n: {from: [/n], transforms: [numbr]}}}}\n"
    )
    out = run(tmp_path, "mappings", "check", str(tmp_path))
    assert out.returncode == 1
    assert "bad.yaml" in out.stderr and "types.a.fields.properties.n" in out.stderr
    assert "unknown transform 'numbr'" in out.stderr


@pytest.mark.postgres_only
def test_migrate_store_copies_sqlite_into_postgres(data_dir: Path, database_url: str, db: DB) -> None:
    with TestClient(create_app(Settings.from_env(make_env(data_dir)))) as client:
        for i in range(3):
            r = client.post(
                "/hooks/croct",
                json={"type": "leadGenerated", "lead": {"email": f"p{i}@example.com"}},
                **AUTH["croct"],
            )
            assert r.status_code == 202
        key = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
        gone = client.get("/v1/leads", params={"email": "p0@example.com"}, headers=key).json()["data"][0]
        erased = client.delete(f"/v1/leads/{gone['id']}", headers=key).json()
    out = run(data_dir, "migrate-store", "--to", database_url)
    assert out.returncode == 0, out.stderr
    assert "copied deliveries=2, events=2, leads=2, identities=2, delivery_keys=2, erasures=1" in out.stdout
    again = run(data_dir, "migrate-store", "--to", database_url)  # idempotent
    assert again.returncode == 0
    assert db.count("deliveries") == 2 and db.count("leads") == 2
    env = make_env(data_dir, RECEIVER_DATABASE_URL=database_url)
    with TestClient(create_app(Settings.from_env(env))) as client:
        leads = client.get("/v1/leads", params={"email": "p1@example.com"}, headers=key).json()["data"]
        assert len(leads) == 1 and leads[0]["sources"] == ["croct"]
        record = client.get(f"/v1/erasures/{erased['id']}", headers=key).json()
        assert {**record, "caveat": ""} == {**erased, "caveat": ""}
        # Erasure works on the copy.
        assert client.delete(f"/v1/leads/{leads[0]['id']}", headers=key).json()["erased"]["deliveries"] == 1
