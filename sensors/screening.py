"""The sensor's screening of dropped files: decided at once, or read and identified for judging."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from landing.catalog import Dataset
from landing.events import event_id
from landing.ledger import FileRecord


log = logging.getLogger("landing.sensor")

TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", "~")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") or name.endswith(TEMP_SUFFIXES)


def below(path: str, prefix: str) -> str:
    """`path` relative to the folder `prefix` names (with its trailing separator)."""
    return path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, prefix)


@dataclass(frozen=True)
class Candidate:
    """A complete dropped file, read and identified, waiting for validation."""

    path: str
    real: str
    dataset: Dataset
    stat: os.stat_result
    sha256: str
    event_id: str


@dataclass
class Batch:
    """Files screened together: decided ones, candidates to validate per dataset, and files that wait for another
    batch (same content as one of its files, not yet recorded)."""

    decisions: dict[str, str] = field(default_factory=dict)
    todo: dict[str, list[Candidate]] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)
    later: list[str] = field(default_factory=list)


class Screening:
    """Screening: which dropped files need a decision, each read once and identified (dataset, sha256, event id); temporary, hidden, foreign and unchanged files decided at once, duplicates found. A part of Sensor (sensors/sensor.py), which holds the state."""

    def _say_once(self, path: str, message: str, level: int = logging.INFO) -> None:
        """Log a decision about `path` once, not on every filesystem event for it."""
        if (path, message) not in self._said:
            self._said.add((path, message))
            log.log(level, "%s", message)

    def _screen_many(self, paths: list[str], inflight: "Batch | None" = None) -> "Batch":
        """Screen files (decisions for those needing no validation) and find duplicates, against the ledger and
        `inflight`, a batch screened but not yet recorded (a file with the same content as one of its files waits)."""
        batch = Batch()
        paths = list(dict.fromkeys(paths))
        records = self.ledger.files_for(paths)
        candidates: list[Candidate] = []
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

    def _screen(self, path: str, rec: "FileRecord | None") -> "str | Candidate":
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
        return Candidate(path, real, ds, st, digest, str(event_id(ds.name, digest)))

    def _duplicate(self, c: "Candidate", owner: str) -> str:
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
