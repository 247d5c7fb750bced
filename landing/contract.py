"""The landing contract: accepted files under sortable names, atomic landing, and the `landing.file.*` event shapes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from landing.catalog import Catalog, load_catalog
from landing.settings import Settings

log = logging.getLogger(__name__)

FILE_CREATED = "landing.file.created"
FILE_REJECTED = "landing.file.rejected"
DATASET_STALE = "landing.dataset.stale"
BUILD_FAILED = "landing.build.failed"

# Names shared by the automations, the build deployment and the explain/status commands.
BUILD_FLOW = "dbt-build"
BUILD_DEPLOYMENT = "dbt-build"
STALE_FLOW = "landing-stale"
RECONCILE_FLOW = "landing-reconcile"
MANAGED_TAG = "managed-by:landing-apply"

QUARANTINE_DIR = "_quarantine"  # <LANDING_ROOT>/_quarantine/<dataset>/: bad files and their reasons
INCOMING_DIR = ".incoming"  # <LANDING_ACCEPTED_ROOT>/.incoming/: files being written, never matched by a dataset's glob

DATASET_PREFIX = "landing.dataset."
FILE_PREFIX = "landing.file."
# Fixed namespace so every producer (flows, sensor, tests) derives the same event id.
EVENT_NAMESPACE = uuid.UUID("6f1c1a52-3f7e-5b0e-9d2a-6c616e64696e")


EventData = dict  # an event as JSON-ready data: Prefect's Event fields; Prefect is imported only to send it


class EmitError(RuntimeError):
    """The Prefect server did not accept the events."""


def dataset_resource_id(dataset: str) -> str:
    return f"{DATASET_PREFIX}{dataset}"


def dataset_from_resource_id(resource_id: str) -> str:
    return resource_id[len(DATASET_PREFIX):] if resource_id.startswith(DATASET_PREFIX) else ""


def file_resource_id(relative_path: str) -> str:
    return f"{FILE_PREFIX}{relative_path}"


def event_id(dataset: str, sha256: str) -> uuid.UUID:
    """Deterministic id: the same content for the same dataset is always the same event."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{dataset}:{sha256}")


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


@dataclass(frozen=True)
class LandedFile:
    """An accepted file under its final name in a dataset's accepted folder: the event payload."""

    dataset: str
    path: str  # the accepted file, which dbt reads
    relative_path: str  # relative to LANDING_ACCEPTED_ROOT
    bytes: int
    sha256: str
    rows: int
    landed_at: str
    producer: str
    dropped_as: str | None = None  # relative to LANDING_ROOT: the name it was dropped under (the sensor's files)

    @property
    def event_id(self) -> uuid.UUID:
        return event_id(self.dataset, self.sha256)

    def to_event(self) -> EventData:
        """The `landing.file.created` event for this file."""
        return dict(
            id=str(self.event_id),
            occurred=self.landed_at,
            event=FILE_CREATED,
            resource={
                "prefect.resource.id": dataset_resource_id(self.dataset),
                "prefect.resource.name": self.dataset,
            },
            related=[
                {
                    "prefect.resource.id": file_resource_id(self.relative_path),
                    "prefect.resource.role": "file",
                    "prefect.resource.name": Path(self.dropped_as or self.relative_path).name,
                    "sha256": self.sha256,
                }
            ],
            payload={f: getattr(self, f) for f in _PAYLOAD_FIELDS},
        )


_PAYLOAD_FIELDS = tuple(f.name for f in fields(LandedFile))


def rejected_event(dataset: str, relative_path: str, sha256: str, reason: str, quarantined_to: str) -> EventData:
    """The `landing.file.rejected` event for a file that failed validation."""
    return dict(
        # one rejection per drop: two empty files are two incidents, though their content (and sha256) is the same
        id=str(uuid.uuid5(EVENT_NAMESPACE, f"rejected:{dataset}:{relative_path}:{sha256}")),
        occurred=utc_now().isoformat(),
        event=FILE_REJECTED,
        resource={
            "prefect.resource.id": dataset_resource_id(dataset),
            "prefect.resource.name": dataset,
        },
        related=[
            {
                "prefect.resource.id": file_resource_id(relative_path),
                "prefect.resource.role": "file",
                "prefect.resource.name": Path(relative_path).name,
                "sha256": sha256,
            }
        ],
        payload={
            "dataset": dataset,
            "relative_path": relative_path,
            "sha256": sha256,
            "reason": reason,
            "quarantined_to": quarantined_to,
        },
    )


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def write_atomically(folder: Path, data: bytes, suffix: str, now: datetime | None = None,
                     before_publish: Callable[[Path, Path], None] | None = None, incoming: Path | None = None) -> Path:
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


def _text(event) -> str:
    if isinstance(event, str):  # already serialized (the outbox stores events as JSON)
        return event
    return event.model_dump_json() if hasattr(event, "model_dump_json") else json.dumps(event)


async def send_events_async(events: list) -> None:
    """Send events (EventData, Prefect Events, or either serialized as JSON) to the Prefect server and wait until it has read them all."""
    from landing.transport import prefect_api, send_texts

    if not events:
        return
    url, auth_string, api_key = prefect_api()
    try:
        if not url:
            raise EmitError("PREFECT_API_URL is not set")
        if api_key:  # Prefect Cloud authenticates its own way: use Prefect's client
            await _send_with_prefect_client(events)
        else:
            await send_texts([_text(e) for e in events], url, auth_string)
    except Exception as exc:
        raise EmitError(
            f"could not send {len(events)} event(s) to the Prefect server at {url or '(PREFECT_API_URL unset)'}: "
            f"{exc}. Start the server (make up, or `prefect server start`) and set PREFECT_API_URL."
        ) from exc


async def _send_with_prefect_client(events: list) -> None:
    from prefect.events import Event
    from prefect.events.clients import get_events_client

    async with get_events_client(reconnection_attempts=2, checkpoint_every=len(events) + 1) as client:
        for event in events:
            if isinstance(event, str):
                event = Event.model_validate_json(event)
            await client.emit(event if isinstance(event, Event) else Event.model_validate(event))
        await client._force_checkpoint()  # a ping answered after the sends: the server read every event before it


def send_events(events: list) -> None:
    """Blocking form of send_events_async, usable from flows, tasks and plain scripts."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(send_events_async(events))
        return
    from prefect.utilities.asyncutils import run_coro_as_sync

    run_coro_as_sync(send_events_async(events))


def send_patiently(events: list, patience_seconds: float) -> None:
    """send_events, retried with backoff for up to `patience_seconds` while the server is unreachable."""
    deadline = time.monotonic() + patience_seconds
    delay = 0.5
    while True:
        try:
            send_events(events)
            return
        except EmitError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s Retrying in %.1f s (for up to %.0f s in all).", exc, delay, patience_seconds)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


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
    from landing.reader import InvalidFile, thread_connection, validate_file

    settings = settings or Settings()
    catalog = catalog or load_catalog(settings)
    ds = catalog.get(dataset)
    ledger = Ledger(ledger_path(settings.state_dir))
    made: dict[str, Any] = {}

    def record(tmp: Path, final: Path) -> None:
        try:
            rows = validate_file(thread_connection(), ds, str(tmp))
        except InvalidFile as exc:
            raise InvalidFile(f"{dataset}: {producer} produced a file dbt could not build ({exc}); nothing was landed") from None
        # In the ledger before the final name exists: if this process dies now, the sensor still sends its event.
        st = os.stat(tmp)
        made["landed"] = landed = LandedFile(
            dataset=ds.name, path=str(final), relative_path=final.relative_to(settings.accepted).as_posix(),
            bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), rows=rows,
            landed_at=_stamp_of(final.name), producer=producer,
        )
        made["event"] = event = landed.to_event()
        ledger.record(str(final), dataset, landed.sha256, st.st_size, st.st_mtime_ns, "pending",
                      event_id=event["id"], event=event, hold_seconds=settings.emit_patience_seconds + 30,
                      accepted_path=str(final))

    try:
        try:
            write_atomically(ds.accepted_path, data, suffix or ds.suffix, before_publish=record,
                             incoming=settings.accepted / INCOMING_DIR)
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
