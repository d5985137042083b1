"""The ``receiver`` command line as a subprocess: replay, export, credentials, help, and
refusing a store that is not there."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import AUTH, DB, ROOT, SECRETS, Server, make_env
from starlette.testclient import TestClient

from receiver import Settings, create_app
from receiver.cli import build_parser

RECEIVER = [sys.executable, "-m", "receiver"]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any RECEIVER_ setting, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}, **extra}


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **make_env(data_dir)}
    return subprocess.run(
        [*RECEIVER, *args],
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
    assert (
        "copied deliveries=2, events=2, leads=2, identities=2, messages=0, message_attempts=0,"
        " destination_state=0, delivery_keys=0, erasures=1"
    ) in out.stdout
    again = run(data_dir, "migrate-store", "--to", database_url)  # idempotent
    assert again.returncode == 0
    assert db.count("deliveries") == 2 and db.count("leads") == 2
    env = make_env(data_dir, RECEIVER_DATABASE_URL=database_url)
    with TestClient(create_app(Settings.from_env(env))) as client:
        leads = client.get("/v1/leads", params={"email": "p1@example.com"}, headers=key).json()["data"]
        assert len(leads) == 1 and leads[0]["sources"] == ["croct"] and leads[0]["event_count"] == 1
        record = client.get(f"/v1/erasures/{erased['id']}", headers=key).json()
        assert {**record, "caveat": ""} == {**erased, "caveat": ""}
        # Erasure works on the copy.
        assert client.delete(f"/v1/leads/{leads[0]['id']}", headers=key).json()["erased"]["deliveries"] == 1


# -- credentials --------------------------------------------------------------------------
def credentials_cmd(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RECEIVER, "credentials", *args],
        env=clean_env(RECEIVER_DATA_DIR=str(data_dir), **env),
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


def exported(data_dir: Path, **env: str) -> dict[str, str]:
    """What `eval "$(receiver credentials --env)"` puts in a shell."""
    script = 'eval "$("$@" credentials --env)" && env -0'  # the eval'd values, as the shell sees them
    out = subprocess.run(
        ["bash", "-c", script, "bash", *RECEIVER],
        env=clean_env(RECEIVER_DATA_DIR=str(data_dir), **env),
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    pairs = (item.split("=", 1) for item in out.stdout.split("\0") if item.startswith("RECEIVER_"))
    return {k: v for k, v in pairs if k != "RECEIVER_DATA_DIR"}


def test_credentials_commands_print_what_the_server_uses(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = Server(data_dir, env=clean_env(RECEIVER_DATA_DIR=str(data_dir))).start()
    try:
        stored = json.loads((data_dir / "credentials.json").read_text())
        # The Croct SDK validates its appId as a UUID: the generated one is one.
        assert str(uuid.UUID(stored["RECEIVER_CROCT_APP_ID"])) == stored["RECEIVER_CROCT_APP_ID"]
        shell = exported(data_dir)
        assert shell == stored and len(shell) == 5
        urls = credentials_cmd(data_dir, "--public-url", "https://hooks.example/")
        assert urls.returncode == 0, urls.stderr
        assert f"https://hooks.example/hooks/kartra?token={shell['RECEIVER_KARTRA_TOKEN']}" in urls.stdout
        assert f"(header x-app-id: {shell['RECEIVER_CROCT_APP_ID']})" in urls.stdout
        assert f"(Authorization: Bearer {shell['RECEIVER_API_KEY']})" in urls.stdout
        # What the commands print is what the running server accepts.
        r = httpx.post(
            f"{server.url}/hooks/croct",
            headers={"X-App-Id": shell["RECEIVER_CROCT_APP_ID"]},
            json={"type": "goalCompleted", "goalId": "newsletter"},
        )
        assert r.status_code == 202, r.text
        key = {"Authorization": f"Bearer {shell['RECEIVER_API_KEY']}"}
        assert httpx.get(f"{server.url}/v1/events", headers=key).json()["data"][0]["type"] == "goal.completed"
    finally:
        server.stop()
    # The environment wins over the data directory.
    assert exported(data_dir, RECEIVER_KARTRA_TOKEN="from-env")["RECEIVER_KARTRA_TOKEN"] == "from-env"


def test_an_environment_override_is_announced_and_the_file_follows_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = Server(data_dir, env=clean_env(RECEIVER_DATA_DIR=str(data_dir))).start()
    first.stop()
    old = json.loads((data_dir / "credentials.json").read_text())["RECEIVER_KARTRA_TOKEN"]
    env = clean_env(RECEIVER_DATA_DIR=str(data_dir), RECEIVER_KARTRA_TOKEN="kartra-from-env")
    second = Server(data_dir, env=env).start()
    try:
        assert httpx.post(f"{second.url}/hooks/kartra", params={"token": old}, json={}).status_code == 401
        r = httpx.post(
            f"{second.url}/hooks/kartra",
            params={"token": "kartra-from-env"},
            json={"lead": {"id": "1"}, "action": "kartra_page_visit"},
        )
        assert r.status_code == 202, r.text
    finally:
        out = second.stop()
    assert "Set in the environment: RECEIVER_KARTRA_TOKEN, replacing the value kept in the data" in out
    assert "kartra-from-env" not in out  # a secret from the environment is never printed
    # Not left stale: a shell without the service's environment gets the value in force.
    assert (
        json.loads((data_dir / "credentials.json").read_text())["RECEIVER_KARTRA_TOKEN"] == "kartra-from-env"
    )
    assert exported(data_dir)["RECEIVER_KARTRA_TOKEN"] == "kartra-from-env"
    assert oct((data_dir / "credentials.json").stat().st_mode & 0o777) == "0o600"


def test_a_croct_app_id_generated_before_uuids_keeps_working(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    legacy = "sH4-legacy_token_not_a_uuid"
    (data_dir / "credentials.json").write_text(json.dumps({"RECEIVER_CROCT_APP_ID": legacy}))
    server = Server(data_dir, env=clean_env(RECEIVER_DATA_DIR=str(data_dir))).start()
    try:
        r = httpx.post(
            f"{server.url}/hooks/croct",
            headers={"X-App-Id": legacy},
            json={"type": "goalCompleted", "goalId": "abc"},
        )
        assert r.status_code == 202, r.text
    finally:
        out = server.stop()
    assert json.loads((data_dir / "credentials.json").read_text())["RECEIVER_CROCT_APP_ID"] == legacy
    assert "RECEIVER_CROCT_APP_ID is not a UUID" in out


# -- a store that is not there ------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["export"],
        ["export", "leads", "--format", "csv"],
        ["replay", "--yes"],
        ["replay", "--status", "unmapped"],
        ["credentials", "--env"],
        ["migrate-store", "--to", "postgresql://127.0.0.1/x"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_maintenance_commands_refuse_a_store_that_does_not_exist(tmp_path: Path, args: list[str]) -> None:
    out = subprocess.run(
        [*RECEIVER, *args], env=clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and out.stdout == ""
    assert str(tmp_path / "data") in out.stderr and "RECEIVER_DATA_DIR" in out.stderr, out.stderr
    assert list(tmp_path.iterdir()) == []  # no empty store, no new secrets


@pytest.mark.postgres_only
def test_maintenance_commands_refuse_a_postgresql_schema_without_a_store(
    tmp_path: Path, database_url: str, db: DB
) -> None:
    env = clean_env(RECEIVER_DATA_DIR=str(tmp_path / "data"), RECEIVER_DATABASE_URL=database_url)
    schema = database_url.rsplit("schema=", 1)[1]
    for args in (["export"], ["replay", "--yes"]):
        out = subprocess.run(
            [*RECEIVER, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 2 and f"schema {schema}" in out.stderr, out.stderr
        assert "RECEIVER_DATABASE_URL" in out.stderr
    assert db.rows("SELECT 1 FROM information_schema.schemata WHERE schema_name = ?", schema) == []
    with TestClient(create_app(Settings.from_env({**env, **SECRETS}))) as client:
        client.post("/hooks/croct", json={"type": "goalCompleted", "goalId": "abc"}, **AUTH["croct"])
    out = subprocess.run(
        [*RECEIVER, "export"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and json.loads(out.stdout)["type"] == "goal.completed", out.stderr


# -- replay asks first --------------------------------------------------------------------
def replay_on_a_terminal(data_dir: Path, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`receiver replay` with a terminal on its standard input, typing ``answer``."""
    primary, secondary = pty.openpty()
    try:
        os.write(primary, answer.encode())
        return subprocess.run(
            [*RECEIVER, "replay", *args],
            env={**clean_env(), **make_env(data_dir)},
            stdin=secondary,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(primary)
        os.close(secondary)


def test_replay_of_every_status_asks_on_a_terminal(data_dir: Path) -> None:
    with TestClient(create_app(Settings.from_env(make_env(data_dir)))) as client:
        for i in range(2):
            client.post(
                "/hooks/croct", json={"type": "pageLoaded", "url": f"https://s.example/{i}"}, **AUTH["croct"]
            )
    no = replay_on_a_terminal(data_dir, "n\n")
    assert "Replay every stored delivery (2: accepted, unmapped and rejected alike)?" in no.stderr
    assert no.returncode == 1 and "nothing replayed" in no.stdout and "replayed 2" not in no.stdout
    yes = replay_on_a_terminal(data_dir, "y\n", "--source", "croct")
    assert "Replay every stored croct delivery" in yes.stderr
    assert yes.returncode == 0 and "replayed 2 deliveries: accepted=2" in yes.stdout
    skipped = replay_on_a_terminal(data_dir, "", "--yes")
    assert skipped.returncode == 0 and "Replay every" not in skipped.stderr
    assert "replayed 2 deliveries" in skipped.stdout
    by_status = replay_on_a_terminal(data_dir, "", "--status", "accepted")  # says what it touches
    assert by_status.returncode == 0 and "Replay every" not in by_status.stderr


# -- help ---------------------------------------------------------------------------------
def _commands(parser: object, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    found: dict[tuple[str, ...], object] = {prefix: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, (*prefix, name)))
    return found


def test_every_command_documents_its_options_and_their_defaults() -> None:
    import argparse

    commands = _commands(build_parser())
    top = subprocess.run([*RECEIVER, "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "``" not in top and ":class:" not in top
    for path in commands:
        if len(path) == 1:
            assert re.search(rf"^\s+{re.escape(path[0])}\b", top, re.M), f"{path[0]} missing from --help"
    for path, parser in commands.items():
        assert isinstance(parser, argparse.ArgumentParser)
        text = parser.format_help()  # what `receiver ... --help` prints (one subprocess above is enough)
        assert parser.description and "``" not in text
        for action in parser._actions:
            if isinstance(
                action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
            ):
                continue
            name = action.option_strings[0] if action.option_strings else action.dest
            assert action.help, f"receiver {' '.join(path)} {name}: no description"
            assert "default" in action.help or "required" in action.help, f"{path} {name}: no default"
            assert action.help.split("(")[0].split("%")[0].strip()[:30] in " ".join(text.split()), name
