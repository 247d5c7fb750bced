"""The readers' warehouse: publishing a build's file, and finding who holds it (real DuckDB files, real processes)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import duckdb
import pytest

from automations import readers
from landing.settings import Settings

HOLD = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print("holding", flush=True)
time.sleep(float(sys.argv[3]))
"""


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(root=tmp_path / "landing", state_dir=tmp_path / "state", lock_wait_seconds=20)


def build(settings: Settings, rows: int) -> None:
    settings.build_warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.build_warehouse)) as con:
        con.execute(f"create or replace table t as select range as id from range({rows})")


def count(path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select count(*) from t").fetchone()[0]


def hold(path, mode: str, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), mode, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_seed_starts_the_build_file_from_an_old_readers_file_once(settings):
    settings.warehouse.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.warehouse)) as con:  # a warehouse from before the two files
        con.execute("create table t as select 1 as id")
    assert readers.seed(settings)
    assert count(settings.build_warehouse) == 1
    assert not readers.seed(settings)  # only once: the build's file is the truth from then on


def test_holder_names_the_pid_and_command_of_a_process_holding_the_build_file(settings):
    build(settings, 1)
    proc = hold(settings.build_warehouse, "rw", 30)
    try:
        who = readers.holder(settings)
        assert who is not None and who.pid == proc.pid
        assert "import duckdb" in who.command and str(settings.build_warehouse) in who.command
        assert readers.is_lock_error(RuntimeError(who.error))
    finally:
        proc.kill()
        proc.wait()
    assert readers.holder(settings) is None


def test_a_build_waits_for_a_holder_and_says_who_it_is_while_it_waits(settings):
    build(settings, 1)
    proc = hold(settings.build_warehouse, "rw", 0.4)
    said, seen, done = [], [], threading.Event()

    def watch():  # what `landing status` reads, while the build waits
        while not done.is_set():
            seen.append(readers.read_waiting(settings))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    waited = readers.wait_until_free(settings, said.append)
    done.set()
    watcher.join()
    assert 0.2 < waited < 15
    assert len(said) == 1 and f"pid {proc.pid}" in said[0] and settings.lake_catalog_uri in said[0]
    assert any(w and w["pid"] == proc.pid for w in seen), "landing status had nothing to show while the build waited"
    assert readers.read_waiting(settings) is None  # gone once the build got the file


def test_a_holder_that_stays_fails_the_build_with_what_to_do(settings):
    build(settings, 1)
    proc = hold(settings.build_warehouse, "rw", 30)
    try:
        with pytest.raises(readers.WarehouseHeld, match=f"stop pid {proc.pid}"):
            readers.wait_until_free(settings.model_copy(update={"lock_wait_seconds": 0.5}), lambda _: None)
    finally:
        proc.kill()
    assert not readers.is_lock_error(ValueError("Failure in test not_null_products_id"))


def test_a_new_build_file_is_written_in_a_format_older_duckdbs_open(settings):
    assert readers.holder(settings) is None  # the first open creates the build's file
    build(settings, 2)
    with duckdb.connect() as con:
        con.execute(f"attach '{settings.build_warehouse}' as published (read_only)")
        tags = con.execute("select tags from duckdb_databases() where database_name = 'published'").fetchone()[0]
    assert tags["storage_version"] == f"{settings.warehouse_storage_version}+"  # the DuckDB CLI 1.5 on PyPI reads it
