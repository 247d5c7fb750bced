"""The landing-maintain deployment keeps the lake bounded, through its flow as the runner runs it: snapshots past the
retention expired, files folded and deleted, the rows unchanged, and `--at` an expired build said plainly."""

from __future__ import annotations

import pytest

from automations.buildlog import UnknownPoint, snapshot_at
from automations.dbt_build import dbt_build, landing_maintain
from automations.names import MAINTAIN_DEPLOYMENT
from automations.serve import deployments
from landing import lake
from tests.support.sensing import accepted_without_event
from testkit.local import builds, dbt_environment, warehouse_row

COUNT = "select count(*), count(distinct product_id) from stage_dummyjson__products"


def test_the_maintain_flow_expires_folds_and_deletes_and_leaves_the_rows(settings, prefect_server):
    settings = settings.model_copy(update={"snapshot_retention_hours": 0})
    assert MAINTAIN_DEPLOYMENT in [d.name for d in deployments(settings)]  # served beside the builds
    with dbt_environment(settings):
        assert landing_maintain(settings=settings) == {}  # nothing built yet: nothing to do, no lake made
        for n in range(4):
            rows = [{"id": i, "title": f"v{n}", "price": n} for i in range(n, n + 3)]  # updates and new keys
            accepted_without_event(settings, "dummyjson.products", rows)
            assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"
        before = warehouse_row(settings, COUNT)
        done = landing_maintain(settings=settings)
    assert done["expired_snapshots"] > 0 and done["removed_files"] > 0 and done["snapshots"] == 1, done
    # small builds' rows wait inlined in the catalog; maintenance writes them out: at most a file per table is left
    # (the models, their marks, the raw table, the load history and its bookkeeping)
    tables = len(lake.tables(settings, "main")) + len(lake.tables(settings, "landing"))
    assert 0 < done["files_after"] <= tables, (done, tables)
    assert warehouse_row(settings, COUNT) == before == (6, 6)
    first = builds(settings)[0]  # its snapshot expired (retention 0): `--at` says so, and which it keeps
    with pytest.raises(UnknownPoint, match=r"is not in the lake: it keeps snapshots .* expired after"):
        snapshot_at(settings, first["flow_run_id"][:8])
