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

    parser = argparse.ArgumentParser(
        prog="python -m automations.serve",
        description="Serve the dbt-build and landing-stale deployments, one flow run at a time, until stopped.",
    )
    parser.add_argument("--subprocess", action="store_true",
                        help="use Prefect's runner (a new process per flow run) instead of the warm in-process runner")
    parser.add_argument("--poll", type=float, default=0.2, help="warm runner: seconds between looks for due runs")
    args = parser.parse_args(argv)
    if args.subprocess:
        # limit=1: one flow run at a time in this runner, so one dbt writer; the build also takes a file lock.
        serve(*deployments(), limit=1)
    else:
        from automations.warm import main_warm

        main_warm(deployments(), {f.name: f for f in (dbt_build, landing_stale)}, args.poll)


if __name__ == "__main__":
    main()
