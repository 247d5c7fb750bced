"""People read the warehouse while it builds: no failed build, no failed read, fresh rows for the next reader.

One stack for the module, as `make up` runs it (the served dbt deployment, the automations, `python -m sensors`).
Readers are other processes, as a dashboard, a notebook or the DuckDB CLI would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from landing import lake
from landing.catalog import load_catalog
from landing.ledger import Ledger, ledger_path
from landing.settings import Settings
from testkit.dummyjson_fake import product_rows
from testkit.local import builds, runs_of, wait_for, warehouse_row
from tests.support.stack import served_stack

# a dashboard: a new connection attaching the lake read-only every 0.2 s, one JSON line per read
DASHBOARD = """
import duckdb, json, sys, time
attach, tag, until = sys.argv[1], sys.argv[2], time.time() + float(sys.argv[3])
while time.time() < until:
    at = time.time()
    try:
        with duckdb.connect() as con:
            con.execute(attach)
            con.execute("use lake")
            names = [r[0] for r in con.execute(
                "select distinct split_part(product_name, '-', 2) from stage_dummyjson__products where product_name like ?",
                [tag + "-%"]).fetchall()]
        print(json.dumps({"at": at, "drops": names}), flush=True)
    except Exception as exc:
        print(json.dumps({"at": at, "error": str(exc)}), flush=True)
    time.sleep(0.2)
"""

# a notebook: one connection held, in one transaction (its snapshot) for the whole run, the same count read every
# second; then a read after the transaction ends
NOTEBOOK = """
import duckdb, json, sys, time
attach, tag, until = sys.argv[1], sys.argv[2], time.time() + float(sys.argv[3])
con = duckdb.connect()
con.execute(attach)
con.execute("use lake")
con.execute("begin")
while time.time() < until:
    try:
        n = con.execute("select count(*) from stage_dummyjson__products where product_name like ?", [tag + "-%"]).fetchone()[0]
        print(json.dumps({"at": time.time(), "rows": n}), flush=True)
    except Exception as exc:
        print(json.dumps({"at": time.time(), "error": str(exc)}), flush=True)
    time.sleep(1)
con.execute("commit")
n = con.execute("select count(*) from stage_dummyjson__products where product_name like ?", [tag + "-%"]).fetchone()[0]
print(json.dumps({"at": time.time(), "after": n}), flush=True)
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory, prefect_server):
    with served_stack(tmp_path_factory.mktemp("readers"), prefect_server.api_url, burst_window_seconds=2) as running:
        yield running


def products_folder(settings: Settings) -> Path:
    return load_catalog(settings).get("dummyjson.products").path


def accepted_name(settings: Settings, dropped: Path) -> str | None:
    ledger = Ledger(ledger_path(settings.state_dir))
    try:
        record = ledger.file(str(dropped))
    finally:
        ledger.close()
    return Path(record.accepted_path).name if record and record.accepted_path else None


def lines(proc: subprocess.Popen) -> list[dict]:
    out, _ = proc.communicate(timeout=120)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_readers_never_fail_never_block_a_build_and_see_each_build_within_3_s(stack, tmp_path):
    settings, env = stack
    tag, products = f"rd{tmp_path.name[-6:].replace('_', '')}", products_folder(settings)
    (products / "seed.jsonl").write_bytes(
        product_rows(f"{tag}-seed", 900)
    )  # the readers' file exists before they start
    wait_for(
        lambda: (
            warehouse_row(
                settings, "select count(*) from stage_dummyjson__products where product_name like ?", [f"{tag}-seed-%"]
            )
            == (3,)
        ),
        90,
        "the first build published",
    )
    started = time.time()
    dashboard = subprocess.Popen(
        [sys.executable, "-c", DASHBOARD, lake.attach_sql(settings), tag, "48"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    notebook = subprocess.Popen(
        [sys.executable, "-c", NOTEBOOK, lake.attach_sql(settings), tag, "30"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(1)
    dropped = []
    for i in range(10):  # 10 drops over 30 s, while the notebook holds its connection
        path = products / f"drop{i}.jsonl"
        (tmp_path / path.name).write_bytes(product_rows(f"{tag}-d{i}", 910 + i))
        os.rename(tmp_path / path.name, path)
        dropped.append(path)
        time.sleep(3)
    reads, held = lines(dashboard), lines(notebook)

    assert reads and not [r for r in reads if "error" in r], (
        f"a dashboard read failed: {[r for r in reads if 'error' in r][:3]}"
    )
    assert len(reads) > 60, f"the dashboard read only {len(reads)} times in 48 s"
    assert held and not [r for r in held if "error" in r], f"the notebook's reads failed: {held[:3]}"
    assert {r["rows"] for r in held if "rows" in r} == {3}, "the held transaction keeps its snapshot (the seed's rows)"
    assert held[-1]["after"] > 3, "once its transaction ends, the notebook sees the builds made meanwhile"

    done = [b for b in builds(settings) if b["at"] > started]
    assert not [b for b in done if b["status"] == "failed"], f"a build failed while people read: {done}"
    built = [b for b in done if b["status"] == "built" and "dummyjson.products" in b["datasets"]]
    late = []
    for i, path in enumerate(dropped):
        name = accepted_name(settings, path)
        assert name, f"{path.name} was not accepted"
        cover = next(b for b in built if b["newest_files"].get("dummyjson.products", "") >= name)
        seen = next((r["at"] for r in reads if f"d{i}" in r["drops"]), None)
        assert seen is not None, f"drop {i} never reached a new reader"
        if seen - cover["at"] > 3:
            late.append((i, round(seen - cover["at"], 2)))
    assert not late, f"rows visible to a new reader more than 3 s after their build: {late}"
    mine = [r for r in runs_of() if r.created.timestamp() >= started]
    assert mine and all(r.state.is_completed() for r in mine), [(r.name, r.state.name) for r in mine]


def test_landing_sql_reads_the_newest_build_and_says_what_to_do(stack):
    settings, env = stack

    def run(*args, stdin=None):
        return subprocess.run(
            [sys.executable, "-m", "ops", "sql", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    got = run("select count(*) > 0 as built from stage_dummyjson__products")
    assert got.returncode == 0 and "true" in got.stdout, got.stdout + got.stderr
    got = run("--csv", stdin="select 1 as a, 'x' as b; select 2 as a, 'y' as b;")
    assert got.returncode == 0 and got.stdout.splitlines() == ["a,b", "1,x", "a,b", "2,y"], got.stdout
    got = run("create table scratch(a int)")
    assert got.returncode == 1 and "read-only" in got.stdout and "dbt project" in got.stdout
    got = run("select * from no_such_model")
    assert got.returncode == 1 and "no_such_model" in got.stdout
    empty = {**env, "LANDING_STATE_DIR": str(Path(settings.state_dir).parent / "nothing-built")}
    got = subprocess.run(
        [sys.executable, "-m", "ops", "sql", "select 1"], env=empty, capture_output=True, text=True, timeout=60
    )
    assert got.returncode == 1 and "nothing built yet" in got.stdout
