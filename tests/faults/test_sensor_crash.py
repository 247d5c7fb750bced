"""R1 on the embedded server: kill -9 the sensor during a 250-file burst, restart it: one event id per file, every
file built (1,000 files on the scale-out stack: tests/test_scale_out.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from automations.apply import apply
from landing.events import FILE_CREATED
from landing.ledger import Ledger, ledger_path
from testkit.local import using_server, read_events
from testkit.dummyjson_fake import product_rows
from testkit.local import PrefectServer, Served, builds, delete_managed_automations, runs_of, wait_for, warehouse_row

FILES = 250  # 1,000 overloads a SQLite server on CI (503s, no runs created): the scale-out stack runs that size


@pytest.mark.timeout(450)  # 165 s alone; up to 300 s beside another module's server on two cores
def test_kill_9_mid_burst_then_restart_loses_nothing(sensor_settings, tmp_path):
    # a server of its own: the burst keeps a server busy for a while after the test, which would slow the next tests

    server = PrefectServer(tmp_path / "own-prefect").start()
    try:
        with using_server(server.api_url):
            _burst_kill_restart(sensor_settings, server, tmp_path)
    finally:
        server.stop()


def _burst_kill_restart(sensor_settings, prefect_server, tmp_path):
    # the reconcile safety net on, as in production: under this burst a SQLite server can fail a run-deployment
    # action ("database is locked", 503), and then only the scheduled reconcile run builds the files
    settings = sensor_settings.model_copy(
        update={"burst_window_seconds": 3, "reconcile_seconds": 10, "reconcile_grace_seconds": 5}
    )
    env = {**os.environ, **settings.to_env(), "PREFECT_API_URL": prefect_server.api_url, "LANDING_SETTLE_SECONDS": "1"}
    folder = settings.root / "dummyjson" / "products"
    folder.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "sensor.log"
    runs_before = {r.id for r in runs_of()}

    def start(starts: int):
        proc = subprocess.Popen(
            [sys.executable, "-m", "sensors"], env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT
        )
        wait_for(lambda: log.read_bytes().count(b"watching") >= starts, 60, "the sensor to start")
        return proc

    with Served(settings, prefect_server.api_url, tmp_path / "serve.log"):
        asyncio.run(apply(settings, out=lambda *_: None))
        since = datetime.now(timezone.utc) - timedelta(seconds=5)
        proc = start(1)
        try:
            for i in range(FILES):
                (folder / f"burst-{i:04d}.jsonl").write_bytes(product_rows(tmp_path.name, i))
                if i == FILES // 2:
                    proc.kill()  # SIGKILL: nothing is flushed
                    proc.wait()
            proc = start(2)
            # local checks first: reading hundreds of events back page by page slows a server still busy with them
            ledger = Ledger(ledger_path(settings.state_dir))
            wait_for(
                lambda: len(ledger.rows()) == FILES and ledger.pending_count() == 0,
                120,
                "every file announced and sent",
            )
            records = ledger.rows()
            assert {r.status for r in records} == {"announced"}
            assert all(os.path.exists(r.accepted_path) for r in records) and not list(folder.iterdir())
            assert len({r.event_id for r in records}) == FILES

            def rows_built():
                return warehouse_row(
                    settings,
                    "select count(*), count(distinct source_file) from stage_dummyjson__products where product_name like ?",
                    [f"{tmp_path.name}-%"],
                )

            wait_for(lambda: rows_built() == (FILES * 3, FILES), 240, "every file's rows in the warehouse")

            def settled():
                runs = [r for r in runs_of() if r.id not in runs_before]
                return all(r.state.is_final() for r in runs) and any(b["status"] == "built" for b in builds(settings))

            wait_for(settled, 360, "the builds to finish")
            time.sleep(settings.burst_window_seconds + 2)  # a run for the burst's last window may still be due
            wait_for(settled, 60, "the builds to finish")
            runs = [r for r in runs_of() if r.id not in runs_before]
            assert all(r.state.is_completed() for r in runs), [(r.name, r.state) for r in runs]
            events = read_events(FILE_CREATED, since, "landing.dataset.dummyjson.products", timeout=60, expect=FILES)
            mine = sorted(
                e.payload["dropped_as"] for e in events if e.payload["path"].startswith(str(settings.accepted))
            )
            assert mine == [f"dummyjson/products/burst-{i:04d}.jsonl" for i in range(FILES)], "one event per file"
            assert rows_built() == (FILES * 3, FILES)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            asyncio.run(delete_managed_automations())
