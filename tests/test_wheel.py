"""A wheel built from the repository works on its own: it ships the revisions and fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from support import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0 and "No module named 'hatchling'" in proc.stderr:
        pytest.skip("hatchling is not installed in this environment (needed to build the wheel offline)")
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("kanban_migrate-*.whl")
    return whl


def test_wheel_contains_the_chain_and_the_fixtures(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "kanban_migrate/_alembic/env.py" in names
    assert "kanban_migrate/_alembic/script.py.mako" in names
    assert {f"kanban_migrate/_alembic/versions/{n}" for n in (
        "v0_base.py", "v4_attachments_drift.py", "v7_worker_fingerprints.py")} <= names
    assert "kanban_migrate/_fixtures/shapes.toml" in names
    entry = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry[0]).decode()
    assert "kanban-migrate = kanban_migrate.cli:main" in text and "pytest11" in text


def test_unpacked_wheel_runs_outside_the_repository(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site))
    code = ("import kanban_migrate, kanban_migrate.resources as r;"
            "print(kanban_migrate.__file__); print(r.alembic_dir()); print(r.fixtures_dir())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for line in out.stdout.splitlines():
        assert line.startswith(str(site)), line
    demo = subprocess.run([sys.executable, "-m", "kanban_migrate", "demo", "--dir", str(tmp_path / "d"), "--tasks", "30"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "applied v0 v1 v2 v3 v4 v5 v6 v7" in demo.stdout
