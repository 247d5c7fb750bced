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
            con.execute(f"install '{extension_file(name)}'")
        if load:
            con.execute(f"load {name}")


class NoLake(RuntimeError):
    """Nothing has been built yet: the lake's catalog does not exist."""


def _extensions(settings: Settings) -> tuple[str, ...]:
    return (
        "ducklake",
        "postgres_scanner" if settings.lake_catalog_uri.startswith("ducklake:postgres:") else "sqlite_scanner",
    )


def sqlite_catalog(settings: Settings) -> Path | None:
    """The catalog's SQLite file, or None when the catalog is in PostgreSQL."""
    uri = settings.lake_catalog_uri
    return Path(uri.removeprefix("ducklake:sqlite:")) if uri.startswith("ducklake:sqlite:") else None


def exists(settings: Settings) -> bool:
    """Whether the lake has been made (by the first build)."""
    catalog = sqlite_catalog(settings)
    return catalog is None or catalog.exists()


def prepare(settings: Settings) -> None:
    """Before a build: the extensions in DuckDB's extension directory (where dbt's connection, `landing sql` and the
    DuckDB CLI find them), the data folder, and a SQLite catalog in WAL mode (without it, a reader's open transaction
    makes a build's commit fail once the busy timeout passes)."""
    import duckdb

    with duckdb.connect() as con:
        install(con, _extensions(settings), load=False)
    if "://" not in settings.lake_data:
        os.makedirs(settings.lake_data, exist_ok=True)
    catalog = sqlite_catalog(settings)
    if catalog is not None and not catalog.exists():
        catalog.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(catalog) as db:
            db.execute("pragma journal_mode=wal")


def attach_sql(settings: Settings, read_only: bool = True, snapshot: int | None = None) -> str:
    """The ATTACH statement of the lake as `lake`: read-only for readers, at a snapshot for `--at`."""
    options = ["read_only"] if read_only else [f"data_path '{settings.lake_data}'"]
    if snapshot is not None:
        options.append(f"snapshot_version {int(snapshot)}")
    return f"attach '{settings.lake_catalog_uri}' as lake ({', '.join(options)})"


def connect(settings: Settings, read_only: bool = True, snapshot: int | None = None):
    """A DuckDB connection with the lake attached as `lake` and in use: `select * from stage_…` reads the newest
    snapshot (or `snapshot`). NoLake when nothing has been built yet."""
    import duckdb

    if read_only and not exists(settings):
        raise NoLake(
            f"nothing built yet: the lake {settings.lake_catalog_uri} appears with the first build. Drop a file into a "
            "landing folder (`landing status` lists them) or run `landing demo`."
        )
    con = duckdb.connect()
    try:
        install(con, _extensions(settings))
        con.execute(attach_sql(settings, read_only, snapshot))
        con.execute("use lake")
    except BaseException:
        con.close()
        raise
    return con


def newest_snapshot(settings: Settings) -> int | None:
    """The lake's newest snapshot id, read from a SQLite catalog directly (no extension to load), else through
    DuckDB; None before the first build."""
    catalog = sqlite_catalog(settings)
    if catalog is not None:
        if not catalog.exists():
            return None
        with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as db:
            try:
                return db.execute("select max(snapshot_id) from ducklake_snapshot").fetchone()[0]
            except sqlite3.OperationalError:  # made, not yet initialised by DuckLake
                return None
    with connect(settings) as con:
        return con.execute("select max(snapshot_id) from lake.snapshots()").fetchone()[0]
