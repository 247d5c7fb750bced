"""The build's own DuckDB file: who holds it (a build waits, then says who), and the upgrade of a warehouse from before
the build had its own file (seed). Readers read the lake (landing/lake.py), never this file."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from landing.settings import Settings

log = logging.getLogger("landing.readers")

FICLONE = 0x40049409  # Linux ioctl: share the source's blocks (btrfs, XFS with reflink); ext4 and tmpfs say no
LOCKED = re.compile(r"Could not set lock on file|Conflicting lock is held", re.I)
HOLDER_PID = re.compile(r"\(PID (\d+)\)")


def _clone_or_copy(src: Path, dst: Path) -> str:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
            return "reflink"
        except OSError:
            pass
    shutil.copyfile(src, dst)  # sendfile(2) on Linux: the kernel copies, Python never sees the bytes
    return "copy"


def seed(settings: Settings) -> bool:
    """Before the first build on a build file: start it from the old readers' file when there is one (a warehouse
    from before the two files, or from before the lake, whose build file was deleted), so its raw tables and load
    history are kept; `lake.migrate` then moves its models into the lake."""
    build, readers = settings.build_warehouse, settings.warehouse
    if build.exists() or not readers.exists():
        return False
    build.parent.mkdir(parents=True, exist_ok=True)
    wal = readers.with_name(readers.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, build.with_name(build.name + ".wal"))
    tmp = build.with_name(f".{build.name}.seeding-{os.getpid()}")
    _clone_or_copy(readers, tmp)
    os.replace(tmp, build)
    log.info("started the build's warehouse %s from the readers' %s", build, readers)
    return True


@dataclass(frozen=True)
class Holder:
    """A process holding the build's file, as DuckDB names it, and since when we have seen it there."""

    pid: int | None
    command: str
    since: float
    path: str
    error: str

    def describe(self) -> str:
        who = f"pid {self.pid} ({self.command})" if self.pid else "another process"
        return f"{self.path} is held by {who}"


def _command_of(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "command unknown: not on this machine, or gone"
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)[:300] or "?"


def holder(settings: Settings, since: float | None = None) -> Holder | None:
    """Who holds the build's file right now (None when a build could open it): DuckDB's own lock, probed by opening
    the file read-write and closing it at once."""
    import duckdb

    path = settings.build_warehouse
    path.parent.mkdir(parents=True, exist_ok=True)
    # the probe is the first open of a new warehouse: it sets the storage format older readers can open
    config = {} if path.exists() else {"storage_compatibility_version": settings.warehouse_storage_version}
    try:
        duckdb.connect(str(path), config=config).close()
        return None
    except duckdb.IOException as exc:
        if not LOCKED.search(str(exc)):
            raise
        match = HOLDER_PID.search(str(exc))
        pid = int(match.group(1)) if match else None
        return Holder(pid, _command_of(pid) if pid else "?", since or time.time(), str(path), str(exc))


def waiting_path(settings: Settings) -> Path:
    """Where a waiting build says what holds the build's file (read by `landing status`)."""
    return settings.build_warehouse.with_name(settings.build_warehouse.name + ".waiting.json")


def read_waiting(settings: Settings) -> dict | None:
    try:
        return json.loads(waiting_path(settings).read_text())
    except (OSError, ValueError):
        return None


class WarehouseHeld(RuntimeError):
    """The build's own file stayed held by another process for longer than the build may wait."""


def wait_until_free(settings: Settings, say=log.warning) -> float:
    """Wait, with backoff, until no other process holds the build's file; the seconds waited. While waiting, the
    holder is said once (and again when it changes) and written for `landing status`; past lock_wait_seconds,
    WarehouseHeld says who and what to do."""
    first = holder(settings)
    if first is None:
        return 0.0
    started, delay, seen, note = time.monotonic(), 0.2, None, waiting_path(settings)
    current = first
    try:
        while current is not None:
            if (current.pid, current.command) != seen:
                seen = (current.pid, current.command)
                say(
                    f"the build's warehouse {current.describe()}; waiting up to {settings.lock_wait_seconds:.0f} s "
                    "for it to close (readers belong on the lake "
                    f"{settings.lake_name}: `landing sql`)"
                )
                tmp = note.with_suffix(".tmp")
                tmp.write_text(json.dumps({**asdict(current), "lock_wait_seconds": settings.lock_wait_seconds}))
                os.replace(tmp, note)
            waited = time.monotonic() - started
            if waited >= settings.lock_wait_seconds:
                raise WarehouseHeld(
                    f"{current.describe()} and stayed held for {waited:.0f} s, so dbt could not write it. Close that "
                    f"connection (or stop pid {current.pid}); the next file, or `landing-reconcile`, builds again. "
                    f"People and tools should read the lake {settings.lake_name} (`landing sql`): it never "
                    "blocks a build."
                    if current.pid
                    else f"{current.describe()} for {waited:.0f} s, so dbt could not write it: close the other connection."
                )
            time.sleep(min(delay, max(0.05, settings.lock_wait_seconds - waited)))
            delay = min(delay * 2, 2.0)
            current = holder(settings, since=first.since)
    finally:
        note.unlink(missing_ok=True)
    return time.monotonic() - started


def is_lock_error(exc: BaseException) -> bool:
    """Whether a failure is DuckDB's file lock (another process holds the file), not the data."""
    return bool(LOCKED.search(str(exc)))
