"""The watchdog sensor: announce complete files dropped into the landing folders, once each, durably."""

from __future__ import annotations

import contextvars
import errno
import hashlib
import logging
import os
import queue
import shutil
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.polling import PollingObserver

from landing.catalog import Catalog, Dataset, load_catalog
from landing.contract import QUARANTINE_DIR as QUARANTINE
from landing.contract import accepted_name, landing_stamp
from landing.events import LandedFile, event_id, file_rejected
from landing.transport import EmitError, send_events
from landing.ledger import FileRecord, Ledger, ledger_path
from landing.reader import InvalidFile, connect, undeclared_columns, validate_many
from landing.settings import Settings
from sensors._upstream import inotify_observer

log = logging.getLogger("landing.sensor")

VALIDATORS = 2  # DuckDB threads validating a backlog: validation costs about 0.3 ms per small file and thread
HOLD_SENDS_ABOVE = 1000  # a catch-up of more files than this decides them all before sending their events
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", "~")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") or name.endswith(TEMP_SUFFIXES)


def _split(todo: dict[str, list], parts: int) -> list[dict[str, list]]:
    """`todo` in `parts` pieces of about the same size (each dataset's list cut in turn), empty pieces left out."""
    pieces = [{name: items[i::parts] for name, items in todo.items() if items[i::parts]} for i in range(parts)]
    return [p for p in pieces if p]


def _merged(futures: list) -> dict:
    out: dict = {}
    for f in futures:
        out.update(f.result())
    return out


def _below(path: str, prefix: str) -> str:
    """`path` relative to the folder `prefix` names (with its trailing separator)."""
    return path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, prefix)


@dataclass(frozen=True)
class _Candidate:
    """A complete dropped file, read and identified, waiting for validation."""

    path: str
    real: str
    dataset: Dataset
    stat: os.stat_result
    sha256: str
    event_id: str


@dataclass
class _Batch:
    """Files screened together: decided ones, candidates to validate per dataset, and files that wait for another
    batch (same content as one of its files, not yet recorded)."""

    decisions: dict[str, str] = field(default_factory=dict)
    todo: dict[str, list[_Candidate]] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)
    later: list[str] = field(default_factory=list)


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
            self.sensor.submit(os.fsdecode(event.src_path), complete=True)

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
        if not event.is_directory and self.sensor.polling:
            self.sensor.submit(os.fsdecode(event.src_path), complete=False)


class Sensor:
    """Watches `settings.root`; each complete data file becomes one `landing.file.created` event."""

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
        self._cons: queue.Queue = queue.Queue()  # validation DuckDBs, opened as needed and reused
        self._queue: queue.Queue[tuple[str, bool]] = queue.Queue()
        self._candidates: dict[str, tuple[int, int, float]] = {}
        self._said: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._catching_up = False
        self._hold_sends = False
        self._catch_up_due = (
            threading.Event()
        )  # the worker scans the drop folders when set (on start, then periodically)
        self._wake_sender = threading.Event()
        self._threads: list[threading.Thread] = []
        self._observer = None
        self._server_down = False
        self._fail_streak = 0

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
        for target, name in ((self._work, "sensor-worker"), (self._send_loop, "sensor-outbox")):
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
        self._queue.join()
        self._stop.set()
        self._wake_sender.set()
        for t in self._threads:
            t.join(30)  # the worker finishes the chunk it is deciding
        deadline = time.monotonic() + (flush_timeout if flush_timeout is not None else float("inf"))
        while self.ledger.pending_count() and time.monotonic() < deadline:
            if not self.flush_once(force=True):
                break
        left = self.ledger.pending_count()
        if left:
            log.warning("%d event(s) wait in the ledger %s; they are sent on the next start", left, self.ledger.path)
        self.ledger.close()
        while not self._cons.empty():
            self._cons.get_nowait().close()
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
        self._hold_sends = backlog.total > HOLD_SENDS_ABOVE
        try:
            self._decide_backlog(backlog)
        finally:
            self._hold_sends = False
            self._wake_sender.set()
        if backlog.total:
            log.info(
                "caught up: %d file(s) not in the ledger decided in %.2f s", backlog.total, time.monotonic() - started
            )
        return backlog.total

    def _decide_backlog(self, backlog) -> None:
        # a pipeline: two DuckDB threads validate one chunk (the reads release the GIL) while Python screens the next
        with ThreadPoolExecutor(VALIDATORS, thread_name_prefix="sensor-validate") as validators:
            flight: tuple[_Batch, list] | None = None
            for chunk in backlog.chunks(500):
                if self._stop.is_set():
                    break  # stopping: what is left is found by the next start's scan
                try:
                    for path, settled in chunk:
                        if not settled:
                            self._watch_candidate(path)
                    batch = self._screen_many(
                        [path for path, settled in chunk if settled], inflight=flight[0] if flight else None
                    )
                    next_flight = (
                        batch,
                        [validators.submit(self._validate, part) for part in _split(batch.todo, VALIDATORS)],
                    )
                    if flight is not None:
                        self._finish(flight[0], _merged(flight[1]))
                    flight = next_flight
                except Exception:
                    flight = None
                    log.exception(
                        "unexpected error deciding up to %d file(s); they are left in place and retried on "
                        "the next scan",
                        2 * len(chunk),
                    )
            if flight is not None:
                self._finish(flight[0], _merged(flight[1]))

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

    def drain(self, timeout: float | None = 30.0) -> None:
        """Wait until the start-up scan is done, every submitted file is decided and no candidate is waiting to
        settle (for tests and --once; `None` waits as long as it takes)."""
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while time.monotonic() < deadline:
            self._queue.join()
            if not self._candidates and not self._catch_up_due.is_set() and not self._catching_up:
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

    def _say_once(self, path: str, message: str, level: int = logging.INFO) -> None:
        """Log a decision about `path` once, not on every filesystem event for it."""
        if (path, message) not in self._said:
            self._said.add((path, message))
            log.log(level, "%s", message)

    def process(self, path: str) -> str:
        """Decide about one file; returns the decision (also logged, one line per file)."""
        return self.process_many([path])[path]

    def process_many(self, paths: list[str]) -> dict[str, str]:
        """Decide about files, validating those of one dataset in one read where they are all valid."""
        batch = self._screen_many(paths)
        return self._finish(batch, self._validate(batch.todo))

    def _screen_many(self, paths: list[str], inflight: "_Batch | None" = None) -> "_Batch":
        """Screen files (decisions for those needing no validation) and find duplicates, against the ledger and
        `inflight`, a batch screened but not yet recorded (a file with the same content as one of its files waits)."""
        batch = _Batch()
        paths = list(dict.fromkeys(paths))
        records = self.ledger.files_for(paths)
        candidates: list[_Candidate] = []
        for path in paths:
            found = self._screen(path, records.get(path))
            if isinstance(found, str):
                batch.decisions[path] = found
            else:
                candidates.append(found)
        owners = self.ledger.event_owners([c.event_id for c in candidates])
        for c in candidates:
            if inflight is not None and c.event_id in inflight.event_ids and c.event_id not in owners:
                batch.later.append(c.path)  # decided once the batch in flight is recorded or quarantined
                continue
            first = owners.setdefault(c.event_id, c.path)  # also catches a duplicate within the batch
            if first != c.path:
                batch.decisions[c.path] = self._duplicate(c, first)
            else:
                batch.todo.setdefault(c.dataset.name, []).append(c)
                batch.event_ids.add(c.event_id)
        return batch

    def _validate(self, todo: dict[str, list[_Candidate]]) -> dict[str, tuple[int, tuple[str, ...]] | InvalidFile]:
        """Real path → (rows, undeclared columns) or the reason it cannot be built; one DuckDB read per dataset where
        all are valid. Each concurrent call gets a validation DuckDB of its own from a pool."""
        verdicts: dict[str, tuple[int, tuple[str, ...]] | InvalidFile] = {}
        try:
            con = self._cons.get_nowait()
        except queue.Empty:
            con = connect()  # one thread each: measured fastest for batches of small files
        try:
            for items in todo.values():
                found = validate_many(con, items[0].dataset, [c.real for c in items])
                valid = [p for p, v in found.items() if not isinstance(v, InvalidFile)]
                extra = undeclared_columns(con, items[0].dataset, valid)
                verdicts.update(
                    {p: v if isinstance(v, InvalidFile) else (v, extra.get(p, ())) for p, v in found.items()}
                )
        finally:
            self._cons.put(con)
        return verdicts

    def _finish(
        self, batch: "_Batch", verdicts: dict[str, tuple[int, tuple[str, ...]] | InvalidFile]
    ) -> dict[str, str]:
        """Quarantine the invalid files, accept the valid ones; every decision of the batch."""
        decisions = dict(batch.decisions)
        good = []
        for items in batch.todo.values():
            for c in items:
                verdict = verdicts[c.real]
                if isinstance(verdict, InvalidFile):
                    decisions[c.path] = self.quarantine(Path(c.path), c.dataset, c.stat, str(verdict), c.sha256)
                else:
                    good.append((c, verdict))
        decisions.update(self._accept(good))
        if any(d == "accepted" for d in decisions.values()):
            self._wake_sender.set()
        if batch.later:
            decisions.update(self.process_many(batch.later))
        return decisions

    def _screen(self, path: str, rec: "FileRecord | None") -> "str | _Candidate":
        """A decision for files that need no validation, else the file read and identified."""
        name = os.path.basename(path)
        if is_temp_name(name):
            return "ignored: temporary or hidden name"
        absolute = os.path.abspath(path)
        if ".." in path.split(os.sep) or not absolute.startswith(self._root_prefix):
            self._say_once(path, f"{path}: refused, the name leaves the landing root", logging.WARNING)
            return "refused"
        if absolute.startswith(self._own_prefixes):
            return "ignored: accepted or quarantined"
        ds = self.catalog.dataset_for_path(absolute)
        if ds is None:
            self._say_once(path, f"{path}: unmatched, no dbt source has this folder and pattern; ignored")
            return "unmatched"
        try:
            st = os.lstat(absolute)
            real = absolute
            if stat.S_ISLNK(st.st_mode):  # only a link can lead out of the root
                real = os.path.realpath(absolute)
                if not real.startswith(self._root_prefix):
                    self._say_once(
                        path,
                        f"{path}: refused, a symlink to {real}, outside the landing root; not read",
                        logging.WARNING,
                    )
                    return "refused"
                st = os.stat(real)
        except FileNotFoundError:
            return "gone"
        if not stat.S_ISREG(st.st_mode):  # a directory, FIFO or device: reading it could block or mean nothing
            self._say_once(path, f"{ds.name} {name}: ignored, not a regular file", logging.WARNING)
            return "ignored: not a regular file"
        if rec and (rec.size, rec.mtime_ns) == (st.st_size, st.st_mtime_ns):
            if rec.status == "duplicate":
                return "unchanged"
            if rec.status in ("pending", "announced") and rec.accepted_path and not os.path.exists(rec.accepted_path):
                self._publish(Path(real), Path(rec.accepted_path))  # a crash came between the record and the move
                log.info(
                    "%s %s: accepted as %s (finished after a restart)", ds.name, name, Path(rec.accepted_path).name
                )
                return "accepted"
        if st.st_size > self.settings.max_file_bytes:
            return self.quarantine(
                Path(path),
                ds,
                st,
                f"file is {st.st_size} bytes, over the {self.settings.max_file_bytes}-byte cap (LANDING_MAX_FILE_BYTES)",
                None,
            )
        try:
            with open(real, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError as exc:
            return self.quarantine(Path(path), ds, st, f"unreadable: {exc.strerror}", None)
        return _Candidate(path, real, ds, st, digest, str(event_id(ds.name, digest)))

    def _duplicate(self, c: "_Candidate", owner: str) -> str:
        self.ledger.record(
            c.path,
            c.dataset.name,
            c.sha256,
            c.stat.st_size,
            c.stat.st_mtime_ns,
            "duplicate",
            event_id=c.event_id,
            reason=f"same content as {owner}",
        )
        log.info(
            "%s %s: duplicate of %s, left in place and not announced",
            c.dataset.name,
            Path(c.path).name,
            Path(owner).name,
        )
        return "duplicate"

    def _accept(self, good: list[tuple["_Candidate", tuple[int, tuple[str, ...]]]]) -> dict[str, str]:
        """Record the files and their events (one transaction), then move each into the accepted area under the
        contract's name. A crash between the two is finished on the next start (see _screen)."""
        records, moves = [], []
        for c, (rows, undeclared) in good:
            ds = c.dataset
            stamp = landing_stamp()
            name = os.path.basename(c.path)
            accepted = os.path.join(ds.accepted_folder, accepted_name(stamp, c.sha256, ds.suffix_for(name)))
            landed = LandedFile(
                dataset=ds.name,
                path=accepted,
                relative_path=_below(accepted, self._accepted_prefix),
                bytes=c.stat.st_size,
                sha256=c.sha256,
                rows=rows,
                landed_at=stamp.isoformat(),
                producer="sensor",
                dropped_as=_below(os.path.abspath(c.path), self._root_prefix),
                undeclared_columns=list(undeclared),
            )
            records.append(
                dict(
                    path=c.path,
                    dataset=ds.name,
                    sha256=c.sha256,
                    size=c.stat.st_size,
                    mtime_ns=c.stat.st_mtime_ns,
                    status="pending",
                    event_id=c.event_id,
                    event=landed.to_event(),
                    accepted_path=accepted,
                )
            )
            moves.append((c, accepted, rows, undeclared))
        if records:
            self.ledger.record_many(records)
        for c, accepted, rows, undeclared in moves:
            self._publish(c.real, accepted)
            if len(moves) <= 20:
                log.info(
                    "%s %s: accepted as %s (%d rows)",
                    c.dataset.name,
                    os.path.basename(c.path),
                    os.path.basename(accepted),
                    rows,
                )
            if undeclared and len(moves) <= 20:
                log.warning(
                    "%s %s: undeclared column(s) %s %s",
                    c.dataset.name,
                    os.path.basename(c.path),
                    ", ".join(undeclared[:12]),
                    "kept in _rescued"
                    if c.dataset.rescue
                    else "not loaded (declare them in the source yml, or set meta.landing.rescue)",
                )
        if len(moves) > 20:  # a backlog: a line per batch; the ledger has each file (`explain` reads it)
            counts: dict[str, int] = {}
            for c, *_ in moves:
                counts[c.dataset.name] = counts.get(c.dataset.name, 0) + 1
            log.info("accepted %s", ", ".join(f"{n} file(s) of {d}" for d, n in sorted(counts.items())))
        return {c.path: "accepted" for c, *_ in moves}

    @staticmethod
    def _publish(src: "str | Path", dest: "str | Path") -> None:
        """Move a file into the accepted area: a rename, or a copy where the accepted area is on another filesystem."""
        try:
            os.replace(src, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            dest = Path(dest)
            tmp = dest.with_name(f".{dest.name}.tmp")
            shutil.copy2(src, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
            os.unlink(src)

    def quarantine(self, p: Path, ds: Dataset, st: os.stat_result, reason: str, sha256: str | None) -> str:
        """Move a bad file to <root>/_quarantine/<dataset>/ with a reason file, and queue a rejected event."""
        if sha256 is None:  # not read (too big or unreadable): identify it by name, size and mtime
            sha256 = hashlib.sha256(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
        folder = self.root / QUARANTINE / ds.name
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / p.name
        if dest.exists():
            dest = folder / f"{p.stem}-{sha256[:8]}{p.suffix}"
        os.replace(p, dest)
        dest.with_name(dest.name + ".reason.txt").write_text(
            f"dataset: {ds.name}\nfile: {p.relative_to(self.root).as_posix()}\nsha256: {sha256}\nreason: {reason}\n"
        )
        rel = p.relative_to(self.root).as_posix()
        event = file_rejected(ds.name, rel, sha256, reason, str(dest))
        self.ledger.record(
            str(p),
            ds.name,
            sha256,
            st.st_size,
            st.st_mtime_ns,
            "quarantined",
            event_id=event["id"],
            reason=reason,
            event=event,
            quarantined_to=str(dest),
        )
        log.warning("%s %s: quarantined to %s: %s", ds.name, p.name, dest.relative_to(self.root), reason)
        self._wake_sender.set()
        return "quarantined"

    # -- the outbox ----------------------------------------------------------------------------
    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._wake_sender.wait(1.0)
            self._wake_sender.clear()
            while not self._stop.is_set() and not self._hold_sends and self.flush_once():
                pass

    def flush_once(self, force: bool = False) -> bool:
        """Send one batch of due events; True if a batch was sent."""
        due = self.ledger.due_texts(limit=2000, now=float("inf") if force else None)
        if not due:
            return False
        ids = [eid for eid, _, _, _ in due]
        try:
            send_events([text for _, _, _, text in due])
        except EmitError as exc:
            self._fail_streak += 1
            retry_in = min(30.0, 0.5 * 2 ** min(6, self._fail_streak - 1))
            self.ledger.mark_failed(ids, time.time() + retry_in)
            if not self._server_down:
                log.warning(
                    "waiting for the server: %d event(s) kept in the ledger, retrying with backoff (%s)", len(ids), exc
                )
            for _, dataset, path, _ in due:
                self._say_once(path, f"{dataset} {Path(path).name}: waiting for the server")
            self._server_down = True
            return False
        self.ledger.mark_sent(ids)
        if self._server_down:
            log.info("server is back: sent %d waiting event(s)", len(ids))
        self._server_down = False
        self._fail_streak = 0
        if len(due) <= 20:
            for eid, dataset, path, text in due:
                verb = "announced" if '"landing.file.created"' in text else "rejection announced"
                log.info("%s %s: %s (event %s)", dataset, Path(path).name, verb, eid)
        else:  # a backlog: a line per batch (each file has had its own "accepted" or "quarantined" line)
            counts: dict[str, int] = {}
            for _, dataset, _, _ in due:
                counts[dataset] = counts.get(dataset, 0) + 1
            log.info("announced %s", ", ".join(f"{n} event(s) of {d}" for d, n in sorted(counts.items())))
        return True
