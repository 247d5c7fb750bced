"""`landing verify`: the models built incrementally equal a full build of them, made in a scratch copy of the readers'
warehouse; a row changed by hand in the live table is named with its key (exit 1), and the scheduled landing-verify
flow sends `landing.verify.failed` for it. Through the real entry point, on a real warehouse built by dbt-build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone


from automations.dbt_build import dbt_build
from automations.verify import landing_verify, read_record
from landing.catalog import load_catalog
from landing.events import VERIFY_FAILED
from landing.settings import REPO_ROOT, Settings
from landing import lake
from ops import inspect
from testkit.local import dbt_environment, read_events

DATASETS = ["dummyjson.carts", "dummyjson.products", "dummyjson.users"]
CHANGED = 3  # the product whose live row the test changes by hand


def land(settings: Settings, dataset: str, rows: list[dict]) -> None:
    """A file straight into the accepted area, under an accepted name of now (so no compaction reads it)."""
    ds = load_catalog(settings).get(dataset)
    ds.accepted_path.mkdir(parents=True, exist_ok=True)
    name = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:12]}.jsonl"
    (ds.accepted_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def product(k: int, price: float) -> dict:
    return {"id": k, "title": f"p{k}", "price": price, "category": "c", "brand": None, "stock": k}


def verify(settings: Settings, *datasets: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ops", "verify", *datasets],
        cwd=REPO_ROOT,
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_verify_passes_on_incremental_builds_and_names_a_row_changed_by_hand(settings, prefect_server):
    land(settings, "dummyjson.products", [product(k, k * 1.5) for k in (1, 2, 3, 4)])
    land(
        settings, "dummyjson.users", [{"id": k, "firstName": "f", "lastName": "l", "email": f"u{k}@x"} for k in (1, 2)]
    )
    land(
        settings,
        "dummyjson.carts",
        [
            {"id": 1, "userId": 1, "products": [{"id": 1, "price": 1.5, "quantity": 2, "total": 3.0}]},
            {"id": 2, "userId": 2, "products": [{"id": 2, "price": 3.0, "quantity": 1, "total": 3.0}]},
        ],
    )
    catalog = load_catalog(settings)
    and_models = [m.name for m in catalog.and_models() if set(m.datasets) <= set(DATASETS)]
    with dbt_environment(settings):
        assert dbt_build(DATASETS, and_models=and_models, settings=settings)["status"] == "built"
        # a second, incremental build: product 2 changes, product 5 is new
        land(settings, "dummyjson.products", [product(2, 9.25), product(5, 7.0)])
        assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"

    unknown = verify(settings, "dummyjson.nope")
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr
    assert "dummyjson.nope" in unknown.stdout and "dummyjson.products" in unknown.stdout  # named, and the known ones

    ok = verify(settings)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok stage_dummyjson__products 5" in ok.stdout, ok.stdout
    assert "DIFFERS" not in ok.stdout
    assert read_record(settings)["status"] == "ok"

    price = f"select price from stage_dummyjson__products where product_id = {CHANGED}"
    with lake.connect(settings, read_only=False) as con:  # the lake, changed by hand
        [before] = con.execute(price).fetchone()
        con.execute(f"update stage_dummyjson__products set price = price + 1 where product_id = {CHANGED}")

    differs = verify(settings, "dummyjson.products")
    assert differs.returncode == 1, differs.stdout + differs.stderr
    line = next((x for x in differs.stdout.splitlines() if x.startswith("DIFFERS stage_dummyjson__products")), "")
    assert "1 row(s) only in the live table, 1 only in a full build" in line, differs.stdout
    assert f"sample keys: {CHANGED} (product_id)" in line, differs.stdout
    assert not [p for p in (settings.state_dir / "verify").iterdir()], "the scratch copy is removed"
    with lake.connect(settings) as con:  # verify never writes the live warehouse
        assert con.execute(price).fetchone() == (before + 1,)
        assert not con.execute("select * from information_schema.schemata where schema_name = 'verify_live'").fetchall()

    said: list[str] = []
    inspect.status(settings, out=said.append)
    assert any(x.startswith("verify    ") and "DIFFERS stage_dummyjson__products" in x for x in said), said

    # the scheduled flow: the same verification, in-process, and the alert as an event
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    result = landing_verify(settings=settings)
    assert result["status"] == "differs"
    [event] = read_events(VERIFY_FAILED, since, resource_prefix="landing.verify.", expect=1)
    assert event.resource.id == f"landing.verify.{settings.warehouse.stem}"
    [model] = event.payload["models"]
    assert (model["model"], model["only_live"], model["only_full"]) == ("stage_dummyjson__products", 1, 1)
    assert model["sample_keys"] == [str(CHANGED)] and model["key"] == ["product_id"]
