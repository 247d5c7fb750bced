"""Files dropped the ways people drop them reach the warehouse once, complete and correct; bad ones never break a build.

One stack for the module, as `make up` runs it: the served dbt deployment, the automations from apply.py and
`python -m sensors`, on the session's Prefect server. Each test asserts what was emitted and what dbt built.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from landing.lake import connect as connect_lake
from landing.catalog import load_catalog
from landing.events import FILE_CREATED, FILE_REJECTED
from landing.ledger import Ledger, ledger_path
from landing.settings import REPO_ROOT, Settings
from testkit.local import read_events
from testkit.dummyjson_fake import product_rows
from testkit.local import builds, runs_of, wait_for, warehouse_row
from tests.support.stack import served_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory, prefect_server):
    with served_stack(tmp_path_factory.mktemp("drops"), prefect_server.api_url, burst_window_seconds=3) as (
        settings,
        _,
    ):
        yield settings
    failed = [b for b in builds(settings) if b["status"] == "failed"]
    assert not failed, f"a build failed: {failed}"


def folder(settings: Settings, dataset: str) -> Path:
    return load_catalog(settings).get(dataset).path


def ledger_rows(settings: Settings) -> list:
    ledger = Ledger(ledger_path(settings.state_dir))
    try:
        return ledger.rows()
    finally:
        ledger.close()


def settle(settings: Settings, expect: dict[str, int], timeout: float = 120) -> list:
    """Wait until the sensor has decided `expect` (status → count) for the files dropped so far and sent everything."""

    def done():
        rows = ledger_rows(settings)
        counts = {status: sum(1 for r in rows if r.status == status) for status in expect}
        return rows if counts == expect and all(r.status != "pending" for r in rows) else None

    return wait_for(done, timeout, f"the sensor to decide {expect}")


def builds_settled(settings: Settings, dataset: str, since: float):
    """Every run is final, and a build of `dataset` completed after `since`."""
    ok = [b for b in builds(settings) if dataset in b["datasets"] and b["status"] == "built" and b["at"] > since]
    return ok and all(r.state.is_final() for r in runs_of())


def test_concurrent_drops_by_mixed_writers_build_exactly_the_good_rows(stack, tmp_path):
    settings, tag = stack, tmp_path.name
    products = folder(settings, "dummyjson.products")
    outside = tmp_path / "outside"
    outside.mkdir()
    other_fs = (
        Path("/dev/shm")
        if Path("/dev/shm").is_dir() and os.stat("/dev/shm").st_dev != os.stat(tmp_path).st_dev
        else outside
    )
    staging = Path(tempfile.mkdtemp(prefix="drops-", dir=os.path.realpath(other_fs)))
    since = datetime.now(timezone.utc) - timedelta(seconds=2)
    started = time.time()

    def direct(name, data):
        (products / name).write_bytes(data)

    def temp_rename(name, data):
        (products / f".{name}.tmp").write_bytes(data)
        os.rename(products / f".{name}.tmp", products / name)

    def mv_within_disk(name, data):
        (outside / name).write_bytes(data)
        os.rename(outside / name, products / name)

    def mv_other_filesystem(name, data):
        (staging / name).write_bytes(data)
        shutil.move(staging / name, products / name)

    def cp(name, data):
        (outside / f"cp-{name}").write_bytes(data)
        shutil.copyfile(outside / f"cp-{name}", products / name)

    def slow(name, data):
        with open(products / name, "wb") as fh:
            for i in range(0, len(data), max(1, len(data) // 4)):
                fh.write(data[i : i + max(1, len(data) // 4)])
                fh.flush()
                time.sleep(0.3)

    writers = [direct, temp_rename, mv_within_disk, mv_other_filesystem, cp, slow]
    good = {f"good {i:02d}.jsonl": product_rows(f"{tag}-good", i) for i in range(40)}
    junk = lambda what: json.dumps({"id": 90000, "title": f"{tag}-junk-{what}", "price": 1}).encode() + b"\n"  # noqa: E731
    bad = {
        "bad-malformed.jsonl": junk("malformed") + b'{"id": 90001, "title": \n',
        "bad-empty.jsonl": b"",
        "bad-no-price.jsonl": json.dumps({"id": 90002, "title": f"{tag}-junk-noprice"}).encode() + b"\n",
        "bad-type.jsonl": junk("type")
        + json.dumps({"id": "x", "title": f"{tag}-junk-type2", "price": 1}).encode()
        + b"\n",
        "bad-truncated.jsonl.gz": gzip.compress(junk("gz") * 200)[:60],
        "bad-binary.jsonl": bytes(range(256)) * 16,
    }
    jobs = [(writers[i % len(writers)], name, data) for i, (name, data) in enumerate({**good, **bad}.items())]
    threads = [threading.Thread(target=w, args=(n, d)) for w, n, d in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # never data: hidden and temporary names, a nested folder, all left in place
    never = {
        ".hidden.jsonl": junk("hidden"),
        "x.jsonl.part": junk("part"),
        "y.jsonl~": junk("tilde"),
        "z.jsonl.tmp": junk("tmp"),
    }
    for name, data in never.items():
        (products / name).write_bytes(data)
    (products / "nested").mkdir()
    (products / "nested" / "n.jsonl").write_bytes(junk("nested"))
    settle(settings, {"announced": 40, "quarantined": 6})
    # duplicates under new names, once their originals are in
    dups = {f"copy of good {i:02d}.jsonl": good[f"good {i:02d}.jsonl"] for i in (0, 7, 13, 39)}
    for i, (name, data) in enumerate(dups.items()):
        writers[i](name, data)
    records = settle(settings, {"announced": 40, "quarantined": 6, "duplicate": 4})

    created = [
        e
        for e in read_events(FILE_CREATED, since, "landing.dataset.dummyjson.products", expect=40, timeout=60)
        if e.payload["path"].startswith(str(settings.accepted))
    ]
    assert sorted(Path(e.payload["dropped_as"]).name for e in created) == sorted(good), (
        "one event per distinct good content"
    )
    rejected = [
        e
        for e in read_events(FILE_REJECTED, since, "landing.dataset.dummyjson.products", expect=6, timeout=60)
        if e.payload["quarantined_to"].startswith(str(settings.root))
    ]
    assert sorted(Path(e.payload["relative_path"]).name for e in rejected) == sorted(bad)
    quarantine = settings.root / "_quarantine" / "dummyjson.products"
    assert all((quarantine / name).exists() and (quarantine / f"{name}.reason.txt").exists() for name in bad)
    assert sorted(p.name for p in products.iterdir()) == sorted([*never, "nested", *dups])
    assert {r.status for r in records if Path(r.path).name in dups} == {"duplicate"}

    wait_for(
        lambda: (
            builds_settled(settings, "dummyjson.products", started)
            and warehouse_row(
                settings, "select count(*) from stage_dummyjson__products where product_name like ?", [f"{tag}-good-%"]
            )
            == (120,)
        ),
        120,
        "every good row built",
    )
    products_ds = load_catalog(settings).get("dummyjson.products")
    accepted_paths = sorted(products_ds.file_id(e.payload["path"]) for e in created)  # what the file is, not where
    got = warehouse_row(
        settings,
        "select count(*), list(distinct source_file order by source_file) from stage_dummyjson__products "
        "where product_name like ?",
        [f"{tag}-%"],
    )
    assert got == (120, accepted_paths), "exactly the good rows, each read from its accepted file"
    mine = [r for r in runs_of() if r.created >= since]
    assert mine and all(r.state.is_completed() for r in mine), "no failed build"
    shutil.rmtree(staging, ignore_errors=True)


def test_a_file_with_only_the_required_columns_builds_and_a_missing_one_is_named(stack, tmp_path):
    settings, tag = stack, tmp_path.name
    products = folder(settings, "dummyjson.products")
    started = time.time()
    before = len(ledger_rows(settings))
    (products / "minimal.jsonl").write_text(json.dumps({"id": 70001, "title": f"{tag}-minimal", "price": 3}) + "\n")
    (products / "no-title.jsonl").write_text(json.dumps({"id": 70002, "price": 3}) + "\n")
    (products / "wrong-stock.jsonl").write_text(
        json.dumps({"id": 70003, "title": f"{tag}-x", "price": 3, "stock": "many"}) + "\n"
    )
    wait_for(
        lambda: len(ledger_rows(settings)) == before + 3 and all(r.status != "pending" for r in ledger_rows(settings)),
        60,
        "the three files decided",
    )
    reasons = {Path(r.path).name: r.reason for r in ledger_rows(settings) if r.status == "quarantined"}
    assert "required column 'title' is missing" in reasons["no-title.jsonl"]
    assert (
        "row 1, column 'stock': value '\"many\"' does not cast to the declared type integer"
        in reasons["wrong-stock.jsonl"]
    )
    wait_for(
        lambda: (
            builds_settled(settings, "dummyjson.products", started)
            and warehouse_row(
                settings, "select category, brand, stock from stage_dummyjson__products where product_id = 70001"
            )
        ),
        90,
        "the minimal file built",
    )
    assert warehouse_row(
        settings, "select product_name, category, brand, stock from stage_dummyjson__products where product_id = 70001"
    ) == (f"{tag}-minimal", None, None, None)


def test_newest_means_landing_order_not_the_name(stack, tmp_path):
    settings, tag = stack, tmp_path.name
    products = folder(settings, "dummyjson.products")
    started = time.time()
    for name, version in (("zz-final.jsonl", "first"), ("v2.jsonl", "second"), ("aa-old.jsonl", "third")):
        (products / name).write_text(json.dumps({"id": 80001, "title": f"{tag}-{version}", "price": 1}) + "\n")
        wait_for(lambda name=name: not (products / name).exists(), 30, f"{name} accepted")
    wait_for(
        lambda: (
            builds_settled(settings, "dummyjson.products", started)
            and warehouse_row(settings, "select product_name from stage_dummyjson__products where product_id = 80001")
            == (f"{tag}-third",)
        ),
        90,
        "the last-landed version in staging",
    )


def test_csv_and_parquet_are_dropped_built_and_their_bad_files_quarantined(stack, tmp_path):
    settings = stack
    rates, moves = folder(settings, "finance.exchange_rates"), folder(settings, "inventory.stock_movements")
    started = time.time()
    header = "currency,rate_to_usd,as_of\n"
    sample_csv = (REPO_ROOT / "samples" / "finance" / "exchange_rates.csv").read_bytes()
    sample_parquet = REPO_ROOT / "samples" / "inventory" / "stock_movements.parquet"
    (rates / "rates export 2026-11-25.csv").write_bytes(sample_csv)
    (rates / "late correction.csv.gz").write_bytes(gzip.compress((header + "EUR,1.5,2026-11-25\n").encode()))
    shutil.copyfile(sample_parquet, moves / "movements.parquet")
    shutil.copyfile(sample_parquet, moves / "movements again.parquet")  # the same file twice: counted once
    bad = {
        (rates, "ragged.csv"): (header + "EUR,1.1,2026-11-24\nGBP,1.2,2026-11-24,extra\n").encode(),
        (rates, "header-only.csv"): header.encode(),
        (rates, "bad-value.csv"): (header + "EUR,one,2026-11-24\n").encode(),
        (rates, "truncated.csv.gz"): gzip.compress((header + "EUR,1.1,2026-11-24\n" * 500).encode())[:50],
        (moves, "corrupt.parquet"): sample_parquet.read_bytes()[:300],
    }
    for (where, name), data in bad.items():
        (where / name).write_bytes(data)
    expected = {
        "ragged.csv": "line 3 has 4 field(s) where the header has 3",
        "header-only.csv": "no rows",
        "bad-value.csv": "row 1, column 'rate_to_usd': value 'one' does not cast to the declared type double",
        "truncated.csv.gz": "the gzip stream is cut short",
        "corrupt.parquet": "magic bytes",
    }

    def decided():
        rows = {
            Path(r.path).name: r
            for r in ledger_rows(settings)
            if r.dataset in ("finance.exchange_rates", "inventory.stock_movements")
        }
        return rows if len(rows) == 9 and all(r.status != "pending" for r in rows.values()) else None

    rows = wait_for(decided, 60, "the CSV and Parquet files decided")
    for name, reason in expected.items():
        assert rows[name].status == "quarantined" and reason in rows[name].reason, (name, rows[name].reason)
    assert sorted(r.status for n, r in rows.items() if n not in expected) == [
        "announced",
        "announced",
        "announced",
        "duplicate",
    ]
    wait_for(
        lambda: (
            builds_settled(settings, "finance.exchange_rates", started)
            and builds_settled(settings, "inventory.stock_movements", started)
            and warehouse_row(settings, "select count(*) from stage_inventory__stock_movements") == (40,)
        ),
        120,
        "both built",
    )
    assert (
        warehouse_row(
            settings,
            "select count(*), max(rate_to_usd) filter (where rate_id = 'EUR-2026-11-25') "
            "from stage_finance__exchange_rates",
        )[0]
        == 8
    )
    assert (
        float(
            warehouse_row(
                settings, "select rate_to_usd from stage_finance__exchange_rates where rate_id = 'EUR-2026-11-25'"
            )[0]
        )
        == 1.5
    )
    assert warehouse_row(
        settings, "select count(*), count(distinct movement_id) from stage_inventory__stock_movements"
    ) == (40, 40)


def landing(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.to_env()}  # PREFECT_API_URL: the session's server (using_server set it)
    return subprocess.run([sys.executable, "-m", "ops", *args], env=env, capture_output=True, text=True, timeout=300)


def test_replay_judges_a_fixed_quarantined_file_again_and_rebuild_reloads_a_dataset(stack, tmp_path):
    settings, tag = stack, tmp_path.name
    products = folder(settings, "dummyjson.products")
    (products / "untitled.jsonl").write_text(json.dumps({"id": 71001, "price": 3}) + "\n")
    bad = wait_for(
        lambda: next(
            (
                Path(r.quarantined_to)
                for r in ledger_rows(settings)
                if Path(r.path).name == "untitled.jsonl" and r.status == "quarantined"
            ),
            None,
        ),
        60,
        "the file without a title quarantined",
    )
    again = landing(settings, "replay", str(bad))  # the contract has not changed: quarantined again, same reason
    assert again.returncode == 1 and "quarantined again" in again.stdout and "'title'" in again.stdout, again.stdout
    bad = next(
        Path(r.quarantined_to)
        for r in ledger_rows(settings)
        if Path(r.path).name == "untitled.jsonl" and r.status == "quarantined"
    )
    bad.write_text(json.dumps({"id": 71001, "title": f"{tag}-fixed", "price": 3}) + "\n")  # fixed where it lies
    started = time.time()
    fixed = landing(settings, "replay", str(bad))
    assert fixed.returncode == 0 and "accepted" in fixed.stdout, fixed.stdout + fixed.stderr
    wait_for(
        lambda: (
            builds_settled(settings, "dummyjson.products", started)
            and warehouse_row(settings, "select product_name from stage_dummyjson__products where product_id = 71001")
            == (f"{tag}-fixed",)
        ),
        90,
        "the replayed file built",
    )

    accepted = len(load_catalog(settings).get("dummyjson.products").data_files())
    rebuilt = landing(settings, "rebuild", "dummyjson.products")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert f"loaded    {accepted} file(s)" in rebuilt.stdout and "(rebuild)" in rebuilt.stdout, rebuilt.stdout
    assert warehouse_row(
        settings, "select count(*) from landing.load_history where dataset = 'dummyjson.products'"
    ) == (accepted,)
    assert warehouse_row(settings, "select product_name from stage_dummyjson__products where product_id = 71001") == (
        f"{tag}-fixed",
    )
    unknown = landing(settings, "rebuild", "dummyjson.orders")
    assert unknown.returncode == 2 and "dummyjson.orders" in unknown.stdout


def test_undeclared_columns_are_shown_and_a_rescue_source_keeps_them(stack, tmp_path):
    settings, tag = stack, tmp_path.name
    since = datetime.now(timezone.utc) - timedelta(seconds=2)
    started = time.time()
    (folder(settings, "dummyjson.products") / f"{tag}-wider.jsonl").write_text(
        json.dumps({"id": 72001, "title": f"{tag}-wider", "price": 3, "colour": "red", "weight": 2}) + "\n"
    )
    (folder(settings, "dummyjson.users") / f"{tag}-users.jsonl").write_text(
        json.dumps({"id": 72002, "email": f"{tag}@example.com", "age": 41, "hair": {"color": "brown"}}) + "\n"
    )
    created = read_events(FILE_CREATED, since, resource_prefix="landing.dataset.dummyjson.", expect=2)
    by_name = {Path(e.payload["dropped_as"]).name: e.payload for e in created if e.payload.get("dropped_as")}
    assert by_name[f"{tag}-wider.jsonl"]["undeclared_columns"] == ["colour", "weight"]
    assert by_name[f"{tag}-users.jsonl"]["undeclared_columns"] == ["age", "hair"]
    wait_for(
        lambda: (
            builds_settled(settings, "dummyjson.users", started)
            and builds_settled(settings, "dummyjson.products", started)
            and warehouse_row(settings, "select email from stage_dummyjson__users where user_id = 72002")
        ),
        90,
        "both built",
    )
    with connect_lake(settings) as con:  # the raw table, in the lake
        rescued = con.execute(
            "select (_rescued->>'$.age')::int, _rescued->>'$.hair.color' from landing.dummyjson__users where id = 72002"
        ).fetchone()
    assert rescued == (41, "brown")
    wider = by_name[f"{tag}-wider.jsonl"]["path"]
    assert warehouse_row(
        settings,
        "select undeclared_columns from landing.load_history where accepted_file = ?",
        [load_catalog(settings).get("dummyjson.products").file_id(wider)],
    ) == (["colour", "weight"],)

    status = landing(settings, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    lines = {line.split(":")[0]: line for line in status.stdout.splitlines() if line.startswith("schema drift")}
    # other tests' product files carry DummyJSON's other fields: the line names the first twelve, sorted
    assert (
        "colour" in lines["schema drift dummyjson.products"]
        and "not loaded" in lines["schema drift dummyjson.products"]
    )
    assert (
        "age" in lines["schema drift dummyjson.users"]
        and "kept in the raw table's _rescued" in lines["schema drift dummyjson.users"]
    )
    told = landing(settings, "explain", wider)
    assert "undeclared colour, weight: not loaded; declare them in dummyjson.products" in told.stdout, told.stdout


def test_sql_at_reads_a_past_build_and_rollback_puts_a_dataset_back_then_builds_forward(stack, tmp_path):
    """`landing sql --at` and `landing rollback`, through the command: a build's snapshot read as it was, the models put
    back to it (a run, its reason in the build log), and the next file building forward to what a full build has."""
    settings, tag = stack, tmp_path.name
    products = folder(settings, "dummyjson.products")
    ids = {"a": [72001, 72002, 72003], "b": [72004], "c": [72005]}
    count = f"select count(*) from stage_dummyjson__products where product_name like '{tag}-%'"
    done = {}
    for name in ("a", "b"):
        started = time.time()
        rows = "".join(json.dumps({"id": i, "title": f"{tag}-{name}", "price": 1}) + "\n" for i in ids[name])
        (products / f"{tag}-{name}.jsonl").write_text(rows)
        wait_for(lambda at=started: builds_settled(settings, "dummyjson.products", at), 90, f"file {name} built")
        done[name] = [b for b in builds(settings) if "dummyjson.products" in b["datasets"] and b["status"] == "built"][
            -1
        ]
    first = done["a"]["flow_run_id"][:8]
    assert warehouse_row(settings, count) == (4,)
    past = landing(settings, "sql", "--csv", "--at", first, count)
    assert past.returncode == 0 and past.stdout.splitlines()[-1] == "3", past.stdout + past.stderr

    rolled = landing(settings, "rollback", "dummyjson.products", "--to", first, "--reason", f"{tag}: a bad change")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "stage_dummyjson__products" in rolled.stdout and f"{tag}: a bad change" in rolled.stdout, rolled.stdout
    assert warehouse_row(settings, count) == (3,)  # the readers see the models as build a left them
    record = [b for b in builds(settings) if b["status"] == "rolled back"][-1]
    assert record["reason"].endswith(f"{tag}: a bad change") and record["datasets"] == ["dummyjson.products"]
    at_rollback = landing(settings, "sql", "--csv", "--at", record["flow_run_id"][:8], count)
    assert at_rollback.stdout.splitlines()[-1] == "3", at_rollback.stdout + at_rollback.stderr  # as it left them
    assert "rolled back dummyjson.products at" in landing(settings, "status").stdout
    explained = landing(settings, "explain", str(products / f"{tag}-a.jsonl"))
    assert f"snapshot {done['a']['snapshot']}" in explained.stdout, explained.stdout
    # the runs up to the one that loaded a, that one marked; b's build and the rollback run after it only counted
    run_lines = [line for line in explained.stdout.splitlines() if line.startswith("run ")]
    assert run_lines and done["b"]["flow_run_id"][:8] not in explained.stdout, explained.stdout
    assert "  loaded  this run loaded the file" in explained.stdout, explained.stdout
    assert re.search(r"later\s+[2-9]\d* later run\(s\) of dummyjson.products", explained.stdout), explained.stdout

    started = time.time()  # the next file builds forward from the marks put back: b's rows come again, with c's
    (products / f"{tag}-c.jsonl").write_text(json.dumps({"id": 72005, "title": f"{tag}-c", "price": 1}) + "\n")
    wait_for(lambda: builds_settled(settings, "dummyjson.products", started), 90, "file c built")
    assert warehouse_row(settings, count) == (5,)

    unknown = landing(settings, "rollback", "dummyjson.products", "--to", "nosuchbuild")
    assert unknown.returncode == 2 and "no build 'nosuchbuild'" in unknown.stdout, unknown.stdout

    # after a rebuild every raw row has a new load id: build a's marks no longer match them, so it is refused
    assert landing(settings, "rebuild", "dummyjson.products").returncode == 0
    refused = landing(settings, "rollback", "dummyjson.products", "--to", first)
    assert refused.returncode == 1 and "loaded again since" in refused.stdout, refused.stdout + refused.stderr
    assert warehouse_row(settings, count) == (5,)  # nothing was put back
