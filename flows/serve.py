"""Serve the E&L exports as deployments on cron (the only cron schedules in the system), or put them on a Prefect
process work pool that `prefect worker start` processes run (the scale-out stack)."""

from __future__ import annotations

from prefect import serve

from flows.dummyjson import export_dummyjson, export_dummyjson_all, exportable_tables
from landing.catalog import load_catalog
from landing.settings import REPO_ROOT, Settings


def deployments(settings: Settings | None = None) -> list:
    """One deployment per DummyJSON table on the export cron, and one for all tables at once, run on demand."""
    settings = settings or Settings()
    everything = export_dummyjson_all.to_deployment(
        name="dummyjson-all",
        tags=["landing", "export"],
        description="Export every DummyJSON table the dbt project declares, concurrently, in one flow run (run on demand).",
    )
    return [everything] + [
        export_dummyjson.to_deployment(
            name=f"dummyjson-{table}",
            parameters={"table": table},
            cron=settings.export_cron,
            tags=["landing", "export"],
            description=f"Export DummyJSON /{table} into the landing folder of dummyjson.{table}.",
        )
        for table in exportable_tables(load_catalog(settings))
    ]


def deploy_to_pool(pool: str, settings: Settings | None = None) -> list:
    """Register the export deployments on the process work pool `pool` (made if missing): a worker started in this
    project's folder, on any machine with the same checkout, runs them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        except ObjectAlreadyExists:
            pass
    ids = []
    for d in deployments(settings):
        d.job_variables = {
            **(d.job_variables or {}),
            "working_dir": str(REPO_ROOT),
        }  # the entrypoints are relative to it
        ids.append(d.apply(work_pool_name=pool))
    return ids


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m flows.serve",
        description="Serve the E&L export deployments on their cron schedules (LANDING_EXPORT_CRON) until stopped.",
    )
    parser.add_argument(
        "--work-pool",
        metavar="POOL",
        help="instead of serving them, register them on this process work "
        "pool and exit; `prefect worker start --pool POOL` runs them",
    )
    args = parser.parse_args(argv)
    if args.work_pool:
        ids = deploy_to_pool(args.work_pool)
        print(f"{len(ids)} export deployment(s) on work pool {args.work_pool}")
        return
    serve(*deployments())


if __name__ == "__main__":
    main()
