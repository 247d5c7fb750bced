"""Load each file once: a build reads only files not loaded yet, and what it makes equals a full rebuild.

Builds run in-process (the dbt-build flow, real dbt-duckdb) on a random sequence of files landed straight into the
accepted area: new keys, updated keys, duplicate files, files landing late (older names after newer ones), a bad file.
"""

from __future__ import annotations

import json
import random

import duckdb
import pytest

from automations import compact, load
from automations.dbt_build import dbt_build
from landing.catalog import load_catalog
from landing.settings import Settings
from landing import lake
from testkit.local import builds, dbt_environment

TABLES = [
    "stage_dummyjson__products",
    "stage_dummyjson__users",
    "stage_dummyjson__cart_lines",
    "stage_finance__exchange_rates",
    "stage_inventory__stock_movements",
    "cart_lines_enriched",
]
ALL = [
    "dummyjson.carts",
    "dummyjson.products",
    "dummyjson.users",
    "finance.exchange_rates",
    "inventory.stock_movements",
]


class Files:
    """Writes files into the accepted area under names that sort by a landing time the test chooses."""

    def __init__(self, settings: Settings, rng: random.Random):
        self.catalog, self.rng, self.n = load_catalog(settings), rng, 0
        self.content: dict[str, bytes] = {}  # a file's bytes: its own file may have been compacted since

    def name(self, late: bool, oldest: bool = False) -> str:
        self.n += 1
        # an accepted name starts with its landing time; a late file carries a time before files already landed
        stamp = 20260101000000 + (1 if oldest else self.rng.randrange(0, self.n * 10) if late else self.n * 10 + 5)
        return f"{str(stamp)[:8]}T{str(stamp)[8:]}000000Z-{self.n:06d}"

    def write(self, dataset: str, rows: list[dict], late: bool = False, oldest: bool = False) -> str:
        ds = self.catalog.get(dataset)
        ds.accepted_path.mkdir(parents=True, exist_ok=True)
        if dataset == "finance.exchange_rates":
            path = ds.accepted_path / f"{self.name(late)}.csv"
            path.write_text(
                "currency,rate_to_usd,as_of\n" + "".join(f"{r['currency']},{r['rate']},{r['as_of']}\n" for r in rows)
            )
        elif dataset == "inventory.stock_movements":
            path = ds.accepted_path / f"{self.name(late)}.parquet"
            with duckdb.connect() as con:
                con.execute(
                    "create table m as select * from (values "
                    + ", ".join(
                        f"({r['movement_id']}::bigint, {r['product_id']}, 'W{r['product_id'] % 3}', {r['quantity']}, "
                        f"timestamp '2026-11-01 00:00:00')"
                        for r in rows
                    )
                    + ") t(movement_id, product_id, warehouse, quantity, moved_at)"
                )
                con.execute(f"copy m to '{path}' (format parquet)")
        else:
            path = ds.accepted_path / f"{self.name(late, oldest)}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.content[str(path)] = path.read_bytes()
        return str(path)


def random_file(files: Files, rng: random.Random, movement: list[int]) -> tuple[str, str]:
    dataset = rng.choice(ALL)
    late = rng.random() < 0.15
    n = rng.randint(1, 8)
    if dataset == "dummyjson.products":
        rows = [
            {
                "id": k,
                "title": f"p{k}-{rng.randint(0, 99)}",
                "price": rng.randint(1, 500) / 4,
                "category": "c",
                "brand": rng.choice(["a", None]),
                "stock": rng.randint(0, 9),
            }
            for k in rng.sample(range(1, 40), n)
        ]
    elif dataset == "dummyjson.users":
        rows = [
            {
                "id": k,
                "firstName": f"f{rng.randint(0, 9)}",
                "lastName": "l",
                "email": f"u{k}-{rng.randint(0, 9)}@x",
                "username": f"u{k}",
            }
            for k in rng.sample(range(1, 30), n)
        ]
    elif dataset == "dummyjson.carts":
        rows = [
            {
                "id": k,
                "userId": rng.randint(1, 29),
                "products": [
                    {
                        "id": rng.randint(1, 39),
                        "title": "t",
                        "price": 1.5,
                        "quantity": rng.randint(1, 3),
                        "total": 3.0,
                        "discountedTotal": 2.5,
                    }
                    for _ in range(rng.randint(1, 4))
                ],
            }
            for k in rng.sample(range(1, 25), n)
        ]
    elif dataset == "finance.exchange_rates":
        rows = [
            {"currency": c, "rate": rng.randint(50, 150) / 100, "as_of": f"2026-11-{d:02d}"}
            for c, d in rng.sample([(c, d) for c in ("EUR", "GBP", "JPY") for d in range(1, 6)], n)
        ]
    else:
        rows = []
        for _ in range(n):
            movement[0] += 1
            rows.append({"movement_id": movement[0], "product_id": rng.randint(1, 39), "quantity": rng.randint(-5, 5)})
    return dataset, files.write(dataset, rows, late)


def build(settings: Settings, datasets: list[str], and_models: list[str] | None = None) -> dict:
    with dbt_environment(settings):
        return dbt_build(sorted(datasets), and_models=and_models, settings=settings)


def test_incremental_builds_equal_a_full_rebuild_after_a_random_sequence_of_files(settings, prefect_server, tmp_path):
    rng = random.Random(20261201)
    files, movement, landed = Files(settings, rng), [0], []
    while len(landed) < 210:
        batch = [random_file(files, rng, movement) for _ in range(rng.randint(4, 20))]
        snapshots = [(d, p) for d, p in landed if d != "inventory.stock_movements"]  # the sensor drops duplicates
        if rng.random() < 0.3 and snapshots:  # the same content again under a newer name (an export run twice)
            dataset, path = rng.choice(snapshots)
            dup = (
                files.catalog.get(dataset).accepted_path
                / f"{files.name(False)}{path[path.index('.', path.rindex('/')) :]}"
            )
            dup.write_bytes(files.content[path])
            batch.append((dataset, str(dup)))
        landed += batch
        touched = sorted({d for d, _ in batch})
        present = {d for d, _ in landed}
        if present == set(ALL) and rng.random() < 0.3:
            build(settings, ALL, ["cart_lines_enriched"])
        else:
            build(settings, touched)
    bad = files.write("dummyjson.products", [{"id": 99, "title": None, "price": 1.0}])  # title is required: not_null
    build(settings, ALL, ["cart_lines_enriched"])
    assert not [b for b in builds(settings) if b["status"] == "failed"], "no incremental build failed"

    # the bad file was set aside with the test as its reason; every other file is loaded exactly once
    reason = (
        settings.root / "_quarantine" / "dummyjson.products" / (bad.rsplit("/", 1)[1] + ".reason.txt")
    ).read_text()
    assert "not_null" in reason and "title" in reason
    with lake.connect(settings) as con:
        history = con.execute(
            "select accepted_file, count(*), sum(rows) from landing.load_history group by 1"
        ).fetchall()
    ids = {d: files.catalog.get(d) for d in ALL}
    assert sorted(h[0] for h in history) == sorted(ids[d].file_id(p) for d, p in landed)
    assert all(h[1] == 1 and h[2] > 0 for h in history)

    # the files' names put them weeks in the past: the builds compacted the JSON ones, and the full build reads parts
    assert all(compact.part_names(settings, files.catalog.get(d)) for d in ALL if d.startswith("dummyjson."))
    full = settings.model_copy(update={"state_dir": tmp_path / "full", "warehouse_path": None})
    build(full, ALL, ["cart_lines_enriched"])  # from nothing: one load of every file, every model built whole
    with duckdb.connect() as con:
        lake.install(con)
        con.execute(lake.attach_sql(settings).replace(" as lake ", " as inc "))
        con.execute(lake.attach_sql(full).replace(" as lake ", " as rebuilt "))
        for table in TABLES:
            cols = [
                c
                for (c,) in con.execute(
                    "select column_name from information_schema.columns where table_catalog = 'inc' and table_name = ? "
                    "and column_name != '_landing_high' order by ordinal_position",
                    [table],
                ).fetchall()
            ]
            select = ", ".join(f'"{c}"' for c in cols)
            a_not_b = con.execute(
                f"select count(*) from (select {select} from inc.{table} except all "
                f"select {select} from rebuilt.{table})"
            ).fetchone()[0]
            b_not_a = con.execute(
                f"select count(*) from (select {select} from rebuilt.{table} except all "
                f"select {select} from inc.{table})"
            ).fetchone()[0]
            rows = con.execute(f"select count(*) from rebuilt.{table}").fetchone()[0]
            assert rows > 0, f"{table} is empty: the comparison would prove nothing"
            assert (a_not_b, b_not_a) == (0, 0), f"{table}: incremental and full differ ({a_not_b} / {b_not_a} rows)"


def test_a_build_reads_only_the_files_it_has_not_loaded(settings, prefect_server):
    rng = random.Random(7)
    files = Files(settings, rng)
    for i in range(30):
        files.write("dummyjson.products", [{"id": i, "title": f"t{i}", "price": 1.0}])
    assert build(settings, ["dummyjson.products"])["status"] == "built"
    late = files.write("dummyjson.products", [{"id": 5, "title": "late", "price": 2.0}], oldest=True)
    ds = load_catalog(settings).get("dummyjson.products")
    with lake.connect(settings) as con:
        assert load.pending(con, ds) == [late]  # a set difference, not "names after the newest"
    build(settings, ["dummyjson.products"])
    with lake.connect(settings) as con:
        assert con.execute("select count(*) from landing.load_history").fetchone()[0] == 31
        # the late file is older than the one holding product 5: staging keeps the newer one
        assert con.execute("select product_name from stage_dummyjson__products where product_id = 5").fetchone() == (
            "t5",
        )
        assert con.execute(
            "select rows from landing.load_history where accepted_file = ?", [ds.file_id(late)]
        ).fetchone() == (1,)


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"burst_window_seconds": 0})


def test_an_emptied_cart_loses_its_lines_in_staging_and_the_mart(settings, prefect_server):
    files = Files(settings, random.Random(3))
    files.write(
        "dummyjson.products", [{"id": 1, "title": "lamp", "price": 2.0}, {"id": 2, "title": "desk", "price": 9}]
    )
    files.write("dummyjson.users", [{"id": 7, "email": "u7@x", "firstName": "A", "lastName": "B"}])
    line = {"title": "t", "price": 2.0, "quantity": 1, "total": 2.0, "discountedTotal": 2.0}
    files.write("dummyjson.carts", [{"id": 9001, "userId": 7, "products": [{"id": 1, **line}, {"id": 2, **line}]}])
    build(settings, ALL[:3], ["cart_lines_enriched"])
    query = "select count(*) from {} where cart_id = 9001"
    lines = ["stage_dummyjson__cart_lines", "cart_lines_enriched"]
    with lake.connect(settings) as con:
        assert [con.execute(query.format(t)).fetchone()[0] for t in lines] == [2, 2]
    files.write("dummyjson.carts", [{"id": 9001, "userId": 7, "products": []}])  # newer: the cart was emptied
    build(settings, ["dummyjson.carts"])  # the mart, built once all its sources landed, follows carts alone too
    with lake.connect(settings) as con:
        assert [con.execute(query.format(t)).fetchone()[0] for t in lines] == [0, 0]


def test_a_moved_landing_root_loads_nothing_twice_and_the_newer_file_wins(settings, prefect_server, tmp_path):
    import shutil

    files = Files(settings, random.Random(5))
    files.write("dummyjson.products", [{"id": k, "title": f"p{k}", "price": 1.0} for k in (1, 2)])
    build(settings, ["dummyjson.products"])
    moved = settings.model_copy(update={"root": tmp_path / "a-moved"})  # sorts before the old landing root
    shutil.move(settings.root, moved.root)
    files = Files(moved, random.Random(6))
    files.n = 10  # a newer landing time than the first file's
    files.write("dummyjson.products", [{"id": k, "title": f"p{k}", "price": 999.99} for k in (1, 2)])
    build(moved, ["dummyjson.products"])
    with lake.connect(moved) as con:
        assert con.execute("select count(*) from landing.load_history").fetchone() == (2,)
        assert con.execute("select distinct price::double from stage_dummyjson__products").fetchall() == [(999.99,)]
    with lake.connect(moved) as con:  # the raw table, in the lake
        assert con.execute("select count(*) from landing.dummyjson__products").fetchone() == (4,)  # not 6
