"""The sensor's decisions: accept (ledger first, then the move) or quarantine with the reason."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from landing.catalog import Dataset
from landing.contract import QUARANTINE_DIR as QUARANTINE
from landing.contract import accepted_name, landing_stamp
from landing.events import LandedFile, file_rejected
from landing.ledger import Ledger
from landing.reader import InvalidFile
from sensors.screening import Batch, Candidate, below

log = logging.getLogger("landing.sensor")


def publish(src: str | Path, dest: str | Path) -> None:
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


class Decider:
    """Carries out a screened and judged batch: valid files recorded in the ledger with their events (one
    transaction), then moved into the accepted area under the contract's name; invalid ones quarantined with their
    reason; duplicates recorded and left in place; moves a crash interrupted finished. `announce` is called when
    events wait in the ledger's outbox."""

    def __init__(
        self, root: Path, ledger: Ledger, accepted_prefix: str, root_prefix: str, announce: Callable[[], None]
    ):
        self.root, self.ledger, self.announce = root, ledger, announce
        self.accepted_prefix, self.root_prefix = accepted_prefix, root_prefix

    def decide(self, batch: Batch, verdicts: dict) -> dict[str, str]:
        """Every decision of the batch but its `later` files, carried out."""
        decisions = dict(batch.decisions)
        for u in batch.unfinished:
            try:
                publish(u.real, u.accepted)
            except OSError as exc:  # one move that cannot finish never holds up the rest of the batch
                log.warning(
                    "%s %s: recorded as accepted, but the move to %s failed (%s); left in place and tried again on "
                    "the next scan",
                    u.dataset.name,
                    Path(u.path).name,
                    u.accepted,
                    exc,
                )
                decisions[u.path] = "left in place: the move failed"
                continue
            log.info(
                "%s %s: accepted as %s (a move a restart interrupted, finished)",
                u.dataset.name,
                Path(u.path).name,
                Path(u.accepted).name,
            )
            decisions[u.path] = "accepted"
        for q in batch.quarantine:
            decisions[q.path] = self.quarantine(Path(q.path), q.dataset, q.stat, q.reason, None)
        for c, owner in batch.duplicates:
            decisions[c.path] = self.duplicate(c, owner)
        good = []
        for items in batch.todo.values():
            for c in items:
                verdict = verdicts[c.real]
                if isinstance(verdict, InvalidFile):
                    decisions[c.path] = self.quarantine(Path(c.path), c.dataset, c.stat, str(verdict), c.sha256)
                else:
                    good.append((c, verdict))
        decisions.update(self.accept(good))
        if any(d == "accepted" for d in decisions.values()):
            self.announce()
        return decisions

    def accept(self, good: list[tuple[Candidate, tuple[int, tuple[str, ...]]]]) -> dict[str, str]:
        """Record the files and their events (one transaction), then move each into the accepted area under the
        contract's name. A crash between the two is finished on the next start (screening finds it Unfinished)."""
        records, moves = [], []
        for c, (rows, undeclared) in good:
            ds = c.dataset
            stamp = landing_stamp()
            name = os.path.basename(c.path)
            accepted = os.path.join(ds.accepted_folder, accepted_name(stamp, c.sha256, ds.suffix_for(name)))
            landed = LandedFile(
                dataset=ds.name,
                path=accepted,
                relative_path=below(accepted, self.accepted_prefix),
                bytes=c.stat.st_size,
                sha256=c.sha256,
                rows=rows,
                landed_at=stamp.isoformat(),
                producer="sensor",
                dropped_as=below(os.path.abspath(c.path), self.root_prefix),
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
                    undeclared={"declared": ds.declared_digest, "columns": list(undeclared)},
                )
            )
            moves.append((c, accepted, rows, undeclared))
        if records:
            self.ledger.record_many(records)
        for c, accepted, rows, undeclared in moves:
            publish(c.real, accepted)
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

    def duplicate(self, c: Candidate, owner: str) -> str:
        """Record a file whose content was accepted before (as `owner`); it stays where it was dropped."""
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
        self.announce()
        return "quarantined"
