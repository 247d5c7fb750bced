"""The sensor's decisions: accept (ledger first, then the move) or quarantine with the reason."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
from pathlib import Path

from landing.catalog import Dataset
from landing.contract import QUARANTINE_DIR as QUARANTINE
from landing.contract import accepted_name, landing_stamp
from landing.events import LandedFile, file_rejected
from landing.reader import InvalidFile
from sensors.screening import Batch, Candidate, below

log = logging.getLogger("landing.sensor")


class Deciding:
    """Deciding: a judged batch accepted (recorded in the ledger with its event, then moved into the accepted
    area under the contract name) or quarantined with its reason. A part of Sensor (sensors/sensor.py), which
    holds the state."""

    def _finish(self, batch: "Batch", verdicts: dict[str, tuple[int, tuple[str, ...]] | InvalidFile]) -> dict[str, str]:
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

    def _accept(self, good: list[tuple["Candidate", tuple[int, tuple[str, ...]]]]) -> dict[str, str]:
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
                relative_path=below(accepted, self._accepted_prefix),
                bytes=c.stat.st_size,
                sha256=c.sha256,
                rows=rows,
                landed_at=stamp.isoformat(),
                producer="sensor",
                dropped_as=below(os.path.abspath(c.path), self._root_prefix),
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
