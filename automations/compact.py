"""Accepted files after loading: past `accepted_retention_days`, a day's loaded JSON files become one compressed part.

A part holds every field of every row of its files as they landed, each row with the accepted file it came from
(`_landing_file`), in the dataset's own format: the dataset's reader reads it exactly as it read the files, so a
rebuild from parts gives the same rows, and a column declared later is found in them. The raw table already holds
the rows, so a build never reads a part; only a reload (`landing rebuild`, a contract change) does, one read per day.
"""

from __future__ import annotations

import bisect
import gzip
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from landing.catalog import Dataset
from landing.reader import function_name, objects_call, quote_literal
from landing import lake
from landing.settings import Settings
from automations.tables import HISTORY, PARTS

log = logging.getLogger("landing.compact")

COMPACTED_DIR = "_compacted"  # <LANDING_ACCEPTED_ROOT>/_compacted/<dataset>/<day>-<n>.jsonl.gz
FILE_KEY = "_landing_file"  # in each row of a part: the accepted file it came from
PART_SUFFIX = ".jsonl.gz"
CHUNK = 500


@dataclass
class Compacted:
    """What one compaction did for one dataset."""

    dataset: str
    parts: list[str] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    seconds: float = 0.0


def compactable(ds: Dataset) -> bool:
    """JSON datasets: a part in the dataset's own format reads the same. CSV and Parquet files stay as they landed."""
    return function_name(ds.location).startswith(("read_json", "read_ndjson"))


def parts_folder(settings: Settings, ds: Dataset) -> Path:
    return settings.accepted / COMPACTED_DIR / ds.name


def part_names(settings: Settings, ds: Dataset) -> list[str]:
    """The dataset's parts, sorted (by day): one small directory read."""
    try:
        return sorted(
            n for n in os.listdir(parts_folder(settings, ds)) if n.endswith(PART_SUFFIX) and not n.startswith(".")
        )
    except FileNotFoundError:
        return []


def part_id(ds: Dataset, name: str) -> str:
    """What names a compacted part wherever the folder is mounted: `_compacted/<dataset>/<day>-<n>.jsonl.gz`."""
    return f"{COMPACTED_DIR}/{ds.name}/{name}"


def parts_ddl() -> str:
    return f"create table if not exists {PARTS} (dataset varchar, part varchar, files bigint, rows bigint, compacted_at timestamptz)"


def compact(con, settings: Settings, ds: Dataset, now: datetime | None = None) -> Compacted:
    """Fold the dataset's loaded accepted files older than the retention into one part per landing day, then delete
    them. Called by a build with the writer's slot, after its load; costs a bisect of the listing when nothing is old."""
    started = time.perf_counter()
    done = Compacted(ds.name)
    if settings.accepted_retention_days <= 0 or not compactable(ds):
        return done
    cutoff = ((now or datetime.now(timezone.utc)) - timedelta(days=settings.accepted_retention_days)).strftime(
        "%Y%m%dT%H%M%S%fZ"
    )
    names = ds.data_names()
    old = names[: bisect.bisect_left(names, cutoff)]  # accepted names sort by landing time
    if not old:
        return done
    folder = str(ds.accepted_path)
    paths = [f"{folder}/{n}" for n in old]
    ids = {p: ds.file_id(p) for p in paths}
    con.execute(parts_ddl())
    facts = dict(
        con.execute(
            f"select accepted_file, compacted_into from {HISTORY} where dataset = ? and accepted_file in "
            "(select unnest(?::varchar[]))",
            [ds.name, list(ids.values())],
        ).fetchall()
    )
    # in a part already (a build stopped between the part and the deletes): deleted now; not loaded yet: kept
    gone = [p for p in paths if facts.get(ids[p]) and os.path.exists(settings.accepted / facts[ids[p]])]
    todo = [p for p in paths if ids[p] in facts and p not in gone]
    by_day: dict[str, list[str]] = {}
    for p in todo:
        by_day.setdefault(os.path.basename(p)[:8], []).append(p)
    out = parts_folder(settings, ds)
    out.mkdir(parents=True, exist_ok=True)
    existing = part_names(settings, ds)
    for day, files in sorted(by_day.items()):
        n = sum(1 for e in existing if e.startswith(day + "-"))
        part = out / f"{day}-{n}{PART_SUFFIX}"
        existing.append(part.name)
        tmp = out / f".{part.name}.tmp"
        rows = 0
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as fh:
            for i in range(0, len(files), CHUNK):
                # every field as it landed, in the file's own order, with the file it came from
                for (line,) in con.execute(
                    f"select json_merge_patch(json, json_object('{FILE_KEY}', "
                    f"{quote_literal(ds.accepted_relative + '/')} || parse_filename(filename)))::varchar "
                    f"from {objects_call(ds, files[i : i + CHUNK])}"
                ).fetchall():
                    fh.write(line)
                    fh.write("\n")
                    rows += 1
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        con.execute("begin")
        try:
            con.execute(
                f"update {HISTORY} set compacted_into = ? where dataset = ? and accepted_file in "
                "(select unnest(?::varchar[]))",
                [part_id(ds, part.name), ds.name, [ids[p] for p in files]],
            )
            con.execute(f"delete from {PARTS} where dataset = ? and part = ?", [ds.name, part_id(ds, part.name)])
            con.execute(
                f"insert into {PARTS} values (?, ?, ?, ?, now())", [ds.name, part_id(ds, part.name), len(files), rows]
            )
            con.execute("commit")
        except Exception:
            lake.abandon(con)
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, part)
        _fsync_dir(out)
        gone += files
        done.parts.append(str(part))
        done.files += len(files)
        done.rows += rows
    for p in gone:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    _fsync_dir(ds.accepted_path)
    done.seconds = time.perf_counter() - started
    if done.parts:
        log.info(
            "%s: compacted %d loaded file(s) older than %g day(s) into %d part(s) in %.2f s",
            ds.name,
            done.files,
            settings.accepted_retention_days,
            len(done.parts),
            done.seconds,
        )
    return done


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
