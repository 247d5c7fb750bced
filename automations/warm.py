"""A warm runner: claims the build deployments' scheduled runs and executes them in this long-lived process."""

from __future__ import annotations

import logging
import signal
import threading
import time

from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow
from prefect.states import Pending
from prefect.types._datetime import now

log = logging.getLogger("landing.warm")


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
    with get_client(sync_client=True) as client:
        while not stop.is_set():
            try:
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
    """The next due scheduled run of these deployments, claimed with a Pending state; None when there is none.

    Asked the way Prefect's own runners ask (`/deployments/get_scheduled_flow_runs`), which also marks the deployments
    polled: the UI, `landing explain` and `landing status` then show them ready (served), as with `prefect serve`.
    """
    runs = client.get_scheduled_flow_runs_for_deployments(deployment_ids, scheduled_before=now("UTC"), limit=1)
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
