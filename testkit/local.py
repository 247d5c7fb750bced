"""Start the pieces of the stack one by one on loopback (a Prefect server, the build runner) and read back what they
did: for the tests, the benchmarks, and anyone scripting a local stack."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

import automations.serve as build_runner
from automations import buildlog
from automations.names import BUILD, MANAGED_TAG, RECONCILE, STALE
from landing.settings import Settings, environment
from landing import lake
from ops import prefect_server


def stop_process(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def using_server(api_url: str, auth: str | None = None) -> Iterator[None]:
    """Point this process, its threads and its children at the Prefect server at `api_url` (with the basic-auth
    `user:password` `auth`, for the scale-out stack), then back.

    Prefect's settings context covers the calling thread only. A thread started outside it falls back to the global
    settings, read once at import: without an API URL there, Prefect starts a throwaway server of its own, which
    outlives this process and holds its stdout open (a parent reading it never sees the end)."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    env = {"PREFECT_API_URL": api_url, **({"PREFECT_API_AUTH_STRING": auth} if auth else {})}
    updates = {PREFECT_API_URL: api_url, **({PREFECT_API_AUTH_STRING: auth} if auth else {})}
    try:
        with environment(env):
            refresh_global_settings_context()
            with temporary_settings(updates=updates):
                yield
    finally:
        refresh_global_settings_context()


def dbt_environment(settings: Settings):
    """This process's environment as dbt reads it for `settings`, then back: for a build run in-process on settings
    other than the process's own (a benchmark, a test). Processes that serve builds get it at start instead."""
    return environment(settings.dbt_env())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrefectServer:
    """A Prefect server on SQLite in `home`; stop() and start() again keep its database."""

    def __init__(self, home: Path, port: int | None = None, ui: bool = False):
        self.home = Path(home)
        self.ui = ui
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.proc: subprocess.Popen | None = None
        self.log = self.home / "server.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_ENABLED="true" if self.ui else "false",
            PREFECT_UI_API_URL=self.api_url,
            PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{self.home}/prefect.db",
            PREFECT_LOGGING_SERVER_LEVEL="WARNING",
        )
        return env

    def start(self, timeout: float = 90) -> "PrefectServer":
        self.home.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                prefect_server.__name__,
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env(),
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"prefect server not healthy after {timeout}s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        stop_process(self.proc, 20)
        self.proc = None


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
            **self.settings.to_env(),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_LOGGING_LEVEL": "INFO",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", build_runner.__name__, *self.args],
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
                await client.read_deployment_by_name(BUILD)
                await client.read_deployment_by_name(STALE)
                await client.read_deployment_by_name(RECONCILE)
                return True
            except ObjectNotFound:
                return False

    def __exit__(self, *exc) -> None:
        stop_process(self.proc, 30)


def builds(settings: Settings) -> list[dict]:
    """The build log as dicts (tests compare fields by name)."""
    return [record.as_dict() for record in buildlog.read(settings.builds_log)]


def warehouse_row(settings: Settings, sql: str, params: list | tuple = ()) -> tuple | None:
    """One row from the warehouse, read-only; None while it is not built yet or a build holds the writer's lock."""
    import duckdb

    if not lake.exists(settings):
        return None
    try:
        with lake.connect(settings) as con:
            return con.execute(sql, list(params)).fetchone()
    except (duckdb.Error, lake.NoLake):
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


def runs_of(deployment: str = BUILD):
    return asyncio.run(flow_runs_of(deployment))


async def delete_managed_automations() -> None:
    """Remove what apply.py created, so later tests' events start no runs on a stopped runner."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        for automation in await client.read_automations():
            if MANAGED_TAG in (automation.tags or []):
                await client.delete_automation(automation.id)


def read_events(
    event_name: str, since, resource_prefix: str = "landing.", timeout: float = 15.0, expect: int | None = None
):
    """Events named `event_name` since `since`, read back from the server through the Prefect client."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    async def fetch():
        async with get_client() as client:
            page = await client.read_events(
                filter=EventFilter(
                    event=EventNameFilter(name=[event_name]),
                    occurred=EventOccurredFilter(since=since),
                    resource=EventResourceFilter(id_prefix=[resource_prefix]),
                ),
                limit=50,
            )
            events = list(page.events)
            next_page = page.next_page
            while next_page:
                page = await client.read_events_page(next_page)
                events.extend(page.events)
                next_page = page.next_page
            return events

    def unique():
        # paging while events still arrive can shift a page boundary and return one event twice
        return list({e.id: e for e in asyncio.run(fetch())}.values())

    deadline = time.monotonic() + timeout
    events = unique()
    while (expect is None or len(events) < expect) and time.monotonic() < deadline:
        time.sleep(1.0)
        events = unique()
        if expect is None:
            break
    return events


class ScaleOutStack:
    """`landing up` on Prefect's distributed setup, as a user starts it: a PostgreSQL and a Redis of its own on
    loopback, the API processes and the services apart, two dbt runners, the export worker and the sensor.

    Everything lives in `base` (a folder the `postgres` user can reach when this runs as root). `settings` are the
    ones the stack's processes get; `env` is what a client of the stack needs (API URL and credentials)."""

    def __init__(self, base: Path, settings: Settings, extra_env: dict[str, str] | None = None):
        from ops import scaleout

        self.base = Path(base)
        self.postgres = scaleout.LocalPostgres(self.base / "postgres")
        self.redis = scaleout.LocalRedis(self.base / "redis")
        self.s3 = scaleout.LocalS3(self.base / "s3")  # the lake's data path, as machines share it
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.auth = "landing:" + os.urandom(9).hex()
        self.settings = settings
        self.extra_env = extra_env or {}
        self.log = self.base / "up.log"
        self.proc: subprocess.Popen | None = None

    def up_env(self) -> dict[str, str]:
        """The environment `landing up` starts with: the settings, the URLs, and nothing of this process's Prefect."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LANDING_"))}
        env.update(self.settings.to_env())
        env.update(
            LANDING_PREFECT_DATABASE_URL=self.postgres.url,
            LANDING_REDIS_URL=self.redis.url,
            LANDING_API_AUTH=self.auth,
            PREFECT_SERVER_API_PORT=str(self.port),
            PREFECT_HOME=str(self.base / "prefect-home"),
            PREFECT_SERVER_UI_ENABLED="false",
            PREFECT_LOGGING_SERVER_LEVEL="WARNING",
            **self.extra_env,
        )
        return env

    @property
    def env(self) -> dict[str, str]:
        """What a client of this stack sets: its API URL and credentials."""
        return {"PREFECT_API_URL": self.api_url, "PREFECT_API_AUTH_STRING": self.auth}

    def start(self, timeout: float = 240) -> "ScaleOutStack":
        self.base.mkdir(parents=True, exist_ok=True)
        self.postgres.start()
        self.redis.start()
        self.s3.start()
        # the lake as machines share it: its catalog in PostgreSQL, its data in the S3-compatible server
        lake = {"lake_catalog": self.postgres.lake_catalog(), **self.s3.lake_settings()}
        self.settings = self.settings.model_copy(update=lake)
        import ops.__main__ as operator_command

        self.proc = subprocess.Popen(
            [sys.executable, "-m", operator_command.__name__, "up"],
            env=self.up_env(),
            cwd=Path(__file__).parents[1],
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while b"Ctrl-C stops everything" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the scale-out stack did not come up: {self.log.read_text()[-4000:]}")
            time.sleep(0.5)
        return self

    def components(self) -> dict[str, int]:
        """Each component's name and pid, as `landing up` writes them."""
        import json

        return json.loads((self.settings.state_dir / "up.components.json").read_text())

    def stop(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        try:
            self.redis.stop()
        finally:
            try:
                self.s3.stop()
            finally:
                self.postgres.stop()
