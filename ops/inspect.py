"""`status` and `explain`: what landed, what was announced, and which builds it caused (or why none)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from landing.catalog import Catalog, load_catalog
from automations import buildlog
from automations.compact import part_names
from automations.buildlog import BuildStatus
from automations.names import BUILD, BUILD_DEPLOYMENT, BUILD_FLOW, MANAGED_TAG
from landing.contract import QUARANTINE_DIR as QUARANTINE
from landing.events import FILE_REJECTED, dataset_resource_id
from landing.ledger import Ledger, ledger_path
from landing.settings import Settings
from landing import lake
from ops import NO_API


def _fmt_time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "never"


async def _server(settings: Settings):
    """(client, error): an open Prefect client, or why there is none."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return None, f"{NO_API}; or point it at your server"
    client = get_client()
    await client.__aenter__()
    failure = await client.api_healthcheck()
    if failure is not None:
        await client.__aexit__(None, None, None)
        return (
            None,
            f"the Prefect server at {url} is unreachable ({failure.__class__.__name__}): start it with `make up`",
        )
    return client, None


async def _build_runs(client):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowFilter, FlowFilterName

    return await client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[BUILD_FLOW])),
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[BUILD_DEPLOYMENT])),
        limit=200,
    )


def status(settings: Settings | None = None, out=print) -> int:
    """Per dataset: last landed file, last successful build, runs pending, files quarantined, stale or not."""
    settings = settings or Settings()
    catalog = load_catalog(settings)
    builds = buildlog.read(settings.builds_log)

    async def pending() -> tuple[dict[str, int], str | None]:
        client, error = await _server(settings)
        if client is None:
            return {}, error
        try:
            runs = await _build_runs(client)
        finally:
            await client.__aexit__(None, None, None)
        counts: dict[str, int] = {}
        for run in runs:
            if run.state and not run.state.is_final():
                for name in run.parameters.get("datasets") or []:
                    counts[name] = counts.get(name, 0) + 1
        return counts, None

    counts, error = asyncio.run(pending())
    now = time.time()
    rows = []
    for name, ds in sorted(catalog.datasets.items()):
        names = ds.data_names()  # the newest is the last name (accepted names start with their landing time)
        newest = (names[-1], (ds.accepted_path / names[-1]).stat().st_mtime) if names else None
        built = [b for b in builds if name in b.datasets and b.status == BuildStatus.BUILT]
        qdir = Path(settings.root) / QUARANTINE / name
        quarantined = len([p for p in qdir.glob("*") if not p.name.endswith(".reason.txt")]) if qdir.exists() else 0
        stale_after = ds.stale_after_seconds
        if not stale_after:
            stale = "-"
        elif newest is None:
            stale = (
                "yes (nothing landed)"
                if not part_names(settings, ds)
                else f"yes (nothing landed since its files were compacted, after {settings.accepted_retention_days:g} days)"
            )
        else:
            age = now - newest[1]
            stale = f"yes ({int(age - stale_after)}s late)" if age > stale_after else "no"
        last_file = f"{newest[0]} ({_fmt_time(newest[1])[11:19]})" if newest else "none"
        rows.append(
            (
                name,
                last_file,
                _fmt_time(built[-1].at) if built else "never",
                str(counts.get(name, 0) if error is None else "?"),
                str(quarantined),
                stale,
            )
        )
    header = ("dataset", "last file", "last build", "pending", "quarantined", "stale")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(5)]  # every row lines up, however long a name
    for r in (header, *rows):
        left = " ".join(f"{r[i]:<{widths[i]}}" for i in range(3))
        out(f"{left} {r[3]:>{widths[3]}} {r[4]:>{widths[4]}}  {r[5]}")
    if error:
        out(f"(runs pending unknown: {error})")
    for name in sorted(catalog.datasets):  # a dataset whose models were put back since its last build: said
        last = next((b for b in reversed(builds) if name in b.datasets and b.status in _DECIDED), None)
        if last is not None and last.status == BuildStatus.ROLLED_BACK:
            out(f"rolled back {name} at {_fmt_time(last.at)}: {last.reason} (its next file builds forward from there)")
    _drift_status(settings, catalog, out)
    _warehouse_status(settings, out)
    _verify_status(settings, out)
    return 0


def _drift_status(settings: Settings, catalog: Catalog, out) -> None:
    """A line per dataset whose loaded files carried columns its source does not declare (from the drift table, one
    row per dataset and column: reading it costs the same after a million files)."""
    import duckdb

    from automations.load import drift

    if not lake.exists(settings):
        return
    try:
        with lake.connect(settings) as con:
            found = drift(con)
    except (duckdb.Error, lake.NoLake):
        return
    for dataset, columns, files, last in found:
        ds = catalog.datasets.get(dataset)
        out(
            f"schema drift {dataset}: up to {files} file(s), the last at {last:%Y-%m-%d %H:%M:%S %Z}, carried "
            + _drift_words(dataset, columns, bool(ds and ds.rescue))
        )


_DECIDED = (BuildStatus.BUILT, BuildStatus.ROLLED_BACK)


def _warehouse_status(settings: Settings, out) -> None:
    """Where readers read (the lake and its newest snapshot)."""
    from landing import lake

    snapshot = lake.newest_snapshot(settings)
    if snapshot is not None:
        out(
            f"readers' warehouse the lake {settings.lake_name}, snapshot {snapshot}: `landing sql`, or {lake.cli_line(settings)}"
        )
    else:
        out(f"readers' warehouse the lake {settings.lake_name}: nothing built yet")


def _verify_status(settings: Settings, out) -> None:
    """The last `landing verify` (or landing-verify run) and what it found."""
    from automations.verify import read_record

    last = read_record(settings)
    if last is None:
        out(
            "verify    never run (`landing verify` builds the models from scratch and compares them with the live ones)"
        )
        return
    at = _fmt_time(last.get("at"))
    if last.get("status") == "ok":
        out(f"verify    {at}: ok, {last.get('models', 0)} model(s) equal a full build")
    elif last.get("status") == "differs":
        models = ", ".join(
            f"{m['model']} ({m['only_live']} row(s) only live, {m['only_full']} only in a full build)"
            for m in last.get("differs", [])
        )
        out(f"verify    {at}: DIFFERS {models}: `landing verify` names sample keys, `landing rebuild` fixes it")
    else:
        out(f"verify    {at}: failed: {str(last.get('error') or '?').splitlines()[0][:300]}")


def explain(target: str, settings: Settings | None = None, out=print, catalog: Catalog | None = None) -> int:
    """The chain for one file (path or event id): file → event → automations → runs → dbt nodes, or why it stopped."""
    settings = settings or Settings()
    catalog = catalog or load_catalog(settings)
    root = Path(os.path.realpath(settings.root))
    ledger = Ledger(ledger_path(settings.state_dir))
    try:
        return asyncio.run(_explain(target, settings, catalog, root, ledger, out))
    finally:
        ledger.close()


async def _explain(target: str, settings: Settings, catalog: Catalog, root: Path, ledger: Ledger, out) -> int:
    try:
        event_uuid = uuid.UUID(target)
    except ValueError:
        event_uuid = None
    if event_uuid is None:
        path = os.path.abspath(target)
    else:
        path = ledger.event_owner(str(event_uuid))
        if path is None:
            out(f"event {event_uuid}: not in the ledger {ledger.path}; looking it up on the server")
    facts: dict[str, str] = {}  # what the local half learnt: the run that loaded the file
    if path:
        found = _explain_file(path, catalog, root, ledger, out, settings, facts)
        if isinstance(found, int):
            return found
        event_uuid = found or event_uuid
    client, error = await _server(settings)
    if client is None:
        out(f"server    {error}")
        return 1
    try:
        event = await _explain_event(client, event_uuid, out)
        if event is None:
            return 1
        return await _explain_runs(client, settings, event, out, loaded_by=facts.get("loaded_by"))
    finally:
        await client.__aexit__(None, None, None)


def _loaded_line(settings: Settings, catalog: Catalog, accepted_path: str, facts: dict | None = None) -> str:
    """Whether the accepted file is loaded into the warehouse, by which run and with how many rows (the load history
    in the lake)."""

    from automations.load import history

    if not lake.exists(settings):
        return "loaded    not yet: nothing is built yet"
    # by its accepted folder and name, wherever the landing folder is mounted now (the ledger keeps the path it had)
    folder = str(Path(accepted_path).parent)
    ds = catalog.dataset_for_accepted(accepted_path) or next(
        (d for d in catalog.datasets.values() if folder.endswith("/" + d.accepted_relative)), None
    )
    if ds is None:
        return "loaded    not yet: it is not in a dataset's accepted folder"
    try:
        with lake.connect(settings) as con:
            row = history(con, ds.file_id(accepted_path))
    except lake.NoLake:
        return "loaded    not yet: nothing is built yet"
    if row is None:
        return "loaded    not yet: the next build of its dataset loads it (or it was set aside: see the quarantine)"
    load_id, dataset, rows, run_id, at, undeclared, part = row
    if facts is not None and run_id:
        facts["loaded_by"] = str(run_id)
    line = f"loaded    {rows} row(s) at {at:%Y-%m-%d %H:%M:%S %Z} by flow run {run_id or '(outside Prefect)'} (load {load_id})"
    if part:
        line += f"\ncompacted into {settings.accepted / part} (LANDING_ACCEPTED_RETENTION_DAYS): its rows, with every field, are there"
    if undeclared:
        ds = catalog.datasets.get(dataset)
        line += "\n" + _drift_words(dataset, undeclared, bool(ds and ds.rescue))
    return line


def _drift_words(dataset: str, columns, rescued: bool) -> str:
    """What a file's (or a dataset's) undeclared columns mean for its rows, and what to do."""
    shown = [c if c else '""' for c in columns[:12]]  # an empty key is a key too: show it
    names = ", ".join(shown) + (f" and {len(columns) - 12} more" if len(columns) > 12 else "")
    if rescued:
        return f"undeclared {names}: kept in the raw table's _rescued column (meta.landing.rescue)"
    return (
        f"undeclared {names}: not loaded; declare them in {dataset}'s source yml to load them, "
        "or set meta: {landing: {rescue: true}} to keep them in _rescued"
    )


def _explain_file(
    path: str, catalog: Catalog, root: Path, ledger: Ledger, out, settings: Settings, facts: dict | None = None
) -> int | uuid.UUID | None:
    """The local half: dataset, ledger decision, where the file went. An exit code when the chain stops here, else
    the file's event id (None if it has none)."""
    out(f"file      {path}")
    # the accepted file dbt reads, or the quarantined one, rather than the name it was dropped under
    record = ledger.file(path) or ledger.by_accepted(path) or ledger.by_quarantined(path)
    ds = (
        None
        if Path(path).is_relative_to(root / QUARANTINE)
        else (catalog.dataset_for_path(Path(path)) or catalog.dataset_for_accepted(Path(path)))
    )
    reason_file = Path(path + ".reason.txt")
    if record is None and Path(path).is_relative_to(root / QUARANTINE) and reason_file.exists():
        # set aside by a build's load step (an accepted file no sensor had checked): its reason is beside it
        facts = dict(line.split(": ", 1) for line in reason_file.read_text().splitlines() if ": " in line)
        out(f"dataset   {facts.get('dataset', '?')}")
        out(f"quarantined {path} (was {facts.get('file', '?')})")
        out(f"why       {facts.get('reason', '?')}; fix it where it lies and run `landing replay {path}`")
        return 0
    if ds is None and record is None:
        out(
            "dataset   unknown: no dbt source has this folder and file pattern "
            f"(known: {', '.join(f'{d.name} → {d.path}/{d.glob}' for d in catalog.datasets.values())})"
        )
        return 1
    dataset = ds.name if ds else record.dataset
    out(f"dataset   {dataset}")
    if record is None:
        exists = os.path.exists(path)
        out(
            "ledger    not seen by the sensor yet"
            + ("" if exists else " (and the file does not exist)")
            + ": is `python -m sensors` running? It announces unseen files on start."
        )
        return 1
    out(f"ledger    {record.status}" + (f": {record.reason}" if record.reason else ""))
    if record.accepted_path:
        out(
            f"accepted  {record.accepted_path} (dropped as {record.path})"
            if record.accepted_path != record.path
            else f"accepted  {record.accepted_path} (landed there by its producer)"
        )
        out(_loaded_line(settings, catalog, record.accepted_path, facts))
        if record.accepted_path != record.path and os.path.isfile(record.path):
            out(_here_again(record))
    if record.status == "quarantined":
        moved = record.quarantined_to or str(root / QUARANTINE / dataset)
        out(f"quarantined {moved} (dropped as {record.path})")
        out(
            f"why       not buildable, so never accepted or built: {record.reason.rstrip('.')}. "
            f"The reason is also in {moved}.reason.txt; fix the file and drop it again"
        )
        out(f"event     {FILE_REJECTED} {record.event_id} (the rejection, in the UI's event feed)")
        return 0
    if record.status == "duplicate":
        out(f"why       a duplicate: {record.reason}; the same content was announced once already, so no new build")
    if record.status == "pending":
        out("why       its event waits in the sensor's outbox: the server has not accepted it yet (is it up?)")
    return uuid.UUID(record.event_id) if record.event_id else None


def _here_again(record) -> str:
    """What the file lying at an accepted file's drop path now is: the same bytes again, or new content."""
    from landing.reader import digest

    try:
        sha256, _ = digest(record.path)
    except OSError as exc:
        return f"now       a file is at {record.path} again, unreadable here ({exc.strerror})"
    if sha256 == record.sha256:
        return (
            f"now       the same bytes were dropped at {record.path} again: a duplicate, left in place and not "
            "announced (delete it; drop changed content to build again)"
        )
    return f"now       {record.path} holds other content since: the sensor decides it as a new file"


async def _explain_event(client, event_uuid: uuid.UUID | None, out):
    """The event on the server, or None (said why)."""
    from prefect.events.filters import EventFilter, EventIDFilter, EventOccurredFilter

    page = await client.read_events(
        filter=EventFilter(
            id=EventIDFilter(id=[event_uuid]),
            occurred=EventOccurredFilter(since=datetime(2000, 1, 1, tzinfo=timezone.utc)),
        ),
        limit=1,
    )
    if not page.events:
        out(f"event     {event_uuid}: not on the server (not sent yet, or older than the server's event retention)")
        return None
    event = page.events[0]
    out(f"event     {event.event} {event.id} at {event.occurred.isoformat()} on {event.resource.id}")
    return event


async def _explain_runs(client, settings: Settings, event, out, loaded_by: str | None = None) -> int:
    """The automations the event matches, the build deployment's state, and the runs since the event with their
    outcome: up to the run that loaded the file (`loaded_by`, from the load history) when there is one, since later
    runs of the dataset built later files."""
    dataset = event.resource.get("prefect.resource.name", "")
    automations = [
        a
        for a in await client.read_automations()
        if MANAGED_TAG in (a.tags or [])
        and dataset_resource_id(dataset) in json.dumps(a.trigger.model_dump(mode="json"))
    ]
    if not automations:
        out(f"automations none match {dataset_resource_id(dataset)}: run `python automations/apply.py`")
        return 1
    for a in automations:
        out(f"automation {a.name}" + ("" if a.enabled else " (disabled)"))
    try:
        deployment = await client.read_deployment_by_name(BUILD)
    except Exception:
        out(f"deployment {BUILD} does not exist: serve it with `python -m automations.serve` (make up does)")
        return 1
    if deployment.paused:
        out(
            f"deployment {BUILD} is paused: runs are not started. Resume it in the UI or restart `python -m automations.serve`"
        )
    elif str(getattr(deployment, "status", "")).upper().endswith("NOT_READY"):
        out(f"deployment {BUILD} is not served right now (no runner polls it): start `python -m automations.serve`")
    runs = [
        r
        for r in await _build_runs(client)
        if dataset in (r.parameters.get("datasets") or []) and r.created and r.created >= event.occurred
    ]
    if loaded_by and all(str(r.id) != loaded_by for r in runs):
        # created before this file's event (a run of the same burst picked it up), or past the newest 200 runs
        try:
            runs.append(await client.read_flow_run(uuid.UUID(loaded_by)))
        except Exception:  # gone from the server (its retention): the load history still names it above
            pass
    runs.sort(key=lambda r: r.expected_start_time or r.created)
    builds = {b.flow_run_id: b for b in buildlog.read(settings.builds_log)}
    if not runs:
        out("runs      none yet: the automation fires within a second; if it stays empty, check the deployment above")
        return 0
    later = earlier = 0
    loading = next((i for i, r in enumerate(runs) if str(r.id) == loaded_by), None)
    if loading is not None:
        later = len(runs) - loading - 1
        earlier = max(0, loading + 1 - 6)
        runs = runs[earlier : loading + 1]
    if earlier:
        out(
            f"earlier   {earlier} earlier run(s) of {dataset} since the event, before the one that loaded it (not listed)"
        )
    for run in runs[:6]:
        record = builds.get(str(run.id))
        decision = str(record.status) if record else "-"
        duration = f"{run.total_run_time.total_seconds():.1f}s" if run.total_run_time else "-"
        out(
            f"run       {run.name} {run.state.name if run.state else '?'} in {duration}, {decision}, "
            f"created by {run.created_by.display_value if run.created_by else 'unknown'}"
        )
        if record and record.status == BuildStatus.BUILT and record.tests_run is not None:
            models = record.built_nodes
            out(
                f"  dbt     {len(models)} node(s) built: {', '.join(models[:8])}{' ...' if len(models) > 8 else ''}; "
                f"tests passed {record.tests_passed}/{record.tests_run}"
            )
            if record.snapshot is not None:
                out(
                    f"  rows    in the lake's snapshot {record.snapshot}: `landing sql --at {str(run.id)[:8]}` reads "
                    "the warehouse as this build left it"
                )
        elif record and record.status == BuildStatus.UP_TO_DATE:
            out("  why     up to date: an earlier build in the same burst window already included this file")
        if str(run.id) == loaded_by:
            out("  loaded  this run loaded the file")
    if later:
        out(f"later     {later} later run(s) of {dataset}, for files that landed after this one (not listed)")
    return 0
