"""Incremental equals full, on generated files: the SQL dbt runs, captured once, replayed per generated sequence.

A real dbt run (dbt-duckdb, the project's own macros and models) is captured statement by statement, once with no
model table (a full build) and once with every table there (an incremental build). Every decision an incremental
build makes on data is in that SQL (the marks, the touched keys, the newest version), so replaying it on another
warehouse is that build, at a few milliseconds a model instead of a second of dbt. The loader, the compaction and the
sensor's validation are the product's own Python.

The files come from what each dataset declares (its kind, key, columns and types, its reader's format): no code
names a dataset, so a new source is covered as soon as it is declared.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
from hypothesis import strategies as st

from automations import compact, load
from landing.catalog import ACCEPTED_PLACEHOLDER, ROOT_PLACEHOLDER, Catalog, Dataset, render_roots
from landing.reader import InvalidFile, connect, function_name, judge_many, quote_ident
from landing.ledger import Ledger, ledger_path
from landing.settings import Settings

LAKE = "lake"  # the lake: the raw tables and the load history the loader writes, the models and marks dbt writes
_CHANGES = re.compile(r"^\s*(create|insert|delete|alter|drop|update)\b", re.I)

# keys and values that have broken readers before: quotes, SQL, unicode, empty, long, the reader's own names
ADVERSARIAL = [
    "",
    "'",
    '"',
    "a'b\"c",
    "'; drop table x; --",
    "Ünïcødé ✓",
    "x" * 300,
    "filename",
    "_landing_batch",
    "_landing_row",
    "_rescued",
    "with space",
    "new\nline",
    "comma,field",
    "NULL",
]
EXTRA_COLUMNS = ["colour", "filename", "", "_landing_batch", "_rescued", "_landing_row", 'qu"ote', "ünï", "k" * 300]


# -- what dbt runs, captured ---------------------------------------------------------------------------------------


@dataclass
class Captured:
    """The statements dbt ran per node, in the order it ran the nodes, for a full and an incremental build."""

    hooks: list[str]
    order: list[str]  # model unique ids
    tables: dict[str, str]  # model unique id → its table
    full: dict[str, list[str]]
    incremental: dict[str, list[str]]


def capture(settings: Settings, catalog: Catalog) -> Captured:
    """Run the project's models twice with real dbt on a tiny warehouse and keep the statements that change it."""
    from dbt.cli.main import dbtRunner

    from testkit.local import dbt_environment

    runs: list[dict[str, list[str]]] = []

    def keep(event) -> None:
        if event.info.name == "SQLQuery":
            sql = re.sub(r"^/\*.*?\*/\s*", "", event.data.sql, flags=re.S)
            uid = event.data.node_info.unique_id
            if uid and _CHANGES.match(sql):
                runs[-1].setdefault(uid, []).append(sql)

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "run",
        *("--project-dir", str(settings.dbt_project_dir), "--profiles-dir", str(settings.dbt_project_dir)),
        *("--target-path", str(settings.state_dir / "target"), "--log-path", str(settings.state_dir / "logs")),
        "--no-write-json",
    ]
    from automations.build_state import release_warehouse
    from landing import lake

    lake.prepare(settings)
    with dbt_environment(settings):
        for n in range(2):
            for ds in catalog.datasets.values():
                accept(ds, write_file(ds, settings.state_dir / "drops", [minimal_row(ds, n)]), stamp(n, n))
            con = lake.writer(settings)
            for ds in catalog.datasets.values():
                assert not load.load(con, settings, ds).rejected
            runs.append({})
            result = dbtRunner(callbacks=[keep]).invoke(args)
            assert result.success, f"dbt run failed while capturing: {result.exception}"
    release_warehouse()
    lake.close_writer()
    full, incremental = runs
    order = [uid for uid in full if uid.startswith("model.")]
    hooks = [sql for uid, stmts in full.items() if uid.startswith("operation.") for sql in stmts]
    tables = {uid: uid.rsplit(".", 1)[1] for uid in order}
    return Captured(hooks, order, tables, full, incremental)


UNDECLARED = f"select accepted_file, undeclared_columns from {load.HISTORY}"


class Warehouse:
    """An in-memory database named as the lake: the loader and the captured SQL both use it."""

    def __init__(self, captured: Captured):
        self.captured = captured
        self.con = duckdb.connect(":memory:", config={"threads": 1})
        self.fresh()

    def fresh(self) -> None:
        """An empty warehouse in place of this one (its model tables kept as `kept.<table>` if there were any)."""
        names = [n for (n,) in self.con.execute("select database_name from duckdb_databases()").fetchall()]
        if LAKE in names:
            self.con.execute("attach ':memory:' as kept")
            for table in self.tables():
                self.con.execute(
                    f"create table kept.{quote_ident(table)} as select * from {LAKE}.main.{quote_ident(table)}"
                )
            # each file's undeclared columns: judged by the sensor (the ledger's) here, read again from scratch
            self.con.execute(f"create table kept.undeclared as {UNDECLARED}")
            self.con.execute("use memory")
            self.con.execute(f"detach {LAKE}")
        self.con.execute(f"attach ':memory:' as {LAKE}")
        self.con.execute(f"use {LAKE}")
        load._KNOWN.clear()  # keyed by the database's path, which an in-memory one lacks
        load._READY.clear()  # the loader's tables are made once per connection: this one has a new database

    def load(
        self, settings: Settings, catalog: Catalog, contract: dict[str, Dataset], only: set[str] | None = None
    ) -> tuple[bool, dict]:
        """Load the new files of every dataset (or of `only`, as a build of those datasets does); (any raw table
        reloaded, every file the loader set aside)."""
        reloaded, rejected = False, {}
        for name in catalog.datasets:
            if only is not None and name not in only:
                continue
            done = load.load(self.con, settings, contract[name])
            reloaded |= done.reloaded
            rejected.update(done.rejected)
        return reloaded, rejected

    def build(self, full: bool) -> None:
        """One dbt build of every model: incremental where its table is there, from scratch where it is not."""
        for sql in self.captured.hooks:
            self.con.execute(sql)
        for uid in self.captured.order:
            table = self.captured.tables[uid]
            if full:
                self.con.execute(f"drop table if exists {LAKE}.main.{quote_ident(table)}")
            there = self.con.execute(
                "select count(*) from duckdb_tables() where database_name = ? and schema_name = 'main' "
                "and table_name = ?",
                [LAKE, table],
            ).fetchone()[0]
            for sql in (self.captured.incremental if there else self.captured.full)[uid]:
                self.con.execute(sql)
            # dbt's temporary tables end with its session; this one goes on
            for (name,) in self.con.execute("select table_name from duckdb_tables() where temporary").fetchall():
                self.con.execute(f"drop table temp.{quote_ident(name)}")

    def tables(self) -> list[str]:
        return [self.captured.tables[uid] for uid in self.captured.order]

    def differences(self) -> dict[str, tuple[int, int, tuple]]:
        """Per model table that differs between the kept one and this one: rows only in the kept table, rows only
        here (EXCEPT ALL both ways), samples."""
        out = {}
        for table in self.tables():
            t = quote_ident(table)
            a = self.con.execute(f"select * from kept.{t} except all select * from {LAKE}.main.{t}").fetchall()
            b = self.con.execute(f"select * from {LAKE}.main.{t} except all select * from kept.{t}").fetchall()
            if a or b:
                out[table] = (len(a), len(b), (a[:3], b[:3]))
        a = self.con.execute(f"select * from kept.undeclared except all {UNDECLARED}").fetchall()
        b = self.con.execute(f"{UNDECLARED} except all select * from kept.undeclared").fetchall()
        if a or b:
            out["landing.load_history.undeclared_columns"] = (len(a), len(b), (a[:3], b[:3]))
        return out


# -- files from what a dataset declares -----------------------------------------------------------------------------


def _fields(spec: str) -> list[tuple[str, str]]:
    """`struct(a integer, b varchar)` → [(a, integer), (b, varchar)] (top-level commas only)."""
    inner, depth, part, out = spec[spec.index("(") + 1 : spec.rindex(")")], 0, "", []
    for ch in inner + ",":
        if ch == "," and depth == 0:
            name, _, dtype = part.strip().partition(" ")
            out.append((name.strip('"'), dtype.strip()))
            part = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        part += ch
    return out


def values(dtype: str, key: bool = False) -> st.SearchStrategy:
    """Values of a declared type: few distinct ones for a key (so files update each other), awkward ones otherwise."""
    t = dtype.strip().lower()
    if t.endswith("[]"):
        # emptied often: a newer version with no children must drop the old ones
        return st.one_of(st.just([]), st.lists(values(dtype.strip()[:-2]), min_size=1, max_size=3))
    if t.startswith("struct("):
        fields = _fields(dtype.strip())
        return st.fixed_dictionaries({n: st.one_of(st.none(), values(ft)) for n, ft in fields})
    if t in ("integer", "int", "bigint", "smallint", "tinyint", "hugeint"):
        return st.integers(1, 3) if key else st.integers(-3, 10**6)
    if t in ("double", "float", "real") or t.startswith("decimal"):
        return st.sampled_from([0.0, 0.5, -2.25, 19.99, 1e6, 123456.789])
    if t == "date":
        return st.dates(date(2026, 1, 1), date(2026, 1, 3) if key else date(2026, 12, 31))
    if t.startswith("timestamp"):
        return st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31)).map(lambda d: d.replace(microsecond=0))
    if t == "boolean":
        return st.booleans()
    return st.sampled_from(["EUR", "GBP", *ADVERSARIAL[:8]]) if key else st.sampled_from(["a", "b", *ADVERSARIAL])


def row(ds: Dataset) -> st.SearchStrategy:
    """One row of `ds`: keys from a small pool, required columns filled, others absent, null or a value, and
    sometimes an undeclared column."""
    parts = {}
    for column, dtype in ds.schema.items():
        value = values(dtype, key=column in ds.key)
        parts[column] = value if column in ds.required else st.one_of(st.just(_ABSENT), st.none(), value)
    extra = st.one_of(
        st.just({}),
        st.just({}),
        st.dictionaries(st.sampled_from(EXTRA_COLUMNS), st.sampled_from(["v", 1, None, [1, {"n": None}]]), max_size=2),
    )
    return st.tuples(st.fixed_dictionaries(parts), extra).map(
        lambda pair: {
            **{k: v for k, v in pair[1].items() if k.lower() not in {c.lower() for c in ds.columns}},
            **{k: v for k, v in pair[0].items() if v is not _ABSENT},
        }
    )


_ABSENT = object()


def minimal_row(ds: Dataset, n: int) -> dict:
    """The smallest valid row: the required columns, a value of each type."""
    examples = {"date": date(2026, 1, 1), "timestamp": datetime(2026, 1, 1)}
    out = {}
    for column in ds.required:
        t = ds.schema[column].lower()
        out[column] = (
            [] if t.endswith("[]") else examples.get(t, n + 1 if "int" in t else 1.5 if t == "double" else f"v{n}")
        )
    return out


def _plain(value):
    if isinstance(value, (date, datetime)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def write_file(ds: Dataset, folder: Path, rows: list[dict], variant: int = 0) -> Path:
    """`rows` in the dataset's own format (its reader's function): JSON lines (sometimes with a BOM and CRLF, or
    one array where the format allows),
    CSV with a header of the columns present, Parquet with their declared types."""
    folder.mkdir(parents=True, exist_ok=True)
    fn = function_name(ds.location)
    global _DROPS
    _DROPS += 1
    path = folder / f"drop-{_DROPS}"
    if fn.startswith(("read_json", "read_ndjson")):
        text = "".join(json.dumps(_plain(r), ensure_ascii=variant == 2) + "\n" for r in rows)
        if variant == 3 and "newline_delimited" not in ds.location.replace(" ", ""):
            text = json.dumps([_plain(r) for r in rows], indent=1)  # one JSON array, where the format allows it
        if variant == 1:
            text = "\ufeff" + text.replace("\n", "\r\n")
        path.write_text(text, encoding="utf-8", newline="")
    elif fn.startswith("read_csv"):
        names = list(dict.fromkeys(k for r in rows for k in r if k != ""))
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        out.writerow(names)
        for r in rows:
            out.writerow(["" if r.get(k) is None else _plain(r.get(k)) for k in names])
        path.write_text(buf.getvalue(), encoding="utf-8")
    else:
        declared = {c.lower(): t for c, t in ds.schema.items()}
        names = list(dict.fromkeys(k for r in rows for k in r if k != ""))
        types = {k: declared.get(k.lower(), "VARCHAR") for k in names}
        with duckdb.connect() as con:
            con.execute("create table t (" + ", ".join(f"{quote_ident(k)} {t}" for k, t in types.items()) + ")")
            for r in rows:
                con.execute(
                    f"insert into t values ({', '.join('?' for _ in names)})",
                    [
                        json.dumps(_plain(r.get(k)))
                        if types[k] == "VARCHAR" and isinstance(r.get(k), (list, dict))
                        else _plain(r.get(k))
                        for k in names
                    ],
                )
            con.execute(f"copy t to '{path}' (format parquet)")
    return path


_DROPS = 0


def stamp(day: int, n: int) -> str:
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=day, microseconds=n)
    return moment.strftime("%Y%m%dT%H%M%S%fZ")


def accept(ds: Dataset, dropped: Path, when: str) -> Path:
    """Move a dropped file into the accepted folder under its accepted name (landing time and content hash)."""
    digest = hashlib.sha256(dropped.read_bytes()).hexdigest()
    ds.accepted_path.mkdir(parents=True, exist_ok=True)
    target = ds.accepted_path / f"{when}-{digest[:12]}{ds.suffix}"
    if target.exists():  # the same bytes at the same moment: one file
        dropped.unlink()
        return target
    os.replace(dropped, target)
    return target


# -- sequences ------------------------------------------------------------------------------------------------------


@dataclass
class Drop:
    dataset: str
    rows: list[dict]
    day: int  # landing day, 0 to 7 after its batch's first (4 days a batch): some files land late
    variant: int = 0
    broken: bool = False  # bytes no reader can read


@dataclass
class Again:
    index: int  # the same bytes as an earlier good file, landed again later
    day: int


@dataclass
class Batch:
    files: list
    compact: bool = False
    move_root: bool = False
    contract: str | None = None  # a dataset whose contract changes (rescue toggled) before this batch


@dataclass
class Sequence:
    batches: list[Batch] = field(default_factory=list)


def sequences(catalog: Catalog, max_batches: int = 4) -> st.SearchStrategy:
    """Batches of files over one to three of the catalog's datasets (few datasets, so each one's files collide)."""
    names = sorted(catalog.datasets)

    def drop(name: str) -> st.SearchStrategy:
        ds = catalog.datasets[name]
        good = st.builds(
            Drop, st.just(name), st.lists(row(ds), min_size=1, max_size=4), st.integers(0, 7), st.integers(0, 3)
        )
        # about one file in eight cannot be read at all
        return st.tuples(st.integers(0, 7), good).map(lambda t: replace(t[1], broken=True) if t[0] == 0 else t[1])

    def over(focus: list[str]) -> st.SearchStrategy:
        again = st.builds(Again, st.integers(0, 50), st.integers(0, 7))
        one = st.tuples(st.integers(0, 5), st.one_of(*[drop(n) for n in focus]), again).map(
            lambda t: t[2] if t[0] == 0 else t[1]  # about one file in six is an earlier file's bytes again
        )
        files = st.lists(one, min_size=1, max_size=6)
        batch = st.builds(
            Batch,
            files,
            st.booleans(),
            st.sampled_from([False, False, False, True]),
            st.one_of(st.none(), st.none(), st.none(), st.sampled_from(focus)),
        )
        return st.builds(Sequence, st.lists(batch, min_size=1, max_size=max_batches))

    return st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True).flatmap(over)


def placeholders(catalog: Catalog) -> Catalog:
    """A rendered catalog with its roots back to the placeholders, to render for other roots (render_roots)."""
    some = next(iter(catalog.datasets.values()))
    root, accepted = catalog.root, some.accepted_folder[: -len(some.accepted_relative) - 1]

    def back(text: str) -> str:
        return text.replace(accepted, ACCEPTED_PLACEHOLDER).replace(root, ROOT_PLACEHOLDER)

    datasets = {
        n: replace(d, location=back(d.location), folder=back(d.folder), accepted_folder=back(d.accepted_folder))
        for n, d in catalog.datasets.items()
    }
    return Catalog(root=ROOT_PLACEHOLDER, datasets=datasets, models=catalog.models)


@dataclass
class Run:
    """A sequence played against one warehouse, built incrementally after each batch."""

    base: Catalog
    settings: Settings
    captured: Captured
    work: Path
    contract: dict[str, Dataset] = field(default_factory=dict)
    good: list[tuple[str, bytes]] = field(default_factory=list)
    counter: int = 0
    batches: int = 0  # batches played
    verdicts: list[tuple[str, str, str]] = field(default_factory=list)  # (dataset, file, the sensor's reason)

    def __post_init__(self):
        self.base = placeholders(self.base)
        self.catalog = render_roots(self.base, str(self.settings.root), str(self.settings.accepted))
        self.contract = dict(self.catalog.datasets)

    def play(self, sequence: Sequence) -> Warehouse:
        warehouse = Warehouse(self.captured)
        self.settings.root.mkdir(parents=True, exist_ok=True)
        first = True
        for batch in sequence.batches:
            if batch.move_root:
                self._move_root()
            if batch.contract:
                ds = self.contract[batch.contract]
                self.contract[batch.contract] = replace(ds, rescue=not ds.rescue)
            touched = self._land(batch.files)
            if first:  # every raw table there, so every model builds
                touched, first = set(self.contract), False
            if batch.contract:
                touched.add(batch.contract)
            self.batches += 1
            reloaded, rejected = warehouse.load(self.settings, self.catalog, self.contract, touched)
            assert not rejected, f"the sensor accepted files the loader set aside: {rejected}"
            warehouse.build(full=reloaded)
            if batch.compact:
                for ds in self.contract.values():
                    compact.compact(warehouse.con, self.settings, ds, now=datetime(2026, 1, 15, tzinfo=timezone.utc))
        return warehouse

    def from_scratch(self, warehouse: Warehouse) -> Warehouse:
        """The same warehouse built anew from every accepted file (and part), its incremental tables kept. Without the
        ledger: the loader reads each file's columns itself instead of trusting the sensor's judgement."""
        warehouse.fresh()
        scratch = self.settings.model_copy(update={"state_dir": self.work / "scratch-state"})
        _, rejected = warehouse.load(scratch, self.catalog, self.contract)
        assert not rejected, f"files set aside on a full load: {rejected}"
        warehouse.build(full=True)
        return warehouse

    def _move_root(self) -> None:
        """Move the landing folder (accepted area and parts in it) to a path that sorts before the old one."""
        new = self.work / f"a{self.counter:03d}-moved"
        self.counter += 1
        shutil.move(str(self.settings.root), str(new))
        self.settings = self.settings.model_copy(update={"root": new})
        self.catalog = render_roots(self.base, str(new), str(self.settings.accepted))
        self.contract = {n: replace(self.catalog.datasets[n], rescue=ds.rescue) for n, ds in self.contract.items()}

    def _land(self, files: list) -> set[str]:
        """Write each file, judge it as the sensor does (the dataset's read, in one batch per dataset), accept the
        good ones under their landing time; the datasets that got a file."""
        todo: dict[str, list[tuple[Path, str, bytes | None]]] = {}
        for f in files:
            self.counter += 1
            if isinstance(f, Again):
                if not self.good:
                    continue
                name, data = self.good[f.index % len(self.good)]
                path = self.work / "drops" / f"again-{self.counter}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                todo.setdefault(name, []).append((path, stamp(self.batches * 4 + f.day, self.counter), data))
                continue
            ds = self.contract[f.dataset]
            if f.broken:
                path = self.work / "drops" / f"broken-{self.counter}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b'{"id": 1, "title": \x00\xff')
            else:
                path = write_file(ds, self.work / "drops", f.rows, f.variant)
            todo.setdefault(f.dataset, []).append((path, stamp(self.batches * 4 + f.day, self.counter), None))
        con = connect()
        ledger = Ledger(ledger_path(self.settings.state_dir))
        try:
            for name, items in todo.items():
                ds = self.contract[name]
                verdicts = judge_many(con, ds, [str(p) for p, _, _ in items])
                for path, when, data in items:
                    verdict = verdicts[str(path)]
                    if isinstance(verdict, InvalidFile):
                        self.verdicts.append((name, path.name, str(verdict)))
                        path.unlink()
                        continue
                    data = path.read_bytes()
                    target = accept(ds, path, when)
                    # as the sensor records it: the loader trusts these columns instead of reading the keys again
                    ledger.record(
                        str(path),
                        ds.name,
                        hashlib.sha256(data).hexdigest(),
                        len(data),
                        0,
                        "announced",
                        accepted_path=str(target),
                        undeclared={"declared": ds.declared_digest, "columns": list(verdict[1])},
                    )
                    self.good.append((name, data))
        finally:
            con.close()
            ledger.close()
        return set(todo)
