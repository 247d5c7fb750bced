"""`landing up` (the console entry point) as a new user runs it, then demo, explain and status against it, then Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from landing.settings import REPO_ROOT
from testkit.local import free_port
from testkit.local import wait_for


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
    up = subprocess.Popen(
        [LANDING, "up"],
        env=env,
        cwd=REPO_ROOT,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    cli_env = {**env, "PREFECT_API_URL": api}

    def cli(*args, timeout=240):
        return subprocess.run(
            [LANDING, *args], env=cli_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
        )

    try:
        wait_for(
            lambda: b"Ctrl-C stops everything" in log.read_bytes() or up.poll() is not None, 240, "the stack to come up"
        )
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
        # the runs up to the one that loaded the file (a demo's build may carry several datasets), that one marked
        loading = re.search(
            r"run\s+dbt-build \S*dummyjson\.products\S*( \(all sources\))? Completed in [\d.]+s, built.*\n"
            r"(  (dbt|rows) .*\n)*  loaded  this run loaded the file",
            explained.stdout,
        )
        assert loading, explained.stdout
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

        _sensor_killed_comes_back_and_loses_nothing(tmp_path / "state", tmp_path / "landing", cli, up)

        # last, as starting another stack on the same server pauses the deployments when it stops
        _up_again_on_changed_projects(env, project, api, tmp_path)
        _drop_sample(tmp_path / "landing", "users", "during-stop", lines=7)
        wait_for(lambda: _runs_in(api, "RUNNING"), 60, "a build to be running", interval=0.2)
    finally:
        up.send_signal(signal.SIGINT)  # Ctrl-C, during that build
        try:
            code = up.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "stopped" in text and "leaked" not in text, text[-3000:]
    with sqlite3.connect(tmp_path / "prefect" / "prefect.db") as db:  # the server is down: its database says
        states = dict(db.execute("select state_type, count(*) from flow_run group by state_type").fetchall())
    assert not {"RUNNING", "CRASHED", "PENDING"} & set(states), states
    time.sleep(1)
    try:
        httpx.get(f"{api}/health", timeout=2)
        raise AssertionError("the Prefect server is still up after Ctrl-C")
    except httpx.HTTPError:
        pass


def _components(state) -> dict[str, int]:
    """The pids `up` has written for its components; {} once it has stopped."""
    try:
        return json.loads((state / "up.components.json").read_text())
    except FileNotFoundError:
        return {}


def _drop_sample(landing, table: str, name: str, lines: int):
    """A new file (its own bytes) for dummyjson.<table>, written elsewhere and moved in, as people deliver files."""
    text = "".join((REPO_ROOT / "samples" / "dummyjson" / f"{table}.jsonl").read_text().splitlines(True)[:lines])
    elsewhere = landing.parent / f"{name}.jsonl"
    elsewhere.write_text(text)
    target = landing / "dummyjson" / table / f"{name}.jsonl"
    elsewhere.replace(target)
    return target


def _runs_in(api: str, state: str) -> list:
    body = {"flow_runs": {"state": {"type": {"any_": [state]}}}, "deployments": {"name": {"any_": ["dbt-build"]}}}
    return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()


def _sensor_killed_comes_back_and_loses_nothing(state, landing, cli, up) -> None:
    """kill -9 the sensor: `up` restarts it within 10 s, and a file dropped while it was down is announced."""
    before = _components(state)["sensor"]
    os.kill(before, signal.SIGKILL)
    killed = time.monotonic()
    dropped = _drop_sample(landing, "users", "while-the-sensor-was-down", lines=5)
    wait_for(lambda: _components(state)["sensor"] != before, 10, "the sensor to be restarted", interval=0.2)
    assert time.monotonic() - killed < 10
    explained = wait_for(
        lambda: (
            (r := cli("explain", str(dropped), timeout=60)).returncode == 0 and "ledger    announced" in r.stdout and r
        ),
        60,
        "the file dropped meanwhile to be announced",
    )
    assert "dataset   dummyjson.users" in explained.stdout, explained.stdout
    assert up.poll() is None, "the stack stays up"


def _crash_the_sensor_until_up_gives_up(state, proc, log) -> None:
    """A sensor that keeps crashing: `up` restarts it, then stops everything and exits 1, naming it."""
    for _ in range(10):
        pid = _components(state).get("sensor")
        if proc.poll() is not None or pid is None:
            break
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_for(
            lambda pid=pid: proc.poll() is not None or _components(state).get("sensor") != pid,
            30,
            "a restart",
            interval=0.2,
        )
    assert proc.wait(60) == 1, log.read_text()[-3000:]
    text = log.read_text()
    assert re.search(r"sensor exited with -9 and has crashed \d times within 60 s; stopping everything", text), text[
        -3000:
    ]
    assert "restarting it in 1 s" in text and "restarting it in 2 s" in text


def _up_again_on_changed_projects(env: dict, project, api: str, tmp_path, times: int = 2) -> None:
    """`up` started again and again, each time on a changed project (a cold catalog cache) and on a server that
    answers: every start comes up. The first stops cleanly on Ctrl-C; the last one's sensor keeps crashing, so it
    gives up with exit 1. Their own state folders: one `up` per state folder."""
    for i in range(times):
        _change(project, f"{tmp_path.name} start {i}")
        log = tmp_path / f"up-again-{i}.log"
        again_env = {
            **env,
            "PREFECT_API_URL": api,
            "LANDING_STATE_DIR": str(tmp_path / f"state-again-{i}"),
            "LANDING_ROOT": str(tmp_path / f"landing-again-{i}"),
        }
        proc = subprocess.Popen(
            [LANDING, "up"],
            env=again_env,
            cwd=REPO_ROOT,
            stdout=open(log, "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            try:
                wait_for(
                    lambda log=log, proc=proc: (
                        b"Ctrl-C stops everything" in log.read_bytes() or proc.poll() is not None
                    ),
                    240,
                    f"start {i} on a changed project",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {log.read_text()[-4000:]}") from None
            assert proc.poll() is None, log.read_text()[-3000:]
            assert f"using the Prefect server at {api}" in log.read_text()
            if i == times - 1:
                _crash_the_sensor_until_up_gives_up(tmp_path / f"state-again-{i}", proc, log)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
        assert code == (1 if i == times - 1 else 0), log.read_text()[-3000:]
