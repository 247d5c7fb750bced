"""Upgrade in place: a warehouse from before the lake (the models and their marks in the build's own DuckDB file, a
readers' copy published beside it) moves into the lake once, on the first build, keeping every row and the load
history; and a build file made anew while the lake has models builds them again from every accepted file."""

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


def as_before_the_lake(settings) -> dict[str, list]:
    """Turn the lake's warehouse into what the copy design left: every model table and the marks (with their primary
    key) in the build's file, the readers' copy beside it, no lake. Returns each model's rows."""
    with lake.connect(settings) as con:
        models = [
            n
            for (n,) in con.execute(
                "select table_name from duckdb_tables() where database_name = 'lake' "
                "and schema_name = 'main' order by 1"
            ).fetchall()
        ]
        rows = {m: sorted(con.execute(f'select * from "{m}"').fetchall(), key=repr) for m in models}
        marks = con.execute("select model, high from landing.model_marks").fetchall()
    with duckdb.connect(str(settings.build_warehouse)) as con:
        lake.install(con)
        con.execute(lake.attach_sql(settings))
        for m in models:
            con.execute(f'create table main."{m}" as select * from lake.main."{m}"')
        con.execute("create table landing.model_marks (model varchar primary key, high bigint)")
        con.executemany("insert into landing.model_marks values (?, ?)", marks)
    shutil.copyfile(settings.build_warehouse, settings.warehouse)
    close_warehouse()  # as the upgrade's restart does: this process's dbt instance had the lake attached
    lake.sqlite_catalog(settings).unlink()
    for side in ("-wal", "-shm"):
        lake.sqlite_catalog(settings).with_name(lake.sqlite_catalog(settings).name + side).unlink(missing_ok=True)
    shutil.rmtree(settings.lake_data)
    return rows


def test_a_warehouse_from_before_the_lake_moves_over_once_with_every_row_and_its_history(settings, prefect_server):
    accepted_without_event(
        settings, "dummyjson.products", [{"id": i, "title": f"old-{i}", "price": 1} for i in range(5)]
    )
    users = [
        json.loads(line) for line in (REPO_ROOT / "samples" / "dummyjson" / "users.jsonl").read_text().splitlines()
    ]
    accepted_without_event(settings, "dummyjson.users", users[:3])
    with dbt_environment(settings):
        assert dbt_build(["dummyjson.products", "dummyjson.users"], settings=settings)["status"] == "built"
        before = as_before_the_lake(settings)
        assert not lake.exists(settings) and settings.warehouse.exists()

        # the upgrade: the next file of one dataset; its build moves every model over first
        accepted_without_event(settings, "dummyjson.products", [{"id": 9, "title": "new-9", "price": 2}])
        assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"

    assert not settings.warehouse.exists(), "the old readers' copy is removed"
    with duckdb.connect(str(settings.build_warehouse), read_only=True) as con:
        left = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema = 'main' or table_name = 'model_marks'"
        ).fetchall()
        files = con.execute("select count(*), count(distinct accepted_file) from landing.load_history").fetchone()
    assert left == [], f"the models stayed in the build's file too: {left}"
    assert files == (3, 3), "nothing was loaded twice"
    with lake.connect(settings) as con:
        users = sorted(con.execute("select * from stage_dummyjson__users").fetchall(), key=repr)
        history = con.execute("select count(*) from landing.load_history").fetchone()[0]
    assert len(users) == 3 and users == before["stage_dummyjson__users"], "a dataset not built keeps its rows"
    assert history == 3, "explain and status read the whole load history from the lake"
    assert warehouse_row(settings, PRODUCTS) == (6, 6)  # the 5 old rows, moved, and the new one, built incrementally


def test_a_build_file_made_anew_while_the_lake_has_models_builds_them_again_from_every_file(settings, prefect_server):
    """Three builds of a file each (load ids 1 to 3, the model's mark 3); then the build file and two of the accepted
    files deleted by hand. The new file's load ids restart below the lake's mark: without dropping the lake's models,
    the new rows would never be read and the deleted files' rows would stay."""
    files = []
    with dbt_environment(settings):
        for n in range(3):
            rows = [{"id": 10 * n + i, "title": f"t-{n}", "price": 1} for i in range(2)]
            files.append(accepted_without_event(settings, "dummyjson.products", rows))
            assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"
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
