"""`landing rebuild`, `landing rollback` and `landing replay`: load a dataset again from its accepted files, put its
models back as an earlier build left them, re-admit a quarantined file."""

from __future__ import annotations

import os
import time
from pathlib import Path

from landing.catalog import load_catalog
from landing.contract import QUARANTINE_DIR
from landing.ledger import Ledger, ledger_path
from landing.settings import Settings
from landing import lake
from ops import NO_API

LISTED = 20  # files listed by name after a rebuild; the totals cover all


def rebuild(dataset: str, settings: Settings | None = None, out=print, timeout: float = 3600) -> int:
    """Run the dbt-build deployment with `rebuild` for `dataset` (a run in the UI), wait for it, and report the rows
    loaded per file."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    from automations.tables import HISTORY
    from automations.names import BUILD

    settings = settings or Settings()
    catalog = load_catalog(settings)
    try:
        catalog.get(dataset)
    except ValueError as exc:
        out(f"error: {exc}")
        return 2
    if not PREFECT_API_URL.value():
        out(f"error: {NO_API} (the rebuild runs on its dbt deployment)")
        return 1
    out(f"rebuild {dataset}: every accepted file loaded again, its models built from scratch (a {BUILD} run)")
    run = run_deployment(BUILD, parameters={"datasets": [dataset], "rebuild": True}, timeout=timeout)
    state = run.state.name if run.state else "?"
    out(f"run       {run.name} {state}")
    if not (run.state and run.state.is_completed()):
        out(f"the rebuild did not complete ({state}): `landing explain` and the run's log in the UI say why")
        return 1
    with lake.connect(settings) as con:
        rows = con.execute(
            f"select accepted_file, rows from {HISTORY} where dataset = ? order by load_id", [dataset]
        ).fetchall()
    for path, n in rows[:LISTED]:
        out(f"  {Path(path).name:<60} {n:>8} rows")
    if len(rows) > LISTED:
        out(f"  ... and {len(rows) - LISTED} more files")
    out(f"loaded    {len(rows)} file(s), {sum(n for _, n in rows)} row(s)")
    return 0


def rollback(
    dataset: str, to: str, reason: str | None = None, settings: Settings | None = None, out=print, timeout: float = 600
) -> int:
    """Run the dbt-build deployment with `rollback_to` for `dataset` (a run in the UI, holding the writer's slot as a
    build does), wait for it, and say what it put back."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    from automations.buildlog import snapshot_at
    from automations.names import BUILD

    settings = settings or Settings()
    catalog = load_catalog(settings)
    try:
        catalog.get(dataset)
        snapshot = snapshot_at(settings, to)
    except (ValueError, lake.NoLake) as exc:  # UnknownPoint is a ValueError
        out(f"error: {exc}")
        return 2
    if not PREFECT_API_URL.value():
        out(f"error: {NO_API} (the rollback runs on its dbt deployment)")
        return 1
    out(f"rollback  {dataset}'s models to {to} (snapshot {snapshot}), as a {BUILD} run")
    run = run_deployment(
        BUILD, parameters={"datasets": [dataset], "rollback_to": to, "reason": reason}, timeout=timeout
    )
    state = run.state.name if run.state else "?"
    out(f"run       {run.name} {state}")
    from automations.buildlog import BuildStatus, read

    record = next((r for r in read(settings.builds_log) if r.flow_run_id == str(run.id)), None)
    if not (run.state and run.state.is_completed()) or record is None or record.status != BuildStatus.ROLLED_BACK:
        why = (run.state.message or "").strip() if run.state else ""
        out(f"the rollback did not complete ({state}): {why or 'the run' + chr(39) + 's log in the UI says why'}")
        return 1
    out(f"tables    {', '.join(record.built_nodes) or 'none had been built'}")
    out(f"why       {record.reason}")
    out(
        f"done      in the lake's snapshot {lake.newest_snapshot(settings)}; the next file of {dataset} builds forward "
        f"from there (`landing rebuild {dataset}` builds from scratch)"
    )
    return 0


def replay(target: str, settings: Settings | None = None, out=print, timeout: float = 60) -> int:
    """Move a quarantined file back into its dataset's drop folder, so the sensor judges it again against the
    source's contract as it is now: accepted (and built) or quarantined again with the new reason."""
    settings = settings or Settings()
    catalog = load_catalog(settings)
    quarantine = Path(os.path.realpath(settings.root)) / QUARANTINE_DIR
    path = Path(os.path.realpath(target))
    if not path.is_relative_to(quarantine) or path.name.endswith(".reason.txt") or not path.is_file():
        out(
            f"error: {target} is not a quarantined file: replay takes a file below {quarantine} "
            "(`landing status` counts them per dataset)"
        )
        return 2
    dataset = path.relative_to(quarantine).parts[0]
    try:
        ds = catalog.get(dataset)
    except ValueError as exc:
        out(f"error: {exc}")
        return 2
    ledger = Ledger(ledger_path(settings.state_dir))
    try:
        record = ledger.by_quarantined(str(path))
    finally:
        ledger.close()
    # back under the name it was dropped as (the sensor's record), or its own name
    name = Path(record.path).name if record else path.name
    back = ds.path / name
    if back.exists():
        back = ds.path / f"replayed-{int(time.time())}-{name}"
    ds.path.mkdir(parents=True, exist_ok=True)
    os.replace(path, back)
    path.with_name(path.name + ".reason.txt").unlink(missing_ok=True)
    out(f"replay    {path.name} → {back} (the sensor validates it against {dataset}'s contract as it is now)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ledger = Ledger(ledger_path(settings.state_dir))
        try:
            now = ledger.file(str(back))
        finally:
            ledger.close()
        if now and now.status in ("announced", "duplicate"):
            out(
                f"accepted  as {now.accepted_path}: its build follows (`landing explain {back}`)"
                if now.status == "announced"
                else f"duplicate: {now.reason}"
            )
            return 0
        if now and now.status == "quarantined" and not back.exists():
            out(f"quarantined again: {now.reason}")
            return 1
        time.sleep(0.3)
    out(f"not decided within {timeout:.0f} s: is the sensor running (`make up`)? The file waits in {back}")
    return 1
