"""The build log, `<state>/builds.jsonl`: one typed record per decision of the dbt deployment, written and read here."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path

from landing.settings import Settings


class BuildStatus(str, Enum):
    """How a dbt-build run ended."""

    BUILT = "built"
    UP_TO_DATE = "up to date"  # nothing landed (and nothing changed) since the last build of these datasets
    NO_FILES = "no files"  # a dataset asked for has no accepted file yet
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped before it finished (the UI's Cancel, or a stop that outlived its grace)
    RETRYING = "retrying"  # stopped for a reason that is not the data (a lock, the server): the same run tries again
    ROLLED_BACK = "rolled back"  # the datasets' models put back as an earlier build left them (`landing rollback`)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class BuildRecord:
    status: BuildStatus
    datasets: list[str]
    and_models: list[str] = field(default_factory=list)
    at: float = field(default_factory=time.time)  # when the decision was recorded
    flow_run_id: str | None = None
    started: float | None = None  # when dbt started (built and failed builds)
    empty: list[str] = field(default_factory=list)  # datasets without files (no files)
    failed_nodes: list[str] = field(default_factory=list)  # dbt nodes that errored or failed (failed)
    built_nodes: list[str] = field(default_factory=list)  # models, seeds and snapshots dbt built (built)
    tests_run: int | None = None  # dbt's data tests in this build, and how many passed (built)
    tests_passed: int | None = None
    error: str | None = None
    newest_files: dict[str, str] = field(
        default_factory=dict
    )  # per dataset, the newest accepted file read (built, failed)
    loaded: dict[str, int] = field(
        default_factory=dict
    )  # per dataset, the accepted files this build loaded (read) first
    snapshot: int | None = None  # the lake's newest snapshot when the build ended: `landing sql --at <build>` reads it
    reason: str | None = None  # why it was run, when someone said (a rollback's reason)
    project: str | None = None  # the dbt project's fingerprint it built with (a rollback to it compares the code)
    stages: dict[str, float] = field(
        default_factory=dict
    )  # when the run began ("run"), was ready to load ("prepared"), loaded ("loaded"), dbt ended ("dbt"), readers saw it ("published")

    def as_dict(self) -> dict:
        return {**asdict(self), "status": self.status.value}


_FIELDS = {f.name for f in fields(BuildRecord)}


def append(path: Path, record: BuildRecord) -> None:
    """Add one record (one JSON line; appends of a line are atomic enough for one writer at a time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(record.as_dict()) + "\n")


def read(path: Path) -> list[BuildRecord]:
    """Every record, oldest first (the one being appended is not there yet); a missing log is an empty one."""
    try:
        text = path.read_text()
    except OSError:
        return []
    # a reader can see an append in progress: a last line without its newline is not a record yet
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
    records = []
    for line in lines:
        if line.strip():
            data = json.loads(line)
            records.append(
                BuildRecord(**{k: v for k, v in data.items() if k in _FIELDS} | {"status": BuildStatus(data["status"])})
            )
    return records


class UnknownPoint(ValueError):
    """`--at` names no build, snapshot or time the lake knows."""


def snapshot_at(settings: Settings, at: str) -> int:
    """The lake's snapshot for `--at`: a build (its flow run id, or the first 8 or more characters of it), a snapshot
    number, or a time (ISO 8601, UTC unless it says otherwise): the newest snapshot at that time. UnknownPoint when
    none matches, or the snapshot is past the retention (expired by maintenance)."""
    from datetime import datetime, timezone

    from landing import lake

    at = at.strip()
    builds = [r for r in read(settings.builds_log) if r.flow_run_id and r.snapshot is not None]
    matches = [r for r in builds if len(at) >= 8 and r.flow_run_id.startswith(at)]  # before numbers: ids can be digits
    try:
        when = None if matches or at.isdigit() else datetime.fromisoformat(at)
    except ValueError:
        when = None
    if not matches and not at.isdigit() and when is None:
        raise UnknownPoint(
            f"no build {at!r} in {settings.builds_log}: give a build's flow run id (8 characters or more), a snapshot "
            "number, or a time such as 2026-12-06T14:00"
        )
    with lake.connect(settings) as con:
        oldest, newest = con.execute("select min(snapshot_id), max(snapshot_id) from lake.snapshots()").fetchone()
        if when is not None:
            when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
            found = con.execute(
                "select max(snapshot_id) from lake.snapshots() where snapshot_time <= ?", [when]
            ).fetchone()[0]
            if found is None:
                first = con.execute("select min(snapshot_time) from lake.snapshots()").fetchone()[0]
                raise UnknownPoint(
                    f"the lake has no snapshot at or before {when:%Y-%m-%d %H:%M:%S %Z}: its oldest kept is from "
                    f"{first:%Y-%m-%d %H:%M:%S %Z}"
                )
            return found
    found = matches[-1].snapshot if matches else int(at)
    if found > newest:
        raise UnknownPoint(f"snapshot {found} is not in the lake yet: its newest is {newest}")
    if found < oldest:
        raise UnknownPoint(
            f"snapshot {found} ({at}) is not in the lake: it keeps snapshots {oldest} to {newest}, the older ones "
            f"expired after LANDING_SNAPSHOT_RETENTION_HOURS ({settings.snapshot_retention_hours:g} h)"
        )
    return found
