"""Every landing event, in one place: its name, resource, related resources and payload (docs/events.md)."""

from __future__ import annotations

import functools
import posixpath
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

FILE_CREATED = "landing.file.created"
FILE_REJECTED = "landing.file.rejected"
DATASET_STALE = "landing.dataset.stale"
BUILD_FAILED = "landing.build.failed"
PROJECT_CHANGED = "landing.project.changed"
VERIFY_FAILED = "landing.verify.failed"

DATASET_PREFIX = "landing.dataset."
PROJECT_PREFIX = "landing.project."
FILE_PREFIX = "landing.file."
VERIFY_PREFIX = "landing.verify."
# Fixed namespace so every producer (flows, sensor, tests) derives the same event id.
EVENT_NAMESPACE = uuid.UUID("6f1c1a52-3f7e-5b0e-9d2a-6c616e64696e")


EventData = dict  # an event as JSON-ready data: Prefect's Event fields; Prefect is imported only to send it


def dataset_resource_id(dataset: str) -> str:
    return f"{DATASET_PREFIX}{dataset}"


def dataset_asset_key(dataset: str) -> str:
    """The dataset as a Prefect asset (the upstream of the dbt models' asset events): a URI, as assets need."""
    return f"landing://dataset/{dataset}"


def file_resource_id(relative_path: str) -> str:
    return f"{FILE_PREFIX}{relative_path}"


@functools.lru_cache(maxsize=4096)  # asked for twice per file: to find duplicates, then for the event
def event_id(dataset: str, sha256: str) -> uuid.UUID:
    """Deterministic id: the same content for the same dataset is always the same event."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{dataset}:{sha256}")


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
    undeclared_columns: list[str] | None = None  # top-level columns the file carries that its source does not declare

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
                    "prefect.resource.name": posixpath.basename(self.dropped_as or self.relative_path),
                    "sha256": self.sha256,
                }
            ],
            payload={f: getattr(self, f) for f in _PAYLOAD_FIELDS},
        )


_PAYLOAD_FIELDS = tuple(f.name for f in fields(LandedFile))


def file_rejected(dataset: str, relative_path: str, sha256: str, reason: str, quarantined_to: str) -> EventData:
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


def file_created(landed: LandedFile) -> EventData:
    """`landing.file.created`: a file was accepted (see LandedFile for the payload)."""
    return landed.to_event()


def dataset_stale(
    dataset: str, expected_every_seconds: int, late_by_seconds: int | None, last_landed_at: str | None
) -> EventData:
    """`landing.dataset.stale`: no file landed for `dataset` within its freshness window."""
    return dict(
        id=str(uuid.uuid4()),
        occurred=utc_now().isoformat(),
        event=DATASET_STALE,
        resource=_dataset_resource(dataset),
        related=[],
        payload={
            "dataset": dataset,
            "expected_every_seconds": expected_every_seconds,
            "late_by_seconds": late_by_seconds,
            "last_landed_at": last_landed_at,
        },
    )


def build_failed(dataset: str, failed_nodes: list[str], message: str, flow_run_id: str | None) -> EventData:
    """`landing.build.failed`: a dbt build of models downstream of `dataset` failed."""
    return dict(
        id=str(uuid.uuid4()),
        occurred=utc_now().isoformat(),
        event=BUILD_FAILED,
        resource=_dataset_resource(dataset),
        related=[{"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}]
        if flow_run_id
        else [],
        payload={"dataset": dataset, "failed_nodes": failed_nodes, "message": message[:4000]},
    )


def project_changed(project_dir: str, fingerprint: str, previous: str | None) -> EventData:
    """`landing.project.changed`: apply.py synced a dbt project whose code differs from the last one it applied."""
    name = Path(project_dir).name
    return dict(
        id=str(uuid.uuid4()),  # each change is its own: a project changed back and forth changes twice
        occurred=utc_now().isoformat(),
        event=PROJECT_CHANGED,
        resource={"prefect.resource.id": f"{PROJECT_PREFIX}{name}", "prefect.resource.name": name},
        related=[],
        payload={"project_dir": project_dir, "fingerprint": fingerprint, "previous_fingerprint": previous},
    )


def verify_failed(warehouse: str, datasets: list[str], models: list[dict], flow_run_id: str | None) -> EventData:
    """`landing.verify.failed`: models of the readers' warehouse `warehouse` differ from a full build of them
    (`landing verify`); `models` has one entry per model that differs (its counts and sample keys)."""
    name = Path(warehouse).stem
    differing = sorted({d for m in models for d in m.get("datasets", [])})
    return dict(
        id=str(uuid.uuid4()),
        occurred=utc_now().isoformat(),
        event=VERIFY_FAILED,
        resource={"prefect.resource.id": f"{VERIFY_PREFIX}{name}", "prefect.resource.name": name},
        related=[
            *({"prefect.resource.id": dataset_resource_id(d), "prefect.resource.role": "dataset"} for d in differing),
            *(
                [{"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}]
                if flow_run_id
                else []
            ),
        ],
        payload={"warehouse": warehouse, "datasets": datasets, "models": models},
    )


def _dataset_resource(dataset: str) -> dict[str, str]:
    return {"prefect.resource.id": dataset_resource_id(dataset), "prefect.resource.name": dataset}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
