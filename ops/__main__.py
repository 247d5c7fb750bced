"""`landing` (or `python -m ops`): bring the stack up, run the demo, explain what happened to a file, and verify the
builds."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="landing", description="Event-driven pipelines: landing files → Prefect events → dbt."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "up",
        help="start a local Prefect server (unless PREFECT_API_URL answers), the deployments, the automations and the sensor",
    )
    sub.add_parser(
        "up-scale",
        help="the same on Prefect's distributed setup: PostgreSQL and Redis started here on loopback, "
        "API processes and background services apart, two dbt runners, exports on a process work pool",
    )
    sub.add_parser(
        "status",
        help="per dataset: last landed file, last successful build, runs pending, files quarantined, stale or not",
    )
    explain = sub.add_parser(
        "explain", help="why did (or didn't) this file trigger a build: file → event → automations → runs → dbt nodes"
    )
    explain.add_argument("target", metavar="PATH_OR_EVENT_ID", help="a landed file's path, or a landing event id")
    sql = sub.add_parser(
        "sql",
        help="query the lake, the readers' warehouse (read-only, the newest snapshot, or --at one): "
        "a query as arguments, a script on standard input, or an interactive shell",
    )
    sql.add_argument("query", nargs="*", help="SQL to run, for example: select count(*) from stage_dummyjson__products")
    sql.add_argument("--csv", action="store_true", help="print results as CSV (with a header) instead of a table")
    sql.add_argument(
        "--at",
        metavar="BUILD_OR_TIME",
        help="query the warehouse as it was: after a build (its flow run id, 8 characters or more), at a snapshot "
        "number, or at a time (2026-12-06T14:00, UTC)",
    )
    rebuild = sub.add_parser(
        "rebuild",
        help="load a dataset again from its accepted files and build its models from "
        "scratch (after a model or contract change), as a dbt-build run; reports the rows per file",
    )
    rebuild.add_argument("dataset", help="a dataset, <source>.<table> (`landing status` lists them)")
    rollback = sub.add_parser(
        "rollback",
        help="put a dataset's models back as an earlier build left them (after a bad model change), in one commit, as "
        "a dbt-build run with its reason in the build log; the next file builds forward from there",
    )
    rollback.add_argument("dataset", help="a dataset, <source>.<table> (`landing status` lists them)")
    rollback.add_argument(
        "--to",
        required=True,
        metavar="BUILD_OR_TIME",
        help="a build (its flow run id, 8 characters or more), a snapshot number, or a time (2026-12-06T14:00, UTC)",
    )
    rollback.add_argument("--reason", default=None, help="why, for the build log (`landing status` shows it)")
    verify = sub.add_parser(
        "verify",
        help="check the incremental builds: build the models downstream of the datasets from scratch in a scratch "
        "scratch lake from a copy of the raw tables and compare them with the live tables, row by row; exit 0 when all equal, "
        "1 when one differs, 2 for an unknown dataset",
    )
    verify.add_argument(
        "datasets",
        nargs="*",
        metavar="DATASET",
        help="<source>.<table> datasets whose downstream models to verify (default: every dataset)",
    )
    replay = sub.add_parser(
        "replay",
        help="re-admit a quarantined file after its source's contract changed: the sensor "
        "validates it again, and it is accepted or quarantined again with the new reason",
    )
    replay.add_argument("path", help="the quarantined file (below <LANDING_ROOT>/_quarantine/)")
    demo = sub.add_parser(
        "demo", help="with the stack up: drop the sample files, wait for the builds, print row counts and run links"
    )
    demo.add_argument("--timeout", type=float, default=180, help="seconds to wait for the builds")
    args = parser.parse_args(argv)
    if args.command == "up":
        from landing.settings import Settings
        from ops import scaleout

        settings = Settings()
        # before importing the stack (Prefect, dbt: seconds): a bad PostgreSQL or Redis URL is said at once
        problem = scaleout.preflight(settings) if settings.scale_out else None
        if problem:
            print(problem, flush=True)
            return 1
        from ops.stack import up

        return up(settings)
    if args.command == "up-scale":
        from ops.stack import up_scale

        return up_scale()
    if args.command == "status":
        from ops.inspect import status

        return status()
    if args.command == "explain":
        from ops.inspect import explain

        return explain(args.target)
    if args.command == "sql":
        from ops.sql import sql

        return sql(" ".join(args.query), csv=args.csv, at=args.at)
    if args.command == "rollback":
        from ops import maintain

        return maintain.rollback(args.dataset, args.to, args.reason)
    if args.command in ("rebuild", "replay"):
        from ops import maintain

        return maintain.rebuild(args.dataset) if args.command == "rebuild" else maintain.replay(args.path)
    if args.command == "verify":
        from automations.verify import main as verify_main

        return verify_main(args.datasets)
    if args.command == "demo":
        from ops.demo import demo

        return demo(timeout=args.timeout)
    return 2


if __name__ == "__main__":
    sys.exit(main())
