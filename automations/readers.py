"""A warehouse from before the lake: the upgrade of one from before the build had its own file (seed), and DuckDB's
file lock told from a data failure. Readers and builds use the lake (landing/lake.py)."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
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


def is_lock_error(exc: BaseException) -> bool:
    """Whether a failure is DuckDB's file lock (another process holds the file), not the data."""
    return bool(LOCKED.search(str(exc)))
