"""Sync the Prefect server's automations with the ones the dbt project implies (create, update, delete)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path

from automations.names import BUILD, MANAGED_TAG, RECONCILE, STALE
from automations.plan import comparable, desired_automations
from landing.catalog import CatalogError, load_catalog, project_fingerprint
from landing.events import project_changed
from landing.settings import Settings


class ApplyError(RuntimeError):
    """apply.py cannot proceed; the message says what to start or fix."""


@dataclass
class Plan:
    create: list = field(default_factory=list)
    update: list = field(default_factory=list)  # (existing, desired)
    delete: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"create     {a.name}" for a in self.create]
        out += [f"update     {d.name}" for _, d in self.update]
        out += [f"delete     {a.name}" for a in self.delete]
        out += [f"unchanged  {a.name}" for a in self.unchanged]
        return out

    def summary(self) -> str:
        return (
            f"{len(self.create)} to create, {len(self.update)} to update, "
            f"{len(self.delete)} to delete, {len(self.unchanged)} unchanged"
        )


def make_plan(desired: list, existing: list) -> Plan:
    plan = Plan()
    managed = {a.name: a for a in existing if MANAGED_TAG in (a.tags or [])}
    for want in desired:
        have = managed.pop(want.name, None)
        if have is None:
            plan.create.append(want)
        elif comparable(have) == comparable(want):
            plan.unchanged.append(want)
        else:
            plan.update.append((have, want))
    plan.delete.extend(managed.values())
    return plan


async def apply(settings: Settings | None = None, dry_run: bool = False, out=print) -> Plan:
    """Compute the plan against the server and, unless dry_run, carry it out."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    settings = settings or Settings()
    try:
        catalog = load_catalog(settings)
    except CatalogError as exc:
        raise ApplyError(str(exc)) from exc
    url = PREFECT_API_URL.value()
    if not url:
        raise ApplyError(
            "PREFECT_API_URL is not set: start the stack with `make up`, or set it to your Prefect server's API URL."
        )
    async with get_client() as client:
        failure = await client.api_healthcheck()
        if failure is not None:
            raise ApplyError(
                f"the Prefect server at {url} is unreachable ({failure.__class__.__name__}). "
                "Start it with `make up` (or `prefect server start`) and check PREFECT_API_URL."
            )
        ids = {}
        for deployment in (BUILD, STALE, RECONCILE):
            try:
                ids[deployment] = (await client.read_deployment_by_name(deployment)).id
            except ObjectNotFound:
                raise ApplyError(
                    f"the deployment {deployment!r} does not exist on {url}. "
                    "Serve it first with `python -m automations.serve` (make up does this), then run apply.py again."
                ) from None
        desired = desired_automations(catalog, ids[BUILD], ids[STALE], settings, reconcile_deployment=ids[RECONCILE])
        existing = await client.read_automations()
        plan = make_plan(desired, existing)
        for line in plan.lines():
            out(line)
        if dry_run:
            out(f"dry run: {plan.summary()}; nothing changed")
            return plan
        for want in plan.create:
            await client.create_automation(want)
        for have, want in plan.update:
            await client.update_automation(have.id, want)
        for have in plan.delete:
            await client.delete_automation(have.id)
        out(f"applied: {plan.summary()}")
    await announce_project_change(settings, out)
    return plan


async def announce_project_change(settings: Settings, out) -> None:
    """Send `landing.project.changed` when the dbt project's code differs from the last one applied here: its
    automation starts a landing-reconcile run, which builds what the change affects without waiting for a file."""
    from landing.transport import send_events_async

    applied = settings.state_dir / "applied-project.txt"
    fingerprint = project_fingerprint(Path(settings.dbt_project_dir).resolve())
    previous = applied.read_text().strip() if applied.exists() else None
    if previous != fingerprint:
        if previous is not None:  # the first apply for this state: nothing was built from another version
            await send_events_async([project_changed(str(settings.dbt_project_dir), fingerprint, previous)])
            out("the dbt project changed since the last apply: its models are rebuilt by a landing-reconcile run")
        applied.parent.mkdir(parents=True, exist_ok=True)
        applied.write_text(fingerprint + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python automations/apply.py",
        description="Create, update and delete the Prefect automations derived from the dbt project's sources. "
        "Only automations tagged " + MANAGED_TAG + " are ever changed.",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan (create/update/delete/unchanged) and change nothing"
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(apply(dry_run=args.dry_run))
    except ApplyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
