"""The dbt deployment: build the models downstream of the datasets it is given, one writer at a time."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.exceptions import TerminationSignal
from prefect.runtime import flow_run

from automations import buildlog, lineage, load, readers
from automations.build_state import (
    ALL,
    close_warehouse,
    EMPTY_SIGNATURE,
    ONE,
    Watermarks,
    build_signature,
    CANCEL,
    release_warehouse,
    one_writer,
)
from automations.buildlog import BuildRecord, BuildStatus
from automations.names import BUILD_FLOW, MAINTAIN_FLOW, RECONCILE_FLOW, STALE_FLOW
from landing.catalog import Catalog, load_catalog
from landing.events import build_failed, dataset_stale
from landing.settings import Settings

DATASET_NAME = re.compile(r"^[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")


class BuildParameterError(ValueError):
    """A build was asked for something other than known dataset names; dbt was not started."""


def validate_request(datasets: object, and_models: object, catalog: Catalog) -> tuple[list[str], list[str]]:
    """Known dataset and AND-model names only; refuse flags, paths and shell text before dbt starts."""
    if isinstance(datasets, str) or not isinstance(datasets, (list, tuple)) or not datasets:
        raise BuildParameterError(f"datasets must be a non-empty list of dataset names, got {datasets!r}")
    names: list[str] = []
    for name in datasets:
        if not isinstance(name, str) or not DATASET_NAME.match(name):
            raise BuildParameterError(
                f"refused dataset {name!r}: a dataset is <source>.<table> (letters, digits, _), "
                f"never a dbt selector, flag or path. Known: {', '.join(sorted(catalog.datasets))}"
            )
        catalog.get(name)  # raises UnknownDatasetError, a ValueError, naming the known ones
        names.append(name)
    and_names: list[str] = []
    for name in and_models or []:
        model = catalog.models.get(name) if isinstance(name, str) else None
        if model is None or not model.requires_all_sources:
            known = ", ".join(m.name for m in catalog.and_models()) or "none"
            raise BuildParameterError(f"refused and_models entry {name!r}: known models needing all sources: {known}")
        missing = set(model.datasets) - set(names)
        if missing:
            raise BuildParameterError(f"{name} needs {', '.join(sorted(missing))} in datasets too")
        and_names.append(name)
    return sorted(set(names)), sorted(set(and_names))


def dbt_args(
    datasets: list[str], and_models: list[str], catalog: Catalog, built: frozenset[str] = frozenset()
) -> list[str]:
    """`dbt build` arguments: everything downstream of the datasets, minus AND models neither asked for nor `built`
    already (an AND model waits for all its sources the first time; after that it follows each of them), and minus
    the sources' not_null tests: the sensor and the loader enforce them on every row the build reads (a row without a
    required column is never loaded), so dbt would only check again what is checked."""
    args = ["build", "--select", *[f"source:{name}+" for name in datasets]]
    excluded = sorted(m.name for m in catalog.and_models() if m.name not in and_models and m.name not in built)
    excluded += [t for name in datasets for t in catalog.get(name).not_null_tests]
    if excluded:
        args += ["--exclude", *excluded]
    return args


def record_build(
    settings: Settings, status: BuildStatus, datasets: list[str], and_models: list[str], **details
) -> BuildRecord:
    """Add this run's decision to the build log (what ran, for whom, and how it ended)."""
    record = BuildRecord(
        status=status,
        datasets=datasets,
        and_models=and_models,
        flow_run_id=str(flow_run.id) if flow_run.id else None,
        **details,
    )
    buildlog.append(settings.builds_log, record)
    return record


def _publish(settings: Settings, catalog: Catalog, record: BuildRecord, files: dict) -> None:
    """The run's artifact (files read, rows per model, tests); a failure to publish never fails the build."""
    try:
        lineage.publish(settings, catalog, record, files)
    except Exception as exc:  # the server is unreachable, say: the build itself is done
        get_run_logger().warning("could not publish the build's artifact: %s: %s", type(exc).__name__, exc)


def _emit_assets(runner, run_results: dict[str, dict]) -> None:
    """The build's asset events (see lineage.dbt_runner); failing to send them never fails the build."""
    try:
        runner.emit_asset_events(run_results)
    except Exception as exc:
        get_run_logger().warning("could not send the build's asset events: %s: %s", type(exc).__name__, exc)


def dbt_log_level():
    """dbt's level for Prefect's logging level; prefect-dbt's own mapping fails on WARNING and CRITICAL."""
    from dbt_common.events.base_types import EventLevel
    from prefect.settings import get_current_settings

    level = str(get_current_settings().logging.level).lower()
    return (
        {"warning": EventLevel.WARN, "critical": EventLevel.ERROR}.get(level) or EventLevel(level)
        if level in {"debug", "info", "warn", "warning", "error", "critical"}
        else EventLevel.INFO
    )


def project_runner(settings: Settings, manifest, node_tasks: bool | None = None, **kwargs):
    """prefect-dbt's runner (lineage.dbt_runner) on the settings' dbt project and target folder, at the run's log
    level, given the parsed project `manifest`; `node_tasks` defaults to the settings' (LANDING_DBT_NODE_TASKS)."""
    from prefect_dbt import PrefectDbtSettings

    return lineage.dbt_runner(
        manifest=manifest,
        node_tasks=settings.dbt_node_tasks if node_tasks is None else node_tasks,
        settings=PrefectDbtSettings(
            project_dir=settings.dbt_project_dir,
            profiles_dir=settings.dbt_project_dir,
            target_path=settings.dbt_target_dir,
            log_level=dbt_log_level(),
        ),
        **kwargs,
    )


def _run_name() -> str:
    params = flow_run.parameters or {}
    names = params.get("datasets") or []
    text = "+".join(n for n in names if isinstance(n, str))[:80] if isinstance(names, list) else "invalid"
    if params.get("and_models"):
        text += " (all sources)"
    if params.get("rebuild"):
        text += " (rebuild)"
    if params.get("rollback_to"):
        text += f" (rollback to {str(params['rollback_to'])[:12]})"
    return f"dbt-build {text}"


FAILED_STATUSES = ("error", "fail", "runtime error")


def failed_nodes(run_results: dict[str, dict] | None) -> list[str]:
    """Names of the dbt nodes that errored or failed, from the results prefect-dbt's run_end hook hands over."""
    return sorted(
        uid.split(".", 2)[-1]
        for uid, result in (run_results or {}).items()
        if str(result.get("status")) in FAILED_STATUSES
    )


def node_summary(run_results: dict[str, dict] | None) -> dict:
    """What a dbt run built and tested, from the results prefect-dbt's run_end hook hands over: the build log's
    built_nodes, tests_run and tests_passed."""
    built, tests = [], []
    for uid, result in (run_results or {}).items():
        kind, _, rest = uid.partition(".")  # <type>.<project>.<name>
        status = str(result.get("status"))
        if kind in ("model", "seed", "snapshot") and status == "success":
            built.append(f"{kind} {rest.split('.', 1)[-1]}")
        elif kind in ("test", "unit_test"):
            tests.append(status)
    built.sort()
    return {"built_nodes": built, "tests_run": len(tests), "tests_passed": tests.count("pass")}


def _emit_failure(datasets: list[str], nodes: list[str], message: str) -> None:
    from landing.transport import send_events

    send_events([build_failed(name, nodes, message, str(flow_run.id) if flow_run.id else None) for name in datasets])


def _newest_landed_within(ds, seconds: float) -> bool:
    """Whether the dataset's newest accepted file landed less than `seconds` ago (its name starts with its landing
    time; a name without one counts by its mtime)."""
    files = ds.data_files()
    if not files or seconds <= 0:
        return False
    newest = files[-1]
    try:
        landed = (
            datetime.strptime(newest.name.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=timezone.utc).timestamp()
        )
    except ValueError:
        landed = newest.stat().st_mtime
    return time.time() - landed < seconds


@flow(name=BUILD_FLOW, flow_run_name=_run_name, log_prints=True)
def dbt_build(
    datasets: list[str],
    and_models: list[str] | None = None,
    force: bool = False,
    rebuild: bool = False,
    trailing: bool = False,
    rollback_to: str | None = None,
    reason: str | None = None,
    settings: Settings | None = None,
) -> dict:
    """Build `source:<dataset>+` for the given datasets with dbt, unless nothing landed and the dbt project did not
    change since their last build; `force` builds anyway (the UI's Run button, with force on). `rebuild` loads every
    accepted file of the datasets again and rebuilds their models from scratch (`landing rebuild`). `trailing` marks
    the run an automation schedules for the close of its window: the warm runner deletes it unstarted when the
    datasets are up to date, so the UI lists only the builds that had something to do. `rollback_to` (a build, a
    snapshot or a time, as `landing sql --at` takes them) puts the datasets' models back as the lake had them then,
    with `reason` in the build log (`landing rollback`), and builds nothing."""
    stages = {"run": time.time()}
    settings = settings or Settings()
    catalog = load_catalog(settings)
    names, and_names = validate_request(datasets, and_models or [], catalog)
    kind = ALL if and_names else ONE
    marks = Watermarks(settings.state_dir / "watermarks.json")

    for attempt in range(settings.transient_retries + 1):
        try:
            with one_writer(settings):
                if rollback_to is not None:
                    return _rollback(settings, catalog, names, and_names, rollback_to, reason, marks)
                current = {n: build_signature(catalog.get(n), settings, catalog.fingerprint) for n in names}
                skipped = _skip(settings, marks.read(), kind, current, force or rebuild, and_names)
                if skipped:
                    return skipped
                _run_dbt(
                    settings,
                    catalog,
                    names,
                    and_names,
                    last_try=attempt == settings.transient_retries,
                    rebuild=rebuild,
                    full_refresh=_project_changed(marks.read(), current),
                    stages=stages,
                )
                built = marks.read()
                built.update({kind + n: sig for n, sig in current.items()})
                marks.write(built)
            break
        except Exception as exc:
            if attempt == settings.transient_retries or not is_transient(exc):
                raise
            delay = 0.5 * 2**attempt
            record_build(settings, BuildStatus.RETRYING, names, and_names, error=str(exc)[:2000])
            get_run_logger().warning(
                "dbt-build %s stopped for a reason that is not its data (%s); trying again in %.1f s (retry %d of %d)",
                "+".join(names),
                str(exc).splitlines()[0][:300],
                delay,
                attempt + 1,
                settings.transient_retries,
            )
            time.sleep(delay)
    return {"status": BuildStatus.BUILT.value, "datasets": names, "and_models": and_names}


class RollbackRefused(ValueError):
    """The point a rollback names cannot be put back incrementally: said with what to do instead."""


def _rollback(
    settings: Settings, catalog: Catalog, names: list[str], and_names: list[str], to: str, reason, marks
) -> dict:
    """The datasets' models (tables) and their marks put back as the lake had them at `to`, in one commit. The
    datasets' build signatures are set to the dbt project the point was built with, so the next file builds them
    forward from the raw rows past the marks put back, incrementally when the code is the same as then and from
    scratch when it changed (incremental models stay equal to a full build either way). Refused when the raw rows
    were loaded again since (a rebuild, a contract change, a build file made anew): their load ids no longer match
    the marks."""
    from landing import lake

    logger = get_run_logger()
    started = time.time()
    _lake_ready(settings, say=logger.info)  # an upgrade first, as a build does
    snapshot = buildlog.snapshot_at(settings, str(to))
    models = sorted((m for m in catalog.models.values() if set(m.datasets) & set(names)), key=lambda m: m.name)
    then = lake.marks_at(settings, snapshot, [m.unique_id for m in models])
    ranges = load.load_id_ranges(settings, names)
    for m in models:
        high = then.get(m.unique_id, -1)
        dataset = next((d for d in m.datasets if d in names), None)
        low_now, high_now, due = ranges.get(dataset, (None, None, False))
        if high >= 0 and (due or low_now is None or high < low_now or high > high_now):
            raise RollbackRefused(
                f"cannot roll {dataset} back to {to} (snapshot {snapshot}): its files were loaded again since (a "
                f"`landing rebuild`, a contract change, or a build file made anew), so {m.name}'s mark then ({high}) "
                f"no longer matches its raw rows (load ids {low_now} to {high_now} now). Read the past with "
                f"`landing sql --at {to}`; fix the model and run `landing rebuild {dataset}` instead."
            )
    project = next(
        (
            r.project
            for r in reversed(buildlog.read(settings.builds_log))
            if r.project and (r.snapshot or 0) <= snapshot
        ),
        "unknown",
    )
    done = lake.rollback(settings, [m.name for m in models], [m.unique_id for m in models], snapshot)
    made = done.pop("snapshot")
    built = marks.read()
    for n in names:  # not a file signature: the next build runs, from scratch unless the code is the same as then
        for kind in (ONE, ALL):
            if kind + n in built or kind == ONE:
                built[kind + n] = f"rolled back to snapshot {snapshot}|project {project}"
    marks.write(built)
    said = reason or "no reason given"
    for name, what in done.items():
        logger.info("%s: %s, as at snapshot %s", name, what, snapshot)
    record = record_build(
        settings,
        BuildStatus.ROLLED_BACK,
        names,
        and_names,
        started=started,
        built_nodes=sorted(done),
        snapshot=made,  # `landing sql --at <this run>` reads the models as the rollback left them
        reason=f"rolled back to {to} (snapshot {snapshot}): {said}",
    )
    logger.info(
        "rolled back %s to %s (snapshot %s): %d table(s) (%s); reason: %s. The next file of %s builds forward from "
        "there%s; `landing rebuild` builds from scratch.",
        ", ".join(names),
        to,
        snapshot,
        len(done),
        ", ".join(done) or "none had been built",
        said,
        ", ".join(names),
        "" if project == catalog.fingerprint[:16] else " (from scratch: the dbt project differs from the one then)",
    )
    return {"status": record.status.value, "datasets": names, "snapshot": snapshot, "tables": done}


def _project_changed(built: dict, current: dict[str, str]) -> bool:
    """Whether the dbt project changed since a dataset's last build: its incremental models are then built from
    scratch, so a changed model means the same for old rows as for new ones."""
    for name, signature in current.items():
        previous = built.get(ONE + name) or built.get(ALL + name)
        if previous and previous.rsplit("|project ", 1)[-1] != signature.rsplit("|project ", 1)[-1]:
            return True
    return False


class TransientBuildError(RuntimeError):
    """dbt stopped for a reason that is not the data (a DuckDB file lock met by dbt): try again."""


def is_transient(exc: BaseException) -> bool:
    """Whether a build's failure is worth trying again at once: a lock on the warehouse, or the Prefect server
    unreachable or failing (5xx). A data failure (a test, a cast, a bad file) is not."""
    import httpx

    if isinstance(exc, TransientBuildError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, (httpx.TransportError, ConnectionError)) or readers.is_lock_error(exc)


def _skip(
    settings: Settings, built: dict, kind: str, current: dict[str, str], force: bool, and_names: list[str]
) -> dict | None:
    """The result of a run that need not start dbt (up to date, or a dataset without files), recorded; else None."""
    logger = get_run_logger()
    names = list(current)
    if not force and all(built.get(kind + n) == sig for n, sig in current.items()):
        logger.info(
            "up to date: nothing landed for %s and the dbt project is unchanged since the last build "
            "(run with force to build anyway)",
            ", ".join(names),
        )
        record_build(settings, BuildStatus.UP_TO_DATE, names, and_names)
        return {"status": BuildStatus.UP_TO_DATE.value, "datasets": names}
    empty = [n for n, sig in current.items() if sig == EMPTY_SIGNATURE]
    if empty:
        logger.warning("nothing to build: no file has landed yet for %s in %s", ", ".join(empty), settings.root)
        record_build(settings, BuildStatus.NO_FILES, names, and_names, empty=empty)
        return {"status": BuildStatus.NO_FILES.value, "datasets": names, "empty": empty}
    return None


def _load_new_files(settings: Settings, catalog, names: list[str], rebuild: bool = False) -> list:
    """Each dataset's accepted files not loaded yet, appended to its raw table before dbt reads it (automations.load);
    with `rebuild`, every accepted file, the raw table emptied first."""
    logger = get_run_logger()
    loads = load.load_all(
        settings,
        [catalog.get(n) for n in names],
        str(flow_run.id) if flow_run.id else None,
        progress=logger.info,
        reload=rebuild,
    )
    for ld in loads:
        if ld.files or ld.reloaded:
            logger.info(
                "%s: loaded %d new file(s), %d row(s), in %.2f s%s",
                ld.dataset,
                len(ld.files),
                ld.rows,
                ld.seconds,
                " (its declared columns changed: every file loaded again)" if ld.reloaded else "",
            )
        for path, why in ld.rejected.items():
            logger.warning("%s: %s was not loaded and is set aside in the quarantine: %s", ld.dataset, path, why)
    return loads


def _lake_state(settings: Settings) -> tuple[int | None, frozenset[str]]:
    """What the lake holds now, read through the loader's kept connection (one statement): its newest snapshot and
    its model tables."""
    import duckdb

    from landing import lake

    try:
        [(snapshot, names)] = (
            lake.writer(settings)
            .execute(
                "select (select id from ducklake_current_snapshot('lake')), (select list(table_name order by "
                "table_name) from duckdb_tables() where database_name = 'lake' and schema_name = 'main')"
            )
            .fetchall()
        )
    except duckdb.Error:
        lake.close_writer()
        return None, frozenset()
    return snapshot, frozenset(names or ())


def _snapshot(settings: Settings) -> int | None:
    """The lake's newest snapshot once dbt is done: the build's own last commit (builds of a lake run one at a time).
    Its id alone, through the loader's kept connection: listing the lake's tables too cost 20 ms a build."""
    import duckdb

    from landing import lake

    try:
        return lake.writer(settings).execute("select id from ducklake_current_snapshot('lake')").fetchall()[0][0]
    except duckdb.Error:
        lake.close_writer()
        return None


RECYCLE_BUILDS = 500  # dbt's kept DuckDB instance is closed after this many builds: its memory grows by ~40 MB a 1,000
_ATTACHED: list = [None, 0]  # the lake (its URI and identity) dbt's kept instance attached, and builds since


def _same_lake_attached(settings: Settings) -> None:
    """dbt-duckdb keeps its instance, the lake attached, across builds (automations/_upstream.py release_warehouse): a
    catalog made anew since (deleted by hand, a new state folder at the same path) would be written through the old
    attachment, so the instance is closed and the next open attaches the new one; so it is every RECYCLE_BUILDS."""
    from landing import lake

    seen = (settings.lake_catalog_uri, lake.identity(settings))
    _ATTACHED[1] += 1
    if seen != _ATTACHED[0] or _ATTACHED[1] > RECYCLE_BUILDS:
        _TABLES.clear()  # a lake made anew counts its snapshots from the start again: the kept table list is not its
        close_warehouse()
        lake.close_writer()  # the loader's kept connection too: its instance's memory grows as dbt's does
        _ATTACHED[:] = [seen, 1]


def _lake_ready(settings: Settings, say) -> None:
    """What a build and a rollback do first: the lake made, this process's connections to it current, and a warehouse
    from before moved in (an upgrade: a build file of either earlier release)."""
    from landing import lake

    lake.prepare(settings)
    _same_lake_attached(settings)
    readers.seed(settings)  # a warehouse from before the build had its own file: its raw tables and history
    if lake.migrate(settings, say=say).get("dropped"):
        # every dataset's models are gone from the lake: none is up to date (landing-reconcile builds the rest)
        Watermarks(settings.state_dir / "watermarks.json").write({})


_TABLES: dict[str, tuple[int | None, frozenset[str]]] = {}  # the lake's catalog → (a snapshot, its model tables)


def _built_tables(settings: Settings, names: list[str]) -> frozenset[str]:
    """Which of the models `names` have a table in the lake (built at least once), as the last build left it. Listed
    once (listing the lake's tables costs 23 ms), then kept while the lake's snapshot (2 ms to read) is the one this
    process's last build left (`_tables_after`): anything else that wrote the lake made a new snapshot."""
    if not names:
        return frozenset()
    kept = _TABLES.get(settings.lake_catalog_uri)
    if kept is None or kept[0] is None or kept[0] != _snapshot(settings):
        kept = _TABLES[settings.lake_catalog_uri] = _lake_state(settings)
    return kept[1] & set(names)


def _tables_after(settings: Settings, checked: bool, snapshot: int | None, ended: dict | None) -> None:
    """After a build that left `snapshot` (with the writer's slot held throughout): the lake's model tables are those
    `_built_tables` found at its start (`checked`) and the models it built. Unchecked, or a build that failed: unknown,
    listed again next time."""
    kept = _TABLES.pop(settings.lake_catalog_uri, None)
    if checked and kept is not None and snapshot is not None and ended is not None:
        built = {line.split(" ", 1)[1] for line in node_summary(ended)["built_nodes"] if line.startswith("model ")}
        _TABLES[settings.lake_catalog_uri] = (snapshot, kept[1] | built)


def _run_dbt(
    settings: Settings,
    catalog,
    names: list[str],
    and_names: list[str],
    last_try: bool = True,
    rebuild: bool = False,
    full_refresh: bool = False,
    stages: dict[str, float] | None = None,
) -> dict[str, dict]:
    """`dbt build` for the datasets in this process: the raw tables loaded and the models built in the lake, each
    commit a snapshot readers see; recorded in
    the build log; dbt's results by node. A failure is recorded, announced as landing.build.failed, and raised; a
    DuckDB file lock met by dbt is TransientBuildError unless this is the `last_try`."""
    logger = get_run_logger()
    wrong_env = settings.dbt_env_mismatch(os.environ)
    if wrong_env:
        raise RuntimeError(f"cannot build {', '.join(names)}: {wrong_env}")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        release_warehouse()  # an earlier run stopped by a signal may have left a database attached
        _lake_ready(settings, say=logger.info)
    except Exception as exc:  # the lake unreachable, or a shared lake this machine's old build file cannot move into
        record_build(settings, BuildStatus.FAILED, names, and_names, started=started, error=str(exc)[:2000])
        logger.error("%s", exc)
        _emit_failure(names, [], str(exc))
        raise
    and_models = [m.name for m in catalog.and_models()]
    args = dbt_args(names, and_names, catalog, _built_tables(settings, and_models))
    logger.info("dbt %s", " ".join(args))
    dbt_logs = settings.state_dir / "dbt-logs"
    runner = project_runner(settings, lineage.parsed_project(settings, dbt_logs, fingerprint=catalog.fingerprint))
    ended: dict[str, dict] = {}
    runner.on_run_end(lambda context: ended.update(context.run_results or {}))
    stages = stages if stages is not None else {}
    stages["prepared"] = time.time()  # the writer's slot, the lake ready, the project parsed (cached)
    loads = _load_new_files(settings, catalog, names, rebuild)
    stages["loaded"] = time.time()
    if rebuild or full_refresh or any(ld.reloaded for ld in loads):
        logger.info(
            "building %s from scratch (--full-refresh): %s",
            ", ".join(names),
            "a rebuild" if rebuild else "the dbt project changed" if full_refresh else "a source's columns changed",
        )
        args = args + ["--full-refresh"]
    # what this build reads first: the files it loaded (the artifact lists them), and each dataset's newest loaded file
    files = {ld.dataset: [Path(p) for p in ld.files] for ld in loads}
    newest = {ld.dataset: Path(ld.newest).name for ld in loads if ld.newest}
    loaded = {ld.dataset: len(ld.files) for ld in loads}
    since = {ld.dataset: ld.first_load_id for ld in loads if ld.first_load_id is not None}
    if since:  # the sources' data tests check the rows loaded now; `unique` on staging still covers every row
        args = args + ["--vars", json.dumps({"landing_new_loads": since})]
    CANCEL.in_dbt.set()
    try:
        # --no-write-json: the parse wrote the manifest; what the build did is in the build log, the run and its artifact
        runner.invoke(args + ["--log-path", str(dbt_logs), "--no-write-json"])
    except Exception as exc:
        CANCEL.in_dbt.clear()  # stops a cancel's interrupts before the connection they interrupt is closed
        release_warehouse()
        if readers.is_lock_error(exc) and not CANCEL.requested.is_set() and not last_try:
            raise TransientBuildError(str(exc)) from exc
        _emit_assets(runner, ended)
        if CANCEL.requested.is_set():
            record_build(settings, BuildStatus.CANCELLED, names, and_names, started=started)
            logger.info("dbt build for %s interrupted by a cancel", ", ".join(names))
            # with the cancel intent committed (automations.warm), Prefect's engine ends the run Cancelled
            raise TerminationSignal(signal.SIGTERM) from None

        nodes = failed_nodes(ended)
        record = record_build(
            settings,
            BuildStatus.FAILED,
            names,
            and_names,
            started=started,
            newest_files=newest,
            loaded=loaded,
            failed_nodes=nodes,
            error=str(exc)[:2000],
            snapshot=_snapshot(settings),  # the models that built before the failure are in the lake
            project=catalog.fingerprint[:16],
        )
        _publish(settings, catalog, record, files)
        logger.error("dbt build failed for %s; failing nodes: %s", ", ".join(names), ", ".join(nodes) or "see the log")
        _emit_failure(names, nodes, str(exc))
        raise
    except BaseException:  # a signal (TerminationSignal) mid-build: dbt's instance keeps the lake alone
        CANCEL.in_dbt.clear()
        release_warehouse()
        raise
    finally:
        CANCEL.in_dbt.clear()
    stages["dbt"] = time.time()
    release_warehouse()
    snapshot = _snapshot(settings)
    _tables_after(settings, bool(and_models), snapshot, ended)
    stages["published"] = stages["dbt"]  # each model's rows were there for readers when its transaction committed
    _emit_assets(runner, ended)
    record = record_build(
        settings,
        BuildStatus.BUILT,
        names,
        and_names,
        started=started,
        newest_files=newest,
        loaded=loaded,
        stages=stages,
        snapshot=snapshot,
        project=catalog.fingerprint[:16],
        **node_summary(ended),
    )
    if any(ld.reloaded for ld in loads):
        load.refreshed(settings, [ld.dataset for ld in loads if ld.reloaded])
    _publish(settings, catalog, record, files)
    return ended


@flow(name=STALE_FLOW, flow_run_name="stale {dataset}")
def landing_stale(dataset: str, expected_every_seconds: int, settings: Settings | None = None) -> dict:
    """Emit `landing.dataset.stale` for a dataset with no file within its freshness window."""
    from datetime import datetime, timezone

    from landing.transport import send_events

    settings = settings or Settings()
    catalog = load_catalog(settings)
    ds = catalog.get(dataset)
    newest = max((e.stat().st_mtime for e in ds.data_files()), default=None)
    now = datetime.now(timezone.utc).timestamp()
    late_by = None if newest is None else max(0, int(now - newest - expected_every_seconds))
    event = dataset_stale(
        dataset,
        expected_every_seconds,
        late_by,
        None if newest is None else datetime.fromtimestamp(newest, timezone.utc).isoformat(),
    )
    send_events([event])
    get_run_logger().warning("%s is stale: no file within %ss (late by %ss)", dataset, expected_every_seconds, late_by)
    return event["payload"]


@flow(name=MAINTAIN_FLOW, flow_run_name="landing-maintain")
def landing_maintain(settings: Settings | None = None) -> dict:
    """Keep the lake bounded (landing.lake.maintain), with the writer's slot held: a build waits for it."""
    from landing import lake

    settings = settings or Settings()
    if lake.newest_snapshot(settings) is None:  # a read-only look: a PostgreSQL catalog is not made by maintenance
        get_run_logger().info("nothing built yet: the lake %s has nothing to maintain", settings.lake_name)
        return {}
    with one_writer(settings):
        return lake.maintain(settings, say=get_run_logger().info)


@flow(name=RECONCILE_FLOW, flow_run_name="landing-reconcile")
def landing_reconcile(settings: Settings | None = None) -> dict:
    """Safety net on a schedule: build every dataset whose files changed since its last successful build.

    Automations start builds within seconds; this catches what they missed, such as a run the server failed to
    create under a burst of events. When everything is built it only compares signatures.
    """
    settings = settings or Settings()
    logger = get_run_logger()
    catalog = load_catalog(settings)
    marks = Watermarks(settings.state_dir / "watermarks.json").read()
    behind, fresh = [], []
    for name in sorted(catalog.datasets):
        signature = build_signature(catalog.datasets[name], settings, catalog.fingerprint)
        built = marks.get(ONE + name) or ""
        if signature != EMPTY_SIGNATURE and built != signature:
            # new files that landed within the grace are the automations' to build: leave them, look again next time;
            # a changed dbt project (the same files) is reconcile's own to build
            files_changed = built.split("|", 1)[0] != signature.split("|", 1)[0]
            wait = files_changed and _newest_landed_within(catalog.datasets[name], settings.reconcile_grace_seconds)
            (fresh if wait else behind).append(name)
    if fresh:
        logger.info(
            "files landed within the last %.0f s for %s: their automations build them",
            settings.reconcile_grace_seconds,
            ", ".join(fresh),
        )
    if not behind:
        if not fresh:
            logger.info("every dataset is built: nothing landed since its last build")
        return {"behind": [], "fresh": fresh}
    logger.warning("files landed for %s with no build since: building them now", ", ".join(behind))
    return {"behind": behind, **dbt_build(behind, settings=settings)}
