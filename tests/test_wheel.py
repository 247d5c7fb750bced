"""The product installs outside the checkout: its wheel, in a fresh virtual environment elsewhere, answers `landing
--help` and `landing status` for a copy of the dbt project in another folder (LANDING_DBT_PROJECT_DIR)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

from landing.settings import REPO_ROOT


def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    built = subprocess.run(
        ["uv", "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("*.whl"))
    packages = {name.split("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"landing", "flows", "sensors", "automations", "ops"} <= packages
    assert not packages & {"testkit", "tests", "benchmarks"}, packages  # the harness stays out of the product

    venv = tmp_path / "venv"
    subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    # the same versions as the checkout's (uv.lock), from uv's cache
    pins = subprocess.run(
        ["uv", "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "--project", str(REPO_ROOT)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    (tmp_path / "pins.txt").write_text(pins)
    installed = subprocess.run(
        [
            "uv",
            "pip",
            "install",
            "-q",
            "--python",
            str(venv / "bin" / "python"),
            str(wheel),
            "-c",
            str(tmp_path / "pins.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    project = tmp_path / "elsewhere" / "project"
    shutil.copytree(REPO_ROOT / "dbt", project, ignore=shutil.ignore_patterns("target", "logs"))
    work = tmp_path / "elsewhere" / "work"
    work.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANDING_DBT_PROJECT_DIR": str(project),
        "LANDING_ROOT": str(tmp_path / "landing"),
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    landing = str(venv / "bin" / "landing")
    helped = subprocess.run([landing, "--help"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "usage: landing" in helped.stdout, helped.stderr[-2000:]
    status = subprocess.run([landing, "status"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert status.returncode == 0, status.stdout[-2000:] + status.stderr[-3000:]
    assert "dummyjson.products" in status.stdout and "runs pending unknown" in status.stdout, status.stdout
    assert f"{work}/.state/lake.sqlite" in status.stdout  # the default state folder: where the command started
    assert str(REPO_ROOT) not in status.stdout  # nothing read from the checkout
    assert os.path.isdir(project / "target")  # the catalog was parsed from the copy
