"""Load each accepted file once: its rows appended to the dataset's raw table and its row in the load history, together.

Both are tables of the lake (schema `landing`), so every runner that attaches the lake loads into the same ones, and a
load is one lake commit. dbt's `source()` reads the raw table `landing.<source>__<table>` (see
dbt/macros/landing_source.sql), and the staging
models read only the rows of files loaded since their last build, so a build costs what is new, not what ever landed.
Which files are new is a set difference: the dataset's accepted files less those in `landing.load_history`, so a file
that lands late or out of name order is loaded too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from automations import compact
from automations.compact import part_id
from automations.tables import (
    COUNTER,
    DRIFT,
    HISTORY,
    LOAD_MARKS,
    MODEL_MARKS,
    MODEL_MARKS_COLUMNS,
    PARTS,
    REFRESH_DUE,
    SCHEMA,
)
from landing import lake
from landing.catalog import Dataset
from landing.reader import function_name, objects_call, quote_ident, quote_literal, reader_sql, undeclared_columns
from landing.settings import Settings

log = logging.getLogger("landing.load")

RESCUED = "_rescued"  # a rescue dataset's undeclared fields of each row, as a JSON object (NULL when none)
BATCH = "_landing_batch"  # the load id of the file a raw row came from
ROW = "_landing_row"  # a raw row's place in the read that loaded it: in its file's order (ties: the later wins)
CHUNK = 500  # files per read: one reader call over many files is fast; thousands at once cost memory


def raw_table(ds: Dataset) -> str:
    """The dataset's raw table: every loaded row, the declared columns, its accepted file and its load id."""
    return f"{SCHEMA}.{quote_ident(f'{ds.source}__{ds.table}')}"


@dataclass
class Loaded:
    """What one load did for one dataset."""

    dataset: str
    files: list[str] = field(default_factory=list)  # accepted files loaded, in load order
    rows: int = 0
    first_load_id: int | None = None  # the lowest load id given in this load (None: nothing new)
    seconds: float = 0.0
    reloaded: bool = False  # the raw table was rebuilt (its declared columns changed)
    rejected: dict[str, str] = field(default_factory=dict)  # accepted file → why it was not loaded (set aside)
    newest: str | None = None  # the newest accepted file loaded so far (names sort by landing time)


def _history_ddl() -> str:
    return (
        f"create schema if not exists {SCHEMA}; "
        f"create table if not exists {HISTORY} (load_id bigint, dataset varchar, accepted_file varchar, "
        "dropped_as varchar, sha256 varchar, rows bigint, flow_run_id varchar, loaded_at timestamptz, "
        "undeclared_columns varchar[], compacted_into varchar); "
        f"{compact.parts_ddl()}; "
        f"create table if not exists {DRIFT} (dataset varchar, column_name varchar, files bigint, "
        "first_file varchar, first_loaded_at timestamptz, last_file varchar, last_loaded_at timestamptz); "
        f"create table if not exists {REFRESH_DUE} (dataset varchar); "
        f"create table if not exists {LOAD_MARKS} (dataset varchar, high bigint, files bigint, newest varchar); "
        f"create table if not exists {MODEL_MARKS} {MODEL_MARKS_COLUMNS}; "
        f"create table if not exists {COUNTER} (next_id bigint)"
    )


_READY: list = []  # the lake connections this process has made the tables in (once each: DDL costs a lake look each)


def ensure_tables(con) -> None:
    """The load history and its bookkeeping in the lake, made once per connection; the load counter starts past
    every load id the history has."""
    if any(c is con for c in _READY):
        return
    con.execute("begin")
    try:
        con.execute(_history_ddl())
        con.execute(
            f"insert into {COUNTER} select coalesce((select max(load_id) + 1 from {HISTORY}), 0) "
            f"where not exists (select 1 from {COUNTER})"
        )
        con.execute("commit")
    except BaseException:
        lake.abandon(con)
        raise
    _READY[:] = [c for c in _READY if c is lake._WRITER.get("con")] + [con]


def _new_load_ids(con, n: int) -> list[int]:
    """`n` load ids never given before, in the load's transaction: the counter read and moved. Two writers that
    bypassed the writer's slot both move the counter's row, and the lake refuses the second commit."""
    [(first,)] = con.execute(f"select coalesce(max(next_id), 0) from {COUNTER}").fetchall()
    con.execute(f"update {COUNTER} set next_id = ?", [first + n])
    return list(range(first, first + n))


def _refresh_due(con, dataset: str) -> None:
    """Its raw rows have new load ids: its models must be built from scratch, even if this build fails part-way (the
    next one then still does it); cleared by `refreshed` after a build succeeds."""
    con.execute(f"insert into {REFRESH_DUE} values (?)", [dataset])


def refreshed(settings: Settings, datasets: list[str]) -> None:
    """After a successful build from scratch of `datasets`: no longer due (see _refresh_due)."""
    con = lake.writer(settings)
    con.execute(f"delete from {REFRESH_DUE} where dataset in (select unnest(?::varchar[]))", [datasets])
    for name in datasets:
        known = _KNOWN.get((_database(con), name))
        if known is not None:
            known.due = False


def load_id_ranges(settings: Settings, datasets: list[str]) -> dict[str, tuple[int | None, int | None, bool]]:
    """Per dataset, the lowest and highest load id of its rows in the raw table now, and whether it is due a build
    from scratch (a rollback checks that a mark from the past still matches the raw rows)."""
    con = lake.writer(settings)  # with the writer's slot held (a rollback); it reads, never makes the tables
    made = {
        name
        for (name,) in con.execute(
            "select table_name from duckdb_tables() where database_name = 'lake' and schema_name = ?", [SCHEMA]
        ).fetchall()
    }
    if not {"load_history", "refresh_due"} <= made:
        return {}
    found = {
        d: (low, high, False)
        for d, low, high in con.execute(
            f"select dataset, min(load_id), max(load_id) from {HISTORY} "
            "where dataset in (select unnest(?::varchar[])) group by dataset",
            [datasets],
        ).fetchall()
    }
    for (d,) in con.execute(
        f"select distinct dataset from {REFRESH_DUE} where dataset in (select unnest(?::varchar[]))",
        [datasets],
    ).fetchall():
        low, high, _ = found.get(d, (None, None, True))
        found[d] = (low, high, True)
    return found


def _raw_columns(ds: Dataset) -> list[tuple[str, str]]:
    rescued = [(RESCUED, "json")] if ds.rescue else []
    return [*ds.schema.items(), *rescued, ("filename", "varchar"), (ROW, "bigint"), (BATCH, "bigint")]


def _ensure_raw(con, ds: Dataset) -> bool:
    """The raw table with the declared columns; True when it had other columns, or other required ones, and was
    emptied (a contract change: every accepted file loads again)."""
    wanted = [(c, t.lower()) for c, t in _raw_columns(ds)]
    found = con.execute(
        "select column_name, lower(data_type) from information_schema.columns "
        "where table_catalog = current_database() and table_schema = ? and table_name = ? order by ordinal_position",
        [SCHEMA, f"{ds.source}__{ds.table}"],
    ).fetchall()
    declared = ", ".join(f"{quote_ident(c)} {t}" for c, t in _raw_columns(ds))
    required = json.dumps({"required": sorted(ds.required)})  # the table's comment: the columns no row may lack
    if not found:
        con.execute(f"create table {raw_table(ds)} ({declared})")
        con.execute(f"comment on table {raw_table(ds)} is {quote_literal(required)}")
        return False
    comment = con.execute(
        "select comment from duckdb_tables() where database_name = current_database() and schema_name = ? "
        "and table_name = ?",
        [SCHEMA, f"{ds.source}__{ds.table}"],
    ).fetchone()[0]
    if [c for c, _ in found] == [c for c, _ in wanted] and _same_types(con, found, wanted):
        if comment == required:
            return False
        if not comment:  # a raw table from before the comment, loaded under the same checks: it says so now
            con.execute(f"comment on table {raw_table(ds)} is {quote_literal(required)}")
            return False
    # other columns, or another column became required (rows loaded before may lack it): every file loads again
    con.execute(f"drop table {raw_table(ds)}")
    con.execute(f"create table {raw_table(ds)} ({declared})")
    con.execute(f"comment on table {raw_table(ds)} is {quote_literal(required)}")
    con.execute(f"delete from {HISTORY} where dataset = ?", [ds.name])
    con.execute(f"delete from {LOAD_MARKS} where dataset = ?", [ds.name])
    con.execute(f"delete from {DRIFT} where dataset = ?", [ds.name])
    con.execute(f"delete from {PARTS} where dataset = ?", [ds.name])
    _refresh_due(con, ds.name)
    return True


def _same_types(con, found, wanted) -> bool:
    # the declared type as DuckDB spells it (integer → INTEGER, a struct list → STRUCT(...)[])
    spelled = con.execute("select " + ", ".join(f"typeof(cast(null as {t}))" for _, t in wanted)).fetchone()
    return [t for _, t in found] == [s.lower() for s in spelled]


def _is_json(ds: Dataset) -> bool:
    return function_name(ds.location).startswith(("read_json", "read_ndjson"))


def _file_id_sql(ds: Dataset, column: str) -> str:
    """A reader's file column as the file's id (Dataset.file_id): its accepted folder and name, never the mount."""
    return f"({quote_literal(ds.accepted_relative + '/')} || parse_filename({column}))"


def _read(ds: Dataset, paths: list[str], part: bool = False, extra: str = "") -> str:
    """The declared read of `paths` (landing.reader.reader_sql, with the select expressions `extra`), with each row's
    file id (`filename`) and its place in the read (`_landing_row`: in file order). A compacted `part` gives each
    row's accepted file in its own field."""
    loose = {**ds.schema, compact.FILE_KEY: "VARCHAR"} if part else None
    if part:
        extra += f", {quote_ident(compact.FILE_KEY)}"
    source = _file_id_sql(ds, quote_ident(compact.FILE_KEY) if part else "filename")
    declared = reader_sql(ds, paths, types=loose, extra=extra, with_filename=True)
    drop = f"filename, {quote_ident(compact.FILE_KEY)}" if part else "filename"
    return f"(select * exclude ({drop}), {source} as filename, row_number() over () as {ROW} from {declared})"


def _rescued_sql(ds: Dataset, declared: list[str]) -> str:
    """A JSON object's undeclared fields (`json` less the keys that bind to `declared`: read_json matches a key to a
    column by its exact name, so `FirstName` is not `firstName`), as one JSON object: values as they were, null
    fields left out, NULL when none. Any key is data here, never an identifier: `filename`, `""`, quotes."""
    names = ", ".join(quote_literal(c) for c in declared)
    drop = (
        f"to_json(map_from_entries(list_transform(list_filter(json_keys(json), lambda k: k in ({names})), "
        "lambda k: {'key': k, 'value': NULL::JSON})))"
    )
    return f"nullif(json_merge_patch('{{}}', json_merge_patch(json, {drop})), '{{}}')::json"


def _stage_rows(
    con, ds: Dataset, paths: list[str], part: bool = False, known: dict[str, tuple[str, ...] | None] | None = None
) -> dict[str, tuple[str, ...]]:
    """Read `paths` once into the temp table `landing_rows` (the raw table's columns but the load id); the
    undeclared top-level columns per file id that carries any. `known`: each path's undeclared columns as the sensor
    judged them (the ledger's), trusted where every path has them, so the file is read once here, for its rows. A
    rescue JSON dataset also reads the objects (their `_rescued`), paired with the declared read by position."""
    known = known or {}
    trusted = bool(paths) and not part and all(known.get(p) is not None for p in paths)
    if trusted and not (ds.rescue and _is_json(ds)):
        undeclared = {ds.file_id(p): tuple(known[p]) for p in paths if known[p]}
    elif not _is_json(ds):
        undeclared = {ds.file_id(p): cols for p, cols in undeclared_columns(con, ds, paths).items()}
    else:
        undeclared = None
    if not _is_json(ds) or undeclared is not None:
        if not ds.rescue:
            con.execute(f"create or replace temp table landing_rows as select * from {_read(ds, paths)}")
            return undeclared
        # a rescue CSV or Parquet: `_rescued` from each file's own header, so files whose columns differ only in case
        # (`x`, `X`: one column to a reader of both) keep their own; a read per set of undeclared columns
        groups: dict[tuple[str, ...], list[str]] = {}
        for p in paths:
            groups.setdefault(undeclared.get(ds.file_id(p), ()), []).append(p)
        verb = "create or replace temp table landing_rows as"
        for rescued, group in groups.items():
            pairs = ", ".join(f"{quote_literal(c)}, {quote_ident(c)}" for c in rescued if c)
            extra = (
                f", nullif(json_merge_patch('{{}}', json_object({pairs})), '{{}}')::json as {RESCUED}"
                if pairs
                else f", cast(null as json) as {RESCUED}"
            )
            con.execute(f"{verb} select * from {_read(ds, group, extra=extra)}")
            verb = "insert into landing_rows"
        return undeclared
    key = compact.FILE_KEY
    file_of = _file_id_sql(ds, f"(json->>{quote_literal('$.' + key)})" if part else "filename")
    declared = [*ds.columns, *([key] if part else [])]
    con.execute(
        f"create or replace temp table landing_objects as select {file_of} as filename, json "
        f"from {objects_call(ds, paths)}"
    )
    found = con.execute(
        "select filename, list(distinct k order by k) from (select filename, unnest(json_keys(json)) as k "
        "from landing_objects where json_type(json) = 'OBJECT') where k not in (select unnest(?::varchar[])) "
        "group by filename",
        [sorted(declared)],  # exact names: read_json binds a key to a column only when they are spelled the same
    ).fetchall()
    undeclared = {f: tuple(keys) for f, keys in found if keys}
    rescued = f", o.{RESCUED}" if ds.rescue else ""
    con.execute(
        f"create or replace temp table landing_rows as select t.* exclude (filename, {ROW}){rescued}, t.filename, "
        f"t.{ROW}, "
        f"o.filename as object_file from {_read(ds, paths, part)} t positional join "
        f"(select filename, {_rescued_sql(ds, declared) if ds.rescue else 'null'} as {RESCUED} "
        "from landing_objects) o"
    )
    misaligned = con.execute(
        "select count(*) from landing_rows where object_file is distinct from filename"
    ).fetchone()[0]
    if misaligned:
        raise RejectedFile(
            f"the JSON reader and the object reader disagree on {misaligned} row(s): a file's objects could not be "
            "paired with its rows"
        )
    con.execute("alter table landing_rows drop column object_file")
    con.execute("drop table landing_objects")
    return undeclared


@dataclass
class _Known:
    """What this process knows of a dataset's load state in one lake, kept while the dataset's load mark is what it
    saw: nobody else loaded or reset it since (each read of a lake table costs a few ms)."""

    mark: tuple  # (highest load id, files loaded, newest file) as the lake has it; (None, 0, None): no row yet
    names: set[str] | None = None  # the file ids in its load history (None: not read yet)
    due: bool | None = None  # a build from scratch is due (landing.refresh_due); None: not read yet
    raw: str | None = None  # the declared columns its raw table was last checked against
    drifted: set[str] | None = None  # its undeclared columns in the drift table (None: not read yet)


_KNOWN: dict[tuple[str, str], _Known] = {}  # (the lake's path, dataset) → what this process knows of it
NO_MARK = (None, 0, None)


def _mark(con, ds: Dataset) -> tuple:
    """The dataset's load mark (highest load id, files loaded, newest file): one row of a table with a row per dataset."""
    row = con.execute(f"select high, files, newest from {LOAD_MARKS} where dataset = ?", [ds.name]).fetchall()
    return tuple(row[0]) if row else NO_MARK


def _known(con, ds: Dataset) -> _Known:
    """One read of the dataset's mark; what else this process knew of it is kept while the mark is what it saw."""
    key = (_database(con), ds.name)
    mark = _mark(con, ds)
    known = _KNOWN.get(key)
    if known is None or known.mark != mark:
        known = _KNOWN[key] = _Known(mark)
    return known


def _advance_mark(con, ds: Dataset, ids: list[int], files: list[str], mark: tuple) -> tuple:
    """Fold loaded files into the dataset's mark (`mark`, as read under the writer's slot), in the transaction that
    records their history; the new mark. The row is written, never read here: one lake statement."""
    high, count, newest = mark
    new = (max(ids) if high is None else max(high, max(ids)), count + len(files), max(newest or "", max(files)))
    if high is None:
        con.execute(f"insert into {LOAD_MARKS} values (?, ?, ?, ?)", [ds.name, *new])
    else:
        # relative, as a second writer that bypassed the slot would need it (its stale mark is then dropped)
        con.execute(
            f"update {LOAD_MARKS} set high = greatest(high, ?), files = files + ?, newest = greatest(newest, ?) "
            "where dataset = ?",
            [max(ids), len(files), max(files), ds.name],
        )
    return new


def _database(con) -> str:
    return (
        con.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()[0] or ""
    )


def pending(con, ds: Dataset, known: _Known | None = None) -> list[str]:
    """The dataset's accepted files not in the load history, in name (landing) order: a set difference (a file that
    lands late, with an older name, is new too). Costs one directory listing, shared with the build's signature."""
    folder = str(ds.accepted_path)
    listed = ds.data_names()
    if not listed:
        return []
    known = known or _known(con, ds)
    if known.names is None:  # read once per process, kept while the mark says nobody else loaded
        known.names = {
            r[0] for r in con.execute(f"select accepted_file from {HISTORY} where dataset = ?", [ds.name]).fetchall()
        }
    loaded = known.names
    prefix = ds.accepted_relative + "/"
    return [f"{folder}/{n}" for n in listed if prefix + n not in loaded]


def _provenance(
    settings: Settings, paths: list[str], declared: str = ""
) -> dict[str, tuple[str | None, str | None, tuple | None]]:
    """Per accepted file: the name it was dropped under, its sha256 and its undeclared columns, as the ledger recorded
    them when the file was accepted (the columns None where unknown or judged against another declaration than
    `declared`, Dataset.declared_digest; the sha256 hashed here if unknown)."""
    from landing.ledger import Ledger, ledger_path

    out = {}
    ledger = Ledger(ledger_path(settings.state_dir))
    try:
        records = ledger.by_accepted_many(paths)
        for path in paths:
            record = records.get(path)
            if record:
                judged = record.undeclared_columns(declared)
                if judged is not None:  # the judged file only: the same size and mtime (a rename keeps both)
                    try:
                        st = os.stat(path)
                        judged = judged if (st.st_size, st.st_mtime_ns) == (record.size, record.mtime_ns) else None
                    except OSError:
                        judged = None
                out[path] = (record.path, record.sha256, judged)
            else:
                try:
                    out[path] = (None, hashlib.sha256(Path(path).read_bytes()).hexdigest(), None)
                except FileNotFoundError:  # compacted: its rows are in a part
                    out[path] = (None, None, None)
    finally:
        ledger.close()
    return out


class RejectedFile(ValueError):
    """An accepted file that cannot be loaded: unreadable, or a required column null."""


def _load_chunk(
    con, settings: Settings, ds: Dataset, chunk: list[str], flow_run_id: str | None, known: _Known
) -> tuple[int, dict[str, int]]:
    """One transaction: the chunk's rows and history rows; its first load id and the rows per file (`known` follows
    the commit). RejectedFile (and nothing written) when a file of it cannot be read or leaves a required column
    null."""
    facts = _provenance(settings, chunk, ds.declared_digest)
    ids_of = {p: ds.file_id(p) for p in chunk}
    con.execute("begin")
    try:
        try:
            undeclared = _stage_rows(con, ds, chunk, known={p: facts[p][2] for p in chunk})
        except RejectedFile:
            raise
        except Exception as exc:
            raise RejectedFile(" ".join(str(exc).split())[:500]) from None
        # from the counter, never reused: a model's watermark stays below every load after it, even past a rebuild
        numbers = _new_load_ids(con, len(chunk))
        first = min(numbers)
        ids = dict(zip(chunk, sorted(numbers)))
        con.execute(
            "create or replace temp table landing_chunk as select unnest(?::varchar[]) as accepted_file, "
            "unnest(?::bigint[]) as load_id",
            [[ids_of[p] for p in chunk], [ids[p] for p in chunk]],
        )
        con.execute(
            f"insert into {raw_table(ds)} select r.*, c.load_id from landing_rows r "
            "join landing_chunk c on r.filename = c.accepted_file"
        )
        bad = _lacking_required(con, ds)
        if bad:
            path, why = next(iter(bad.items()))
            raise RejectedFile(f"{Path(path).name}: {why}")
        counts = dict(con.execute("select filename, count(*) from landing_rows group by filename").fetchall())
        mark = _insert_history(
            con,
            ds,
            [ids_of[p] for p in chunk],
            {ids_of[p]: ids[p] for p in chunk},
            {ids_of[p]: facts[p] for p in chunk},
            counts,
            flow_run_id,
            undeclared,
            known.mark,
        )
        drifted = _record_drift(con, ds, undeclared, known.drifted) if undeclared else known.drifted
        con.execute("drop table landing_rows")
        con.execute("commit")
    except Exception:
        lake.abandon(con)
        raise
    known.mark, known.drifted = mark, drifted
    return first, {p: counts.get(ids_of[p], 0) for p in chunk}


def _lacking_required(con, ds: Dataset) -> dict[str, str]:
    """The files of the staged rows (`landing_rows`) with a row lacking a required column, and why: what the source's
    not_null tests would fail on (builds leave those tests to this check)."""
    if not ds.required:
        return {}
    nulls = " or ".join(f"{quote_ident(c)} is null" for c in ds.required)
    which = ", ".join(f"case when {quote_ident(c)} is null then {quote_literal(c)} end" for c in ds.required)
    bad = con.execute(
        f"select filename, list(distinct col) from (select filename, unnest([{which}]) as col "
        f"from landing_rows where {nulls}) where col is not null group by filename order by filename"
    ).fetchall()
    return {
        path: f"the source's not_null test on {', '.join(sorted(cols))} fails "
        f"(not_null_{ds.source}_{ds.table}_{sorted(cols)[0]})"
        for path, cols in bad
    }


def _insert_history(
    con,
    ds: Dataset,
    paths: list[str],
    ids: dict,
    facts: dict,
    counts: dict,
    flow_run_id: str | None,
    undeclared: dict,
    mark: tuple,
    part: str | None = None,
) -> tuple:
    """The history rows of the files `paths` (file ids), in one statement (DuckDB runs an executemany as one statement per row)."""
    con.execute(
        f"insert into {HISTORY} (load_id, dataset, accepted_file, dropped_as, sha256, rows, flow_run_id, loaded_at, "
        "undeclared_columns, compacted_into) select unnest(?::bigint[]), ?, unnest(?::varchar[]), unnest(?::varchar[]), "
        "unnest(?::varchar[]), unnest(?::bigint[]), ?, now(), unnest(?::varchar[][]), ?",
        [
            [ids[p] for p in paths],
            ds.name,
            paths,
            [facts[p][0] for p in paths],
            [facts[p][1] for p in paths],
            [counts.get(p, 0) for p in paths],
            flow_run_id,
            [list(undeclared.get(p, ())) for p in paths],
            part,
        ],
    )
    return _advance_mark(con, ds, [ids[p] for p in paths], paths, mark) if paths else mark


def _pending_parts(con, settings: Settings, ds: Dataset) -> list[str]:
    """The dataset's compacted parts whose rows are not in the raw table (after a reload): a small folder and table."""
    names = compact.part_names(settings, ds)
    if not names:
        return []
    loaded = {r[0] for r in con.execute(f"select part from {PARTS} where dataset = ?", [ds.name]).fetchall()}
    folder = compact.parts_folder(settings, ds)
    return [str(folder / n) for n in names if part_id(ds, n) not in loaded]


def _load_part(
    con, settings: Settings, ds: Dataset, part: str, flow_run_id: str | None, known: _Known
) -> tuple[int | None, dict[str, int]]:
    """One transaction: a compacted part's rows, a history row per accepted file in it, and the part marked loaded;
    its first load id and the rows per file id (`known` follows the commit)."""
    pid = part_id(ds, Path(part).name)
    con.execute("begin")
    try:
        undeclared = _stage_rows(con, ds, [part], part=True)
        # a file of the part that lacks a column required since it was compacted: left out, as its file would be
        lacking = _lacking_required(con, ds)
        if lacking:
            con.execute("delete from landing_rows where filename in (select unnest(?::varchar[]))", [list(lacking)])
            for file_id, why in lacking.items():
                log.warning("%s: %s in the compacted part %s is not loaded: %s", ds.name, file_id, pid, why)
            undeclared = {f: cols for f, cols in undeclared.items() if f not in lacking}
        files = [r[0] for r in con.execute("select distinct filename from landing_rows order by filename").fetchall()]
        numbers = _new_load_ids(con, len(files))
        ids = dict(zip(files, numbers))
        con.execute(
            "create or replace temp table landing_chunk as select unnest(?::varchar[]) as accepted_file, "
            "unnest(?::bigint[]) as load_id",
            [files, numbers],
        )
        con.execute(
            f"insert into {raw_table(ds)} select r.*, c.load_id from landing_rows r "
            "join landing_chunk c on r.filename = c.accepted_file"
        )
        counts = dict(con.execute("select filename, count(*) from landing_rows group by filename").fetchall())
        facts = _provenance(settings, [str(settings.accepted / f) for f in files])
        facts = {f: facts[str(settings.accepted / f)] for f in files}
        mark = _insert_history(con, ds, files, ids, facts, counts, flow_run_id, undeclared, known.mark, pid)
        drifted = _record_drift(con, ds, undeclared, known.drifted) if undeclared else known.drifted
        con.execute(f"insert into {PARTS} values (?, ?, ?, ?, now())", [ds.name, pid, len(files), sum(counts.values())])
        con.execute("drop table landing_rows")
        con.execute("commit")
    except Exception:
        lake.abandon(con)
        raise
    known.mark, known.drifted = mark, drifted
    return (min(numbers) if numbers else None), counts


def _record_drift(con, ds: Dataset, undeclared: dict[str, tuple[str, ...]], drifted: set[str] | None) -> set[str]:
    """Fold one chunk's undeclared columns into the drift table (a row per dataset and column: it stays small); the
    dataset's columns in it after. `drifted`, those before (None: unknown, read here), spares a read of the table
    when no column is new (most loads)."""
    seen = [(c, p) for p, cols in undeclared.items() for c in cols]
    con.execute(
        "create or replace temp table landing_drift as select c as column_name, count(*) as files, "
        "min(p) as first_file, max(p) as last_file from (select unnest(?::varchar[]) as c, "
        "unnest(?::varchar[]) as p) group by c",
        [[c for c, _ in seen], [p for _, p in seen]],
    )
    con.execute(
        f"update {DRIFT} d set files = d.files + n.files, last_file = greatest(d.last_file, n.last_file), "
        "last_loaded_at = now() from landing_drift n where d.dataset = ? and d.column_name = n.column_name",
        [ds.name],
    )
    if drifted is None:
        drifted = {
            r[0] for r in con.execute(f"select column_name from {DRIFT} where dataset = ?", [ds.name]).fetchall()
        }
    new = sorted({c for c, _ in seen} - drifted)
    if new:
        con.execute(
            f"insert into {DRIFT} select ?, n.column_name, n.files, n.first_file, now(), n.last_file, now() "
            "from landing_drift n where n.column_name in (select unnest(?::varchar[]))",
            [ds.name, new],
        )
    return drifted | set(new)


def drift(con) -> list[tuple[str, list[str], int, object]]:
    """Per dataset whose loaded files carried undeclared columns: (dataset, the columns, files, last seen)."""
    try:
        return con.execute(
            f"select dataset, list(column_name order by column_name), max(files), max(last_loaded_at) "
            f"from {DRIFT} group by dataset order by dataset"
        ).fetchall()
    except Exception:  # nothing loaded yet
        return []


def _set_aside(settings: Settings, ds: Dataset, path: str, reason: str) -> str:
    """Move an accepted file that cannot be loaded to the quarantine, with its reason beside it."""
    import os

    from landing.contract import QUARANTINE_DIR

    folder = settings.root / QUARANTINE_DIR / ds.name
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / Path(path).name
    os.replace(path, dest)
    dest.with_name(dest.name + ".reason.txt").write_text(
        f"dataset: {ds.name}\nfile: {path}\nreason: not loaded: {reason}\n"
        "fix the file and drop it again, or change the source's contract and run `landing replay` on this file\n"
    )
    return str(dest)


def load(con, settings: Settings, ds: Dataset, flow_run_id: str | None = None, progress=None) -> Loaded:
    """Append the rows of every accepted file of `ds` not loaded yet, a chunk of files per transaction, each file's
    history row in the same transaction as its rows (a build killed mid-load leaves both or neither). A file that
    cannot be loaded is set aside to the quarantine, named in `rejected`, and the others load."""
    started = time.perf_counter()
    ensure_tables(con)
    done = Loaded(ds.name)
    known = _known(con, ds)  # the one read of a build with nothing new, and of most builds with something
    declared = json.dumps([_raw_columns(ds), sorted(ds.required)])
    if known.raw != declared:  # once per process, and again when someone else loaded or reset the dataset
        con.execute("begin")
        try:
            done.reloaded = _ensure_raw(con, ds)
            con.execute("commit")
        except Exception:
            lake.abandon(con)
            raise
        if done.reloaded:
            known = _KNOWN[(_database(con), ds.name)] = _Known(NO_MARK, set(), True)
        known.raw = declared
    if known.due is None:
        known.due = bool(
            con.execute(f"select count(*) from {REFRESH_DUE} where dataset = ?", [ds.name]).fetchall()[0][0]
        )
    done.reloaded = done.reloaded or known.due
    for part in _pending_parts(con, settings, ds):  # after a reload: one read per compacted day
        first, counts = _load_part(con, settings, ds, part, flow_run_id, known)
        if known.names is not None:
            known.names.update(counts)
        done.files += list(counts)
        done.rows += sum(counts.values())
        if first is not None:
            done.first_load_id = first if done.first_load_id is None else min(done.first_load_id, first)
        if progress:
            progress(
                f"{ds.name}: loaded the compacted part {Path(part).name}: {len(counts)} file(s), {sum(counts.values())} row(s)"
            )
    new = pending(con, ds, known)
    chunks = [new[i : i + CHUNK] for i in range(0, len(new), CHUNK)]
    while chunks:
        chunk = chunks.pop(0)
        try:
            first, counts = _load_chunk(con, settings, ds, chunk, flow_run_id, known)
        except RejectedFile as exc:
            if len(chunk) > 1:  # find the bad file: one at a time
                chunks[:0] = [[p] for p in chunk]
                continue
            done.rejected[chunk[0]] = str(exc)
            try:
                _set_aside(settings, ds, chunk[0], str(exc))
            except OSError as move:
                log.error("could not set %s aside: %s", chunk[0], move)
            log.warning("%s: %s not loaded: %s", ds.name, chunk[0], exc)
            continue
        done.files += chunk
        done.rows += sum(counts.values())
        done.first_load_id = first if done.first_load_id is None else min(done.first_load_id, first)
        known.names.update(ds.file_id(p) for p in chunk)
        if progress and len(new) > CHUNK:
            progress(f"{ds.name}: loaded {len(done.files)} of {len(new)} new files")
    done.newest = known.mark[2]
    done.seconds = time.perf_counter() - started
    return done


def forget(con, ds: Dataset) -> None:
    """Empty the dataset's raw table and its load history, in one transaction: every accepted file loads again."""
    ensure_tables(con)
    con.execute("begin")
    try:
        con.execute(f"drop table if exists {raw_table(ds)}")
        con.execute(f"delete from {HISTORY} where dataset = ?", [ds.name])
        con.execute(f"delete from {LOAD_MARKS} where dataset = ?", [ds.name])
        con.execute(f"delete from {DRIFT} where dataset = ?", [ds.name])
        con.execute(f"delete from {PARTS} where dataset = ?", [ds.name])
        _refresh_due(con, ds.name)
        con.execute("commit")
    except Exception:
        lake.abandon(con)
        raise
    _KNOWN.pop((_database(con), ds.name), None)


def load_all(
    settings: Settings, datasets: list[Dataset], flow_run_id: str | None = None, progress=None, reload: bool = False
) -> list[Loaded]:
    """Load the new files of each dataset into the lake (called with the writer's slot, before dbt); `progress` is
    told after each chunk of a large load; `reload` loads every accepted file again. A failure closes the kept
    connection, so the next build starts on a fresh one."""
    con = lake.writer(settings)
    try:
        if reload:
            for ds in datasets:
                forget(con, ds)
        loads = [load(con, settings, ds, flow_run_id, progress) for ds in datasets]
        for ds in datasets:
            compact.compact(con, settings, ds)
        return loads
    except BaseException:
        lake.close_writer()
        _KNOWN.clear()  # what this process knew may be what failed (a raw table reset elsewhere): read it all again
        raise


def history(con, file_id: str) -> tuple | None:
    """The load history row of one accepted file, by its id (Dataset.file_id): (load_id, dataset, rows, flow_run_id,
    loaded_at, undeclared_columns, compacted_into), or None."""
    try:
        return con.execute(
            f"select load_id, dataset, rows, flow_run_id, loaded_at, "
            f"coalesce(undeclared_columns, []), compacted_into from {HISTORY} "
            "where accepted_file = ?",
            [file_id],
        ).fetchone()
    except Exception:  # no history table: nothing loaded yet
        return None
