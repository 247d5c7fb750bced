"""E&L exports against a loopback DummyJSON that pages like the real one and misbehaves on purpose."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flows.dummyjson import ExportError, export_dummyjson, export_dummyjson_all
from landing.catalog import load_catalog
from landing.events import FILE_CREATED
from testkit.local import read_events


def landed_files(settings, dataset):
    folder = load_catalog(settings).get(dataset).accepted_path
    return sorted(folder.iterdir()) if folder.exists() else []


def test_exports_land_every_row_with_one_event_per_file(settings, dummyjson, prefect_server):
    settings = settings.model_copy(update={"dummyjson_base_url": dummyjson.url})
    dummyjson.faults.extend([429, 503, None, 429])  # the first pages are throttled and retried
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    counts = {}
    for table in ("products", "carts", "users"):
        landed = export_dummyjson(table, settings=settings)
        counts[table] = landed.rows
        [path] = landed_files(settings, f"dummyjson.{table}")
        assert str(path) == landed.path
        assert len(path.read_text().splitlines()) == landed.rows
    assert counts == {"products": 194, "carts": 208, "users": 208}
    assert any("skip=100" in r for r in dummyjson.requests), "exports must page with limit/skip"

    events = read_events(FILE_CREATED, since, "landing.dataset.dummyjson.", expect=3, timeout=60)  # a loaded suite
    by_dataset = {e.resource.name: e for e in events if e.payload["path"].startswith(str(settings.root))}
    assert sorted(by_dataset) == ["dummyjson.carts", "dummyjson.products", "dummyjson.users"]
    assert len([e for e in events if e.payload["path"].startswith(str(settings.root))]) == 3
    for table, rows in counts.items():
        assert by_dataset[f"dummyjson.{table}"].payload["rows"] == rows
        assert by_dataset[f"dummyjson.{table}"].payload["producer"] == f"flow:export-dummyjson/{table}"

    # loaded as a build loads them, dbt build over the landed files passes every data test, and the mart has rows
    from automations import load
    from landing import lake
    from landing.catalog import load_catalog

    load.load_all(settings, list(load_catalog(settings).datasets.values()))
    lake.prepare(settings)  # as a build does first (dbt by hand would make the lake itself, without WAL)
    env = {**os.environ, **settings.dbt_env()}
    project = str(settings.dbt_project_dir)
    dbt = Path(sys.executable).with_name("dbt")
    result = subprocess.run(
        [
            str(dbt),
            "build",
            "--select",
            "source:dummyjson+",
            "--project-dir",
            project,
            "--profiles-dir",
            project,
            "--target-path",
            str(settings.dbt_target_dir),
            "--log-path",
            str(settings.state_dir / "logs"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "ERROR=0" in result.stdout and "SKIP=0" in result.stdout
    with lake.connect(settings) as con:  # dbt by hand writes the lake too
        assert con.execute("select count(*) from stage_dummyjson__products").fetchone()[0] == 194
        assert con.execute("select count(*) from stage_dummyjson__users").fetchone()[0] == 208
        assert con.execute("select count(distinct cart_id) from stage_dummyjson__cart_lines").fetchone()[0] == 208
        assert con.execute("select count(*) from cart_lines_enriched").fetchone()[0] > 0


@pytest.mark.parametrize(
    "fault, message",
    [
        ("always500", r"/products\?limit=100&skip=0: .*(after retries|still failing).*try again later"),
        ("malformed", r"/products\?limit=100&skip=100: the answer is not valid JSON"),
        ("nolist", r"/products\?limit=100&skip=0: the answer has no 'products' list"),
    ],
)
def test_bad_answers_fail_clearly_and_land_nothing(settings, dummyjson, prefect_server, fault, message):
    settings = settings.model_copy(update={"dummyjson_base_url": dummyjson.url, "http_retries": 2})
    if fault == "always500":
        dummyjson.always = 500
    elif fault == "malformed":
        dummyjson.faults.extend([None, "malformed"])  # the second page is broken
    else:
        dummyjson.faults.append("nolist")
    with pytest.raises(ExportError, match=message):
        export_dummyjson("products", settings=settings)
    assert landed_files(settings, "dummyjson.products") == []
    if fault == "always500":
        assert len(dummyjson.requests) == 3  # one try and two bounded retries


def test_unknown_table_is_refused(settings, prefect_server):
    with pytest.raises(ValueError, match="unknown dataset 'dummyjson.orders'"):
        export_dummyjson("orders", settings=settings)


def test_export_all_lands_each_table_in_one_run_and_a_failing_table_fails_it(
    settings, dummyjson, prefect_server, tmp_path
):
    settings = settings.model_copy(update={"dummyjson_base_url": dummyjson.url})
    for table in ("products", "carts"):  # content of our own: the server drops repeated event ids
        dummyjson.tables[table] = [dict(r, test=tmp_path.name) for r in dummyjson.tables[table]]
    del dummyjson.tables["users"]  # /users answers 404
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    with pytest.raises(ExportError, match=r"/users.*404"):
        export_dummyjson_all(settings=settings)
    assert [len(landed_files(settings, f"dummyjson.{t}")) for t in ("products", "carts", "users")] == [1, 1, 0]
    events = read_events(FILE_CREATED, since, "landing.dataset.dummyjson.", expect=2)
    mine = sorted(e.resource.name for e in events if e.payload["path"].startswith(str(settings.root)))
    assert mine == ["dummyjson.carts", "dummyjson.products"]
