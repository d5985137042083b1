"""The repository explains itself: the reference under docs/ is linked from the README,
its generated page matches the mapping files, and nothing points outside the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SKIP_DIRS = {".git", ".venv", "node_modules", "build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache"}


def test_the_committed_type_table_is_what_the_mapping_files_generate(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    out = subprocess.run(
        [sys.executable, "-m", "receiver", "mappings", "types"],
        env={**env, "RECEIVER_DATA_DIR": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    committed = (ROOT / "docs" / "types.md").read_text()
    assert committed == out.stdout, "docs/types.md is stale: run `receiver mappings types > docs/types.md`"
    for row in (
        "| `order.placed` |",
        "`buy_product`",
        "`purchase`",
        "`orderPlaced`",
        "| `lead.test` | `test`",
    ):
        assert row in committed


def _text_files() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder) / name
            if path.suffix in {
                ".py",
                ".md",
                ".yaml",
                ".yml",
                ".sql",
                ".toml",
                ".mjs",
                ".json",
                ".in",
                ".cfg",
            } or (name in {"Dockerfile", "test", "serve", "run"}):
                found.append(path)
    return found


def test_nothing_points_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|/work/shared|CONTRACT\.md|CONTRACT section")
    offenders = [
        str(p.relative_to(ROOT))
        for p in _text_files()
        if p.name != "test_docs.py" and outside.search(p.read_text())
    ]
    assert offenders == []


def test_readme_and_docs_link_to_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in ("docs/README.md", "docs/webhooks.md", "docs/events.md", "docs/types.md", "docs/read-api.md"):
        assert f"({page}" in readme, f"README does not link {page}"
    for doc in [ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links to missing {target}"
