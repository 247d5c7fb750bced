"""Upgrade in place: a warehouse from an earlier release moves into the lake once, on the first build, keeping every row,
the load history and its load ids: from before the lake (everything in the build's own DuckDB file, a readers' copy
beside it), and from the release before this one (the raw tables and the history in the build's file, the models in
the lake). A lake of that release whose build file is gone builds again from every accepted file."""

from __future__ import annotations

import json
import shutil

import duckdb

from automations.build_state import close_warehouse
from automations.dbt_build import dbt_build
from landing import lake
from landing.settings import REPO_ROOT
from tests.support.sensing import accepted_without_event
from testkit.local import dbt_environment, warehouse_row

PRODUCTS = "select count(*), count(distinct product_id) from stage_dummyjson__products"
MOVED = ("load_history", "schema_drift", "compacted_parts", "load_marks", "refresh_due")  # the build file's bookkeeping


def as_copy_design(settings, models_too: bool) -> dict[str, list]:
    """Turn the lake's warehouse into what an earlier release left: the raw tables, the load history and its
    bookkeeping in the build's own DuckDB file (load ids from a sequence, the marks with a primary key), the lake with
    the models and the copy design's copy of the history and drift. With `models_too`, from before the lake: the models
    and their marks in the build's file as well, a readers' copy beside it, no lake. Returns each model's rows and
    the history."""
    with lake.connect(settings) as con:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = 'lake' order by all"
        ).fetchall()
        rows = {
            t: sorted(con.execute(f'select * from "{t}"').fetchall(), key=repr) for sch, t in tables if sch == "main"
        }
        rows["history"] = sorted(con.execute("select * from landing.load_history").fetchall(), key=repr)
        [(next_id,)] = con.execute("select max(next_id) from landing.load_counter").fetchall()
    settings.build_warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.build_warehouse)) as con:
        lake.install(con)
        con.execute(lake.attach_sql(settings))
        con.execute("create schema landing")
        con.execute(f"create sequence landing.load_ids start {next_id}")
        for schema, name in tables:
            if schema == "landing" and name in ("load_counter", "model_marks"):
                continue
            if schema == "main" and not models_too:
                continue
            if name == "load_marks":
                con.execute(
                    "create table landing.load_marks (dataset varchar primary key, high bigint, files bigint, "
                    "newest varchar)"
                )
                con.execute("insert into landing.load_marks select * from lake.landing.load_marks")
                continue
            con.execute(f'create table "{schema}"."{name}" as select * from lake."{schema}"."{name}"')
        if models_too:
            con.execute("create table landing.model_marks (model varchar primary key, high bigint)")
            con.execute("insert into landing.model_marks select * from lake.landing.model_marks")
        else:  # the copy design's own tables: what on-run-end had left to publish, and its record of the lake
            con.execute("create table landing.lake_outbox (dataset varchar, what varchar)")
            con.execute("create table landing.lake_state as select 1 as snapshot, ['x'] as tables")
    close_warehouse()  # as the upgrade's restart does: this process's dbt instance had the lake attached
    lake.close_writer()
    lake._MIGRATED.clear()
    if models_too:
        shutil.copyfile(settings.build_warehouse, settings.warehouse)
        lake.sqlite_catalog(settings).unlink()
        for side in ("-wal", "-shm"):
            lake.sqlite_catalog(settings).with_name(lake.sqlite_catalog(settings).name + side).unlink(missing_ok=True)
        shutil.rmtree(settings.lake_data)
    else:
        with lake.connect(settings, read_only=False) as con:
            con.execute("begin")
            for schema, name in tables:
                if schema == "landing" and name not in ("load_history", "schema_drift", "model_marks"):
                    con.execute(f'drop table lake."{schema}"."{name}"')
            con.execute("commit")
    return rows


def moved_as_they_were(settings, before: dict[str, list], new_files: int) -> None:
    """The build file is renamed, nothing of the warehouse stayed behind, every model kept its rows (a dataset not
    built since) and the history its rows and load ids, with the new file's load id past every earlier one."""
    assert not settings.build_warehouse.exists(), "the build file is renamed once its tables are in the lake"
    old = settings.build_warehouse.with_name(settings.build_warehouse.name + lake.MOVED_SUFFIX)
    assert old.exists(), "the old file is kept, renamed: nothing is deleted that was not copied"
    with lake.connect(settings) as con:
        users = sorted(con.execute("select * from stage_dummyjson__users").fetchall(), key=repr)
        history = sorted(con.execute("select * from landing.load_history").fetchall(), key=repr)
        raw = con.execute("select count(*) from landing.dummyjson__users").fetchone()[0]
        tables = {
            n for (n,) in con.execute("select table_name from duckdb_tables() where schema_name = 'landing'").fetchall()
        }
    assert len(users) == 3 and users == before["stage_dummyjson__users"], "a dataset not built keeps its rows"
    assert raw == 3, "its raw rows moved"
    assert history[: len(before["history"])] == before["history"] or set(before["history"]) <= set(history)
    assert len(history) == len(before["history"]) + new_files, "nothing was loaded twice"
    new_ids = {h[0] for h in history} - {h[0] for h in before["history"]}
    assert min(new_ids) > max(h[0] for h in before["history"]), "a load id is never given twice"
    assert not tables & {"lake_outbox", "lake_state"}, "the copy design's own tables stay behind"
    assert warehouse_row(settings, PRODUCTS) == (6, 6)  # the 5 old rows, moved, and the new one, built incrementally


def first_build(settings) -> None:
    accepted_without_event(
        settings, "dummyjson.products", [{"id": i, "title": f"old-{i}", "price": 1} for i in range(5)]
    )
    users = [
        json.loads(line) for line in (REPO_ROOT / "samples" / "dummyjson" / "users.jsonl").read_text().splitlines()
    ]
    accepted_without_event(settings, "dummyjson.users", users[:3])
    assert dbt_build(["dummyjson.products", "dummyjson.users"], settings=settings)["status"] == "built"


def test_a_warehouse_from_before_the_lake_moves_over_once_with_every_row_and_its_history(settings, prefect_server):
    with dbt_environment(settings):
        first_build(settings)
        before = as_copy_design(settings, models_too=True)
        assert not lake.exists(settings) and settings.warehouse.exists()

        # the upgrade: the next file of one dataset; its build moves everything over first
        accepted_without_event(settings, "dummyjson.products", [{"id": 9, "title": "new-9", "price": 2}])
        assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"
    assert not settings.warehouse.exists(), "the old readers' copy is removed"
    moved_as_they_were(settings, before, new_files=1)


def test_a_lake_whose_raw_tables_were_in_a_build_file_takes_them_in_once_keeping_rows_and_load_ids(
    settings, prefect_server
):
    """The release before this one: the models in the lake, the raw tables and the load history in the build's file.
    The first build moves them in, in one commit; a second build moves nothing again."""
    with dbt_environment(settings):
        first_build(settings)
        before = as_copy_design(settings, models_too=False)
        accepted_without_event(settings, "dummyjson.products", [{"id": 9, "title": "new-9", "price": 2}])
        assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"
        moved_as_they_were(settings, before, new_files=1)
        accepted_without_event(settings, "dummyjson.products", [{"id": 10, "title": "new-10", "price": 2}])
        assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"
    assert warehouse_row(settings, PRODUCTS) == (7, 7)


def test_a_rollback_before_the_first_build_after_the_upgrade_moves_the_build_file_in_first(settings, prefect_server):
    """A rollback takes the writer's slot as a build does, so it upgrades first: the raw tables and the history move
    in, and the next build adds to them rather than finding them empty."""
    from testkit.local import builds

    with dbt_environment(settings):
        first_build(settings)
        snapshot = builds(settings)[-1]["snapshot"]
        before = as_copy_design(settings, models_too=False)
        assert (
            dbt_build(["dummyjson.products"], rollback_to=str(snapshot), settings=settings)["status"] == "rolled back"
        )
        accepted_without_event(settings, "dummyjson.products", [{"id": 9, "title": "new-9", "price": 2}])
        assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"
    moved_as_they_were(settings, before, new_files=1)


def test_a_lake_from_the_copy_design_whose_build_file_is_gone_builds_again_from_every_file(settings, prefect_server):
    """Three builds of a file each; the lake then as the release before this one left it, and its build file (the raw
    tables, the history, the load ids) and two of the accepted files deleted by hand. The lake's marks belong to load
    ids nothing has any more: its tables are dropped and the build makes them from the accepted files there now."""
    files = []
    with dbt_environment(settings):
        for n in range(3):
            rows = [{"id": 10 * n + i, "title": f"t-{n}", "price": 1} for i in range(2)]
            files.append(accepted_without_event(settings, "dummyjson.products", rows))
            assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"
        as_copy_design(settings, models_too=False)
        settings.build_warehouse.unlink()
        files[0].unlink()
        files[1].unlink()
        accepted_without_event(settings, "dummyjson.products", [{"id": 7, "title": "t-new", "price": 1}])
        assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"
    with lake.connect(settings) as con:
        got = sorted(con.execute("select product_id from stage_dummyjson__products").fetchall())
        history = con.execute("select count(*) from landing.load_history").fetchone()[0]
    assert got == [(7,), (20,), (21,)], "what a full build of the accepted files there now makes"
    assert history == 2
