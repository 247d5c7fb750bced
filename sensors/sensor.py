"""The watchdog sensor: announce complete files dropped into the landing folders, once each, durably."""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.polling import PollingObserver

from landing.catalog import Catalog, load_catalog
from landing.contract import QUARANTINE_DIR as QUARANTINE
from landing.ledger import Ledger, ledger_path
from landing.reader import connect
from landing.settings import Settings
from sensors._upstream import inotify_observer
from sensors.deciding import Decider
from sensors.judging import VALIDATORS, Judge, merged, split
from sensors.outbox import Outbox
from sensors.screening import Batch, SayOnce, Screener, is_temp_name

log = logging.getLogger("landing.sensor")

HOLD_SENDS_ABOVE = 1000  # a catch-up of more files than this decides them all before sending their events


class _Handler(FileSystemEventHandler):
    def __init__(self, sensor: "Sensor"):
        self.sensor = sensor

    def dispatch(self, event: FileSystemEvent) -> None:
        # the sensor's own moves into the accepted area and the quarantine: nothing to decide
        path = os.fsdecode(event.dest_path or event.src_path)
        if not path.startswith(self.sensor._own_prefixes):
            super().dispatch(event)

    def on_closed(self, event: FileSystemEvent) -> None:  # close-after-write (inotify)
        if not event.is_directory:
            self.sensor.closed(os.fsdecode(event.src_path))

    def on_attrib(self, event: FileSystemEvent) -> None:  # chmod, utime, xattr (inotify)
        if not event.is_directory:
            self.sensor.changed(os.fsdecode(event.src_path))

    def on_moved(self, event: FileSystemEvent) -> None:
        # renamed into place, within the folder or from anywhere else on the disk (inotify's unpaired IN_MOVED_TO,
        # reported as a move from ""): a rename is atomic, so the file is complete the moment it appears
        if not event.is_directory and event.dest_path:
            self.sensor.submit(os.fsdecode(event.dest_path), complete=not self.sensor.polling)

    def on_created(self, event: FileSystemEvent) -> None:
        # With inotify a writer's close follows; a file moved in from outside the tree only shows up as created.
        if not event.is_directory:
            self.sensor.submit(os.fsdecode(event.src_path), complete=False)

    def on_modified(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if self.sensor.polling:
            self.sensor.submit(os.fsdecode(event.src_path), complete=False)
        else:  # a write (inotify): a file closed and written again is not quiet
            self.sensor.changed(os.fsdecode(event.src_path))


class Sensor:
    """Watches `settings.root`; each complete data file becomes one `landing.file.created` event.

    Composed of four parts with explicit inputs and outputs: the Screener (paths → a Batch: decisions, candidates,
    work left), the Judge (candidates → verdicts), the Decider (a Batch and its verdicts → decisions, carried out) and
    the Outbox (the ledger's events → the server). The sensor owns the threads, the observer and the waits."""

    def __init__(
        self,
        settings: Settings | None = None,
        polling: bool = False,
        poll_interval: float = 0.5,
        catalog: Catalog | None = None,
    ):
        settings = settings or Settings()
        self.root = Path(os.path.realpath(settings.root))
        self.settings = settings.model_copy(
            update={"root": self.root, "accepted_root": Path(os.path.realpath(settings.accepted))}
        )
        self.catalog: Catalog = catalog or load_catalog(self.settings)
        self.polling = polling
        self.poll_interval = poll_interval
        self.accepted = self.settings.accepted
        self._accepted_prefix = str(self.accepted) + os.sep
        self._quarantine_prefix = str(self.root / QUARANTINE) + os.sep
        self._own_prefixes = (self._accepted_prefix, self._quarantine_prefix)
        self._root_prefix = str(self.root) + os.sep
        self.ledger = Ledger(ledger_path(self.settings.state_dir))
        self.say = SayOnce()
        self.screener = Screener(
            self.catalog, self.ledger, self._root_prefix, self._own_prefixes, self.settings.max_file_bytes, self.say
        )
        self.judge = Judge()
        self.outbox = Outbox(self.ledger, self.say)
        self.decider = Decider(
            self.root, self.ledger, self._accepted_prefix, self._root_prefix, announce=self.outbox.wake.set
        )
        self._queue: queue.Queue[tuple[str, bool]] = queue.Queue()
        self._candidates: dict[str, tuple[int, int, float]] = {}
        self._stop = threading.Event()
        self._catching_up = False
        self._catch_up_due = (
            threading.Event()
        )  # the worker scans the drop folders when set (on start, then periodically)
        self._threads: list[threading.Thread] = []
        self._observer = None
        self._quiet: dict[str, float] = {}  # closed files → when they are quiet enough to decide (monotonic)
        self._quiet_lock = threading.Lock()
        self._quiet_wake = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, watch: bool = True) -> "Sensor":
        """Catch up on the drop folders, then (`watch`) decide each file as it arrives; without `watch`, only the
        catch-up (`--once`): no observer thread competes with it for the interpreter."""
        self.root.mkdir(parents=True, exist_ok=True)
        for ds in self.catalog.datasets.values():
            ds.path.mkdir(parents=True, exist_ok=True)
            ds.accepted_path.mkdir(parents=True, exist_ok=True)
        if watch:
            self._observer = PollingObserver(timeout=self.poll_interval) if self.polling else inotify_observer()
            handler = _Handler(self)
            # one watch per drop folder, not the whole root: the accepted area and the quarantine (which grow with
            # every file) are never watched or polled, and the sensor's own moves out of a drop folder cost one event each
            for folder in sorted({ds.path for ds in self.catalog.datasets.values()}):
                self._observer.schedule(handler, str(folder), recursive=False)
            self._observer.start()
        # DuckDB's import (about 0.3 s) overlaps the start-up scan instead of delaying the first validation
        threading.Thread(target=connect, name="sensor-duckdb-import", daemon=True).start()
        self._catch_up_due.set()
        for target, name in (
            (self._work, "sensor-worker"),
            (lambda: self.outbox.run(self._stop), "sensor-outbox"),
            (self._quiet_loop, "sensor-quiet"),
        ):
            # threads start with an empty context: carry over Prefect's settings context (PREFECT_API_URL)
            ctx = contextvars.copy_context()
            t = threading.Thread(target=ctx.run, args=(target,), name=name, daemon=True)
            t.start()
            self._threads.append(t)
        if watch:
            log.info(
                "watching %s (%s) for %s",
                self.root,
                "polling" if self.polling else "inotify",
                ", ".join(sorted(self.catalog.datasets)),
            )
        else:
            log.info("catching up once on %s for %s", self.root, ", ".join(sorted(self.catalog.datasets)))
        return self

    def stop(self, flush_timeout: float | None = 10.0) -> int:
        """Stop watching, finish queued files, try to flush the outbox (for up to `flush_timeout` s, or as long as
        the server takes them with None); return how many events still wait."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
        self._submit_quiet(everything=True)
        self._queue.join()
        self._stop.set()
        self.outbox.wake.set()
        self._quiet_wake.set()
        for t in self._threads:
            t.join(30)  # the worker finishes the chunk it is deciding
        deadline = time.monotonic() + (flush_timeout if flush_timeout is not None else float("inf"))
        while self.ledger.pending_count() and time.monotonic() < deadline:
            if not self.outbox.flush_once(force=True):
                break
        left = self.ledger.pending_count()
        if left:
            log.warning("%d event(s) wait in the ledger %s; they are sent on the next start", left, self.ledger.path)
        self.ledger.close()
        self.judge.close()
        return left

    def catch_up(self) -> int:
        """Decide every data file in the drop folders that the ledger does not know as it is now, oldest arrival first
        (the inode change time: a rename or copy into the folder sets it), so landing order follows arrival. The scan
        goes through the ledger's temporary backlog table and is decided 500 files at a time: memory stays the same
        however many files wait. Runs on the worker thread (start() asks it to)."""
        started = time.monotonic()
        backlog = self.ledger.backlog(self._scan())
        # A large backlog is decided first and sent after: the server reads about 1,000 events/s, and where it shares
        # the machine, sending meanwhile halves the decision rate. The events wait in the ledger, as in an outage.
        self.outbox.hold = backlog.total > HOLD_SENDS_ABOVE
        try:
            self._decide_backlog(backlog)
        finally:
            self.outbox.hold = False
            self.outbox.wake.set()
        if backlog.total:
            log.info(
                "caught up: %d file(s) not in the ledger decided in %.2f s", backlog.total, time.monotonic() - started
            )
        return backlog.total

    def _decide_backlog(self, backlog) -> None:
        # a pipeline: two DuckDB threads validate one chunk (the reads release the GIL) while Python screens the next
        with ThreadPoolExecutor(VALIDATORS, thread_name_prefix="sensor-validate") as validators:
            flight: tuple[Batch, list] | None = None
            for chunk in backlog.chunks(500):
                if self._stop.is_set():
                    break  # stopping: what is left is found by the next start's scan
                try:
                    for path, settled in chunk:
                        if not settled:
                            self._watch_candidate(path)
                    batch = self.screener.screen_many(
                        [path for path, settled in chunk if settled], inflight=flight[0] if flight else None
                    )
                    next_flight = (
                        batch,
                        [validators.submit(self.judge.judge, part) for part in split(batch.todo, VALIDATORS)],
                    )
                    if flight is not None:
                        self._finish(flight[0], merged(flight[1]))
                    flight = next_flight
                except Exception:
                    flight = None
                    log.exception(
                        "unexpected error deciding up to %d file(s); they are left in place and retried on "
                        "the next scan",
                        2 * len(chunk),
                    )
            if flight is not None:
                try:
                    self._finish(flight[0], merged(flight[1]))
                except Exception:
                    log.exception(
                        "unexpected error deciding up to 500 file(s); they are left in place and retried on the next scan"
                    )

    def _scan(self):
        """`(ctime_ns, path, size, mtime_ns, settled)` for each data file in the drop folders, as found."""
        now = time.time()
        for ds in self.catalog.datasets.values():
            try:
                entries = os.scandir(ds.path)
            except FileNotFoundError:
                continue
            with entries:
                for entry in entries:
                    if is_temp_name(entry.name):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    yield (
                        st.st_ctime_ns,
                        entry.path,
                        st.st_size,
                        st.st_mtime_ns,
                        now - st.st_mtime >= self.settings.settle_seconds,
                    )

    def submit(self, path: str, complete: bool) -> None:
        self._queue.put((path, complete))

    # -- a writer's quiet after its close -------------------------------------------------------
    def closed(self, path: str) -> None:
        """A writer closed `path`: decide it once nothing more happens to it for `close_quiet_seconds`."""
        quiet = self.settings.close_quiet_seconds
        if quiet <= 0:
            self.submit(path, complete=True)
            return
        with self._quiet_lock:
            self._quiet[path] = time.monotonic() + quiet
        self._quiet_wake.set()

    def changed(self, path: str) -> None:
        """A write or an attribute change on `path`: a closed file waiting for its quiet waits again."""
        with self._quiet_lock:
            if path in self._quiet:
                self._quiet[path] = time.monotonic() + self.settings.close_quiet_seconds

    def _submit_quiet(self, everything: bool = False) -> float:
        """Submit the closed files that have been quiet long enough (or all); the seconds until the next is due."""
        now = time.monotonic()
        with self._quiet_lock:  # queued before they leave the quiet list: drain() and stop() never see neither
            due = [p for p, at in self._quiet.items() if everything or at <= now]
            for p in due:
                self.submit(p, complete=True)
                del self._quiet[p]
            following = min(self._quiet.values(), default=now + 1.0) - now
        return max(0.0, following)

    def _quiet_loop(self) -> None:
        while not self._stop.is_set():
            wait = self._submit_quiet()
            self._quiet_wake.wait(wait)
            self._quiet_wake.clear()

    def drain(self, timeout: float | None = 30.0) -> None:
        """Wait until the start-up scan is done, every submitted file is decided and no candidate is waiting to
        settle (for tests and --once; `None` waits as long as it takes)."""
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while time.monotonic() < deadline:
            self._queue.join()
            if not self._quiet and not self._candidates and not self._catch_up_due.is_set() and not self._catching_up:
                return
            time.sleep(0.1)

    # -- deciding about files ------------------------------------------------------------------
    def _work(self) -> None:
        last_rescan = time.monotonic()
        while not self._stop.is_set():
            if self._catch_up_due.is_set():
                self._catching_up = True
                self._catch_up_due.clear()
                try:
                    self.catch_up()
                except Exception:
                    log.exception(
                        "the scan of the drop folders failed; it is retried in %s s", self.settings.rescan_seconds
                    )
                finally:
                    self._catching_up = False
                last_rescan = time.monotonic()
            batch = self._take(limit=500)
            complete = [path for path, is_complete in batch if is_complete]
            try:
                for path, is_complete in batch:
                    if is_complete:
                        self._candidates.pop(path, None)
                    else:
                        self._watch_candidate(path)
                if complete:
                    self.process_many(complete)
            except Exception:
                log.exception(
                    "unexpected error deciding %d file(s); they are left in place and retried on the next scan",
                    len(complete),
                )
            finally:
                for _ in batch:
                    self._queue.task_done()
            self._check_candidates()
            if not self.polling and time.monotonic() - last_rescan > self.settings.rescan_seconds:
                self._catch_up_due.set()

    def _take(self, limit: int) -> list[tuple[str, bool]]:
        """The next queued files: waits briefly for one, then takes what else is already waiting, up to `limit`."""
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(batch) < limit:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _watch_candidate(self, path: str) -> None:
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            self._candidates.pop(path, None)
            return
        prev = self._candidates.get(path)
        if prev is None or prev[:2] != (st.st_size, st.st_mtime_ns):
            self._candidates[path] = (st.st_size, st.st_mtime_ns, time.monotonic())

    def _check_candidates(self) -> None:
        # inotify reports a writer's close; wait longer there, only files moved in from elsewhere rely on this
        settle = self.settings.settle_seconds * (1 if self.polling else 5)
        for path, (size, mtime_ns, since) in list(self._candidates.items()):
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                del self._candidates[path]
                continue
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                self._candidates[path] = (st.st_size, st.st_mtime_ns, time.monotonic())
            elif time.monotonic() - since >= settle:
                del self._candidates[path]
                try:
                    self.process(path)
                except Exception:
                    log.exception("%s: unexpected error; the file is left in place and retried on the next scan", path)

    def process(self, path: str) -> str:
        """Decide about one file; returns the decision (also logged, one line per file)."""
        return self.process_many([path])[path]

    def process_many(self, paths: list[str]) -> dict[str, str]:
        """Decide about files, validating those of one dataset in one read where they are all valid."""
        batch = self.screener.screen_many(paths)
        return self._finish(batch, self.judge.judge(batch.todo))

    def _finish(self, batch: Batch, verdicts: dict) -> dict[str, str]:
        """The decider's decisions on a judged batch; its `later` files decided after it, in a batch of their own."""
        decisions = self.decider.decide(batch, verdicts)
        if batch.later:
            decisions.update(self.process_many(batch.later))
        return decisions

    def flush_once(self, force: bool = False) -> bool:
        """Send one batch of the outbox's due events; True if a batch was sent."""
        return self.outbox.flush_once(force)
