"""A warm runner: claims the build deployments' scheduled runs and executes them in this long-lived process."""

from __future__ import annotations

import logging
import signal
import threading
import time

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterExpectedStartTime, FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.flow_engine import run_flow
from prefect.states import Pending
from prefect.types._datetime import now

log = logging.getLogger("landing.warm")

MARK_READY_SECONDS = 5.0  # Prefect counts a deployment served when polled within the last 60 s


def run_warm(deployments: list, flows_by_name: dict, poll_seconds: float = 0.2, stop: threading.Event | None = None) -> None:
    """Register `deployments`, then run their due flow runs one at a time, in-process, with the flows given.

    Prefect's runner starts a new Python process per flow run, which costs seconds of imports (dbt alone
    takes about 3 s) on every build. Here dbt is imported once and each run only pays for its own work.
    Runs stay ordinary flow runs: created by automations, claimed with a Pending state, tracked in the UI.
    """
    stop = stop or threading.Event()
    flows = {}
    for d in deployments:
        flows[d.apply()] = flows_by_name[d.flow_name]  # apply() registers the deployment and returns its id
    import dbt.cli.main  # noqa: F401  the import every build would otherwise pay for
    import prefect_dbt  # noqa: F401

    log.info("warm runner: %d deployment(s), polling every %ss", len(flows), poll_seconds)
    unreachable_since: float | None = None
    marked = 0.0
    with get_client(sync_client=True) as client:
        while not stop.is_set():
            try:
                # Prefect's runners' own poll (which marks the deployments ready: served, in the UI and in `explain`)
                # every few seconds; the fast poll in between is a plain read, which writes nothing to the database
                if time.monotonic() - marked >= MARK_READY_SECONDS:
                    client.get_scheduled_flow_runs_for_deployments(list(flows), scheduled_before=now("UTC"), limit=1)
                    marked = time.monotonic()
                run = _claim_next(client, list(flows))
            except Exception as exc:  # the server is down or restarting: keep the warm process, retry
                if unreachable_since is None:
                    unreachable_since = time.monotonic()
                    log.warning("warm runner: the Prefect server is unreachable (%s); retrying every 2 s", exc)
                stop.wait(2.0)
                continue
            if unreachable_since is not None:
                log.info("warm runner: the server is back after %.0f s", time.monotonic() - unreachable_since)
                unreachable_since = None
            if run is None:
                stop.wait(poll_seconds)
                continue
            try:
                run_flow(flows[run.deployment_id], flow_run=run, return_type="state")
            except Exception:
                log.exception("flow run %s crashed in the warm runner", run.id)


def _claim_next(client, deployment_ids: list):
    """The oldest due scheduled run of these deployments, claimed with a Pending state; None when there is none."""
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
            expected_start_time=FlowRunFilterExpectedStartTime(before_=now("UTC")),
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        limit=1,
    )
    if not runs:
        return None
    claimed = client.set_flow_run_state(runs[0].id, Pending())
    if claimed.status.value != "ACCEPT":
        return None  # another runner took it
    return client.read_flow_run(runs[0].id)


def main_warm(deployments: list, flows_by_name: dict, poll_seconds: float) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)  # Prefect's logging setup leaves the root at WARNING
    run_warm(deployments, flows_by_name, poll_seconds, stop)
