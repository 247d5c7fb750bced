"""`landing verify`'s pieces without dbt: which models it verifies, how it compares a live table with a full build, and
what it says and records."""

from __future__ import annotations

from types import SimpleNamespace

import duckdb

from automations.verify import (
    LIVE,
    Check,
    Target,
    Verification,
    compare,
    key_columns,
    read_record,
    summary,
    targets,
    write_record,
)
from landing.catalog import Catalog, Model
from landing.settings import Settings
from ops.inspect import _verify_status


def node(materialized: str = "incremental", unique_key=None, alias: str | None = None) -> SimpleNamespace:
    config = SimpleNamespace(materialized=materialized, unique_key=unique_key)
    return SimpleNamespace(config=config, schema="main", alias=alias, name="ignored")


def test_the_models_downstream_of_the_datasets_with_their_keys_and_no_views():
    catalog = Catalog(root="/r")
    for name, datasets in {
        "stage_a": ("s.a",),
        "stage_b": ("s.b",),
        "mart_ab": ("s.a", "s.b"),
        "a_view": ("s.a",),
    }.items():
        catalog.models[name] = Model(name=name, unique_id=f"model.p.{name}", datasets=datasets)
    nodes = {
        "model.p.stage_a": node(unique_key="a_id", alias="stage_a"),
        "model.p.stage_b": node(unique_key=["b_id", "day"], alias="stage_b"),
        "model.p.mart_ab": node("table", alias="mart_ab"),
        "model.p.a_view": node("view", alias="a_view"),
    }
    assert [(t.name, t.key) for t in targets(catalog, nodes, ["s.a"])] == [("mart_ab", ()), ("stage_a", ("a_id",))]
    assert [t.name for t in targets(catalog, nodes, ["s.a", "s.b"])] == ["mart_ab", "stage_a", "stage_b"]
    assert targets(catalog, nodes, ["s.b"])[1].key == ("b_id", "day")
    assert key_columns(None) == () and key_columns("k") == ("k",) and key_columns(["a", "b"]) == ("a", "b")


def scratch(live_rows: str, full_rows: str, columns: str = "id integer, v varchar, _landing_high bigint"):
    """An in-memory scratch copy: the full build in the scratch lake's main.t, the live rows kept in the LIVE schema."""
    con = duckdb.connect()
    con.execute("attach ':memory:' as lake")
    con.execute(f"create schema {LIVE}")
    con.execute(f"create table lake.main.t ({columns})")
    con.execute(f"create table {LIVE}.main__t ({columns})")
    if full_rows:
        con.execute(f"insert into lake.main.t values {full_rows}")
    if live_rows:
        con.execute(f"insert into {LIVE}.main__t values {live_rows}")
    return con


def test_equal_tables_are_ok_whatever_their_bookkeeping_columns_say():
    con = scratch("(1, 'a', 7), (2, 'b', 7)", "(2, 'b', 9), (1, 'a', 9)")
    check = compare(con, Target("t", "main", "t", ("id",)))
    assert check.ok and check.rows == 2 and check.line() == "ok t 2"


def test_differences_are_counted_both_ways_with_duplicates_and_sampled_by_key():
    con = scratch("(1, 'a', 1), (2, 'changed', 1), (3, 'c', 1), (3, 'c', 1)", "(1, 'a', 1), (2, 'b', 1), (3, 'c', 1)")
    check = compare(con, Target("t", "main", "t", ("id",), ("s.a",)))
    assert (check.only_live, check.only_full, check.sample_keys) == (2, 1, ("2", "3"))
    assert check.line() == (
        "DIFFERS t: 2 row(s) only in the live table, 1 only in a full build; sample keys: 2, 3 (id)"
    )
    assert check.payload() == {
        "model": "t",
        "datasets": ["s.a"],
        "only_live": 2,
        "only_full": 1,
        "key": ["id"],
        "sample_keys": ["2", "3"],
    }


def test_without_a_unique_key_the_first_column_and_a_composite_key_as_a_tuple():
    con = scratch("(1, 'x', 0)", "(1, 'y', 0)")
    assert compare(con, Target("t", "main", "t", ())).sample_keys == ("1",)
    assert compare(con, Target("t", "main", "t", ("id", "v"))).sample_keys == ("(1, x)", "(1, y)")
    assert compare(con, Target("t", "main", "t", ("gone",))).key == ("id",)  # a key column neither has: the first


def test_a_column_only_one_side_has_is_named_and_not_compared():
    con = duckdb.connect()
    con.execute(f"create schema {LIVE}")
    con.execute("attach ':memory:' as lake")
    con.execute("create table lake.main.t as select 1 as id, 'new' as added")
    con.execute(f"create table {LIVE}.main__t as select 1::bigint as id")  # and id's type changed: compared as text
    check = compare(con, Target("t", "main", "t", ("id",)))
    assert check.ok and check.note == "only in a full build: added"


def test_the_record_and_the_status_line(tmp_path):
    settings = Settings(state_dir=tmp_path)
    said: list[str] = []
    _verify_status(settings, said.append)
    assert said[-1].startswith("verify    never run")

    good = Verification(["s.a"], checks=[Check("t", 3, 0, 0)])
    assert summary(good).startswith("all 1 model(s) equal a full build")
    write_record(settings, good)
    assert read_record(settings)["status"] == "ok" and [p.name for p in tmp_path.iterdir()] == ["verify.json"]
    _verify_status(settings, said.append)
    assert said[-1].endswith(": ok, 1 model(s) equal a full build")

    bad = Verification(["s.a"], checks=[Check("t", 3, 1, 2, ("id",), ("5",), ("s.a",))])
    assert summary(bad) == "1 of 1 model(s) differ from a full build: `landing rebuild s.a` builds them from scratch"
    write_record(settings, bad)
    assert read_record(settings)["differs"][0]["sample_keys"] == ["5"]
    _verify_status(settings, said.append)
    assert "DIFFERS t (1 row(s) only live, 2 only in a full build)" in said[-1]

    write_record(settings, Verification(["s.a"], error="the full build failed: stage_a: boom\nmore"))
    _verify_status(settings, said.append)
    assert said[-1].endswith(": failed: the full build failed: stage_a: boom")


def test_the_runner_serves_the_verification_on_its_interval_aligned_to_3_utc():
    from datetime import timedelta

    from automations.names import VERIFY_DEPLOYMENT
    from automations.serve import FLOWS, VERIFY_ANCHOR, deployments, verify_deployments

    served = deployments(Settings(verify_interval_seconds=3600))
    assert {d.flow_name for d in served} <= {f.name for f in FLOWS}  # the warm runner has every flow it serves
    assert VERIFY_DEPLOYMENT not in {d.name for d in served}  # in a runner of its own: never ahead of a build
    [verify] = [d for d in verify_deployments(Settings(verify_interval_seconds=3600)) if d.name == VERIFY_DEPLOYMENT]
    [schedule] = verify.schedules
    assert schedule.schedule.interval == timedelta(hours=1) and schedule.schedule.anchor_date == VERIFY_ANCHOR
    assert VERIFY_ANCHOR.hour == 3
    [off] = [d for d in verify_deployments(Settings(verify_interval_seconds=0)) if d.name == VERIFY_DEPLOYMENT]
    assert off.schedules == []
