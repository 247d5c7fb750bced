"""End to end: landing events → automations from apply.py → the served dbt deployment → the warehouse."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from datetime import datetime, timezone

import duckdb
import pytest

from automations.apply import apply, main as apply_main
from automations.names import MANAGED_TAG, STALE
from landing.contract import land_rows
from landing.reader import thread_connection
from landing.settings import REPO_ROOT, Settings
from landing.transport import EmitError, send_events
from landing import lake
from testkit.dummyjson_fake import load_fixture
from testkit.local import Served, builds, delete_managed_automations, runs_of, wait_for

FIXTURE = {t: load_fixture(t) for t in ("products", "carts", "users")}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, prefect_server):
    base = tmp_path_factory.mktemp("e2e")
    settings = Settings(
        root=base / "landing",
        state_dir=base / "state",
        dbt_project_dir=REPO_ROOT / "dbt",
        burst_window_seconds=3,
        reconcile_seconds=0,
    )
    with Served(settings, prefect_server.api_url, base / "serve.log"):
        asyncio.run(apply(settings, out=lambda *_: None))
        yield settings
    asyncio.run(delete_managed_automations())


def count(settings, sql):
    for _ in range(60):  # a trailing build may hold the single-writer lock for a moment
        try:
            with lake.connect(settings) as con:
                return con.execute(sql).fetchone()[0]
        except duckdb.IOException:
            time.sleep(0.5)
    raise AssertionError(f"{settings.warehouse} stayed locked")


def table_exists(settings, name):
    if not settings.warehouse.exists():
        return False
    return count(settings, f"select count(*) from information_schema.tables where table_name = '{name}'") > 0


def _reads_events_promptly() -> bool:
    """A probe event (no automation matches it) is read by the server within a second."""
    probe = {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(timezone.utc).isoformat(),
        "event": "test.probe",
        "resource": {"prefect.resource.id": "test.probe"},
        "related": [],
        "payload": {},
    }
    start = time.monotonic()
    try:
        send_events([probe])
    except EmitError:
        return False
    return time.monotonic() - start < 1.0


def settled(settings, runs_before: int):
    """Every dbt-build run created since `runs_before` is final, and none is pending."""
    runs = runs_of()
    if len(runs) <= runs_before:
        return False
    return all(r.state.is_final() for r in runs) and runs


def test_single_file_builds_through_the_automation_in_one_run(stack):
    settings = stack
    before = len(runs_of())
    landed = time.monotonic()
    land_rows("dummyjson.products", FIXTURE["products"][:50], "test:e2e", settings)
    runs = wait_for(
        lambda: settled(settings, before) if any(b["status"] == "built" for b in builds(settings)) else False,
        90,
        "a completed build",
    )
    run = sorted(runs, key=lambda r: r.created)[before]
    assert run.created_by is not None and run.created_by.type == "AUTOMATION"
    assert run.parameters["datasets"] == ["dummyjson.products"]
    assert all(r.state.is_completed() for r in runs), [r.state for r in runs]
    assert count(settings, "select count(*) from stage_dummyjson__products") == 50
    assert not table_exists(settings, "cart_lines_enriched"), "a single-source build must leave the AND model alone"
    # the window's trailing run found nothing new and was deleted unstarted: the UI lists one run for the file
    wait_for(lambda: time.monotonic() - landed > settings.burst_window_seconds + 3, 30, "the window to close")
    wait_for(lambda: len(runs_of()) == before + 1, 30, "the trailing run to be dropped")
    assert "deleted the flow run" in (settings.state_dir.parent / "serve.log").read_text()


def test_burst_makes_few_builds_and_loses_no_row(stack):
    settings = stack
    done_before = len(builds(settings))
    runs_before = len(runs_of())
    users = FIXTURE["users"]
    thread_connection()  # the validation DuckDB, opened once per process (about 0.2 s): not part of the burst
    # a server still busy with the previous test (or a neighbour's load on 2 cores) can stall a handshake for seconds
    wait_for(_reads_events_promptly, 120, "the server to read events within a second")
    start = time.monotonic()
    for i in range(20):
        land_rows("dummyjson.users", users[i * 10 : (i + 1) * 10], "test:burst", settings)
    windows = math.ceil((time.monotonic() - start) / settings.burst_window_seconds)  # 1 unless the server stalled
    # wait for the trailing build (window 3 s) and every run to settle
    time.sleep(settings.burst_window_seconds + 1)
    wait_for(lambda: settled(settings, runs_before), 120, "burst runs to finish")
    new = [b for b in builds(settings)[done_before:] if b["datasets"] == ["dummyjson.users"]]
    built = [b for b in new if b["status"] == "built"]
    assert 1 <= len(built) <= 2 * windows + 1, new  # at most a leading and a trailing build per window
    assert len(runs_of()) - runs_before <= 4 * windows + 2
    # the staging model keeps one row per user across files: all 200 landed users are there
    assert count(settings, "select count(*) from stage_dummyjson__users") == 200


def test_and_model_builds_only_once_all_sources_landed(stack):
    settings = stack
    assert not table_exists(settings, "cart_lines_enriched")
    runs_before = len(runs_of())
    land_rows("dummyjson.carts", FIXTURE["carts"][:120], "test:and", settings)
    wait_for(lambda: any(b.get("and_models") for b in builds(settings)), 90, "the all-sources build")
    wait_for(lambda: settled(settings, runs_before), 90, "runs to finish")
    and_builds = [b for b in builds(settings) if b.get("and_models")]
    assert and_builds[-1]["status"] == "built"
    assert and_builds[-1]["datasets"] == ["dummyjson.carts", "dummyjson.products", "dummyjson.users"]
    assert count(settings, "select count(*) from cart_lines_enriched") > 0


def test_failing_build_alerts_and_the_next_file_fixes_it(stack):
    from datetime import datetime, timedelta, timezone

    from landing.events import BUILD_FAILED
    from testkit.local import read_events

    settings = stack
    since = datetime.now(timezone.utc) - timedelta(seconds=2)
    done_before = len(builds(settings))
    # valid for the source (every required column is there), but a cart line without a product id fails a staging test
    bad = [
        dict(c, products=[dict(line, id=None) for line in c["products"]]) if c["id"] == 3 else c
        for c in FIXTURE["carts"][:60]
    ]
    land_rows("dummyjson.carts", bad, "test:bad", settings)
    failed = wait_for(
        lambda: [b for b in builds(settings)[done_before:] if b["status"] == "failed"], 120, "the failed build"
    )
    assert any("product_id" in n for n in failed[0]["failed_nodes"]), failed
    alerts = read_events(BUILD_FAILED, since, "landing.dataset.dummyjson.carts", expect=1, timeout=30)
    # one alert per failed build: the window's trailing run builds the same files again, fails again and says so
    failed_builds = [b for b in builds(settings)[done_before:] if b["status"] == "failed"]
    assert 1 <= len(alerts) <= len(failed_builds), (alerts, failed_builds)
    for alert in alerts:
        assert alert.payload["dataset"] == "dummyjson.carts"
        assert any("not_null_stage_dummyjson__cart_lines_product_id" in n for n in alert.payload["failed_nodes"])
    # the build record and the alert come before the run reports its final state
    wait_for(
        lambda: [r for r in runs_of() if r.state and r.state.is_failed()], 30, "the dbt failure to fail the flow run"
    )

    land_rows("dummyjson.carts", FIXTURE["carts"][:60], "test:fixed", settings)
    wait_for(lambda: [b for b in builds(settings)[done_before:] if b["status"] == "built"], 120, "the fixed build")
    assert count(settings, "select count(*) from stage_dummyjson__cart_lines where product_id is null") == 0


def test_apply_twice_changes_nothing(stack):
    settings = stack
    plan = asyncio.run(apply(settings, out=lambda *_: None))
    assert not plan.create and not plan.update and not plan.delete
    from landing.catalog import load_catalog

    catalog = load_catalog(settings)
    # 1 per dataset (leading and trailing run), the AND model, the build after a project change
    assert len(plan.unchanged) == len(catalog.datasets) + 2
    assert {a.name for a in plan.unchanged} >= {
        "landing: build dummyjson.products",
        "landing: build cart_lines_enriched (all sources)",
    }


def test_apply_deletes_stale_managed_and_keeps_unmanaged(stack):
    from prefect.client.orchestration import get_client
    from prefect.events.actions import DoNothing
    from prefect.events.schemas.automations import AutomationCore, EventTrigger

    settings = stack

    async def scenario():
        async with get_client() as client:
            stale = await client.create_automation(
                AutomationCore(
                    name="landing: build gone.table",
                    tags=[MANAGED_TAG],
                    trigger=EventTrigger(expect={"x"}),
                    actions=[DoNothing()],
                )
            )
            mine = await client.create_automation(
                AutomationCore(
                    name="someone else's", tags=["other"], trigger=EventTrigger(expect={"x"}), actions=[DoNothing()]
                )
            )
            lines = []
            dry = await apply(settings, dry_run=True, out=lines.append)
            assert [a.name for a in dry.delete] == ["landing: build gone.table"]
            assert await client.read_automation(stale) is not None, "--dry-run must not delete"
            assert "delete     landing: build gone.table" in lines and lines[-1].startswith("dry run:")
            plan = await apply(settings, out=lambda *_: None)
            assert [a.name for a in plan.delete] == ["landing: build gone.table"]
            names = {a.name for a in await client.read_automations()}
            assert "landing: build gone.table" not in names
            assert (await client.read_automation(mine)).name == "someone else's"
            await client.delete_automation(mine)

    asyncio.run(scenario())


def test_apply_cli_reports_a_missing_deployment(prefect_server, capsys):
    from prefect.client.orchestration import get_client

    async def drop():
        async with get_client() as client:
            dep = await client.read_deployment_by_name(STALE)
            await client.delete_deployment(dep.id)

    # runs last in this module: the served process re-registers deployments only on restart
    asyncio.run(drop())
    assert apply_main([]) == 1
    assert "python -m automations.serve" in capsys.readouterr().err
