"""`landing up` (the console entry point) as a new user runs it, then demo, explain and status against it, then Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from landing.settings import REPO_ROOT
from ops.local import free_port
from ops.local import wait_for


LANDING = str(Path(sys.executable).with_name("landing"))  # the console script `uv sync` installs


def _change(project, mark: str) -> None:
    """Change the project's sources: the catalog cache is cold, and `up` starts four processes that all load it."""
    with open(project / "models" / "staging" / "dummyjson" / "__sources.yml", "a") as fh:
        fh.write(f"\n# changed: {mark}\n")


@pytest.mark.timeout(600)  # three starts of the whole stack, a demo and the CLI: about 4.5 minutes
def test_up_demo_explain_status_and_clean_stop(tmp_path):
    project = tmp_path / "dbt"
    shutil.copytree(REPO_ROOT / "dbt", project, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    _change(project, tmp_path.name)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LANDING_"))}
    env.update(
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_UI_ENABLED="false",
        LANDING_ROOT=str(tmp_path / "landing"),
        LANDING_STATE_DIR=str(tmp_path / "state"),
        LANDING_DBT_PROJECT_DIR=str(project),
        LANDING_BURST_WINDOW_SECONDS="2",
    )
    log = tmp_path / "up.log"
    up = subprocess.Popen([LANDING, "up"], env=env, cwd=REPO_ROOT,
                          stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    cli_env = {**env, "PREFECT_API_URL": api}

    def cli(*args, timeout=240):
        return subprocess.run([LANDING, *args], env=cli_env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout)

    try:
        wait_for(lambda: b"Ctrl-C stops everything" in log.read_bytes() or up.poll() is not None, 240, "the stack to come up")
        text = log.read_text()
        assert up.poll() is None, text[-3000:]
        assert f"Prefect UI:      http://127.0.0.1:{port}" in text
        assert re.search(rf"dummyjson.products +{tmp_path}/landing/dummyjson/products/\*\.json\*", text)
        assert re.search(r"cp samples/dummyjson/\w+\.jsonl ", text)

        again = subprocess.run([LANDING, "up"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and "already running" in again.stdout

        demo = cli("demo", "--timeout", "200")
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert re.search(r"cart_lines_enriched\s+\d+", demo.stdout) and "not built" not in demo.stdout
        assert re.search(r"stage_dummyjson__products\s+194", demo.stdout)
        products_file = re.search(r"dummyjson\.products\s+→ (\S+)", demo.stdout).group(1)

        explained = cli("explain", products_file, timeout=60)
        assert explained.returncode == 0, explained.stdout + explained.stderr
        assert "ledger    announced" in explained.stdout
        assert "automation landing: build dummyjson.products" in explained.stdout
        assert re.search(r"run\s+dbt-build dummyjson.products Completed in [\d.]+s, built", explained.stdout)
        built = re.search(r"dbt\s+\d+ node\(s\) built: (.*); tests passed (\d+)/(\d+)", explained.stdout)
        assert built and "model stage_dummyjson__products" in built[1], explained.stdout
        assert int(built[3]) > 0 and built[2] == built[3], "dbt's data tests ran for the build, and passed"
        assert "not served" not in explained.stdout  # the warm runner polls the way Prefect's runners do
        deployment = httpx.get(f"{api}/deployments/name/dbt-build/dbt-build", timeout=10).json()
        assert deployment["status"] == "READY", deployment.get("status")

        unknown = cli("explain", str(tmp_path / "landing" / "nowhere" / "x.jsonl"), timeout=60)
        assert unknown.returncode == 1 and "dataset   unknown" in unknown.stdout

        status = cli("status", timeout=60)
        assert status.returncode == 0 and re.search(r"dummyjson.users\s+\S+\.jsonl", status.stdout), status.stdout

        # last, as starting another stack on the same server pauses the deployments when it stops
        _up_again_on_changed_projects(env, project, api, tmp_path)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            code = up.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise
    assert code == 0
    assert "stopped" in log.read_text()
    time.sleep(1)
    try:
        httpx.get(f"{api}/health", timeout=2)
        raise AssertionError("the Prefect server is still up after Ctrl-C")
    except httpx.HTTPError:
        pass


def _up_again_on_changed_projects(env: dict, project, api: str, tmp_path, times: int = 2) -> None:
    """`up` started again and again, each time on a changed project (a cold catalog cache) and on a server that
    answers: every start comes up and stops cleanly. Their own state folders: one `up` per state folder."""
    for i in range(times):
        _change(project, f"{tmp_path.name} start {i}")
        log = tmp_path / f"up-again-{i}.log"
        again_env = {**env, "PREFECT_API_URL": api, "LANDING_STATE_DIR": str(tmp_path / f"state-again-{i}"),
                     "LANDING_ROOT": str(tmp_path / f"landing-again-{i}")}
        proc = subprocess.Popen([LANDING, "up"], env=again_env, cwd=REPO_ROOT,
                                stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        try:
            try:
                wait_for(lambda: b"Ctrl-C stops everything" in log.read_bytes() or proc.poll() is not None, 240,
                         f"start {i} on a changed project")
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {log.read_text()[-4000:]}") from None
            assert proc.poll() is None, log.read_text()[-3000:]
            assert f"using the Prefect server at {api}" in log.read_text()
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0, log.read_text()[-3000:]
