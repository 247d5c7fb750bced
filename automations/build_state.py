"""Build state: what each dataset last built from (watermarks), the one-writer lock, and releasing the warehouse."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from automations._upstream import close_warehouse, interrupt_dbt, release_warehouse  # noqa: F401  (re-exported)
from landing import lake
from landing.catalog import Dataset
from landing.settings import Settings

log = logging.getLogger("landing.build_state")

EMPTY_SIGNATURE = "no files"
ONE = "one:"  # watermark of a build of the dataset's own models
ALL = "all:"  # watermark of a build that also ran the models needing all their sources


def dataset_signature(ds: Dataset, parts: list[str] = ()) -> str:
    """A digest of the names of the dataset's accepted files and compacted parts: it changes when a file lands. Names
    only (no stat per file): an accepted file is loaded once under its name (automations/load.py), so a name is what a
    build reads."""
    names = [*ds.data_names(), *parts]
    return hashlib.sha256("\n".join(names).encode()).hexdigest() if names else EMPTY_SIGNATURE


class Watermarks:
    """What each kind of build last built successfully, per dataset, in the state folder."""

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> dict[str, str]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def write(self, marks: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(marks, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


STOP_GRACE_SECONDS = 60.0  # a build in progress when its runner is asked to stop may finish for this long


class CancelSwitch:
    """A cancel for the build running in this process, which dbt (which has no cancel call) must obey.

    While dbt runs, a cancel interrupts its DuckDB queries, as dbt does on Ctrl-C, until dbt returns; the build
    then ends itself as cancelled. Outside dbt the runner stops the run through Prefect (see automations.warm).
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.in_dbt = threading.Event()

    def request(self) -> bool:
        """Ask the build to stop; True when dbt is running and is being interrupted."""
        self.requested.set()
        if not self.in_dbt.is_set():
            return False
        threading.Thread(target=self._interrupt_until_dbt_returns, name="dbt-interrupt", daemon=True).start()
        return True

    def reset(self) -> None:
        self.requested.clear()

    def _interrupt_until_dbt_returns(self) -> None:
        # dbt goes on to the next node after an interrupted one: interrupt each until it gives up
        while self.in_dbt.is_set():
            interrupt_dbt()
            time.sleep(0.2)


CANCEL = CancelSwitch()


def writer_limit_name(settings: Settings) -> str:
    """The Prefect global concurrency limit that admits one dbt build at a time to this warehouse, from any machine:
    a digest of which catalog the lake is (`lake.key`: a PostgreSQL catalog's host, port and database)."""
    digest = hashlib.sha256(lake.key(settings).encode()).hexdigest()[:8]  # machines sharing a lake share it
    return f"warehouse-lake-{digest}"


_limits_made: set[str] = set()
WRITER_LEASE_SECONDS = 60.0  # the shortest lease Prefect accepts


def _ensure_writer_limit(name: str) -> None:
    """The limit `name` with one slot, made once if it does not exist (by whichever runner gets there first)."""
    if name in _limits_made:
        return
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass
    _limits_made.add(name)


@contextmanager
def one_writer(settings: Settings, timeout: float = 3600):
    """The only dbt writer on the warehouse while inside: a slot of its Prefect global concurrency limit (guards it
    across machines, through the server), then the file lock beside it (the same machine, with no server)."""
    with _writer_slot(writer_limit_name(settings), timeout):
        with warehouse_lock(settings, timeout):
            yield


@contextmanager
def _writer_slot(name: str, timeout: float):
    """One slot of the limit `name` (made if missing), its lease renewed in the background, released on exit.

    Prefect's `concurrency()` does the same with a service thread and an immediate first renewal: 0.16 s a build on
    the embedded SQLite server; this, a client and two calls (acquire, release), about 0.06 s."""
    import httpx
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            _ensure_writer_limit(name)
            try:
                granted = client.increment_concurrency_slots_with_lease(
                    names=[name], slots=1, mode="concurrency", lease_duration=WRITER_LEASE_SECONDS
                ).json()
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 423:  # 423 Locked: another build holds the warehouse
                    raise
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"another dbt build has held the warehouse's concurrency limit {name} for {timeout:.0f} s"
                    )
                time.sleep(min(float(exc.response.headers.get("Retry-After", 1)), 2.0))
                continue
            if granted["limits"]:
                break
            _limits_made.discard(name)  # deleted since this process made it: make it again rather than run unguarded
            client.release_concurrency_slots_with_lease(granted["lease_id"])
        lease_id, done = granted["lease_id"], threading.Event()
        renewer = threading.Thread(target=_renew_lease, args=(lease_id, done), name="warehouse-slot-lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            try:
                client.release_concurrency_slots_with_lease(lease_id)
            except Exception as exc:  # the server is away: the lease expires by itself
                log.warning(
                    "could not release the warehouse's slot of %s (%s); it frees itself within %.0f s",
                    name,
                    exc,
                    WRITER_LEASE_SECONDS,
                )


def _renew_lease(lease_id: str, done: threading.Event) -> None:
    from prefect.client.orchestration import get_client

    if done.wait(WRITER_LEASE_SECONDS / 3):
        return  # most builds end before their first renewal: no client made for them
    with get_client(sync_client=True) as client:
        while True:
            try:
                client.renew_concurrency_lease(lease_id, lease_duration=WRITER_LEASE_SECONDS)
            except Exception as exc:  # a server restart: try again next time, the lease has time left
                log.warning("could not renew the warehouse's slot lease %s (%s)", lease_id, exc)
            if done.wait(WRITER_LEASE_SECONDS / 3):
                return


@contextmanager
def warehouse_lock(settings: Settings, timeout: float = 3600):
    """An exclusive lock beside the DuckDB file: never two dbt writers on one warehouse, across processes."""
    lock_path = settings.build_warehouse.with_name(settings.build_warehouse.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another dbt build has held {lock_path} for {timeout}s")
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_signature(ds: Dataset, settings: Settings, fingerprint: str) -> str:
    """What a build of the dataset's models reads: its accepted files (and compacted parts), and the dbt project's
    code (`fingerprint`, the catalog's: read once per build). A new file, a changed model or source, or a new model
    downstream changes it."""
    from automations.compact import part_names

    files = dataset_signature(ds, part_names(settings, ds))
    return files if files == EMPTY_SIGNATURE else f"{files}|project {fingerprint[:16]}"


def up_to_date(settings: Settings, datasets: list[str]) -> bool:
    """Whether each dataset's models were last built from what is there now (no new file, the same project): a
    trailing run with nothing to do. False when unsure (an unknown dataset, a catalog that cannot be read)."""
    from landing.catalog import load_catalog

    try:
        catalog = load_catalog(settings)
        marks = Watermarks(settings.state_dir / "watermarks.json").read()
        return bool(datasets) and all(
            marks.get(ONE + n) == build_signature(catalog.get(n), settings, catalog.fingerprint) for n in datasets
        )
    except Exception:
        return False
