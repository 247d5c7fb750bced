"""The durable ledger: one SQLite file recording every landed file and an outbox of events not yet sent."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path


SCHEMA = """
create table if not exists files (
    path text primary key,
    dataset text not null,
    sha256 text not null,
    size integer not null,
    mtime_ns integer not null,
    event_id text,
    status text not null,          -- pending | announced | duplicate | quarantined
    reason text,
    updated_at real not null,
    accepted_path text,            -- where an accepted file lives (what dbt reads); null for the others
    quarantined_to text,           -- where a quarantined file was moved; null for the others
    undeclared text                -- an accepted file's undeclared columns, and the declaration they were judged
                                   -- against: {"declared": digest, "columns": [...]}; null when not judged
);
create table if not exists outbox (
    event_id text primary key,     -- deterministic: uuid5(dataset, sha256) for landing.file.created
    dataset text not null,
    path text not null,
    event_json text not null,
    attempts integer not null default 0,
    next_attempt_at real not null default 0,
    created_at real not null,
    sent_at real
);
create index if not exists outbox_unsent on outbox (sent_at) where sent_at is null;
"""


_FIELDS = "path, dataset, sha256, size, mtime_ns, event_id, status, reason, accepted_path, quarantined_to, undeclared"


@dataclass(frozen=True)
class FileRecord:
    path: str
    dataset: str
    sha256: str
    size: int
    mtime_ns: int
    event_id: str | None
    status: str
    reason: str | None
    accepted_path: str | None = None
    quarantined_to: str | None = None
    undeclared: str | None = None  # as judged on acceptance: {"declared": digest, "columns": [...]} (JSON)

    def undeclared_columns(self, declared_digest: str) -> tuple[str, ...] | None:
        """The columns the file carries that its source does not declare, as judged on acceptance against the
        declaration `declared_digest` names (Dataset.declared_digest); None when not judged, or against another."""
        if self.undeclared is None:
            return None
        judged = json.loads(self.undeclared)
        return tuple(judged["columns"]) if judged.get("declared") == declared_digest else None


class Ledger:
    """Thread-safe access to the ledger; every change is one transaction, so kill -9 loses nothing committed."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._use_wal()
        # WAL with synchronous=normal survives kill -9 (only a power cut can lose the last commits, and then the
        # start-up scan re-decides those files: same content, same event id, stored once by the server).
        self._db.execute("pragma synchronous=normal")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("pragma table_info(files)")}
        for column in ("accepted_path", "quarantined_to", "undeclared"):  # a ledger from before these
            if column not in columns:
                self._db.execute(f"alter table files add column {column} text")
        self._db.execute("create index if not exists files_accepted on files (accepted_path)")
        self._db.execute("create index if not exists files_event on files (event_id)")  # mark_sent looks files up by it

    def _use_wal(self) -> None:
        # Switching a new file to WAL needs it to itself and fails at once, without the busy timeout, when another
        # process or thread opens the same new ledger at the same moment (two exports landing concurrently).
        for attempt in range(200):
            try:
                if self._db.execute("pragma journal_mode").fetchone()[0] != "wal":
                    self._db.execute("pragma journal_mode=wal")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 199:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def file(self, path: str) -> FileRecord | None:
        return self.files_for([path]).get(path)

    def files_for(self, paths: list[str]) -> dict[str, FileRecord]:
        """The records of those of `paths` the ledger has seen (a lookup per batch, not per file)."""
        found: dict[str, FileRecord] = {}
        with self._lock:
            for i in range(0, len(paths), 500):
                chunk = paths[i : i + 500]
                rows = self._db.execute(
                    f"select {_FIELDS} from files where path in ({','.join('?' * len(chunk))})", chunk
                )
                found.update((row[0], FileRecord(*row)) for row in rows)
        return found

    def event_owners(self, event_ids: list[str]) -> dict[str, str]:
        """event id → the path first recorded with it, for those of `event_ids` the outbox holds."""
        found: dict[str, str] = {}
        with self._lock:
            for i in range(0, len(event_ids), 500):
                chunk = event_ids[i : i + 500]
                rows = self._db.execute(
                    f"select event_id, path from outbox where event_id in ({','.join('?' * len(chunk))})", chunk
                )
                found.update(rows)
        return found

    def backlog(self, entries) -> "Backlog":
        """Files found in the drop folders, `(ctime_ns, path, size, mtime_ns, settled)` each, narrowed to those the
        ledger does not know as they are now, or knows as accepted with the move not done, and kept in a temporary
        table, so any number of them costs the same memory. Read them back with `Backlog.chunks`, oldest change time
        first."""
        with self._lock:
            self._db.execute(
                "create temp table if not exists backlog (ctime_ns integer, path text, size integer, "
                "mtime_ns integer, settled integer)"
            )
            self._db.execute("delete from backlog")
            self._db.execute("begin")
            try:
                self._db.executemany("insert into backlog values (?, ?, ?, ?, ?)", entries)
                known = (
                    "select b.rowid, f.accepted_path from backlog b join files f "
                    "on f.path = b.path and f.size = b.size and f.mtime_ns = b.mtime_ns"
                )
                # a file recorded as accepted whose accepted file is missing stays: a crash came between the record
                # and the move, which the screener finds to finish (rare: checked one by one)
                done = [
                    (rowid,)
                    for rowid, accepted in self._db.execute(known + " where f.accepted_path is not null").fetchall()
                    if os.path.exists(accepted)
                ]
                self._db.executemany("delete from backlog where rowid = ?", done)
                self._db.execute(
                    f"delete from backlog where rowid in (select rowid from ({known}) where accepted_path is null)"
                )
                self._db.execute("commit")
            except BaseException:
                self._db.execute("rollback")
                raise
            self._db.execute("create index if not exists temp.backlog_order on backlog (ctime_ns)")
            total = self._db.execute("select count(*) from backlog").fetchone()[0]
        return Backlog(self, total)

    def _backlog_after(self, after: tuple[int, int], limit: int) -> list[tuple[int, int, str, bool]]:
        with self._lock:
            return self._db.execute(
                "select ctime_ns, rowid, path, settled from backlog where (ctime_ns, rowid) > (?, ?) "
                "order by ctime_ns, rowid limit ?",
                (*after, limit),
            ).fetchall()

    def event_owner(self, event_id: str) -> str | None:
        """The path first recorded with this event id (same dataset and content), if any."""
        return self.event_owners([event_id]).get(event_id)

    def record(
        self,
        path: str,
        dataset: str,
        sha256: str,
        size: int,
        mtime_ns: int,
        status: str,
        event_id: str | None = None,
        reason: str | None = None,
        event: dict | None = None,
        sent: bool = False,
        hold_seconds: float = 0.0,
        accepted_path: str | None = None,
        quarantined_to: str | None = None,
        undeclared: dict | None = None,
    ) -> None:
        """Record a file decision and, with `event`, put the event in the outbox, in one transaction.

        `hold_seconds` keeps the outbox's sender (the sensor) off the event for a while: its producer sends it itself.
        """
        self.record_many(
            [
                dict(
                    path=path,
                    dataset=dataset,
                    sha256=sha256,
                    size=size,
                    mtime_ns=mtime_ns,
                    status=status,
                    event_id=event_id,
                    reason=reason,
                    event=event,
                    sent=sent,
                    hold_seconds=hold_seconds,
                    accepted_path=accepted_path,
                    quarantined_to=quarantined_to,
                    undeclared=undeclared,
                )
            ]
        )

    def record_many(self, records: list[dict]) -> None:
        """`record` for many files in one transaction (each dict holds record's keyword arguments)."""
        now = time.time()
        with self._lock:
            self._db.execute("begin immediate")
            try:
                self._db.executemany(
                    "insert or replace into files (path, dataset, sha256, size, mtime_ns, event_id, status, reason, "
                    "updated_at, accepted_path, quarantined_to, undeclared) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            r["path"],
                            r["dataset"],
                            r["sha256"],
                            r["size"],
                            r["mtime_ns"],
                            r.get("event_id"),
                            r["status"],
                            r.get("reason"),
                            now,
                            r.get("accepted_path"),
                            r.get("quarantined_to"),
                            None if r.get("undeclared") is None else json.dumps(r["undeclared"]),
                        )
                        for r in records
                    ],
                )
                self._db.executemany(
                    "insert or ignore into outbox (event_id, dataset, path, event_json, created_at, sent_at, "
                    "next_attempt_at) values (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            r["event"]["id"],
                            r["dataset"],
                            r["path"],
                            json.dumps(r["event"]),
                            now,
                            now if r.get("sent") else None,
                            now + r.get("hold_seconds", 0.0),
                        )
                        for r in records
                        if r.get("event") is not None
                    ],
                )
                self._db.execute("commit")
            except BaseException:
                self._db.execute("rollback")
                raise

    def forget(self, path: str) -> None:
        """Drop a file's record and its unsent event: the producer recorded it, then failed to publish the file."""
        with self._lock:
            self._db.execute("begin immediate")
            self._db.execute("delete from outbox where path = ? and sent_at is null", (path,))
            self._db.execute("delete from files where path = ?", (path,))
            self._db.execute("commit")

    def release(self, event_ids: list[str]) -> None:
        """Hand held events to the outbox's sender now."""
        with self._lock:
            self._db.executemany("update outbox set next_attempt_at = 0 where event_id = ?", [(e,) for e in event_ids])

    def due(self, limit: int = 500, now: float | None = None) -> list[tuple[str, dict]]:
        """Unsent events whose next attempt is due, oldest first."""
        return [(eid, json.loads(text)) for eid, _, _, text in self.due_texts(limit, now)]

    def due_texts(self, limit: int = 500, now: float | None = None) -> list[tuple[str, str, str, str]]:
        """`(event id, dataset, path, event JSON)` of unsent events whose next attempt is due, oldest first: what the
        sender sends as it is stored."""
        now = time.time() if now is None else now
        with self._lock:
            return self._db.execute(
                "select event_id, dataset, path, event_json from outbox where sent_at is null and next_attempt_at <= ? "
                "order by created_at, rowid limit ?",
                (now, limit),
            ).fetchall()

    def pending_count(self) -> int:
        with self._lock:
            return self._db.execute("select count(*) from outbox where sent_at is null").fetchone()[0]

    def mark_sent(self, event_ids: list[str]) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("begin immediate")
            self._db.executemany("update outbox set sent_at = ? where event_id = ?", [(now, e) for e in event_ids])
            self._db.executemany(
                "update files set status = 'announced', updated_at = ? where event_id = ? and status = 'pending'",
                [(now, e) for e in event_ids],
            )
            self._db.execute("commit")

    def mark_failed(self, event_ids: list[str], retry_at: float) -> None:
        with self._lock:
            self._db.executemany(
                "update outbox set attempts = attempts + 1, next_attempt_at = ? where event_id = ?",
                [(retry_at, e) for e in event_ids],
            )

    def rows(self) -> list[FileRecord]:
        with self._lock:
            return [FileRecord(*r) for r in self._db.execute(f"select {_FIELDS} from files order by path")]

    def by_quarantined(self, quarantined_to: str) -> FileRecord | None:
        """The record of the file quarantined to `quarantined_to`."""
        with self._lock:
            row = self._db.execute(
                f"select {_FIELDS} from files where quarantined_to = ?", (quarantined_to,)
            ).fetchone()
        return FileRecord(*row) if row else None

    def by_accepted_many(self, accepted_paths: list[str]) -> dict[str, FileRecord]:
        """The records of the files accepted as `accepted_paths` (a lookup per batch, not per file)."""
        found: dict[str, FileRecord] = {}
        index = _FIELDS.split(", ").index("accepted_path")
        with self._lock:
            for i in range(0, len(accepted_paths), 500):
                chunk = accepted_paths[i : i + 500]
                rows = self._db.execute(
                    f"select {_FIELDS} from files where accepted_path in ({','.join('?' * len(chunk))})", chunk
                )
                found.update((row[index], FileRecord(*row)) for row in rows)
        return found

    def by_accepted(self, accepted_path: str) -> FileRecord | None:
        """The record of the file accepted as `accepted_path`."""
        with self._lock:
            row = self._db.execute(f"select {_FIELDS} from files where accepted_path = ?", (accepted_path,)).fetchone()
        return FileRecord(*row) if row else None


class Backlog:
    """The files a scan found and the ledger did not know, read back in chunks in arrival order."""

    def __init__(self, ledger: Ledger, total: int):
        self.ledger = ledger
        self.total = total

    def chunks(self, size: int = 500):
        """Lists of `(path, settled)`, oldest change time first."""
        after = (-1, -1)
        while True:
            rows = self.ledger._backlog_after(after, size)
            if not rows:
                return
            after = rows[-1][:2]
            yield [(path, bool(settled)) for _, _, path, settled in rows]


def ledger_path(state_dir: Path) -> Path:
    return Path(state_dir) / "ledger.sqlite"
