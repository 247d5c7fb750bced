"""Loading accepted files once: the set difference, one transaction per chunk, bad files set aside (real DuckDB)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automations import load


@pytest.fixture
def con(settings):
    """The loader's connection: the lake, attached writable (a SQLite catalog and Parquet files in the test's folder)."""
    from landing import lake

    settings.state_dir.mkdir(parents=True)
    yield lake.writer(settings)
    lake.close_writer()


def land(ds, name: str, rows: list[dict]) -> str:
    ds.accepted_path.mkdir(parents=True, exist_ok=True)
    path = ds.accepted_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_each_file_is_loaded_once_with_its_history_and_late_files_too(con, settings, catalog):
    ds = catalog.get("shop.products")
    a = land(
        ds, "20260102T000000000000Z-a.jsonl", [{"id": 1, "title": "a", "price": 1}, {"id": 2, "title": "b", "price": 2}]
    )
    first = load.load(con, settings, ds, flow_run_id="run-1")
    assert (first.files, first.rows) == ([a], 2)
    late = land(ds, "20260101T000000000000Z-late.jsonl", [{"id": 3, "title": "c", "price": 3}])  # an older name
    again = load.load(con, settings, ds)
    assert again.files == [late] and again.first_load_id > first.first_load_id
    assert load.load(con, settings, ds).files == []  # nothing new: nothing read
    assert con.execute(
        f"select accepted_file, rows, flow_run_id, sha256 is not null from {load.HISTORY} order by load_id"
    ).fetchall() == [(ds.file_id(a), 2, "run-1", True), (ds.file_id(late), 1, None, True)]
    assert ds.file_id(a) == "shop/products/20260102T000000000000Z-a.jsonl"  # what the file is, not where it is
    assert con.execute(f"select count(*), count(distinct _landing_batch) from {load.raw_table(ds)}").fetchone() == (
        3,
        2,
    )
    assert load.history(con, ds.file_id(late))[2] == 1


def test_a_bad_file_is_set_aside_with_the_test_that_failed_and_the_others_load(con, settings, catalog):
    ds = catalog.get("shop.products")
    good = [land(ds, f"2026010{i}T000000000000Z-g.jsonl", [{"id": i, "title": "t", "price": 1}]) for i in range(1, 4)]
    bad = land(ds, "20260105T000000000000Z-bad.jsonl", [{"id": 9, "price": 1}])  # title is required (not_null)
    broken = land(ds, "20260106T000000000000Z-broken.jsonl", [])
    (ds.accepted_path / "20260106T000000000000Z-broken.jsonl").write_text('{"id": 1, "title": ')
    done = load.load(con, settings, ds)
    assert sorted(done.files) == sorted(good) and done.rows == 3
    assert "not_null test on title" in done.rejected[bad] and broken in done.rejected
    reason = (
        settings.root / "_quarantine" / "shop.products" / "20260105T000000000000Z-bad.jsonl.reason.txt"
    ).read_text()
    assert "not_null_shop_products_title" in reason and "landing replay" in reason
    assert con.execute(f"select count(*) from {load.raw_table(ds)}").fetchone() == (3,)  # no row of a bad file

    from ops.inspect import explain

    said = []
    explain(
        str(settings.root / "_quarantine" / "shop.products" / "20260105T000000000000Z-bad.jsonl"),
        settings,
        out=said.append,
        catalog=catalog,
    )
    text = "\n".join(said)
    assert "dataset   shop.products" in text and "not_null_shop_products_title" in text and "landing replay" in text


def test_the_load_counter_is_one_row_however_many_connections_made_the_tables(con, settings, catalog):
    """Every process makes the loader's tables once on its own connection; the counter starts past the history and
    stays one row."""
    from automations.tables import COUNTER
    from landing import lake

    ds = catalog.get("shop.products")
    land(ds, "20260101T000000000000Z-a.jsonl", [{"id": 1, "title": "a", "price": 1}])
    load.load(con, settings, ds)
    for _ in range(2):  # another process's connection, as a second runner makes it
        with lake.connect(settings, read_only=False) as other:
            load.ensure_tables(other)
    assert con.execute(f"select count(*), max(next_id) from {COUNTER}").fetchone() == (1, 1)


def test_a_dataset_reset_by_another_runner_is_read_again_after_one_failed_load(settings, catalog):
    """What a process knows of a dataset is kept while its load mark is unchanged; a reset elsewhere that leaves the
    mark as it was (no row before, none after: the only file was rejected) costs one failed load, never more."""
    import duckdb

    from landing import lake

    ds = catalog.get("shop.products")
    settings.state_dir.mkdir(parents=True)
    land(ds, "20260101T000000000000Z-bad.jsonl", [{"id": 1, "price": 1}])  # title is required: set aside
    assert load.load_all(settings, [ds])[0].rejected
    with lake.connect(settings, read_only=False) as other:  # another runner's rebuild, stopped after the forget
        mine = dict(load._KNOWN)
        load.forget(other, ds)
        load._KNOWN.update(mine)
    good = land(ds, "20260102T000000000000Z-good.jsonl", [{"id": 2, "title": "t", "price": 1}])
    with pytest.raises(duckdb.CatalogException):
        load.load_all(settings, [ds])
    assert load.load_all(settings, [ds])[0].files == [good]
    lake.close_writer()


def test_load_ids_are_never_reused_after_a_dataset_is_forgotten(con, settings, catalog):
    ds = catalog.get("shop.products")
    land(ds, "20260101T000000000000Z-a.jsonl", [{"id": 1, "title": "a", "price": 1}])
    first = load.load(con, settings, ds).first_load_id
    load.forget(con, ds)
    assert con.execute(f"select count(*) from {load.HISTORY}").fetchone() == (0,)
    assert load.load(con, settings, ds).first_load_id > first  # a model's watermark stays below every later load


def test_a_changed_contract_empties_the_raw_table_and_loads_every_file_again(con, settings, catalog):
    from dataclasses import replace

    ds = catalog.get("shop.products")
    land(ds, "20260101T000000000000Z-a.jsonl", [{"id": 1, "title": "a", "price": 1, "stock": 4}])
    load.load(con, settings, ds)
    wider = replace(ds, columns=ds.columns + ("stock",), column_types=ds.column_types + ("INTEGER",))
    again = load.load(con, settings, wider)
    assert again.reloaded and len(again.files) == 1
    assert con.execute(f"select stock from {load.raw_table(ds)}").fetchall() == [(4,)]


def test_undeclared_columns_go_into_the_history_and_the_drift_table_and_rescue_keeps_them(con, settings, catalog):
    from dataclasses import replace

    ds = catalog.get("shop.products")
    a = land(
        ds,
        "20260101T000000000000Z-a.jsonl",
        [{"id": 1, "title": "a", "price": 1, "colour": "red"}, {"id": 2, "title": "b", "price": 2, "size": {"w": 3}}],
    )
    b = land(ds, "20260102T000000000000Z-b.jsonl", [{"id": 3, "title": "c", "price": 3}])
    load.load(con, settings, ds)
    assert load.history(con, ds.file_id(a))[5] == ["colour", "size"] and load.history(con, ds.file_id(b))[5] == []
    assert [(d, cols, n) for d, cols, n, _ in load.drift(con)] == [("shop.products", ["colour", "size"], 1)]
    assert "_rescued" not in [r[0] for r in con.execute(f"describe {load.raw_table(ds)}").fetchall()]

    c = land(ds, "20260103T000000000000Z-c.jsonl", [{"id": 4, "title": "d", "price": 4, "colour": "blue"}])
    load.load(con, settings, ds)
    assert [(d, cols, n) for d, cols, n, _ in load.drift(con)] == [("shop.products", ["colour", "size"], 2)]

    rescued = replace(ds, rescue=True)  # opting in changes the raw table: every accepted file loads again
    again = load.load(con, settings, rescued)
    assert again.reloaded and sorted(again.files) == sorted([a, b, c])
    got = con.execute(f"select id, title, _rescued::varchar from {load.raw_table(ds)} order by id").fetchall()
    assert got == [
        (1, "a", '{"colour":"red"}'),
        (2, "b", '{"size":{"w":3}}'),
        (3, "c", None),
        (4, "d", '{"colour":"blue"}'),
    ]
    assert [(d, cols, n) for d, cols, n, _ in load.drift(con)] == [("shop.products", ["colour", "size"], 2)]


def test_undeclared_columns_of_a_csv_file_come_from_its_header(con, settings, catalog):
    from dataclasses import replace

    from landing.reader import connect, undeclared_columns

    ds = catalog.get("fx.rates")
    ds.accepted_path.mkdir(parents=True)
    path = ds.accepted_path / "20260101T000000000000Z-a.csv"
    path.write_text("day,currency,rate,source\n2026-01-01,EUR,1.1,ecb\n")
    assert undeclared_columns(connect(), ds, [str(path)]) == {str(path): ("source",)}
    load.load(con, settings, replace(ds, rescue=True))
    assert con.execute(f"select currency, _rescued::varchar from {load.raw_table(ds)}").fetchall() == [
        ("EUR", '{"source":"ecb"}')
    ]


def test_old_loaded_files_are_compacted_per_day_and_a_reload_from_the_parts_gives_the_same_rows(con, settings, catalog):
    from datetime import datetime, timezone

    from automations import compact

    ds = catalog.get("shop.products")
    rows = {}
    for day in (1, 2):
        for i in range(3):
            name = f"2026010{day}T00000{i}000000Z-{day}{i}.jsonl"
            rows[name] = [
                {"id": day * 10 + i, "title": f"t{day}{i}", "price": 1.5, "colour": "red"},
                {"id": day * 10 + i + 100, "title": "second row of the file", "price": 2},
            ]
            land(ds, name, rows[name])
    young = land(ds, "20260110T000000000000Z-young.jsonl", [{"id": 99, "title": "young", "price": 1}])
    unloaded = land(ds, "20260101T120000000000Z-later.jsonl", [{"id": 98, "title": "not loaded yet", "price": 1}])
    Path(unloaded).rename(unloaded + ".hold")  # not there at load time
    load.load(con, settings, ds)
    Path(unloaded + ".hold").rename(unloaded)
    # a row's place in its file survives compaction: the same order within each file
    place = "row_number() over (partition by filename order by _landing_row) as place"
    before = con.execute(
        f"select * exclude (_landing_batch, _landing_row), {place} from {load.raw_table(ds)} order by all"
    ).fetchall()

    done = compact.compact(con, settings, ds, now=datetime(2026, 1, 10, tzinfo=timezone.utc))  # retention 7 days
    assert [Path(p).name for p in done.parts] == ["20260101-0.jsonl.gz", "20260102-0.jsonl.gz"] and done.files == 6
    assert sorted(ds.accepted_path.iterdir()) == sorted([Path(young), Path(unloaded)])  # young and not-yet-loaded stay
    first = ds.accepted_path / "20260101T000000000000Z-10.jsonl"
    assert settings.accepted / load.history(con, ds.file_id(first))[6] == Path(done.parts[0])

    load.forget(con, ds)  # a rebuild: the parts and the loose files load again
    again = load.load(con, settings, ds)
    assert len(again.files) == 8 and again.rows == 14
    after = con.execute(
        f"select * exclude (_landing_batch, _landing_row), {place} from {load.raw_table(ds)} where filename <> ? "
        "order by all",
        [ds.file_id(unloaded)],
    ).fetchall()
    assert after == before
    assert load.history(con, ds.file_id(first))[5] == ["colour"]  # drift is kept through the part
    assert compact.compact(con, settings, ds, now=datetime(2026, 1, 10, tzinfo=timezone.utc)).parts == [
        str(compact.parts_folder(settings, ds) / "20260101-1.jsonl.gz")
    ]  # the late-loaded file of an old day
    assert not Path(unloaded).exists()
    load.forget(con, ds)
    assert load.load(con, settings, ds).rows == 14 and con.execute(
        f"select count(*) from {load.raw_table(ds)} where filename = ?", [ds.file_id(unloaded)]
    ).fetchone() == (1,)


def test_a_column_declared_after_compaction_is_read_from_the_parts(con, settings, catalog):
    from dataclasses import replace
    from datetime import datetime, timezone

    from automations import compact

    ds = catalog.get("shop.products")
    land(ds, "20260101T000000000000Z-a.jsonl", [{"id": 1, "title": "a", "price": 1, "colour": "red"}])
    load.load(con, settings, ds)
    compact.compact(con, settings, ds, now=datetime(2026, 2, 1, tzinfo=timezone.utc))
    assert not list(ds.accepted_path.iterdir())
    wider = replace(ds, columns=ds.columns + ("colour",), column_types=ds.column_types + ("varchar",))
    assert load.load(con, settings, wider).reloaded
    assert con.execute(f"select id, colour from {load.raw_table(ds)}").fetchall() == [(1, "red")]


def test_a_rescue_dataset_keeps_any_key_as_data_the_readers_own_names_and_empty_ones_too(con, settings, catalog):
    from dataclasses import replace

    ds = replace(catalog.get("shop.products"), rescue=True)
    odd = {"filename": "f.csv", "": "empty", "_landing_batch": 7, "_rescued": {"x": 1}, 'qu"ote': "'", "ÜÑÏ": 1}
    path = land(ds, "20260101T000000000000Z-odd.jsonl", [{"id": 1, "title": "a", "price": 1, **odd}])
    done = load.load(con, settings, ds)
    assert done.rejected == {} and done.files == [path]  # accepted by the sensor, loaded by the loader
    rescued, batch, name = con.execute(
        f"select _rescued, _landing_batch, filename from {load.raw_table(ds)}"
    ).fetchone()
    assert json.loads(rescued) == odd and batch == done.first_load_id and name == ds.file_id(path)
    assert sorted(load.history(con, ds.file_id(path))[5]) == sorted(odd)


def test_moving_the_landing_root_loads_nothing_twice(con, settings, catalog):
    import shutil

    from landing.catalog import render_roots

    ds = catalog.get("shop.products")
    first = land(ds, "20260101T000000000000Z-a.jsonl", [{"id": 1, "title": "a", "price": 1}])
    load.load(con, settings, ds)
    moved = settings.model_copy(update={"root": settings.root.parent / "a-moved"})  # sorts before the old path
    shutil.move(settings.root, moved.root)
    ds = render_roots(catalog, str(moved.root), str(moved.accepted)).get("shop.products")
    assert load.load(con, moved, ds).files == []  # known by what it is, not where it was
    newer = land(ds, "20260102T000000000000Z-b.jsonl", [{"id": 1, "title": "b", "price": 999.99}])
    assert load.load(con, moved, ds).files == [newer]
    assert con.execute(f"select filename, count(*) from {load.raw_table(ds)} group by 1 order by 1").fetchall() == [
        (ds.file_id(first), 1),
        (ds.file_id(newer), 1),
    ]
    assert ds.file_id(first) < ds.file_id(newer)  # the order of landing, wherever the folder is


def test_a_key_spelled_unlike_its_declared_column_is_undeclared_and_rescued_not_lost(con, settings, catalog):
    from dataclasses import replace

    ds = replace(catalog.get("shop.products"), rescue=True)
    path = land(ds, "20260101T000000000000Z-case.jsonl", [{"id": 1, "title": "a", "price": 1, "Brand": "Acme"}])
    load.load(con, settings, ds)
    brand, rescued = con.execute(f"select brand, _rescued from {load.raw_table(ds)}").fetchone()
    assert brand is None and json.loads(rescued) == {"Brand": "Acme"}  # read_json binds `brand` only
    assert load.history(con, ds.file_id(path))[5] == ["Brand"]


def test_explain_finds_the_load_of_a_file_by_its_path_before_the_landing_folder_moved(settings, catalog):
    from landing import lake
    from ops.inspect import _loaded_line

    ds = catalog.get("shop.products")
    path = land(ds, "20260101T000000000000Z-a.jsonl", [{"id": 1, "title": "a", "price": 1}])
    load.load_all(settings, [ds])
    lake.close_writer()
    old = "/mnt/old-landing/_accepted/shop/products/" + Path(path).name  # what the ledger kept from before a move
    assert _loaded_line(settings, catalog, old).startswith("loaded    1 row(s)")


def test_the_load_marks_equal_the_history_they_summarize_through_loads_and_reloads(con, settings, catalog):
    """A build reads a row per dataset (landing.load_marks), not the growing history: the row must always equal what
    the history gives from scratch."""
    from dataclasses import replace

    from automations.tables import LOAD_MARKS

    def marks():
        return con.execute(f"select dataset, high, files, newest from {LOAD_MARKS} order by dataset").fetchall()

    def from_history():
        return con.execute(
            f"select dataset, max(load_id), count(*), max(accepted_file) from {load.HISTORY} group by dataset "
            "order by dataset"
        ).fetchall()

    ds, orders = catalog.get("shop.products"), catalog.get("shop.orders")
    land(ds, "20260102T000000000000Z-a.jsonl", [{"id": 1, "title": "a"}])
    land(ds, "20260101T000000000000Z-late.jsonl", [{"id": 2, "title": "b"}])
    land(orders, "20260103T000000000000Z-o.jsonl", [{"id": 1, "product_id": 1}])
    load.load(con, settings, ds)
    load.load(con, settings, orders)
    assert marks() == from_history() and len(marks()) == 2
    land(ds, "20260104T000000000000Z-b.jsonl", [{"id": 3, "title": "c"}])
    assert load.load(con, settings, ds).newest == "shop/products/20260104T000000000000Z-b.jsonl"
    assert marks() == from_history()
    again = load.load(con, settings, replace(ds, rescue=True))  # a contract change: every file loads again
    assert again.reloaded and marks() == from_history()
    load.forget(con, orders)
    assert marks() == from_history() and [m[0] for m in marks()] == ["shop.products"]
    assert load.load(con, settings, replace(ds, rescue=True)).files == []


def test_a_column_made_required_loads_every_file_again_and_a_file_lacking_it_is_set_aside(con, settings, catalog):
    """Builds leave the sources' not_null tests to the loader: a newly required column is checked on every row."""
    from dataclasses import replace

    ds = catalog.get("shop.products")
    a = land(ds, "20260101T000000000000Z-a.jsonl", [{"id": 1, "title": "a", "price": 1}])
    b = land(ds, "20260102T000000000000Z-b.jsonl", [{"id": 2, "title": "b"}])
    assert sorted(load.load(con, settings, ds).files) == [a, b]
    stricter = replace(ds, required=(*ds.required, "price"))
    again = load.load(con, settings, stricter)
    assert again.reloaded and again.files == [a] and list(again.rejected) == [b]
    assert con.execute(f"select id from {load.raw_table(ds)}").fetchall() == [(1,)]
    # due a build from scratch until one succeeds (load.refreshed), even if the build after the reload failed
    assert load.load(con, settings, stricter).files == [] and load.load(con, settings, stricter).reloaded
    load.refreshed(settings, [ds.name])  # after that build
    assert not load.load(con, settings, stricter).reloaded


def test_a_compacted_file_lacking_a_newly_required_column_is_left_out_of_the_reload(con, settings, catalog):
    from dataclasses import replace
    from datetime import datetime, timezone

    from automations import compact

    ds = catalog.get("shop.products")
    land(ds, "20260101T000000000000Z-a.jsonl", [{"id": 1, "title": "a", "price": 1}])
    land(ds, "20260101T010000000000Z-b.jsonl", [{"id": 2, "title": "b"}])
    load.load(con, settings, ds)
    old = settings.model_copy(update={"accepted_retention_days": 1})
    assert compact.compact(con, old, ds, now=datetime(2026, 1, 15, tzinfo=timezone.utc)).files == 2
    again = load.load(con, settings, replace(ds, required=(*ds.required, "price")))
    assert again.reloaded and again.rows == 1
    assert con.execute(f"select id from {load.raw_table(ds)}").fetchall() == [(1,)]


def test_rescued_columns_of_csv_files_that_differ_only_in_case_stay_each_files_own(con, settings, catalog):
    from dataclasses import replace

    ds = replace(catalog.get("fx.rates"), rescue=True)
    ds.accepted_path.mkdir(parents=True)
    (ds.accepted_path / "20260101T000000000000Z-a.csv").write_text("day,currency,rate,x\n2026-01-01,EUR,1.1,7\n")
    (ds.accepted_path / "20260102T000000000000Z-b.csv").write_text("day,currency,rate,X\n2026-01-02,USD,1.0,9\n")
    load.load(con, settings, ds)
    assert con.execute(f"select currency, _rescued::varchar from {load.raw_table(ds)} order by day").fetchall() == [
        ("EUR", '{"x":7}'),
        ("USD", '{"X":9}'),
    ]


def test_the_drift_table_equals_a_count_over_the_load_history_whatever_the_loads_and_who_made_them(catalog):
    """Generated: files carrying any of three undeclared columns (or none), landed and loaded in any batches, with this
    process's knowledge of the dataset dropped between loads as another runner's load would. The drift table's row per
    column (files, first and last file) then equals what the history's `undeclared_columns` give from scratch."""
    import tempfile
    from dataclasses import replace

    from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

    from landing import lake
    from landing.settings import Settings

    extra = {"colour": "red", "size": {"w": 3}, "tag": ["a"]}
    base = Path(catalog.get("shop.products").accepted_folder).parents[1]  # the fixture's accepted root
    batches = st.lists(
        st.tuples(st.lists(st.sets(st.sampled_from(sorted(extra))), min_size=1, max_size=3), st.booleans()),
        min_size=1,
        max_size=4,
    )

    @hsettings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(batches)
    def check(steps):
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(root=Path(tmp) / "landing", state_dir=Path(tmp) / "state", settle_seconds=0.0)
            settings.state_dir.mkdir(parents=True)
            ds = catalog.get("shop.products")
            ds = replace(ds, accepted_folder=str(settings.accepted / Path(ds.accepted_folder).relative_to(base)))
            con = lake.writer(settings)
            try:
                n = 0
                for files, forget in steps:
                    for cols in files:
                        n += 1
                        row = {"id": n, "title": "t", "price": 1, **{c: extra[c] for c in cols}}
                        land(ds, f"202601{n:02d}T000000000000Z-f.jsonl", [row])
                    if forget:
                        load._KNOWN.clear()  # another runner loaded meanwhile: this process reads what it knew again
                    load.load(con, settings, ds)
                got = con.execute(
                    f"select column_name, files, first_file, last_file from {load.DRIFT} where dataset = ? order by 1",
                    [ds.name],
                ).fetchall()
                want = con.execute(
                    f"select c, count(*), min(accepted_file), max(accepted_file) from (select accepted_file, "
                    f"unnest(undeclared_columns) as c from {load.HISTORY} where dataset = ?) group by c order by c",
                    [ds.name],
                ).fetchall()
                assert got == want
            finally:
                lake.close_writer()
                load._KNOWN.clear()

    check()


def test_the_models_built_are_listed_once_then_kept_while_the_lake_has_the_snapshot_this_process_left(
    con, settings, monkeypatch
):
    """A build asks which of the models that read every source have a table (23 ms to list the lake's tables). The
    answer is kept with the snapshot it was true at: after this process's build it is those tables and the models the
    build made; any other commit to the lake (another runner, maintenance, a rollback) makes it list again."""
    from automations import dbt_build

    dbt_build._TABLES.clear()
    con.execute("create table lake.main.a as select 1 as x")
    assert dbt_build._built_tables(settings, ["a", "b"]) == {"a"}
    con.execute("create table lake.main.b as select 1 as x")  # someone else's commit: a new snapshot
    assert dbt_build._built_tables(settings, ["a", "b"]) == {"a", "b"}

    con.execute("create table lake.main.c as select 1 as x")  # this process's build, which made c
    dbt_build._tables_after(settings, True, dbt_build._snapshot(settings), {"model.p.c": {"status": "success"}})
    listed = []
    monkeypatch.setattr(dbt_build, "_lake_state", lambda s: listed.append(1) or (None, frozenset()))
    assert dbt_build._built_tables(settings, ["a", "b", "c"]) == {"a", "b", "c"} and listed == []

    monkeypatch.undo()
    con.execute("drop table lake.main.a")  # a commit after the build: listed again
    assert dbt_build._built_tables(settings, ["a", "b", "c"]) == {"b", "c"}
    dbt_build._tables_after(settings, True, dbt_build._snapshot(settings), None)  # a failed build: unknown
    assert settings.lake_catalog_uri not in dbt_build._TABLES
    dbt_build._TABLES.clear()


def test_a_lake_made_anew_forgets_the_kept_table_list(settings):
    """Its snapshots count from the start again, so one could match the snapshot the kept list was true at."""
    from automations import dbt_build

    settings.state_dir.mkdir(parents=True)
    dbt_build._TABLES[settings.lake_catalog_uri] = (5, frozenset({"ghost"}))
    dbt_build._ATTACHED[:] = [("another lake", None), 1]
    try:
        dbt_build._same_lake_attached(settings)
        assert dbt_build._TABLES == {}
    finally:
        dbt_build._TABLES.clear()
        dbt_build._ATTACHED[:] = [None, 0]
