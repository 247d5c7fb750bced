"""The stack as `make up` runs it, for a test module: the served dbt deployment, apply.py's automations and
`python -m sensors`, on the session's Prefect server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from automations.apply import apply
from landing.settings import REPO_ROOT, Settings
from testkit.local import Served, delete_managed_automations, wait_for


@contextmanager
def served_stack(base: Path, api_url: str, burst_window_seconds: int):
    """(settings, env) of a running stack under `base`; the automations are deleted when it stops."""
    settings = Settings(
        root=base / "landing",
        state_dir=base / "state",
        dbt_project_dir=REPO_ROOT / "dbt",
        burst_window_seconds=burst_window_seconds,
        reconcile_seconds=0,
        settle_seconds=1.0,
    )
    env = {**os.environ, **settings.to_env(), "PREFECT_API_URL": api_url, "LANDING_SETTLE_SECONDS": "1"}
    log = base / "sensor.log"
    with Served(settings, api_url, base / "serve.log"):
        asyncio.run(apply(settings, out=lambda *_: None))
        sensor = subprocess.Popen(
            [sys.executable, "-m", "sensors"], env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT
        )
        try:
            wait_for(lambda: b"watching" in log.read_bytes(), 60, "the sensor to start")
            yield settings, env
        finally:
            sensor.send_signal(signal.SIGTERM)
            sensor.wait(30)
            asyncio.run(delete_managed_automations())
