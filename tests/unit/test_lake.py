"""DuckLake's extensions come from PyPI's wheels and install with no network (landing/lake.py); a lake on a SQLite
catalog in WAL mode lets a reader hold a snapshot while a writer commits, and see the commit when it asks again."""

from __future__ import annotations

import sqlite3

import duckdb
import pytest

from landing import lake


def _connect(tmp_path):
    # a fresh extension directory: whatever an earlier run installed, this one installs from the wheels' files
    con = duckdb.connect(config={"extension_directory": str(tmp_path / "ext"), "autoinstall_known_extensions": False})
    lake.install(con)
    return con


def test_the_extensions_install_from_the_wheels_and_a_reader_keeps_its_snapshot(tmp_path):
    catalog = tmp_path / "lake.sqlite"
    with sqlite3.connect(catalog) as db:
        db.execute("pragma journal_mode=wal")
    writer = _connect(tmp_path)
    writer.execute(f"attach 'ducklake:sqlite:{catalog}' as lake (data_path '{tmp_path / 'data'}/')")
    writer.execute("create table lake.t as select range as id from range(3)")
    reader = _connect(tmp_path)
    reader.execute(f"attach 'ducklake:sqlite:{catalog}' as lake (read_only)")
    reader.execute("begin")
    assert reader.execute("select count(*) from lake.t").fetchone() == (3,)
    writer.execute("insert into lake.t values (3)")  # commits while the reader's transaction is open
    assert reader.execute("select count(*) from lake.t").fetchone() == (3,), "the reader keeps its snapshot"
    reader.execute("commit")
    assert reader.execute("select count(*) from lake.t").fetchone() == (4,), "and sees the commit when it asks again"
    [(first,)] = writer.execute(
        "select min(snapshot_id) from lake.snapshots() where changes['tables_created'] is not null"
    ).fetchall()
    then = _connect(tmp_path)
    then.execute(f"attach 'ducklake:sqlite:{catalog}' as lake (read_only, snapshot_version {first})")
    assert then.execute("select count(*) from lake.t").fetchone() == (3,)


def test_a_missing_build_names_the_package_and_what_to_do(monkeypatch):
    monkeypatch.setitem(lake.PACKAGES, "ducklake", "duckdb-extension-no-such")
    with pytest.raises(lake.MissingExtension, match="uv sync.*duckdb-extension-no-such=="):
        lake.extension_file("ducklake")
