"""Landing a file: accepted names that sort by landing time, atomic writes, and land_bytes/land_rows for producers."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from landing.catalog import Catalog, load_catalog
from landing.events import LandedFile, utc_now
from landing.settings import Settings
from landing.transport import EmitError, send_patiently

log = logging.getLogger(__name__)

QUARANTINE_DIR = "_quarantine"  # <LANDING_ROOT>/_quarantine/<dataset>/: bad files and their reasons
INCOMING_DIR = ".incoming"  # <LANDING_ACCEPTED_ROOT>/.incoming/: files being written, never matched by a dataset's glob

_last_stamp = datetime.min.replace(tzinfo=timezone.utc)
_stamp_lock = threading.Lock()


def landing_stamp(now: datetime | None = None) -> datetime:
    """The landing time of a newly accepted file: now, strictly later than the last one this process gave."""
    global _last_stamp
    with _stamp_lock:
        stamp = max(now or utc_now(), _last_stamp + timedelta(microseconds=1))
        _last_stamp = stamp
        return stamp


def accepted_name(stamp: datetime, sha256: str, suffix: str) -> str:
    """`<UTC %Y%m%dT%H%M%S%fZ>-<sha12><suffix>`: accepted files sort by landing time, whatever they were called."""
    return f"{stamp.strftime('%Y%m%dT%H%M%S%fZ')}-{sha256[:12]}{suffix}"


def write_atomically(
    folder: Path,
    data: bytes,
    suffix: str,
    now: datetime | None = None,
    before_publish: Callable[[Path, Path], None] | None = None,
    incoming: Path | None = None,
) -> Path:
    """Write `data` under a unique, sortable name in `folder`; the final name appears only when complete.

    The data is written in `incoming` (default: `folder` itself, under a dot-name) and renamed into place.
    `before_publish(tmp, final)` runs once the data is on disk, just before the rename to the final name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()
    final = folder / accepted_name(landing_stamp(now), digest, suffix)
    if incoming is None:
        tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    else:
        incoming.mkdir(parents=True, exist_ok=True)
        tmp = incoming / f"{os.getpid()}-{threading.get_ident()}-{final.name}"  # keeps the suffix: DuckDB reads it
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if before_publish:
            before_publish(tmp, final)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final


def rows_to_jsonl(rows: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows).encode()


def land_bytes(
    dataset: str,
    data: bytes,
    producer: str,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    suffix: str | None = None,
) -> LandedFile:
    """Land `data` (in the dataset's format) straight into its accepted folder, then announce it with one event.

    The data is first checked with the same read dbt makes (landing.reader): a file dbt could not build raises
    InvalidFile and lands nothing. The file's record and its event go into the ledger (held for this process to send)
    before the file appears under its final name. If this process dies, or cannot reach the server within
    `emit_patience_seconds`, the sensor sends the event from the ledger's outbox: nothing is lost.
    """
    from landing.ledger import Ledger, ledger_path
    from landing.reader import InvalidFile, judge_many, thread_connection

    settings = settings or Settings()
    catalog = catalog or load_catalog(settings)
    ds = catalog.get(dataset)
    ledger = Ledger(ledger_path(settings.state_dir))
    made: dict[str, Any] = {}

    def record(tmp: Path, final: Path) -> None:
        verdict = judge_many(thread_connection(), ds, [str(tmp)])[str(tmp)]  # rows and undeclared columns, one read
        if isinstance(verdict, InvalidFile):
            raise InvalidFile(
                f"{dataset}: {producer} produced a file dbt could not build ({verdict}); nothing was landed"
            )
        rows, undeclared = verdict
        # In the ledger before the final name exists: if this process dies now, the sensor still sends its event.
        st = os.stat(tmp)
        made["landed"] = landed = LandedFile(
            dataset=ds.name,
            path=str(final),
            relative_path=final.relative_to(settings.accepted).as_posix(),
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            rows=rows,
            landed_at=_stamp_of(final.name),
            producer=producer,
            undeclared_columns=list(undeclared),
        )
        made["event"] = event = landed.to_event()
        ledger.record(
            str(final),
            dataset,
            landed.sha256,
            st.st_size,
            st.st_mtime_ns,
            "pending",
            event_id=event["id"],
            event=event,
            hold_seconds=settings.emit_patience_seconds + 30,
            accepted_path=str(final),
            undeclared={"declared": ds.declared_digest, "columns": list(undeclared)},
        )

    try:
        try:
            write_atomically(
                ds.accepted_path,
                data,
                suffix or ds.suffix,
                before_publish=record,
                incoming=settings.accepted / INCOMING_DIR,
            )
        except BaseException:
            if "landed" in made:
                ledger.forget(made["landed"].path)
            raise
        landed, event = made["landed"], made["event"]
        try:
            send_patiently([event], settings.emit_patience_seconds)
        except BaseException as exc:
            ledger.release([event["id"]])  # the sensor sends it from now on
            if not isinstance(exc, EmitError):
                raise
            raise EmitError(
                f"{landed.relative_path} landed for {dataset}, but its event was not sent: {exc} "
                "The file stays and its event waits in the ledger's outbox; the sensor sends it once the server is back."
            ) from exc
        ledger.mark_sent([event["id"]])
    finally:
        ledger.close()
    return landed


def _stamp_of(name: str) -> str:
    """The landing time an accepted name carries, as ISO 8601 UTC."""
    return datetime.strptime(name.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=timezone.utc).isoformat()


def land_rows(
    dataset: str,
    rows: Iterable[Mapping[str, Any]],
    producer: str,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
) -> LandedFile:
    """Land rows as newline-delimited JSON through land_bytes (for datasets read with read_json)."""
    return land_bytes(dataset, rows_to_jsonl(rows), producer, settings, catalog, suffix=None)
