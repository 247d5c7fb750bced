"""`landing verify` and the `landing-verify` deployment: do the incremental builds hold what a full build makes?

The models downstream of the datasets are built from scratch (`dbt run --full-refresh`) into a scratch lake under
`<state>/verify/`, from the raw tables of one snapshot between builds (its id read with the writer's slot held for
that read alone), beside a copy of their live rows at the same snapshot; each model's live rows and full-build rows
are then compared both ways with EXCEPT ALL, over the columns they share. The lake is never written: a verification
holds a build up for one read at most, and never a reader.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger

from automations import lineage
from automations.build_state import release_warehouse
from automations.names import VERIFY_FLOW
from automations import tables
from landing.catalog import Catalog, CatalogError, UnknownDatasetError, load_catalog
from landing import lake
from landing.events import verify_failed
from landing.settings import Settings, environment

LIVE = "verify_live"  # the scratch file's schema holding the live rows of each model verified
BOOKKEEPING = "_landing_"  # columns saying how a row was loaded (a load id, a watermark), not what it holds
SAMPLES = 5  # sample keys per model that differs
NO_ROWS_OF_THEIR_OWN = ("view", "ephemeral")  # materializations a full build cannot differ from
FAILED = ("error", "fail", "runtime error")  # dbt's statuses of a node that did not build


class NothingBuilt(RuntimeError):
    """The readers' warehouse does not exist yet: there is nothing to verify."""


class VerifyError(RuntimeError):
    """The verification could not finish (dbt could not parse or build the project)."""


@dataclass(frozen=True)
class Target:
    """A model to verify: where dbt keeps it, the datasets it reads and the columns that identify a row."""

    name: str
    schema: str
    identifier: str
    key: tuple[str, ...]  # its unique_key config; empty: its first column
    datasets: tuple[str, ...] = ()

    @property
    def live(self) -> str:
        """Its live rows' table in the LIVE schema of the scratch copy."""
        return f"{self.schema}__{self.identifier}"


@dataclass(frozen=True)
class Check:
    """One model compared: rows only in the live table, rows only in a full build, and some of their keys."""

    model: str
    rows: int  # in the full build
    only_live: int
    only_full: int
    key: tuple[str, ...] = ()
    sample_keys: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    note: str = ""  # columns only one side has (not compared)

    @property
    def ok(self) -> bool:
        return self.only_live == 0 and self.only_full == 0

    def line(self) -> str:
        if self.ok:
            return f"ok {self.model} {self.rows}"
        keys = ", ".join(self.sample_keys) or "none"
        return (
            f"DIFFERS {self.model}: {self.only_live} row(s) only in the live table, {self.only_full} only in a full "
            f"build; sample keys: {keys} ({', '.join(self.key) or 'no column in common'})"
        )

    def payload(self) -> dict:
        """What `landing.verify.failed` says of a model that differs."""
        return {
            "model": self.model,
            "datasets": list(self.datasets),
            "only_live": self.only_live,
            "only_full": self.only_full,
            "key": list(self.key),
            "sample_keys": list(self.sample_keys),
        }


@dataclass
class Verification:
    """What one verification found."""

    datasets: list[str]
    at: float = field(default_factory=time.time)
    checks: list[Check] = field(default_factory=list)
    not_built: list[str] = field(default_factory=list)  # models downstream with no live table yet
    error: str | None = None
    seconds: float = 0.0

    @property
    def differing(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def status(self) -> str:
        return "failed" if self.error else "differs" if self.differing else "ok"

    def record(self) -> dict:
        """The state folder's record of it (`landing status` reads it) and the flow run's result."""
        return {
            "at": self.at,
            "status": self.status,
            "datasets": self.datasets,
            "models": len(self.checks),
            "differs": [c.payload() for c in self.differing],
            "not_built": self.not_built,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def record_path(settings: Settings) -> Path:
    """The last verification's result: `<state>/verify.json`."""
    return settings.state_dir / "verify.json"


def write_record(settings: Settings, verification: Verification) -> None:
    """Replace the record atomically: a reader sees the previous one or this one, whole."""
    path = record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(verification.record(), indent=1))
    os.replace(tmp, path)


def read_record(settings: Settings) -> dict | None:
    try:
        return json.loads(record_path(settings).read_text())
    except (OSError, ValueError):
        return None


def key_columns(unique_key) -> tuple[str, ...]:
    """A model's unique_key config (a column, or a list of them) as columns."""
    if not unique_key:
        return ()
    return (unique_key,) if isinstance(unique_key, str) else tuple(str(k) for k in unique_key)


def targets(catalog: Catalog, nodes: dict, datasets: list[str]) -> list[Target]:
    """The models downstream of `datasets` (what `source:<dataset>+` selects), configured as in the parsed project's
    `nodes` (by unique id); views and ephemeral models keep no rows of their own and are left out."""
    chosen = set(datasets)
    found = []
    for model in sorted(catalog.models.values(), key=lambda m: m.name):
        node = nodes.get(model.unique_id)
        if node is None or not chosen & set(model.datasets):
            continue
        if getattr(node.config, "materialized", None) in NO_ROWS_OF_THEIR_OWN:
            continue
        key = key_columns(getattr(node.config, "unique_key", None))
        found.append(Target(model.name, node.schema, node.alias or node.name, key, tuple(model.datasets)))
    return found


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(con, catalog: str, schema: str, table: str) -> dict[str, str]:
    return dict(
        con.execute(
            "select column_name, data_type from information_schema.columns where table_catalog = ? "
            "and table_schema = ? and table_name = ? order by ordinal_position",
            [catalog, schema, table],
        ).fetchall()
    )


def _shown(value) -> str:
    return "null" if value is None else str(value)


def keep_live(con, chosen: list[Target], source: str = "live") -> list[Target]:
    """Copy the live rows of each model that has a table in the attached lake `source` into the LIVE schema of the
    connection's own database; the models copied."""
    present = set(
        con.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = ?", [source]
        ).fetchall()
    )
    kept = [t for t in chosen if (t.schema, t.identifier) in present]
    con.execute(f"create schema {LIVE}")
    for t in kept:
        con.execute(
            f"create table {LIVE}.{_ident(t.live)} as select * from {source}.{_ident(t.schema)}.{_ident(t.identifier)}"
        )
    return kept


def compare(con, target: Target) -> Check:
    """The model's live rows against its full build, both ways (EXCEPT ALL, so duplicates count), over the columns both
    have except the bookkeeping ones; a column whose type changed is compared as text."""
    here = con.execute("select current_database()").fetchone()[0]
    live, full = _columns(con, here, LIVE, target.live), _columns(con, "lake", target.schema, target.identifier)
    common = [c for c in full if c in live and not c.startswith(BOOKKEEPING)]
    only = [
        f"{side}: {', '.join(cs)}"
        for side, cs in (
            ("columns only in the live table", [c for c in live if c not in full and not c.startswith(BOOKKEEPING)]),
            ("only in a full build", [c for c in full if c not in live and not c.startswith(BOOKKEEPING)]),
        )
        if cs
    ]
    live_table = f"{LIVE}.{_ident(target.live)}"
    full_table = f"lake.{_ident(target.schema)}.{_ident(target.identifier)}"
    rows = con.execute(f"select count(*) from {full_table}").fetchone()[0]
    if not common:
        live_rows = con.execute(f"select count(*) from {live_table}").fetchone()[0]
        return Check(target.name, rows, live_rows, rows, datasets=target.datasets, note="; ".join(only))
    select = ", ".join(
        _ident(c) if live[c] == full[c] else f"cast({_ident(c)} as varchar) as {_ident(c)}" for c in common
    )
    key = target.key if target.key and all(k in common for k in target.key) else (common[0],)
    con.execute(
        f"create or replace temp table verify_only_live as "
        f"select {select} from {live_table} except all select {select} from {full_table}"
    )
    con.execute(
        f"create or replace temp table verify_only_full as "
        f"select {select} from {full_table} except all select {select} from {live_table}"
    )
    only_live = con.execute("select count(*) from verify_only_live").fetchone()[0]
    only_full = con.execute("select count(*) from verify_only_full").fetchone()[0]
    samples: tuple[str, ...] = ()
    if only_live or only_full:
        keys = ", ".join(_ident(k) for k in key)
        found = con.execute(
            f"select distinct {keys} from (select {keys} from verify_only_live "
            f"union all select {keys} from verify_only_full) order by all limit {SAMPLES}"
        ).fetchall()
        samples = tuple(
            _shown(row[0]) if len(row) == 1 else "(" + ", ".join(_shown(v) for v in row) + ")" for row in found
        )
    con.execute("drop table verify_only_live")
    con.execute("drop table verify_only_full")
    return Check(target.name, rows, only_live, only_full, key, samples, target.datasets, "; ".join(only))


def _dbt_reads(settings: Settings):
    """This process's environment as dbt reads it for `settings` (dbt's profile takes the warehouse path from
    LANDING_BUILD_WAREHOUSE_PATH), then back. A served verification runs in a process of its own."""
    return environment(settings.dbt_env())


def _full_build(scratch: Settings, manifest, models: list[str]) -> None:
    """`dbt run --full-refresh` of `models` on the scratch copy, in this process. In a flow run, with the builds' own
    runner (dbt's lines go to the run's log; no node tasks, no asset events: nothing real is materialized); on the
    command line, with dbt's runner alone (no Prefect server needed), dbt saying its errors only. VerifyError names
    the models that failed."""
    from prefect.context import FlowRunContext

    from automations.dbt_build import failed_nodes, project_runner

    args = ["run", "--full-refresh", "--select", *models, "--log-path", str(scratch.state_dir / "dbt-logs")]
    args.append("--no-write-json")
    if FlowRunContext.get() is not None:
        ended: dict[str, dict] = {}
        runner = project_runner(scratch, manifest, node_tasks=False, disable_assets=True)
        runner.on_run_end(lambda context: ended.update(context.run_results or {}))
        try:
            runner.invoke(args)
        except Exception as exc:
            raise VerifyError(f"the full build failed in {', '.join(failed_nodes(ended)) or 'dbt'}: {exc}") from exc
        return
    from dbt.cli.main import dbtRunner

    project = str(scratch.dbt_project_dir)
    done = dbtRunner(manifest=manifest).invoke(
        [*args, "--project-dir", project, "--profiles-dir", project, "--target-path", str(scratch.dbt_target_dir)]
        + ["--quiet"]
    )
    if not done.success:
        failed = [r for r in getattr(done.result, "results", None) or [] if str(r.status) in FAILED]
        raise VerifyError(
            f"the full build failed in {', '.join(r.node.name for r in failed) or 'dbt'}: "
            + ("; ".join(str(r.message) for r in failed) or str(done.exception or "see dbt's lines above"))
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_abandoned(base: Path) -> None:
    """Scratch folders left by verifications whose process is gone (killed part-way)."""
    base.mkdir(parents=True, exist_ok=True)
    for folder in base.iterdir():
        pid = folder.name.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _between_builds(settings: Settings) -> int | None:
    """The lake's newest snapshot with no build part-way: a build's loads and models are several commits, so the id
    is read with the writer's slot held for that read alone (the snapshot stays as it is after). Through the server
    when there is one (builds on any machine), else the lock of this machine's builds."""
    from prefect.settings import PREFECT_API_URL

    from automations.build_state import one_writer, warehouse_lock

    with one_writer(settings) if PREFECT_API_URL.value() else warehouse_lock(settings):
        return lake.newest_snapshot(settings)


def verify(settings: Settings, datasets: list[str] | None = None, out=print) -> Verification:
    """Build the models downstream of `datasets` (every landing dataset when none) from scratch in a scratch lake, from
    a copy of the lake's raw tables at one snapshot, compare each with its live rows in the lake at the same moment, say a line per
    model through `out` and record the result in the state folder. UnknownDatasetError for a dataset the dbt project
    does not define, NothingBuilt before the first build; a verification that could not finish is returned with its
    error."""
    catalog = load_catalog(settings)
    names = sorted({catalog.get(n).name for n in datasets}) if datasets else sorted(catalog.datasets)
    snapshot = _between_builds(settings) if lake.exists(settings) else None  # raw rows and models, together
    if snapshot is None:
        raise NothingBuilt(
            f"nothing is built yet: the lake {settings.lake_name} does not exist. Start the stack "
            "(`make up`) and drop a file into a dataset's folder (`landing status` lists the datasets); once it is "
            "built, verify again"
        )
    result = Verification(names)
    base = settings.state_dir / "verify"
    _remove_abandoned(base)
    work = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base))
    # a lake of its own, in a folder of its own: the full build writes there
    scratch = settings.model_copy(
        update={
            "state_dir": work,
            "lake_catalog": str(work / "lake.sqlite"),
            "lake_data_path": str(work / "lake"),
        }
    )
    started = time.monotonic()
    try:
        import duckdb

        lake.prepare(scratch)
        with _dbt_reads(scratch):
            manifest = lineage.parsed_project(scratch, work / "dbt-logs", keep=False)
            if manifest is None:
                raise VerifyError(
                    f"dbt could not parse the project in {settings.dbt_project_dir}: run `dbt parse` there to see why"
                )
            chosen = targets(catalog, manifest.nodes, names)
            with duckdb.connect(str(work / "scratch.duckdb")) as con:  # the live rows kept here
                lake.install(con, (*lake.extensions(settings), *lake.extensions(scratch)))
                con.execute(lake.attach_sql(settings, snapshot=snapshot).replace(" as lake ", " as live "))
                kept = keep_live(con, chosen)
                # the raw tables as the snapshot has them, and the models the verified ones read but are not verified
                # (upstream of them, of other datasets) as they are live: the full builds read what the live ones read
                con.execute(lake.attach_sql(scratch, read_only=False))
                mine = {(t.schema, t.identifier) for t in chosen}
                for schema, table in con.execute(
                    "select schema_name, table_name from duckdb_tables() where database_name = 'live' "
                    "and not (schema_name = 'landing' and table_name in (select unnest(?::varchar[])))",
                    [[t for t in tables.BOOKKEEPING if t != "load_marks"]],  # staging's marks read load_marks
                ).fetchall():
                    if (schema, table) not in mine:
                        con.execute(f"create schema if not exists lake.{_ident(schema)}")
                        con.execute(
                            f"create table lake.{_ident(schema)}.{_ident(table)} as "
                            f"select * from live.{_ident(schema)}.{_ident(table)}"
                        )
                # the staging models' marks, which their full builds write (the loader makes the table in a live lake)
                con.execute(f"create schema if not exists lake.{tables.SCHEMA}")
                con.execute(f"create table if not exists lake.{tables.MODEL_MARKS} {tables.MODEL_MARKS_COLUMNS}")
            result.not_built = [t.name for t in chosen if t not in kept]
            for name in result.not_built:
                out(f"skip {name}: not built yet")
            if kept:
                out(
                    f"verify    {len(kept)} model(s) downstream of {', '.join(names)}: built from scratch, compared "
                    f"with their live rows in the lake at snapshot {snapshot}"
                )
                _full_build(scratch, manifest, [t.name for t in kept])
        release_warehouse()  # dbt's handle on the scratch copy, before this process opens it again
        with duckdb.connect(str(work / "scratch.duckdb")) as con:  # the live rows kept here
            lake.install(con, lake.extensions(scratch))
            con.execute(lake.attach_sql(scratch))
            for target in kept:
                check = compare(con, target)
                result.checks.append(check)
                out(check.line())
                if check.note:
                    out(f"  {check.model}: {check.note} (not compared)")
    except Exception as exc:  # dbt failed, the disk is full, ...: the verification says so and is recorded failed
        result.error = " ".join(str(exc).split())[:2000] or type(exc).__name__  # one line, for the log and status
    finally:
        release_warehouse()
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = time.monotonic() - started
    out(summary(result))
    write_record(settings, result)
    return result


def summary(result: Verification) -> str:
    """The last line of a verification: what to do about it."""
    if result.error:
        return f"error: the verification could not finish: {result.error}"
    if result.differing:
        to_rebuild = sorted({d for c in result.differing for d in c.datasets})
        return (
            f"{len(result.differing)} of {len(result.checks)} model(s) differ from a full build: "
            + " ".join(f"`landing rebuild {d}`" for d in to_rebuild)
            + " builds them from scratch"
        )
    if not result.checks:
        return f"nothing to verify: no model downstream of {', '.join(result.datasets)} is built yet"
    return f"all {len(result.checks)} model(s) equal a full build ({result.seconds:.1f} s)"


def main(datasets: list[str], settings: Settings | None = None, out=print) -> int:
    """`landing verify [DATASET ...]`: 0 when every model equals a full build, 1 when one differs (or the verification
    could not run), 2 for a dataset the dbt project does not define."""
    settings = settings or Settings()
    try:
        result = verify(settings, datasets or None, out)
    except UnknownDatasetError as exc:
        out(f"error: {exc}")
        return 2
    except (NothingBuilt, CatalogError) as exc:
        out(f"error: {exc}")
        return 1
    return 0 if result.status == "ok" else 1


@flow(name=VERIFY_FLOW, flow_run_name="landing-verify")
def landing_verify(datasets: list[str] | None = None, settings: Settings | None = None) -> dict:
    """Verify the incremental builds on a schedule (`landing verify`): the models downstream of `datasets` (every
    landing dataset by default) built from scratch must equal the live ones. A difference is logged as an error and
    sent as `landing.verify.failed`; a verification that cannot finish fails the run."""
    from prefect.runtime import flow_run

    from landing.transport import send_events

    settings = settings or Settings()
    logger = get_run_logger()
    try:
        result = verify(
            settings, datasets, out=lambda line: (logger.warning if line.startswith("DIFFERS") else logger.info)(line)
        )
    except NothingBuilt as exc:
        logger.info("%s", exc)
        return {"status": "nothing built"}
    if result.error:
        raise VerifyError(result.error)
    if result.differing:
        logger.error(
            "the lake %s differs from a full build in %s: %s",
            settings.lake_name,
            ", ".join(c.model for c in result.differing),
            summary(result),
        )
        send_events(
            [
                verify_failed(
                    str(settings.warehouse),
                    result.datasets,
                    [c.payload() for c in result.differing],
                    str(flow_run.id) if flow_run.id else None,
                )
            ]
        )
    return result.record()
