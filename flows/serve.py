"""Serve the E&L exports as deployments on cron: the only cron schedules in the system."""

from __future__ import annotations

from prefect import serve

from flows.dummyjson import export_dummyjson, export_dummyjson_all, exportable_tables
from landing.catalog import load_catalog
from landing.settings import Settings


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


def main(argv: list[str] | None = None) -> None:
    import argparse

    argparse.ArgumentParser(prog="python -m flows.serve", description="Serve the E&L export deployments on their cron schedules (LANDING_EXPORT_CRON) until stopped.").parse_args(argv)
    serve(*deployments())


if __name__ == "__main__":
    main()
