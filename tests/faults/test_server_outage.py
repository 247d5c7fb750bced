"""R2: the Prefect server stops for 60 s while an export runs and files are dropped; after it returns nothing is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone


from automations.apply import apply
from landing.contract import rows_to_jsonl
from landing.events import FILE_CREATED
from landing.ledger import Ledger, ledger_path
from landing import lake
from testkit.local import using_server, read_events
from testkit.dummyjson_fake import DummyJSONServer, load_fixture
from testkit.local import PrefectServer
from testkit.local import Served, builds, runs_of, wait_for

OUTAGE_SECONDS = 60
EXPORT = "from flows.dummyjson import export_dummyjson; export_dummyjson('products')"


def test_sixty_second_outage_during_an_export_and_a_drop_loses_nothing(settings, tmp_path):

    settings = settings.model_copy(update={"burst_window_seconds": 3, "settle_seconds": 1.0})
    tag = tmp_path.name  # content of our own: the server drops repeated event ids
    server = PrefectServer(tmp_path / "own-prefect").start()
    env = {**os.environ, **settings.to_env(), "PREFECT_API_URL": server.api_url, "LANDING_SETTLE_SECONDS": "1"}
    users = [dict(u, firstName=f"{u['firstName']}-{tag}") for u in load_fixture("users")[:200]]
    products = [dict(p, title=f"{p['title']}-{tag}") for p in load_fixture("products")]
    sensor_log = tmp_path / "sensor.log"
    with (
        using_server(server.api_url),
        DummyJSONServer({"products": products}) as api,
        Served(settings, server.api_url, tmp_path / "serve.log"),
    ):
        asyncio.run(apply(settings, out=lambda *_: None))
        sensor = subprocess.Popen(
            [sys.executable, "-m", "sensors"], env=env, stdout=open(sensor_log, "wb"), stderr=subprocess.STDOUT
        )
        export = None
        try:
            wait_for(lambda: b"watching" in sensor_log.read_bytes(), 60, "the sensor to start")
            since = datetime.now(timezone.utc) - timedelta(seconds=5)
            api.delay = 0.5  # four pages of 50: the export is still fetching when the server stops
            export = subprocess.Popen(
                [sys.executable, "-c", EXPORT],
                env={**env, "LANDING_DUMMYJSON_BASE_URL": api.url, "LANDING_PAGE_SIZE": "50"},
                stdout=open(tmp_path / "export.log", "wb"),
                stderr=subprocess.STDOUT,
            )
            wait_for(lambda: len(api.requests) >= 1, 60, "the export to start fetching")
            server.stop()
            stopped = time.monotonic()
            folder = settings.root / "dummyjson" / "users"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(5):
                (folder / f"drop-{i}.jsonl").write_bytes(rows_to_jsonl(users[i * 40 : (i + 1) * 40]))
            wait_for(lambda: len(api.requests) >= 4, 30, "the export to fetch every page during the outage")
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
            server.start()

            assert export.wait(180) == 0, (tmp_path / "export.log").read_text()[-3000:]
            events = read_events(FILE_CREATED, since, "landing.dataset.dummyjson.", timeout=90, expect=6)
            mine = sorted(
                e.payload["relative_path"].rsplit("/", 1)[0]
                for e in events
                if e.payload["path"].startswith(str(settings.accepted))
            )
            assert mine == ["dummyjson/products"] + ["dummyjson/users"] * 5
            assert len({e.id for e in events}) == 6

            def settled():
                built = {b["datasets"][0] for b in builds(settings) if b["status"] == "built"}
                runs = runs_of()
                return (
                    built >= {"dummyjson.products", "dummyjson.users"}
                    and len(runs) >= 2
                    and all(r.state.is_final() for r in runs)
                    and runs
                )

            wait_for(settled, 120, "builds of both datasets")
            time.sleep(settings.burst_window_seconds + 3)  # room for a wrong extra run to show up
            runs = runs_of()
            # per dataset: the leading build, and a trailing one only where the window swallowed events with files left
            # to build (a trailing run with nothing to do is deleted unstarted). The users' five events, delivered
            # together 90 s after they occurred, sometimes fire the reactive trigger twice (since 2026-11-25; why is
            # not understood yet). Every run completes and each dataset is built once.
            assert 2 <= len(runs) <= 6 and {r.state.type.value for r in runs} == {"COMPLETED"}, [
                (r.name, r.state) for r in runs
            ]
            built = [b["datasets"] for b in builds(settings) if b["status"] == "built"]
            assert sorted(built) == [["dummyjson.products"], ["dummyjson.users"]], builds(settings)
            assert Ledger(ledger_path(settings.state_dir)).pending_count() == 0
            with lake.connect(settings) as con:
                assert con.execute(
                    "select count(*), count(distinct product_id) from stage_dummyjson__products"
                ).fetchone() == (194, 194)
                assert con.execute(
                    f"select count(*) from stage_dummyjson__users where first_name like '%-{tag}'"
                ).fetchone() == (200,)
        finally:
            for proc in (sensor, export):
                if proc and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            server.stop()
