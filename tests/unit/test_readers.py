"""A warehouse from before the build had its own file: seeded once (real DuckDB files)."""

from __future__ import annotations


import duckdb
import pytest

from automations import readers
from landing.settings import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(root=tmp_path / "landing", state_dir=tmp_path / "state")


def build(settings: Settings, rows: int) -> None:
    settings.build_warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.build_warehouse)) as con:
        con.execute(f"create or replace table t as select range as id from range({rows})")


def count(path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select count(*) from t").fetchone()[0]


def test_seed_starts_the_build_file_from_an_old_readers_file_once(settings):
    settings.warehouse.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.warehouse)) as con:  # a warehouse from before the two files
        con.execute("create table t as select 1 as id")
    assert readers.seed(settings)
    assert count(settings.build_warehouse) == 1
    assert not readers.seed(settings)  # only once: the build's file is the truth from then on
