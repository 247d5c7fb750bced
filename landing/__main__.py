"""`python -m landing`: bring the stack up (`up`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m landing", description="Event-driven pipelines: landing files → Prefect events → dbt.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start a local Prefect server (unless PREFECT_API_URL answers), the deployments, the automations and the sensor")
    args = parser.parse_args(argv)
    if args.command == "up":
        from landing.stack import up

        return up()
    return 2


if __name__ == "__main__":
    sys.exit(main())
