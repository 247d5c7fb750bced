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


def _lake(tmp_path, **overrides):
    from landing.settings import Settings

    settings = Settings(root=tmp_path / "landing", state_dir=tmp_path / "state", **overrides)
    lake.prepare(settings)
    return settings


def _snapshot(con) -> int:
    return con.execute("select max(snapshot_id) from lake.snapshots()").fetchone()[0]


def test_rollback_puts_tables_and_their_marks_back_in_one_commit(tmp_path):
    settings = _lake(tmp_path)
    with lake.connect(settings, read_only=False) as con:
        con.execute("create schema lake.landing")
        con.execute("create table lake.landing.model_marks (model varchar, high bigint)")
        con.execute("insert into lake.landing.model_marks values ('model.p.t', 1), ('model.p.other', 7)")
        con.execute("create table lake.main.t as select * from (values (1, 'a'), (2, 'b')) v(id, v)")
        con.execute("create table lake.main.reshaped as select 1 as id")
        con.execute("create view lake.main.a_view as select 1 as one")
        then = _snapshot(con)
        con.execute("insert into lake.main.t values (3, 'c')")
        con.execute("update lake.landing.model_marks set high = 2 where model = 'model.p.t'")
        con.execute("update lake.landing.model_marks set high = 9 where model = 'model.p.other'")
        con.execute("create or replace table lake.main.reshaped as select 1 as id, 'x' as added")
        con.execute("create table lake.main.later as select 1 as id")
        before = _snapshot(con)
    done = lake.rollback(settings, ["t", "reshaped", "later", "a_view", "never"], ["model.p.t"], then)
    assert done.pop("snapshot") == before + 1, "the snapshot it made, for the build log"
    assert done == {
        "t": "put back",
        "reshaped": "put back (its columns differed)",
        "later": "dropped (not built yet then)",
    }
    with lake.connect(settings) as con:
        assert con.execute("select * from t order by id").fetchall() == [(1, "a"), (2, "b")]
        assert con.execute("select * from reshaped").fetchall() == [(1,)]
        assert con.execute("select count(*) from duckdb_tables() where table_name = 'later'").fetchone() == (0,)
        assert con.execute("select * from a_view").fetchall() == [(1,)]
        assert dict(con.execute("select * from landing.model_marks").fetchall()) == {
            "model.p.t": 1,
            "model.p.other": 9,  # a model not rolled back keeps its mark
        }
        assert _snapshot(con) == before + 1, "one commit: a reader sees all of it or none"


def test_maintenance_keeps_files_and_disk_bounded_over_many_small_builds_and_the_rows_right(tmp_path):
    """Each build replaces some keys of a table and moves its mark, as a dbt build does; maintenance every 20 builds
    with no retention (every 20 of 100 builds). The live files and bytes after each maintenance stay flat, and the rows equal a from-scratch
    computation."""
    settings = _lake(tmp_path, snapshot_retention_hours=0)
    expected = {k: 0 for k in range(2000)}
    after = []
    with lake.connect(settings, read_only=False) as con:
        con.execute("create table lake.main.t as select range as k, 0 as v from range(2000)")
        con.execute("create schema lake.landing")
        con.execute("create table lake.landing.model_marks (model varchar, high bigint)")
    writer = lake.connect(settings, read_only=False)  # kept open across builds, as the warm runner keeps dbt's
    for build in range(1, 101):
        keys = [(build * 37 + i * 101) % 2000 for i in range(20)]
        writer.execute("begin")
        writer.execute("delete from lake.main.t where k in (select unnest(?::bigint[]))", [keys])
        writer.execute("insert into lake.main.t select unnest(?::bigint[]), ?", [keys, build])
        writer.execute("delete from lake.landing.model_marks")
        writer.execute("insert into lake.landing.model_marks values ('m', ?)", [build])
        writer.execute("commit")
        expected.update({k: build for k in keys})
        if build % 20 == 0:
            done = lake.maintain(settings, say=lambda *_: None)
            after.append((done["files_after"], done["mb_after"]))
    writer.close()
    files = [f for f, _ in after]
    sizes = [mb for _, mb in after]
    assert max(files[1:]) <= files[1] + 2 and max(sizes[1:]) <= sizes[1] * 1.3, after
    data = tmp_path / "state" / "lake"
    on_disk = sum(1 for p in data.rglob("*") if p.is_file())
    assert on_disk <= files[-1] + 2, (
        f"{on_disk} files on disk, {files[-1]} referenced: cleanup left some",
        sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())[:6],
    )
    with lake.connect(settings) as con:
        assert dict(con.execute("select k, v from t").fetchall()) == expected
        assert con.execute("select high from landing.model_marks").fetchall() == [(100,)]
