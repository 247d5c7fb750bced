"""A source added to dbt in YAML only gets its automations from apply.py, builds, and is watched for staleness."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime, timezone

import pytest

from landing.catalog import load_catalog
from landing.contract import land_rows
from landing.events import DATASET_STALE
from landing.settings import REPO_ROOT, Settings
from testkit.local import read_events
from testkit.local import Served, builds, delete_managed_automations, wait_for

EXTRA_SOURCES = """
version: 2

sources:
  - name: shop
    description: A second system, added in YAML only.
    freshness:
      warn_after: {count: 1, period: hour}
    tables:
      - name: orders
        description: Orders from the shop.
        meta:
          external_location: "read_json('{{ env_var('LANDING_ACCEPTED_ROOT', '/tmp/landing/_accepted') }}/shop/orders/*.jsonl', format='newline_delimited', filename=true)"
          landing:
            stale_after_seconds: 10
        columns:
          - name: id
            description: Order id.
            data_tests: [not_null]
"""


@pytest.fixture(scope="module")
def extended(tmp_path_factory, prefect_server):
    base = tmp_path_factory.mktemp("zero-code")
    project = base / "dbt"
    shutil.copytree(REPO_ROOT / "dbt", project, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    (project / "models" / "staging" / "shop").mkdir(parents=True)
    (project / "models" / "staging" / "shop" / "__sources.yml").write_text(textwrap.dedent(EXTRA_SOURCES))
    settings = Settings(
        root=base / "landing",
        state_dir=base / "state",
        dbt_project_dir=project,
        burst_window_seconds=2,
        reconcile_seconds=0,
    )
    with Served(settings, prefect_server.api_url, base / "serve.log"):
        yield settings
    asyncio.run(delete_managed_automations())


def test_apply_cli_creates_the_new_sources_automations(extended):
    env = {**__import__("os").environ, **extended.to_env()}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "automations" / "apply.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "create     landing: build shop.orders" in result.stdout
    assert "create     landing: stale shop.orders" in result.stdout
    again = subprocess.run(
        [sys.executable, str(REPO_ROOT / "automations" / "apply.py"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and "0 to create, 0 to update, 0 to delete" in again.stdout


def test_new_source_builds_on_landing(extended):
    assert "shop.orders" in load_catalog(extended).datasets
    land_rows("shop.orders", [{"id": 1}, {"id": 2}], "test:zero-code", extended)
    wait_for(
        lambda: [b for b in builds(extended) if b["datasets"] == ["shop.orders"] and b["status"] == "built"],
        90,
        "a shop.orders build",
    )


def test_stale_event_when_nothing_lands(extended):
    # shop.orders must see a file every 10 s (meta.landing.stale_after_seconds); nothing lands now
    since = datetime.now(timezone.utc)
    events = read_events(DATASET_STALE, since, "landing.dataset.shop.orders", timeout=90, expect=1)
    assert events, "no landing.dataset.stale event within 90 s"
    payload = events[0].payload
    assert payload["dataset"] == "shop.orders" and payload["expected_every_seconds"] == 10
    assert payload["late_by_seconds"] is not None and payload["late_by_seconds"] >= 0


BUILD_BY_HAND = (
    "import sys; from automations.dbt_build import dbt_build; "
    "print('STATUS', dbt_build(['shop.orders'], force=sys.argv[1] == 'force')['status'])"
)


def _build_by_hand(settings: Settings, force: bool = False) -> str:
    """A manual dbt-build run, as the UI's Run button makes one (force off or on)."""
    result = subprocess.run(
        [sys.executable, "-c", BUILD_BY_HAND, "force" if force else "-"],
        env={**__import__("os").environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = "\n".join(
        line for line in result.stderr.splitlines() if "leaked" not in line
    )  # DuckDB's exit noise (issue 15)
    assert result.returncode == 0, result.stdout[-3000:] + errors[-3000:]
    return result.stdout.rsplit("STATUS ", 1)[1].strip()


def test_a_code_change_is_a_reason_to_build(extended):
    from testkit.local import warehouse_row

    model = extended.dbt_project_dir / "models" / "staging" / "shop" / "stage_shop__orders.sql"
    # a new model downstream of a built source, then apply.py: it is built without a new file
    wait_for(
        lambda: [b for b in builds(extended) if b["datasets"] == ["shop.orders"] and b["status"] == "built"],
        90,
        "shop.orders built once",
    )
    model.write_text("select id, 'v1' as version from {{ source('shop', 'orders') }}\n")
    before = len(builds(extended))
    env = {**__import__("os").environ, **extended.to_env()}
    applied = subprocess.run(
        [sys.executable, str(REPO_ROOT / "automations" / "apply.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert applied.returncode == 0 and "the dbt project changed" in applied.stdout, applied.stdout + applied.stderr
    # the build record first, the warehouse after: a read-only DuckDB open in this process while the build opens the
    # warehouse to write makes the build fail ("Could not set lock"), as for any reader of the file
    rebuilt = wait_for(
        lambda: next(
            (
                b
                for b in builds(extended)[before:]
                if b["datasets"] == ["shop.orders"] and b["status"] in ("built", "failed")
            ),
            None,
        ),
        120,
        "the build of the new model by the reconcile run the project change started",
    )
    assert rebuilt["status"] == "built", rebuilt["error"]
    assert warehouse_row(extended, "select count(*), min(version) from stage_shop__orders") == (2, "v1")

    # the model's SQL changes: a manual run builds it, the next one is up to date, force builds anyway
    model.write_text("select id, 'v2' as version, 'a new column' as added from {{ source('shop', 'orders') }}\n")
    assert _build_by_hand(extended) == "built"
    assert warehouse_row(extended, "select min(version), max(added) from stage_shop__orders") == ("v2", "a new column")
    assert _build_by_hand(extended) == "up to date"
    assert _build_by_hand(extended, force=True) == "built"
