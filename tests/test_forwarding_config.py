"""The destinations file: every bad value stops the start with a message naming the key;
``receiver destinations check`` shows the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_env
from sink import SECRET

from receiver.forward import ForwardConfigError, load_destinations

GOOD = """destinations:
  - name: crm
    url: https://crm.example.com/hooks/receiver
    secret_env: CRM_SECRET
    format: cloudevents
    sources: [kartra, croct]
    types: [lead.captured, "order.*"]
    max_age: 24h
    timeout: 10s
"""
ENV = {"CRM_SECRET": SECRET}
SOURCES = ["affitor", "convead", "croct", "kartra"]


def test_a_good_file_gives_ready_destinations(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(GOOD)
    (d,) = load_destinations(path, ENV, SOURCES)
    assert (d.name, d.format, d.max_age, d.timeout, d.allow_private) == (
        "crm",
        "cloudevents",
        86400,
        10,
        False,
    )
    assert d.matches("kartra", "order.refunded") and d.matches("croct", "lead.captured")
    assert not d.matches("convead", "order.placed") and not d.matches("kartra", "page.viewed")
    assert (d.retry_first, d.retry_max, d.concurrency) == (5, 3600, 8)


@pytest.mark.parametrize(
    ("change", "key", "says"),
    [
        (
            ("https://crm.example.com/hooks/receiver", "ftp://crm.example.com/x"),
            "destinations[0].url",
            "http",
        ),
        (("https://crm.example.com/hooks/receiver", "http://10.0.0.5/x"), "destinations[0].url", "private"),
        (("CRM_SECRET", "MISSING_SECRET"), "destinations[0].secret_env", "MISSING_SECRET is not set"),
        (("format: cloudevents", "format: xml"), "destinations[0].format", "xml"),
        (("max_age: 24h", "max_age: 24 hours"), "destinations[0].max_age", ""),
        (("timeout: 10s", "timeout: 0s"), "destinations[0].timeout", "more than zero"),
        (("[kartra, croct]", "[kartra, mailchimp]"), "destinations[0].sources[1]", "unknown source"),
        (('"order.*"', '"ordr.*"'), "destinations[0].types[1]", "matches no canonical type"),
        (("timeout: 10s", "timeout: 10s\n    colour: red"), "destinations[0]", "colour"),
        (("  - name: crm\n", "  - nom: crm\n"), "destinations[0]", "unknown field `nom`"),
        (("name: crm", "name: CRM!"), "destinations[0].name", ""),
    ],
)
def test_a_bad_value_is_reported_with_its_key(
    tmp_path: Path, change: tuple[str, str], key: str, says: str
) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ForwardConfigError) as e:
        load_destinations(path, ENV, SOURCES)
    assert f"{path}: {key}" in str(e.value) and says in str(e.value)


def test_bad_secrets_and_twice_the_same_name(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(GOOD)
    for bad in ("whsec_not base64!", "whsec_c2hvcnQ="):
        with pytest.raises(
            ForwardConfigError, match=r"destinations\[0\]\.secret_env: the value of CRM_SECRET"
        ):
            load_destinations(path, {"CRM_SECRET": bad}, SOURCES)
    path.write_text(GOOD + GOOD.split("\n", 1)[1])
    with pytest.raises(ForwardConfigError, match=r"destinations\[1\]\.name: 'crm' is used twice"):
        load_destinations(path, ENV, SOURCES)


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        env={**os.environ, **make_env(tmp_path / "data"), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_destinations_check_and_a_start_that_refuses_a_bad_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    out = run(tmp_path, "destinations", "check", str(good), CRM_SECRET=SECRET)
    assert out.returncode == 0, out.stderr
    assert "ok  crm" in out.stdout and "https://crm.example.com/hooks/receiver" in out.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("max_age: 24h", "max_age: forever"))
    out = run(tmp_path, "destinations", "check", CRM_SECRET=SECRET, RECEIVER_DESTINATIONS_FILE=str(bad))
    assert out.returncode == 1 and "destinations[0].max_age" in out.stderr
    out = run(tmp_path, "serve", "--port", "0", CRM_SECRET=SECRET, RECEIVER_DESTINATIONS_FILE=str(bad))
    assert out.returncode == 2
    assert "destinations[0].max_age" in out.stderr
    out = run(tmp_path, "serve", "--port", "0", RECEIVER_DESTINATIONS_FILE=str(good))  # no secret
    assert out.returncode == 2 and "destinations[0].secret_env: CRM_SECRET is not set" in out.stderr
