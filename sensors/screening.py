"""The sensor's screening of dropped files: decided at once, or read and identified for judging."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field

from landing.catalog import Catalog, Dataset
from landing.events import event_id
from landing.ledger import FileRecord, Ledger
from landing.reader import digest

log = logging.getLogger("landing.sensor")

TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", "~")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") or name.endswith(TEMP_SUFFIXES)


def below(path: str, prefix: str) -> str:
    """`path` relative to the folder `prefix` names (with its trailing separator)."""
    return path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, prefix)


class SayOnce:
    """Logs a line about a path once, not on every filesystem event for it."""

    def __init__(self) -> None:
        self._said: set[tuple[str, str]] = set()

    def __call__(self, path: str, message: str, level: int = logging.INFO) -> None:
        if (path, message) not in self._said:
            self._said.add((path, message))
            log.log(level, "%s", message)


@dataclass(frozen=True)
class Candidate:
    """A complete dropped file, read and identified, waiting for judging."""

    path: str
    real: str
    dataset: Dataset
    stat: os.stat_result
    sha256: str
    event_id: str


@dataclass(frozen=True)
class ToQuarantine:
    """A file to quarantine without judging it: over the size cap, or unreadable."""

    path: str
    dataset: Dataset
    stat: os.stat_result
    reason: str


@dataclass(frozen=True)
class Unfinished:
    """A file recorded as accepted whose move a crash interrupted: the move is all that is left to do."""

    path: str
    real: str
    accepted: str
    dataset: Dataset


@dataclass
class Batch:
    """What screening found for files screened together: the decisions it made, the candidates to judge per dataset,
    the work it leaves to the decider (quarantines, duplicates, unfinished moves), and files that wait for another
    batch (the same content as a file of the batch in flight, not yet recorded)."""

    decisions: dict[str, str] = field(default_factory=dict)
    todo: dict[str, list[Candidate]] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)
    later: list[str] = field(default_factory=list)
    quarantine: list[ToQuarantine] = field(default_factory=list)
    duplicates: list[tuple[Candidate, str]] = field(default_factory=list)  # the candidate, the file it repeats
    unfinished: list[Unfinished] = field(default_factory=list)


class Screener:
    """Which dropped files need judging, each read once (its hash) and identified (dataset, sha256, event id);
    temporary, hidden, foreign and unchanged files decided at once, duplicates found against the ledger. Reads the
    ledger, never writes it: what is to be done is in the Batch it returns."""

    def __init__(
        self,
        catalog: Catalog,
        ledger: Ledger,
        root_prefix: str,
        own_prefixes: tuple[str, ...],
        max_file_bytes: int,
        say: SayOnce,
    ):
        self.catalog, self.ledger, self.say = catalog, ledger, say
        self.root_prefix, self.own_prefixes, self.max_file_bytes = root_prefix, own_prefixes, max_file_bytes

    def screen_many(self, paths: list[str], inflight: Batch | None = None) -> Batch:
        """Screen files and find duplicates, against the ledger and `inflight`, a batch screened but not yet
        recorded (a file with the same content as one of its files waits in `later`)."""
        batch = Batch()
        paths = list(dict.fromkeys(paths))
        records = self.ledger.files_for(paths)
        candidates: list[Candidate] = []
        for path in paths:
            found = self.screen(path, records.get(path))
            if isinstance(found, str):
                batch.decisions[path] = found
            elif isinstance(found, ToQuarantine):
                batch.quarantine.append(found)
            elif isinstance(found, Unfinished):
                batch.unfinished.append(found)
            else:
                candidates.append(found)
        known = self.ledger.event_owners([c.event_id for c in candidates])
        owners = dict(known)
        for c in candidates:
            if inflight is not None and c.event_id in inflight.event_ids and c.event_id not in owners:
                batch.later.append(c.path)  # decided once the batch in flight is recorded or quarantined
                continue
            if known.get(c.event_id) == c.path:  # these bytes were recorded from this very name before
                rec = records.get(c.path)
                if rec and rec.accepted_path and rec.sha256 == c.sha256 and not os.path.exists(rec.accepted_path):
                    batch.unfinished.append(Unfinished(c.path, c.real, rec.accepted_path, c.dataset))
                else:  # dropped again (cp twice): the first drop's record stays, for `explain` and the loader
                    self.say(
                        f"{c.path}:{c.stat.st_mtime_ns}",
                        f"{c.dataset.name} {os.path.basename(c.path)}: the same content was accepted from this name "
                        "before; left in place and not announced",
                    )
                    batch.decisions[c.path] = "duplicate"
                continue
            first = owners.setdefault(c.event_id, c.path)  # also catches a duplicate within the batch
            if first != c.path:
                batch.duplicates.append((c, first))
            else:
                batch.todo.setdefault(c.dataset.name, []).append(c)
                batch.event_ids.add(c.event_id)
        return batch

    def screen(self, path: str, rec: FileRecord | None) -> str | Candidate | ToQuarantine | Unfinished:
        """A decision for a file that needs no judging, the work left for one that does not either, else the file
        read and identified."""
        name = os.path.basename(path)
        if is_temp_name(name):
            return "ignored: temporary or hidden name"
        absolute = os.path.abspath(path)
        if ".." in path.split(os.sep) or not absolute.startswith(self.root_prefix):
            self.say(path, f"{path}: refused, the name leaves the landing root", logging.WARNING)
            return "refused"
        if absolute.startswith(self.own_prefixes):
            return "ignored: accepted or quarantined"
        ds = self.catalog.dataset_for_path(absolute)
        if ds is None:
            self.say(path, f"{path}: unmatched, no dbt source has this folder and pattern; ignored")
            return "unmatched"
        try:
            st = os.lstat(absolute)
            real = absolute
            if stat.S_ISLNK(st.st_mode):  # only a link can lead out of the root
                real = os.path.realpath(absolute)
                if not real.startswith(self.root_prefix):
                    self.say(
                        path,
                        f"{path}: refused, a symlink to {real}, outside the landing root; not read",
                        logging.WARNING,
                    )
                    return "refused"
                st = os.stat(real)
        except FileNotFoundError:
            return "gone"
        if not stat.S_ISREG(st.st_mode):  # a directory, FIFO or device: reading it could block or mean nothing
            self.say(path, f"{ds.name} {name}: ignored, not a regular file", logging.WARNING)
            return "ignored: not a regular file"
        if rec and (rec.size, rec.mtime_ns) == (st.st_size, st.st_mtime_ns):
            if rec.status == "duplicate":
                return "unchanged"
            if rec.status in ("pending", "announced") and rec.accepted_path and not os.path.exists(rec.accepted_path):
                return Unfinished(path, real, rec.accepted_path, ds)  # a crash came between the record and the move
        if st.st_size > self.max_file_bytes:
            return ToQuarantine(
                path,
                ds,
                st,
                f"file is {st.st_size} bytes, over the {self.max_file_bytes}-byte cap (LANDING_MAX_FILE_BYTES)",
            )
        try:
            sha256, problem = digest(real)  # one read: the hash, and whether a gzip stream is whole
        except OSError as exc:
            return ToQuarantine(path, ds, st, f"unreadable: {exc.strerror}")
        if problem:
            return ToQuarantine(path, ds, st, problem)
        return Candidate(path, real, ds, st, sha256, str(event_id(ds.name, sha256)))
