"""A file whose trigger never ran a build (lost under load, automations off) is built by the scheduled reconcile run."""

from __future__ import annotations

from landing import lake

from testkit.dummyjson_fake import load_fixture
from tests.support.sensing import accepted_without_event
from testkit.local import Served, builds, runs_of, wait_for


def test_reconcile_builds_what_no_automation_built_and_then_idles(settings, prefect_server, tmp_path):
    settings = settings.model_copy(update={"reconcile_seconds": 6, "reconcile_grace_seconds": 2})
    build_runs_before = {r.id for r in runs_of()}
    users = [dict(u, firstName=f"{u['firstName']}-{tmp_path.name}") for u in load_fixture("users")[:30]]
    accepted_without_event(settings, "dummyjson.users", users)  # no event: no automation runs
    with Served(settings, prefect_server.api_url, tmp_path / "serve.log"):
        wait_for(lambda: [b for b in builds(settings) if b["status"] == "built"], 90, "the reconcile run's build")

        def reconciles_done():
            return [r for r in runs_of("landing-reconcile/landing-reconcile") if r.state and r.state.is_completed()]

        wait_for(lambda: len(reconciles_done()) >= 2, 60, "a second reconcile run")
    done = builds(settings)
    assert [b["datasets"] for b in done if b["status"] == "built"] == [["dummyjson.users"]], "built once, then idle"
    assert {r.id for r in runs_of()} == build_runs_before, "no dbt-build deployment run: no automation was involved"
    with lake.connect(settings) as con:
        got = con.execute(
            "select count(*) from stage_dummyjson__users where first_name like ?", [f"%-{tmp_path.name}"]
        ).fetchone()
    assert got == (30,)
