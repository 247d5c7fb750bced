"""A warm runner: claims the build deployments' scheduled runs and executes them in this long-lived process."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
import time
from datetime import datetime, timezone
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import TerminationSignal
from prefect.flow_engine import run_flow
from prefect.states import Pending

from automations._upstream import clear_cancel_intent, find_dbt_plugins_once, set_cancel_intent, share_tls_contexts
from automations.build_state import CANCEL, STOP_GRACE_SECONDS

log = logging.getLogger("landing.warm")

MARK_READY_SECONDS = 5.0  # Prefect counts a deployment served when polled within the last 60 s
SCHEDULED = "prefect.flow-run.Scheduled"


class Waker:
    """Wakes the runner the moment the server announces a run of its deployments (`prefect.flow-run.Scheduled` on
    the server's event stream), so a run starts as it is created instead of at the next poll. The poll stays, as
    the fallback while the stream is down, and for runs scheduled later (a trailing run)."""

    def __init__(self, deployment_ids: list, stop: threading.Event):
        self.wanted = {f"prefect.deployment.{d}" for d in deployment_ids}
        self.stop = stop
        self.event = threading.Event()

    def start(self) -> "Waker":
        threading.Thread(
            target=lambda: (self.stop.wait(), self.event.set()), name="warm-runner-stop", daemon=True
        ).start()
        threading.Thread(target=lambda: asyncio.run(self._listen()), name="warm-runner-waker", daemon=True).start()
        return self

    def wait(self, timeout: float) -> None:
        self.event.wait(max(0.0, timeout))
        self.event.clear()

    async def _listen(self) -> None:
        from prefect.events.clients import get_events_subscriber
        from prefect.events.filters import EventFilter, EventNameFilter

        quiet = False
        while not self.stop.is_set():
            try:
                async with get_events_subscriber(
                    filter=EventFilter(event=EventNameFilter(name=[SCHEDULED])), reconnection_attempts=0
                ) as events:
                    log.info("warm runner: following the server's events%s", " again" if quiet else "")
                    quiet = False
                    async for event in events:
                        if any(r.id in self.wanted for r in event.related):
                            self.event.set()
            except Exception as exc:  # the server is restarting: poll meanwhile, and subscribe again
                if not quiet:
                    log.info("warm runner: not following the server's events (%s); polling until they are back", exc)
                quiet = True
            await asyncio.sleep(2.0)


class RunControl:
    """Cancel the flow run this process executes, as Prefect's runner cancels the process it started.

    The run executes on the main thread, inside Prefect's SIGTERM bridge. Committing the "cancel" intent and then
    sending SIGTERM is what the runner's control channel does: the engine ends the run Cancelled (not Crashed).
    While dbt runs, a signal would leave its queries running in dbt's threads, so the build's CancelSwitch
    interrupts them instead and the build ends itself the same way. A watcher thread cancels when the run turns
    Cancelling (the UI's Cancel button) and when a stop has waited `stop_grace` seconds for the run to finish.
    """

    def __init__(self, stop: threading.Event, stop_grace: float = STOP_GRACE_SECONDS, check_seconds: float = 1.0):
        self.stop, self.stop_grace, self.check_seconds = stop, stop_grace, check_seconds
        self.run_id: UUID | None = None
        self.cancelling = False
        self.on_signal = None  # the runner's own SIGINT/SIGTERM handler
        self._lock = threading.Lock()
        self._stop_seen: float | None = None
        self._cancelled_at = 0.0
        self._terminated = False

    def begin(self, run_id: UUID) -> None:
        with self._lock:
            self.run_id, self.cancelling = run_id, False

    def end(self) -> None:
        # a cancel's SIGTERM that arrived as the run ended has been handled by now: handlers run on this thread
        with self._lock:
            self.run_id, self.cancelling, self._terminated = None, False, False
            clear_cancel_intent()
            CANCEL.reset()
        # after a cancel Prefect leaves its SIGTERM bridge installed (it expects the process to end): take it back
        if self.on_signal is not None and signal.getsignal(signal.SIGTERM) is not self.on_signal:
            signal.signal(signal.SIGTERM, self.on_signal)

    def cancel(self, why: str) -> None:
        with self._lock:
            if self.run_id is None or self.cancelling:
                return
            log.info("warm runner: cancelling flow run %s (%s)", self.run_id, why)
            self.cancelling, self._cancelled_at = True, time.monotonic()
            set_cancel_intent()
            if not CANCEL.request():
                self._terminate()

    def _terminate(self) -> None:
        self._terminated = True
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)

    def watch(self) -> None:
        """Until stopped and idle: cancel the current run when it turns Cancelling or outlives the stop grace."""
        with get_client(sync_client=True) as client:
            while True:
                time.sleep(self.check_seconds)
                run_id = self.run_id
                if self.stop.is_set():
                    self._stop_seen = self._stop_seen or time.monotonic()
                    if run_id is None:
                        return
                    if time.monotonic() - self._stop_seen > self.stop_grace:
                        self.cancel(f"stopping, and the run did not finish within {self.stop_grace:.0f} s")
                if run_id is None:
                    continue
                with self._lock:  # dbt returned from the interrupts but the run goes on: stop it through Prefect
                    if (
                        self.cancelling
                        and not self._terminated
                        and self.run_id is not None
                        and not CANCEL.in_dbt.is_set()
                        and time.monotonic() - self._cancelled_at > 2
                    ):
                        self._terminate()
                try:
                    state = client.read_flow_run(run_id).state
                except Exception:  # the server is restarting: look again next time
                    continue
                if state is not None and state.type == StateType.CANCELLING:
                    self.cancel("a cancel was requested")


def run_warm(
    deployments: list,
    flows_by_name: dict,
    poll_seconds: float = 2.0,
    stop: threading.Event | None = None,
    control: RunControl | None = None,
    needless=None,
) -> None:
    """Register `deployments`, then run their due flow runs one at a time, in-process, with the flows given. A claimed
    run for which `needless(run)` gives a reason is deleted unstarted (a trailing build with nothing new to build).

    Prefect's runner starts a new Python process per flow run, which costs seconds of imports (dbt alone
    takes about 3 s) on every build. Here dbt is imported once and each run only pays for its own work.
    Runs stay ordinary flow runs: created by automations, claimed with a Pending state, tracked in the UI.
    """
    stop = stop or threading.Event()
    control = control or RunControl(stop)
    share_tls_contexts()
    flows = {}
    for d in deployments:
        flows[d.apply()] = flows_by_name[d.flow_name]  # apply() registers the deployment and returns its id
    import dbt.cli.main  # noqa: F401  the import every build would otherwise pay for
    import prefect_dbt  # noqa: F401

    find_dbt_plugins_once()
    collect_garbage()

    log.info("warm runner: %d deployment(s), woken by the server's events, polling every %ss", len(flows), poll_seconds)
    unreachable_since: float | None = None
    marked = 0.0
    ran = False
    threading.Thread(target=control.watch, name="warm-runner-control", daemon=True).start()
    waker = Waker(list(flows), stop).start()
    # Prefect's flow engine sends each run's heartbeats (PREFECT_FLOWS_HEARTBEAT_FREQUENCY), here as in its runners
    with get_client(sync_client=True) as client:
        while not stop.is_set():
            try:
                # Prefect's runners' own poll (which marks the deployments ready: served, in the UI and in `explain`)
                # every few seconds; the fast poll in between is a plain read, which writes nothing to the database
                if time.monotonic() - marked >= MARK_READY_SECONDS:
                    client.get_scheduled_flow_runs_for_deployments(
                        list(flows), scheduled_before=datetime.now(timezone.utc), limit=1
                    )
                    marked = time.monotonic()
                run, due_in = _claim_next(client, list(flows), needless)
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
                if ran:
                    collect_garbage()  # while idle, so no build pays for it
                    ran = False
                waker.wait(min(poll_seconds, due_in))
                continue
            control.begin(run.id)
            ran = True
            try:
                run_flow(flows[run.deployment_id], flow_run=run, return_type="state")
            except TerminationSignal:
                if not control.cancelling:  # a SIGTERM from outside: Prefect has marked the run Crashed
                    log.warning("warm runner: terminated during flow run %s; stopping", run.id)
                    stop.set()
            except Exception:
                log.exception("flow run %s crashed in the warm runner", run.id)
            finally:
                control.end()


def collect_garbage() -> None:
    """A full garbage collection now, and everything alive after it left out of later ones (`gc.freeze`).

    The process holds dbt's parsed project, Prefect's client and dbt-duckdb's instance: a few hundred thousand
    objects. Python's oldest-generation collection walks them all, 0.1 to 0.16 s, and it came in the middle of about
    one build in four (in a profile of 14). Frozen, they are skipped until the next call, which the runner makes when idle after a build:
    it thaws them first, so garbage among them is still collected, one build late."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _claim_next(client, deployment_ids: list, needless=None):
    """The oldest due scheduled run of these deployments, claimed with a Pending state, or None; and the seconds
    until the next scheduled run is due (infinite when there is none). A claimed run that `needless` finds a reason
    for is deleted (claimed first: never a run another runner has started)."""
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        limit=1,
    )
    if not runs:
        return None, float("inf")
    due_in = (
        (runs[0].expected_start_time - datetime.now(timezone.utc)).total_seconds()
        if runs[0].expected_start_time
        else 0.0
    )
    if due_in > 0:
        return None, due_in
    claimed = client.set_flow_run_state(runs[0].id, Pending())
    if claimed.status.value != "ACCEPT":
        return None, 0.0  # another runner took it: look again at once
    why = needless(runs[0]) if needless else None
    if why:
        try:
            client.delete_flow_run(runs[0].id)
        except Exception as exc:  # claimed by this runner: it runs (a no-op) rather than staying Pending
            log.warning("warm runner: could not delete the flow run %s (%s); running it instead", runs[0].id, exc)
        else:
            log.info("warm runner: deleted the flow run %s (%s) unstarted: %s", runs[0].name, runs[0].id, why)
            return None, 0.0
    return client.read_flow_run(runs[0].id), 0.0


def main_warm(
    deployments: list,
    flows_by_name: dict,
    poll_seconds: float,
    stop_grace: float = STOP_GRACE_SECONDS,
    needless=None,
) -> None:
    """Run until SIGINT or SIGTERM; a build in progress then finishes (or is cancelled after `stop_grace` s)."""
    stop = threading.Event()
    control = RunControl(stop, stop_grace)

    def on_signal(signum, _frame):
        if signum == signal.SIGTERM and control.cancelling:
            return  # our own cancel's SIGTERM, arriving after the run ended
        if not stop.is_set() and control.run_id is not None:
            log.info(
                "warm runner: stopping after flow run %s finishes (at most %.0f s, then it is cancelled)",
                control.run_id,
                stop_grace,
            )
        stop.set()

    control.on_signal = on_signal
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)  # Prefect's logging setup leaves the root at WARNING
    run_warm(deployments, flows_by_name, poll_seconds, stop, control, needless)
