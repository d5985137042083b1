"""What ships: the Dockerfile passes hadolint; the wheel carries the migrations."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    out = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_runs_as_non_root_with_a_data_volume_and_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text and 'VOLUME ["/data"]' in text and "HEALTHCHECK" in text
    assert "RECEIVER_MAPPINGS_DIR=/app/mappings" in text


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
