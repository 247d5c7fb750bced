"""The lake, the readers' warehouse (DuckLake): its extensions from PyPI's wheels with no network, its catalog and data
path made ready, and the one way to attach it."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
from pathlib import Path

from landing.settings import Settings

# extension → the PyPI package that ships its build (one DuckDB release per package release: pyproject.toml pins both)
PACKAGES = {
    "ducklake": "duckdb-extension-ducklake",
    "sqlite_scanner": "duckdb-extension-sqlite-scanner",
    "postgres_scanner": "duckdb-extension-postgres-scanner",
    "httpfs": "duckdb-extension-httpfs",
}


class MissingExtension(RuntimeError):
    """A DuckDB extension the lake needs has no build here for the installed DuckDB."""


def extension_file(name: str) -> Path:
    """The `.duckdb_extension` file of `name` that its PyPI package ships for the installed DuckDB."""
    import duckdb

    package = PACKAGES[name]
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or spec.origin is None:
        raise MissingExtension(
            f"the DuckDB extension {name} is not installed: `uv sync` installs {package}=={duckdb.__version__}"
        )
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise MissingExtension(
            f"{package} has no build of {name} for DuckDB {duckdb.__version__} (looked for {path}): install the "
            "release of both that pyproject.toml pins (`uv sync --frozen`)"
        )
    return path


def install(con, names: tuple[str, ...] = ("ducklake", "sqlite_scanner"), load: bool = True) -> None:
    """Install `names` into the connection's extension directory from the wheels' files (once: a file INSTALL is a
    copy, never a download) and load them (`load`)."""
    installed = dict(
        con.execute(
            "select extension_name, installed and install_mode = 'CUSTOM_PATH' from duckdb_extensions()"
        ).fetchall()
    )
    for name in names:
        if not installed.get(name):
            con.execute(f"install {_literal(str(extension_file(name)))}")
        if load:
            con.execute(f"load {name}")


class NoLake(RuntimeError):
    """Nothing has been built yet: the lake's catalog does not exist."""


def extensions(settings: Settings) -> tuple[str, ...]:
    catalog = "postgres_scanner" if settings.lake_catalog_uri.startswith("ducklake:postgres:") else "sqlite_scanner"
    return ("ducklake", catalog, *(("httpfs",) if settings.lake_secret_sql else ()))


def sqlite_catalog(settings: Settings) -> Path | None:
    """The catalog's SQLite file, or None when the catalog is in PostgreSQL."""
    uri = settings.lake_catalog_uri
    return Path(uri.removeprefix("ducklake:sqlite:")) if uri.startswith("ducklake:sqlite:") else None


def exists(settings: Settings) -> bool:
    """Whether the lake has been made (by the first build: a SQLite catalog appears whole, see prepare). True for a
    PostgreSQL catalog, which only an attach can tell: `connect` raises NoLake then."""
    catalog = sqlite_catalog(settings)
    return catalog is None or catalog.exists()


def prepare(settings: Settings) -> None:
    """Before a build: the extensions in DuckDB's extension directory (where dbt's connection, `landing sql` and the
    DuckDB CLI find them), the data folder, and the first time a SQLite catalog, made whole under a temporary name and
    renamed into place: in WAL mode (without it, a reader's open transaction makes a build's commit fail once the busy
    timeout passes) and initialised by DuckLake.

    The catalog is read and written only through DuckDB's own SQLite (the ducklake and sqlite_scanner extensions),
    never through Python's sqlite3 once it is in place: two SQLite libraries on one file, in one process or two,
    read each other's half-written WAL ("database disk image is malformed", seen here) and do not share POSIX locks."""
    import duckdb

    catalog = sqlite_catalog(settings)
    made = (settings.lake_catalog_uri, settings.lake_data)
    if made in _PREPARED and (catalog is None or catalog.exists()):
        return  # this process installed the extensions and saw the lake before: a stat per build, not a DuckDB
    with duckdb.connect() as con:
        install(con, extensions(settings), load=False)
    if "://" not in settings.lake_data:
        os.makedirs(settings.lake_data, exist_ok=True)
    if catalog is None:  # PostgreSQL: DuckLake makes its tables at the first writable attach (any machine's)
        _make_shared_catalog(settings)
        _PREPARED.add(made)
        return
    if catalog.exists():
        _PREPARED.add(made)
        return
    catalog.parent.mkdir(parents=True, exist_ok=True)
    tmp = catalog.with_name(f".{catalog.name}.{os.getpid()}.new")
    sides = [tmp.with_name(tmp.name + side) for side in ("-wal", "-shm")]
    for leftover in (tmp, *sides):
        leftover.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:  # a file no one else knows yet
        db.execute("pragma journal_mode=wal")
    db.close()
    with duckdb.connect() as con:
        install(con, extensions(settings))
        con.execute(
            f"attach {_literal('ducklake:sqlite:' + str(tmp))} as new_lake (data_path {_literal(settings.lake_data)})"
        )
        con.execute("detach new_lake")
    db = sqlite3.connect(tmp)  # still no one else's: fold the WAL in, so the rename carries everything
    db.execute("pragma wal_checkpoint(truncate)")
    db.close()
    for side in sides:
        side.unlink(missing_ok=True)
    os.replace(tmp, catalog)
    _PREPARED.add(made)


def _make_shared_catalog(settings: Settings) -> None:
    """A writable attach of a PostgreSQL catalog, which makes DuckLake's tables the first time. Machines starting
    together may both try: the one that loses finds the tables made and attaches again."""
    import time

    import duckdb

    for attempt in range(2):
        try:
            with duckdb.connect() as con:
                install(con, extensions(settings))
                con.execute(attach_sql(settings, read_only=False))
            return
        except duckdb.Error:
            if attempt:
                raise
            time.sleep(0.5)  # another machine making the same tables: they are there the second time


_PREPARED: set[tuple[str, str]] = set()  # the lakes (catalog, data path) prepare has made ready in this process


def key(settings: Settings) -> str:
    """Which catalog this is, as every machine that shares it names it: a SQLite file's path, or a PostgreSQL
    catalog's host, port and database, however the rest of the connection string (passfile, sslmode, the order of
    its keys) differs per machine."""
    import shlex
    from urllib.parse import urlsplit

    uri = settings.lake_catalog_uri
    if not uri.startswith("ducklake:postgres:"):
        return uri
    conninfo = uri.removeprefix("ducklake:postgres:")
    if "://" in conninfo:
        url = urlsplit(conninfo)
        host, port, dbname = url.hostname or "", str(url.port or 5432), url.path.lstrip("/")
    else:
        pairs = dict(
            part.split("=", 1) for part in shlex.split(conninfo.replace(" = ", "=").replace("= ", "=")) if "=" in part
        )
        host, port, dbname = pairs.get("host", ""), pairs.get("port", "5432"), pairs.get("dbname", "")
    return f"postgres://{host.lower()}:{port}/{dbname}"


def identity(settings: Settings) -> str | None:
    """Which lake is at the catalog's path, as far as a stat tells (its inode), so a process that keeps the lake
    attached sees a catalog made anew in between; None without a SQLite catalog."""
    catalog = sqlite_catalog(settings)
    return f"inode {catalog.stat().st_ino}" if catalog is not None and catalog.exists() else None


def tables(settings: Settings, schema: str = "main") -> set[str]:
    """The tables of the lake's newest snapshot in `schema`."""
    try:
        with connect(settings) as con:
            return {
                name
                for (name,) in con.execute(
                    "select table_name from duckdb_tables() where database_name = 'lake' and schema_name = ?", [schema]
                ).fetchall()
            }
    except NoLake:
        return set()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def attach_sql(settings: Settings, read_only: bool = True, snapshot: int | None = None) -> str:
    """The ATTACH statement of the lake as `lake`: read-only for readers, at a snapshot for `--at`."""
    options = ["read_only"] if read_only else [f"data_path {_literal(settings.lake_data)}"]
    if not read_only and sqlite_catalog(settings) is not None:
        # WAL, so a reader's open transaction never blocks a commit: a catalog dbt made by hand had SQLite's default
        options.append("meta_journal_mode 'wal'")
    if snapshot is not None:
        options.append(f"snapshot_version {int(snapshot)}")
    secret = f"{settings.lake_secret_sql}; " if settings.lake_secret_sql else ""  # an s3:// data path's credentials
    return f"{secret}attach {_literal(settings.lake_catalog_uri)} as lake ({', '.join(options)})"


def _no_lake(settings: Settings) -> NoLake:
    return NoLake(
        f"nothing built yet: the lake {settings.lake_name} appears with the first build. Drop a file into a "
        "landing folder (`landing status` lists them) or run `landing demo`."
    )


def connect(settings: Settings, read_only: bool = True, snapshot: int | None = None):
    """A DuckDB connection with the lake attached as `lake` and in use: `select * from stage_…` reads the newest
    snapshot (or `snapshot`). NoLake when nothing has been built yet."""
    import duckdb

    if read_only and not exists(settings):
        raise _no_lake(settings)
    con = duckdb.connect()
    try:
        install(con, extensions(settings))
        con.execute(attach_sql(settings, read_only, snapshot))
        con.execute("use lake")
    except duckdb.InvalidInputException as exc:
        con.close()
        if read_only and "creating a new DuckLake is explicitly disabled" in str(
            exc
        ):  # a PostgreSQL catalog no build made
            raise _no_lake(settings) from None
        raise
    except BaseException:
        con.close()
        raise
    return con


def abandon(con) -> None:
    """Roll back the connection's transaction, if it still has one: a commit the lake refused (a conflict) has ended
    it already, and a second error there would hide the first."""
    import duckdb

    try:
        con.execute("rollback")
    except duckdb.TransactionException:
        pass


def newest_snapshot(settings: Settings) -> int | None:
    """The lake's newest snapshot id; None before the first build."""
    try:
        with connect(settings) as con:
            return con.execute("select max(snapshot_id) from lake.snapshots()").fetchall()[0][0]
    except NoLake:
        return None


_WRITER: dict = {}  # this process's kept writable connection to the lake: "con", and "key" (which lake it attached)


def writer(settings: Settings):
    """A writable connection to the lake (`USE lake`), kept by this process between builds: attaching costs 0.15 to
    0.2 s, a statement a few ms. The loader writes the raw tables and the load history through it, and the build reads
    its snapshot with it. A catalog made anew since (another inode), or other settings, get a new connection. Only the
    holder of the writer's slot writes (automations/build_state.py one_writer)."""
    prepare(settings)
    seen = (settings.lake_catalog_uri, settings.lake_data, identity(settings), settings.lake_secret_sql)
    con = _WRITER.get("con")
    if con is not None and _WRITER.get("key") == seen:
        return con
    close_writer()
    con = connect(settings, read_only=False)
    _WRITER.update(con=con, key=seen)
    return con


def close_writer() -> None:
    """Close the kept connection (after a failure mid-write, whose state no one should trust, or at exit)."""
    con = _WRITER.pop("con", None)
    _WRITER.pop("key", None)
    if con is not None:
        try:
            con.close()
        except Exception:
            pass


MOVED_SUFFIX = ".moved-to-lake"  # the build file of a warehouse from before, once its tables are in the lake
MOVED_TABLE = "moved_build_files"  # in the lake's `landing` schema: a row per build file moved in, in the move's commit
_OLD_BOOKKEEPING = ("lake_outbox", "lake_state")  # the copy design's tables in the build file: not moved
_MIGRATED: set = set()  # the lakes (catalog, identity) this process has seen to be up to date


def migrate(settings: Settings, say=print) -> dict[str, list[str]]:
    """Before each build, with the writer's slot held: a warehouse from before moved into the lake, once.

    - **Upgrade in place:** a build file (LANDING_BUILD_WAREHOUSE_PATH: the raw tables, the load history and its
      bookkeeping, and before the lake also the models) has all of it moved into the lake in one commit, its load ids
      kept; then the file is renamed `<name>.moved-to-lake` (delete it when you like) and the old readers' copy
      removed. A crash between the commit and the rename moves nothing twice: the lake's load counter says it is done.
    - **A lake from the copy design whose build file is gone** (deleted by hand): the lake's models and marks were
      built from load ids nothing has any more, so they are dropped in one commit and this build makes them again from
      every accepted file; earlier snapshots keep them for `--at`.

    Returns the tables {"moved": [...]} or {"dropped": [...]}; a stat per build once this process has looked."""
    build = settings.build_warehouse
    moved: dict[str, list[str]] = {}
    if build.exists() and build.stat().st_size > 0:
        moved = {"moved": _move_build_file(settings, say)}
    elif (settings.lake_catalog_uri, identity(settings)) not in _MIGRATED:
        con = writer(settings)
        found = {
            (schema, name)
            for schema, name in con.execute(
                "select schema_name, table_name from duckdb_tables() where database_name = 'lake'"
            ).fetchall()
        }
        if found and ("landing", "load_counter") not in found:
            moved = {"dropped": _drop_stale_lake(settings, say)}
    old = settings.warehouse
    for stale in (old, old.with_name(old.name + ".wal")):
        if stale.exists():
            stale.unlink()
            say(f"removed {stale}, the copy readers read before the lake: read the lake (`landing sql`)")
    _MIGRATED.add((settings.lake_catalog_uri, identity(settings)))
    return moved


def _normalize_build_file(build: Path) -> None:
    """A build file from any earlier release given the columns and tables the move copies: the history's later
    columns, and the load marks made from the history where it has none."""
    import duckdb

    with duckdb.connect(str(build)) as con:
        names = {
            (schema, name)
            for schema, name in con.execute(
                "select schema_name, table_name from duckdb_tables() where database_name = current_database()"
            ).fetchall()
        }
        if ("landing", "load_history") not in names:
            return
        con.execute("alter table landing.load_history add column if not exists undeclared_columns varchar[]")
        con.execute("alter table landing.load_history add column if not exists compacted_into varchar")
        if ("landing", "load_marks") not in names:
            con.execute(
                "create table landing.load_marks as select dataset, max(load_id) as high, count(*) as files, "
                "max(accepted_file) as newest from landing.load_history group by dataset"
            )


def _move_build_file(settings: Settings, say=print) -> list[str]:
    """Every table of the build file into the lake in one commit (see migrate); the file renamed after. The tables
    moved."""
    build = settings.build_warehouse
    con = writer(settings)
    done = bool(  # written in the move's own commit: nothing else makes it (the load counter, say, is made by loads)
        con.execute(
            "select count(*) from duckdb_tables() where database_name = 'lake' and schema_name = 'landing' "
            "and table_name = ?",
            [MOVED_TABLE],
        ).fetchall()[0][0]
    )
    names: list[str] = []
    if not done:
        _normalize_build_file(build)
        con.execute(f"attach {_literal(str(build))} as landing_old_build (read_only)")
        try:
            names = _copy_build_file(con, build)
        finally:
            con.execute("detach landing_old_build")
    for side in ("", ".wal"):
        path = build.with_name(build.name + side)
        if path.exists():
            os.replace(path, path.with_name(build.name + MOVED_SUFFIX + side))
    if names:
        say(
            f"moved {len(names)} table(s) ({', '.join(names)}) from {build} into the lake {settings.lake_name}, with "
            f"every row and load id: builds and readers use the lake alone from now on; {build.name}{MOVED_SUFFIX} "
            "is the old file, which nothing reads (delete it when you like)"
        )
    return names


def _copy_build_file(con, build: Path) -> list[str]:
    def ident(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    old = {
        (schema, name)
        for schema, name in con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = 'landing_old_build'"
        ).fetchall()
    }
    in_lake = {
        (schema, name)
        for schema, name in con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = 'lake'"
        ).fetchall()
    }
    # the sequence's next value, read (nextval would write): a mark may be past the history's highest load id
    [(next_id,)] = con.execute(
        "select coalesce(max(coalesce(last_value + 1, start_value)), 0) from duckdb_sequences() "
        "where database_name = 'landing_old_build' and sequence_name = 'load_ids'"
    ).fetchall()
    moved = []
    con.execute("begin")
    try:
        con.execute("create schema if not exists lake.landing")
        models_moved = ("landing", "model_marks") not in in_lake  # before the lake: the models were in the file too
        for schema, name in sorted(old):
            if name in _OLD_BOOKKEEPING or schema not in ("main", "landing"):
                continue
            if schema == "main" and not models_moved:
                continue  # the lake has the models (the copy design's builds wrote them there)
            if schema == "landing" and name == "model_marks" and not models_moved:
                continue
            target = f"lake.{ident(schema)}.{ident(name)}"
            con.execute(f"drop table if exists {target}")  # the copy design's copy of the history and the drift
            con.execute(f"create table {target} as select * from landing_old_build.{ident(schema)}.{ident(name)}")
            moved.append(f"{schema}.{name}")
        history = ("landing", "load_history") in old
        highest = "(select coalesce(max(load_id) + 1, 0) from lake.landing.load_history)" if history else "0"
        con.execute("drop table if exists lake.landing.load_counter")
        con.execute(f"create table lake.landing.load_counter as select greatest({highest}, {int(next_id)}) as next_id")
        con.execute(f"create table lake.landing.{MOVED_TABLE} (path varchar, moved_at timestamptz)")
        con.execute(f"insert into lake.landing.{MOVED_TABLE} values (?, now())", [str(build)])
        con.execute("commit")
    except BaseException:
        abandon(con)
        raise
    return moved


def _drop_stale_lake(settings: Settings, say=print) -> list[str]:
    """Drop every table of the lake's current snapshot in one commit (see migrate: a lake from the copy design whose
    build file is gone). A lake machines share (a PostgreSQL catalog) is never dropped from one machine: that is
    refused, saying what to do."""
    if sqlite_catalog(settings) is None:
        raise RuntimeError(
            f"the shared lake {settings.lake_name} has models built from a build file this machine does not have "
            f"({settings.build_warehouse}): point LANDING_BUILD_WAREHOUSE_PATH at the build file that built them, "
            "or drop the lake's tables yourself if this machine is to rebuild them from its accepted files"
        )
    con = writer(settings)
    tables = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = 'lake' order by all"
    ).fetchall()
    con.execute("begin")
    try:
        # load ids start past every mark the dropped models had: a rollback to a snapshot from before never matches
        highest = "0"
        if ("landing", "model_marks") in tables:
            highest = "(select coalesce(max(high) + 1, 0) from lake.landing.model_marks)"
        if ("landing", "load_history") in tables:
            highest = f"greatest({highest}, (select coalesce(max(load_id) + 1, 0) from lake.landing.load_history))"
        [(next_id,)] = con.execute(f"select {highest}").fetchall()
        for schema, name in tables:
            con.execute(f'drop table lake."{schema}"."{name}"')
        con.execute("create schema if not exists lake.landing")
        con.execute("create table lake.landing.load_counter as select ?::bigint as next_id", [next_id])
        con.execute("commit")
    except BaseException:
        abandon(con)
        raise
    names = [f"{schema}.{name}" for schema, name in tables]
    say(
        f"the lake {settings.lake_name} has tables built from a build file that is gone ({settings.build_warehouse}): "
        f"dropped them ({', '.join(names)}), and this build makes them again from every accepted file (earlier "
        "snapshots keep them: `landing sql --at`)"
    )
    return names


def cli_line(settings: Settings) -> str:
    """The one line that opens the lake read-only in the DuckDB CLI (`duckdb-cli` from PyPI, the release DuckDB is
    pinned at: it finds the extensions the first build installed)."""
    import duckdb

    secret = settings.lake_secret_sql
    if secret and settings.lake_s3_secret:  # shown, never printed: the reader puts their own in
        secret = secret.replace(_literal(settings.lake_s3_secret.get_secret_value()), "'***'")
    return (
        f"uvx --from duckdb-cli=={duckdb.__version__} duckdb -cmd "
        f"\"{secret + '; ' if secret else ''}ATTACH '{settings.lake_name}' AS lake (READ_ONLY); USE lake\""
    )


REWRITE_DELETED = 0.2  # a data file with at least this share of its rows deleted is rewritten without them


def _footprint(con) -> tuple[int, int]:
    """The current snapshot's data and delete files, and their bytes (ducklake_list_files, table by table)."""
    files = size = 0
    for schema, table in con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = 'lake'"
    ).fetchall():
        n, data, deletes = con.execute(
            "select count(*) + count(delete_file), coalesce(sum(data_file_size_bytes), 0), "
            "coalesce(sum(delete_file_size_bytes), 0) from ducklake_list_files('lake', ?, schema => ?)",
            [table, schema],
        ).fetchone()
        files, size = files + n, size + data + deletes
    return files, size


def maintain(settings: Settings, say=print) -> dict:
    """Keep the lake bounded: inlined rows flushed to Parquet, data files with many deleted rows rewritten without
    them, small files merged, snapshots older than the retention expired, and files no snapshot needs deleted. Run
    it with the writer's slot held (a build's commit and a rewrite would conflict); what it did, with the live data
    files and their bytes before and after."""
    import time

    started = time.perf_counter()
    with connect(settings, read_only=False) as con:
        before = _footprint(con)
        hours = float(settings.snapshot_retention_hours)
        con.execute("call ducklake_flush_inlined_data('lake')")
        con.execute(f"call ducklake_rewrite_data_files('lake', delete_threshold => {REWRITE_DELETED})")
        con.execute("call ducklake_merge_adjacent_files('lake')")
        # fetchall, not fetchone: a result left unread keeps its autocommit transaction open, and the next statement
        # rolls it back (measured: fetchone here expired nothing)
        [(expired,)] = con.execute(
            f"select count(*) from ducklake_expire_snapshots('lake', older_than => now() - interval '{hours} hours')"
        ).fetchall()
        [(removed,)] = con.execute(
            "select count(*) from ducklake_cleanup_old_files('lake', cleanup_all => true)"
        ).fetchall()
        snapshots = con.execute("select count(*) from lake.snapshots()").fetchone()[0]
        after = _footprint(con)
    done = {
        "expired_snapshots": expired,
        "removed_files": removed,
        "snapshots": snapshots,
        "files_before": before[0],
        "files_after": after[0],
        "mb_before": round(before[1] / 1e6, 3),
        "mb_after": round(after[1] / 1e6, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
    say(f"maintained the lake {settings.lake_name}: {done}")
    return done


def rollback(settings: Settings, tables: list[str], models: list[str], snapshot: int) -> dict[str, str]:
    """Put the lake's tables `tables` (in main) back as they were at `snapshot`, with the marks of the dbt models
    `models` (their unique ids), in one commit: readers see all of it or none. A table the snapshot did not have is
    dropped (the next build makes it); a view is left alone. Run it with the writer's slot held. Returns what was
    done per table, and the snapshot the rollback made under "snapshot"."""
    with connect(settings, read_only=False) as con:
        con.execute(attach_sql(settings, snapshot=snapshot).replace(" as lake ", " as lake_then "))

        def tables_of(database: str, schema: str = "main") -> dict[str, list]:
            found: dict[str, list] = {}
            for name, column, kind in con.execute(
                "select table_name, column_name, data_type from duckdb_columns() where database_name = ? "
                "and schema_name = ? and table_name in (select table_name from duckdb_tables() where database_name = ? "
                "and schema_name = ?) order by table_name, column_index",
                [database, schema, database, schema],
            ).fetchall():
                found.setdefault(name, []).append((column, kind))
            return found

        now, then = tables_of("lake"), tables_of("lake_then")
        done: dict[str, str] = {}
        con.execute("begin")
        for name in tables:
            ident = '"' + name.replace('"', '""') + '"'
            if name in then and now.get(name) == then[name]:
                con.execute(f"delete from lake.main.{ident}")
                con.execute(f"insert into lake.main.{ident} select * from lake_then.main.{ident}")
                done[name] = "put back"
            elif name in then:
                con.execute(f"create or replace table lake.main.{ident} as select * from lake_then.main.{ident}")
                done[name] = "put back (its columns differed)"
            elif name in now:
                con.execute(f"drop table lake.main.{ident}")
                done[name] = "dropped (not built yet then)"
        if models:
            con.execute("create schema if not exists lake.landing")
            con.execute("create table if not exists lake.landing.model_marks (model varchar, high bigint)")
            con.execute("delete from lake.landing.model_marks where model in (select unnest(?::varchar[]))", [models])
            if "model_marks" in tables_of("lake_then", "landing"):
                con.execute(
                    "insert into lake.landing.model_marks select model, high from lake_then.landing.model_marks "
                    "where model in (select unnest(?::varchar[]))",
                    [models],
                )
        con.execute("commit")
        done["snapshot"] = con.execute("select id from ducklake_current_snapshot('lake')").fetchall()[0][0]
    return done


def marks_at(settings: Settings, snapshot: int, models: list[str]) -> dict[str, int]:
    """The marks (landing.model_marks) of the dbt models `models` as the lake had them at `snapshot`."""
    with connect(settings, snapshot=snapshot) as con:
        try:
            return dict(
                con.execute(
                    "select model, max(high) from landing.model_marks where model in (select unnest(?::varchar[])) "
                    "group by model",
                    [models],
                ).fetchall()
            )
        except Exception:  # no marks then
            return {}
