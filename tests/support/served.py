"""Run `python -m automations.serve` as a real subprocess against a test Prefect server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from landing.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    return {
        "LANDING_ROOT": str(settings.root),
        "LANDING_STATE_DIR": str(settings.state_dir),
        "LANDING_DBT_PROJECT_DIR": str(settings.dbt_project_dir),
        "LANDING_BURST_WINDOW_SECONDS": str(settings.burst_window_seconds),
        "LANDING_RECONCILE_SECONDS": str(settings.reconcile_seconds),
    }


class Served:
    """The dbt build and staleness deployments, served by a real runner process with 1 s polling."""

    def __init__(self, settings: Settings, api_url: str, log: Path, args: tuple[str, ...] = ()):
        self.args = args
        self.settings = settings
        self.api_url = api_url
        self.log = log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Served":
        env = {
            **os.environ,
            **settings_env(self.settings),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_LOGGING_LEVEL": "INFO",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "automations.serve", *self.args],
            env=env,
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("serve exited: " + self.log.read_text()[-3000:])
            if asyncio.run(self._deployments_ready()):
                return self
            time.sleep(0.5)
        raise RuntimeError("deployments not registered in 90s: " + self.log.read_text()[-3000:])

    async def _deployments_ready(self) -> bool:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        async with get_client() as client:
            try:
                await client.read_deployment_by_name("dbt-build/dbt-build")
                await client.read_deployment_by_name("landing-stale/landing-stale")
                return True
            except ObjectNotFound:
                return False

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def builds(settings: Settings) -> list[dict]:
    path = settings.state_dir / "builds.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def warehouse_row(settings: Settings, sql: str, params: list | tuple = ()) -> tuple | None:
    """One row from the warehouse, read-only; None while it is not built yet or a build holds the writer's lock."""
    import duckdb

    if not settings.warehouse.exists():
        return None
    try:
        with duckdb.connect(str(settings.warehouse), read_only=True) as con:
            return con.execute(sql, list(params)).fetchone()
    except duckdb.Error:
        return None


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def flow_runs_of(deployment: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowFilter, FlowFilterName

    flow_name, dep_name = deployment.split("/")
    async with get_client() as client:
        return await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[dep_name])),
        )


def runs_of(deployment: str = "dbt-build/dbt-build"):
    return asyncio.run(flow_runs_of(deployment))


async def delete_managed_automations() -> None:
    """Remove what apply.py created, so later tests' events start no runs on a stopped runner."""
    from prefect.client.orchestration import get_client

    from automations.plan import MANAGED_TAG

    async with get_client() as client:
        for automation in await client.read_automations():
            if MANAGED_TAG in (automation.tags or []):
                await client.delete_automation(automation.id)
