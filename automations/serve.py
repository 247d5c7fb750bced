"""Serve the dbt build deployment (one run at a time), the staleness alert and the reconcile safety net; with
`--verify`, the scheduled verification, in a runner of its own so that it never holds a build up."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from prefect import serve
from prefect.client.schemas.schedules import IntervalSchedule

from automations.dbt_build import dbt_build, landing_maintain, landing_reconcile, landing_stale
from automations.build_state import STOP_GRACE_SECONDS, up_to_date
from automations.names import (
    BUILD_DEPLOYMENT,
    MAINTAIN_DEPLOYMENT,
    RECONCILE_DEPLOYMENT,
    STALE_DEPLOYMENT,
    VERIFY_DEPLOYMENT,
)
from automations.verify import landing_verify
from landing.settings import Settings

FLOWS = (dbt_build, landing_stale, landing_reconcile, landing_maintain)
# verification runs fall on multiples of their interval after this instant (daily at 03:00 UTC by default), so a
# restart of the runner neither runs one at once nor postpones the next one
VERIFY_ANCHOR = datetime(2026, 1, 1, 3, tzinfo=timezone.utc)


def deployments(settings: Settings | None = None) -> list:
    settings = settings or Settings()
    every = timedelta(seconds=settings.reconcile_seconds)
    maintain = timedelta(seconds=settings.maintain_seconds)
    # anchored half an interval ahead, so starting the runner does not start a reconcile at once
    schedules = [IntervalSchedule(interval=every, anchor_date=datetime.now(timezone.utc) + every / 2)] if every else []
    return [
        dbt_build.to_deployment(
            name=BUILD_DEPLOYMENT,
            tags=["landing", "dbt"],
            description="Builds the dbt models downstream of the given datasets. Started by automations only.",
        ),
        landing_stale.to_deployment(
            name=STALE_DEPLOYMENT,
            tags=["landing"],
            description="Emits landing.dataset.stale. Started by the freshness automations.",
        ),
        landing_reconcile.to_deployment(
            name=RECONCILE_DEPLOYMENT,
            tags=["landing", "dbt"],
            schedules=schedules,
            description=f"Safety net every {settings.reconcile_seconds}s (LANDING_RECONCILE_SECONDS): builds datasets "
            "with files no build has covered yet.",
        ),
        landing_maintain.to_deployment(
            name=MAINTAIN_DEPLOYMENT,
            tags=["landing", "dbt"],
            schedules=[IntervalSchedule(interval=maintain, anchor_date=datetime.now(timezone.utc) + maintain / 2)]
            if maintain
            else [],
            description=f"Every {settings.maintain_seconds}s (LANDING_MAINTAIN_SECONDS): keeps the lake bounded "
            f"(snapshots older than {settings.snapshot_retention_hours:g} h expired, files rewritten and merged, "
            "unneeded files deleted).",
        ),
    ]


def needless_trailing_build(run, settings: Settings | None = None) -> str | None:
    """Why a claimed run need not start: a trailing build (automations/plan.py) whose datasets are up to date."""
    params = run.parameters or {}
    if params.get("trailing") and up_to_date(settings or Settings(), list(params.get("datasets") or [])):
        return f"a trailing build of {', '.join(params['datasets'])}, which nothing landed for since the last build"
    return None


def verify_deployments(settings: Settings | None = None) -> list:
    settings = settings or Settings()
    verify_every = timedelta(seconds=settings.verify_interval_seconds)
    verify_schedules = [IntervalSchedule(interval=verify_every, anchor_date=VERIFY_ANCHOR)] if verify_every else []
    return [
        landing_verify.to_deployment(
            name=VERIFY_DEPLOYMENT,
            tags=["landing", "dbt"],
            schedules=verify_schedules,
            description=f"Every {settings.verify_interval_seconds}s (LANDING_VERIFY_INTERVAL_SECONDS): builds every "
            "model downstream of a landing dataset from scratch in a scratch copy of the readers' warehouse and "
            "compares it with the live tables; a difference sends landing.verify.failed.",
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m automations.serve",
        description="Serve the dbt-build, landing-stale and landing-reconcile deployments, one flow run at a time, until "
        "stopped.",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="serve the landing-verify deployment instead (its schedule: LANDING_VERIFY_INTERVAL_SECONDS), apart from "
        "the builds: a verification runs beside a build, never before it",
    )
    parser.add_argument(
        "--subprocess",
        action="store_true",
        help="use Prefect's runner (a new process per flow run) instead of the warm in-process runner",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=2.0,
        help="warm runner: seconds between looks for due runs, the fallback to the server's events",
    )
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=STOP_GRACE_SECONDS,
        help="warm runner: on SIGINT or SIGTERM, seconds a build in progress may take to finish before it is cancelled",
    )
    args = parser.parse_args(argv)
    # dbt reads the landing folders and the warehouse through env_var(): set them once, from the settings, before
    # any flow run starts (the runner's own flow runs, or the processes Prefect's runner starts, inherit them)
    os.environ.update(Settings().dbt_env())
    if args.verify:
        serve(*verify_deployments(), limit=1)  # a process per run: its dbt environment is its own
    elif args.subprocess:
        # limit=1: one flow run at a time in this runner, so one dbt writer; the build also takes a file lock.
        serve(*deployments(), limit=1)
    else:
        from automations.warm import main_warm

        main_warm(deployments(), {f.name: f for f in FLOWS}, args.poll, args.stop_grace, needless_trailing_build)


if __name__ == "__main__":
    main()
