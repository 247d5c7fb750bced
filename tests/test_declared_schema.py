"""dbt reads each dataset with its declared schema, loaded by the same read validation makes: NULL for a missing
optional column, and a model that selects an undeclared source column fails the build (so every column models use is
declared)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from landing import lake

from landing.catalog import CatalogError, load_catalog
from automations import load
from landing.settings import REPO_ROOT, Settings
from tests.support.sensing import accepted_without_event

DBT = str(Path(sys.executable).with_name("dbt"))

# the required columns only, for every dataset: the smallest file the sensor accepts
MINIMAL = {
    "dummyjson.products": [{"id": 1, "title": "only required", "price": 2.5}],
    "dummyjson.carts": [{"id": 7, "userId": 3, "products": [{"id": 1, "quantity": 2}]}],
    "dummyjson.users": [{"id": 3, "email": "a@example.com"}],
}


def dbt(settings: Settings, *args: str, project: Path | None = None) -> subprocess.CompletedProcess:
    project = project or settings.dbt_project_dir
    env = {**os.environ, **settings.dbt_env()}
    return subprocess.run(
        [
            DBT,
            *args,
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target-path",
            str(settings.state_dir / "target"),
            "--log-path",
            str(settings.state_dir / "logs"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def load_all(settings: Settings) -> None:
    """What a build does before dbt runs: the accepted files of every dataset into their raw tables."""
    load.load_all(settings, list(load_catalog(settings).datasets.values()))


def land_minimal(settings: Settings) -> None:
    for dataset, rows in MINIMAL.items():
        accepted_without_event(settings, dataset, rows)
    catalog = load_catalog(settings)
    csv = catalog.get("finance.exchange_rates")
    csv.accepted_path.mkdir(parents=True, exist_ok=True)
    (csv.accepted_path / "20260101T000000000000Z-000000000000.csv").write_text(
        "currency,rate_to_usd,as_of\nEUR,1.1,2026-11-24\n"
    )
    pq = catalog.get("inventory.stock_movements")
    pq.accepted_path.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute(
            f"copy (select 1::bigint as movement_id, 1 as product_id, 5 as quantity) "
            f"to '{pq.accepted_path}/20260101T000000000000Z-000000000000.parquet' (format parquet)"
        )


def test_files_with_only_the_required_columns_build_everything_with_the_read_validation_makes(settings):
    land_minimal(settings)
    unloaded = dbt(settings, "build")  # dbt by hand before any load: it says how to load, it reads no file itself
    assert unloaded.returncode != 0 and "landing rebuild dummyjson." in unloaded.stdout, unloaded.stdout[-3000:]
    load_all(settings)
    result = dbt(settings, "build")
    assert result.returncode == 0, result.stdout[-3000:]
    with lake.connect(settings) as con:  # dbt by hand writes the models into the lake too
        assert con.execute(
            "select product_name, price, category, brand, stock from stage_dummyjson__products"
        ).fetchall() == [("only required", 2.5, None, None, None)]
        assert con.execute(
            "select cart_id, product_id, quantity, unit_price from stage_dummyjson__cart_lines"
        ).fetchall() == [(7, 1, 2, None)]
        assert con.execute("select user_id, email, first_name from stage_dummyjson__users").fetchall() == [
            (3, "a@example.com", None)
        ]
        assert con.execute("select currency, rate_to_usd::double from stage_finance__exchange_rates").fetchall() == [
            ("EUR", 1.1)
        ]
        assert con.execute("select movement_id, warehouse_code from stage_inventory__stock_movements").fetchall() == [
            (1, None)
        ]
        assert con.execute("select count(*) from cart_lines_enriched").fetchone() == (1,)


def test_a_model_selecting_an_undeclared_source_column_fails_the_build(settings, tmp_path):
    project = tmp_path / "dbt"
    shutil.copytree(REPO_ROOT / "dbt", project, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    (project / "models" / "staging" / "dummyjson" / "stage_dummyjson__weights.sql").write_text(
        "select id, weight from {{ source('dummyjson', 'products') }}\n"
    )
    settings = settings.model_copy(update={"dbt_project_dir": project})
    land_minimal(settings)
    load_all(settings)
    result = dbt(settings, "build", "--select", "stage_dummyjson__weights")
    assert result.returncode == 1
    assert 'Referenced column "weight" not found' in result.stdout


def test_a_source_read_outside_the_accepted_area_is_refused(settings, tmp_path):
    project = tmp_path / "dbt"
    shutil.copytree(REPO_ROOT / "dbt", project, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    (project / "models" / "raw.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: drops\n        meta:\n"
        "          external_location: \"read_json('{{ env_var('LANDING_ROOT', '/tmp/landing') }}/raw/drops/*.jsonl')\"\n"
    )
    with pytest.raises(
        CatalogError, match=r"raw.drops: .* must read below .*LANDING_ACCEPTED_ROOT.*dbt reads accepted files only"
    ):
        load_catalog(settings.model_copy(update={"dbt_project_dir": project}))
