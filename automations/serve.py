"""Serve the dbt build deployment (one run at a time) and the staleness alert deployment."""

from __future__ import annotations

from prefect import serve

from automations.dbt_build import DEPLOYMENT_NAME, STALE_FLOW_NAME, dbt_build, landing_stale


def deployments() -> list:
    return [
        dbt_build.to_deployment(
            name=DEPLOYMENT_NAME,
            tags=["landing", "dbt"],
            description="Builds the dbt models downstream of the given datasets. Started by automations only.",
        ),
        landing_stale.to_deployment(
            name=STALE_FLOW_NAME,
            tags=["landing"],
            description="Emits landing.dataset.stale. Started by the freshness automations.",
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    import argparse

    argparse.ArgumentParser(prog="python -m automations.serve", description="Serve the dbt-build and landing-stale deployments, one flow run at a time, until stopped.").parse_args(argv)
    # limit=1: one flow run at a time in this runner, so one dbt writer; the build also takes a file lock.
    serve(*deployments(), limit=1)


if __name__ == "__main__":
    main()
