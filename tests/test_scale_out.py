"""The scale-out stack (`landing up` on real PostgreSQL and Redis, API processes and services apart, two dbt runners,
an export worker): files and exports end in builds automations created, one writer per warehouse, credentials
required, bad URLs refused quickly, and R1 (kill -9 the sensor mid-burst) at 1,000 files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from automations.build_state import one_writer, writer_limit_name
from landing.events import FILE_CREATED
from landing.ledger import Ledger, ledger_path
from landing.settings import REPO_ROOT, Settings
from testkit.dummyjson_fake import DummyJSONServer, product_rows
from testkit.local import (
    ScaleOutStack,
    builds,
    read_events,
    runs_of,
    stop_process,
    using_server,
    wait_for,
    warehouse_row,
)
from ops.scaleout import redacted

BURST = 1_000
UP = str(Path(sys.executable).with_name("landing"))  # the console script `uv sync` installs

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def dummyjson_api():
    with DummyJSONServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(dummyjson_api):
    # under /tmp, readable on the way down: PostgreSQL runs as the `postgres` user when the tests run as root
    base = Path(tempfile.mkdtemp(prefix="landing-scale-", dir="/tmp"))
    base.chmod(0o755)
    settings = Settings(
        root=base / "landing",
        state_dir=base / "state",
        dbt_project_dir=REPO_ROOT / "dbt",
        dummyjson_base_url=dummyjson_api.url,
        http_backoff_seconds=0.01,
        burst_window_seconds=3,
        settle_seconds=1.0,
        rescan_seconds=3600,
        reconcile_seconds=30,  # on, as in production: R1 asserts that it had nothing left to build
        snapshot_retention_hours=0,  # maintenance keeps only the newest snapshot: what it leaves in the bucket is exact
    )
    running = ScaleOutStack(base, settings).start()
    try:
        with using_server(running.api_url, running.auth):
            yield running
    finally:
        running.stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def elsewhere(stack):
    """A dbt runner as on another machine: a working directory and a state folder of its own (no ledger, no build log,
    no dbt target folder of the stack's), sharing with the stack only the Prefect API, the lake's catalog (PostgreSQL)
    and data path (S3), and the landing folder the accepted files are in (as a mount would). Its settings and log."""
    import automations.serve as build_runner

    folder = stack.base / "machine-2"
    folder.mkdir()
    settings = stack.settings.model_copy(update={"state_dir": folder / ".state"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LANDING_"))}
    env.update({**settings.to_env(), **stack.env, "PREFECT_HOME": str(folder / "prefect-home")})
    log = folder / "runner.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", build_runner.__name__],
        env=env,
        cwd=folder,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield settings, proc, log
    finally:
        stop_process(proc, 60)  # SIGTERM: the warm runner lets a build in progress finish within its grace


def _stack_runners(stack) -> list[int]:
    return [pid for name, pid in stack.components().items() if name.startswith("dbt runner")]


def _no_build_running() -> bool:
    from automations.names import BUILD

    return not [r for r in runs_of(BUILD) if r.state and r.state.type.value in ("RUNNING", "PENDING")]


def _built(settings: Settings, dataset: str, after: float = 0.0) -> list[dict]:
    return [b for b in builds(settings) if b["status"] == "built" and dataset in b["datasets"] and b["at"] > after]


def _flow_run(run_id: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id))


def _completed(run_id: str) -> bool:
    return wait_for(lambda: _flow_run(run_id).state.is_completed(), 60, f"flow run {run_id} to complete")


def _created_by_automation(run_id: str) -> str | None:
    """The automation that created the flow run, or None when something else did."""
    run = _flow_run(run_id)
    return run.created_by.display_value if run.created_by and run.created_by.type == "AUTOMATION" else None


def test_the_stack_is_what_it_says(stack):
    components = stack.components()
    assert {"prefect api", "prefect services", "dbt runner 1", "dbt runner 2", "export worker", "sensor"} <= set(
        components
    )
    workers = subprocess.run(
        ["pgrep", "-P", str(components["prefect api"])], capture_output=True, text=True
    ).stdout.split()
    assert len(workers) >= 2, "two API worker processes under uvicorn's parent"  # --workers 2
    text = stack.log.read_text()
    assert (
        "scale-out: Prefect on postgresql+asyncpg://prefect:***@127.0.0.1" in text
        and stack.postgres.password not in text
    )


def test_the_api_refuses_requests_without_credentials(stack):
    refused = httpx.post(f"{stack.api_url}/flows/filter", json={}, timeout=10)
    assert refused.status_code == 401
    wrong = httpx.post(f"{stack.api_url}/flows/filter", json={}, timeout=10, auth=("landing", "wrong"))
    assert wrong.status_code == 401
    user, password = stack.auth.split(":", 1)
    assert httpx.post(f"{stack.api_url}/flows/filter", json={}, timeout=10, auth=(user, password)).status_code == 200
    status = subprocess.run(
        [UP, "status"],
        env={**os.environ, **stack.settings.to_env(), **stack.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stdout + status.stderr


def test_a_dropped_file_is_built_by_a_run_an_automation_created(stack):
    settings = stack.settings
    folder = settings.root / "dummyjson" / "users"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["cp", str(REPO_ROOT / "samples" / "dummyjson" / "users.jsonl"), str(folder / "dropped.jsonl")], check=True
    )
    record = wait_for(lambda: _built(settings, "dummyjson.users"), 180, "the users build")[-1]
    assert _created_by_automation(record["flow_run_id"]) == "landing: build dummyjson.users"
    assert _completed(record["flow_run_id"])
    assert warehouse_row(settings, "select count(*) from stage_dummyjson__users") == (208,)


def test_an_export_runs_on_the_work_pool_and_its_file_is_built(stack):
    from prefect.deployments import run_deployment

    settings = stack.settings
    run = run_deployment("export-dummyjson/dummyjson-products", timeout=240, poll_interval=1)
    assert run.state.is_completed(), run.state
    assert run.work_pool_name == "landing-exports"  # run by `prefect worker start`, not a runner
    record = wait_for(lambda: _built(settings, "dummyjson.products"), 180, "the products build")[-1]
    assert _created_by_automation(record["flow_run_id"]) == "landing: build dummyjson.products"
    assert _completed(record["flow_run_id"])
    assert warehouse_row(settings, "select count(*) from stage_dummyjson__products") == (194,)


def test_a_build_waits_while_another_machine_writes_its_warehouse_and_others_do_not(stack, tmp_path):
    from prefect.concurrency.sync import concurrency

    settings = stack.settings
    # the warehouse's global limit, held as a build on another machine holds it (no file lock here: none reaches there)
    with concurrency(writer_limit_name(settings), occupy=1, strict=True):
        held = time.monotonic()
        before = time.time()  # once held: a build that was running meanwhile finished (and recorded) before this
        other = settings.model_copy(  # another lake
            update={"lake_catalog": str(tmp_path / "other.sqlite"), "lake_data_path": str(tmp_path / "other")}
        )
        with one_writer(other):  # another warehouse's builds do not wait behind this one's
            assert time.monotonic() - held < 5
        folder = settings.root / "dummyjson" / "users"
        first = (REPO_ROOT / "samples" / "dummyjson" / "users.jsonl").read_text().splitlines()[0]
        (folder / "while-held.jsonl").write_text(first.replace('"id": 1,', '"id": 9001,', 1) + "\n")
        time.sleep(12)  # the sensor accepts it, an automation starts a run, a runner claims it and waits for the slot
        assert not _built(settings, "dummyjson.users", after=before), (
            "a build wrote while another writer held the warehouse"
        )
        released = time.time()
    record = wait_for(lambda: _built(settings, "dummyjson.users", after=before), 120, "the build after the release")[-1]
    assert record["started"] >= released - 1


def test_the_lake_is_shared_a_reader_elsewhere_needs_only_its_catalog_and_data_path_and_maintenance_keeps_s3_bounded(
    stack, tmp_path
):
    """The lake as machines share it: its catalog in PostgreSQL, its Parquet files in the S3-compatible server and none
    on this machine's disk. `landing sql` from another folder, given only the catalog and the data path (as a reader
    on another machine), reads what the builds wrote; the landing-maintain deployment, run through the stack, leaves
    exactly the objects the lake still needs in the bucket, with the rows unchanged."""
    import duckdb
    from prefect.deployments import run_deployment

    from landing import lake
    from automations.names import MAINTAIN_DEPLOYMENT, MAINTAIN_FLOW

    settings = stack.settings
    assert settings.lake_catalog.startswith("postgres:") and settings.lake_data.startswith("s3://")
    assert stack.postgres.password not in settings.lake_catalog, "the password stays in the pgpass file"
    folder = settings.root / "dummyjson" / "carts"
    folder.mkdir(parents=True, exist_ok=True)
    before = time.time()
    subprocess.run(
        ["cp", str(REPO_ROOT / "samples" / "dummyjson" / "carts.jsonl"), str(folder / "c.jsonl")], check=True
    )
    wait_for(lambda: _built(settings, "dummyjson.carts", after=before), 180, "the carts build")
    local = [p for p in settings.state_dir.rglob("*.parquet")]
    assert local == [], f"the lake's data is in the bucket, not on this machine: {local[:3]}"

    elsewhere = tmp_path / "elsewhere"  # another machine: no state folder, no build file, only the lake's settings
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDING_")}
    env.update(
        {k: v for k, v in settings.to_env().items() if k.startswith(("LANDING_LAKE_CATALOG", "LANDING_LAKE_S3_"))}
    )
    env.update(LANDING_LAKE_DATA_PATH=settings.lake_data, LANDING_STATE_DIR=str(elsewhere / ".state"))
    count = "select count(*) from stage_dummyjson__cart_lines"
    read = subprocess.run(
        [UP, "sql", "--csv", count], env=env, cwd=elsewhere, capture_output=True, text=True, timeout=120
    )
    assert read.returncode == 0, read.stdout + read.stderr
    rows = int(read.stdout.splitlines()[-1])
    assert rows == warehouse_row(settings, count)[0] > 0
    assert not (elsewhere / ".state" / "lake").exists()

    def objects() -> set[str]:
        with duckdb.connect() as con:
            lake.install(con, ("httpfs",))
            con.execute(settings.lake_secret_sql)
            return {r[0] for r in con.execute(f"select file from glob('{settings.lake_data}**/*.parquet')").fetchall()}

    def needed() -> set[str]:
        with lake.connect(settings) as con:
            tables = con.execute(
                "select schema_name, table_name from duckdb_tables() where database_name = 'lake'"
            ).fetchall()
            return {
                f
                for schema, table in tables
                for files in con.execute(
                    "select data_file, delete_file from ducklake_list_files('lake', ?, schema => ?)", [table, schema]
                ).fetchall()
                for f in files
                if f is not None
            }

    assert needed() < objects(), "earlier builds left files that older snapshots still need"
    run = run_deployment(f"{MAINTAIN_FLOW}/{MAINTAIN_DEPLOYMENT}", timeout=240, poll_interval=1)
    assert run.state.is_completed(), run.state
    assert objects() == needed(), "maintenance deletes from the bucket exactly the files no snapshot needs"
    assert warehouse_row(settings, count) == (rows,)

    # the credentials reach every attach, and nothing written down: dbt's target folders, the state, the stack's log
    leaks = [
        str(p)
        for where in (settings.state_dir, REPO_ROOT / "dbt" / "target")
        for p in where.rglob("*")
        if p.is_file() and stack.s3.secret.encode() in p.read_bytes()
    ]
    assert leaks == [] and stack.s3.secret not in stack.log.read_text(errors="replace"), leaks[:5]


def test_a_runner_on_another_machine_loads_and_builds_into_the_one_lake(stack, elsewhere):
    """The stack's runners paused while idle (SIGSTOP), so only the runner elsewhere can claim the next build: it loads
    the dropped file into the shared lake's raw table and history and builds its models there; the stack's runners,
    resumed, build the next file on top of it, each file's rows once."""
    settings, proc, log = elsewhere
    folder = settings.root / "dummyjson" / "users"
    folder.mkdir(parents=True, exist_ok=True)
    first = json.loads((REPO_ROOT / "samples" / "dummyjson" / "users.jsonl").read_text().splitlines()[0])
    runners = _stack_runners(stack)
    wait_for(_no_build_running, 180, "the stack's builds to finish")
    for pid in runners:
        os.kill(pid, signal.SIGSTOP)
    try:
        before = time.time()
        (folder / "elsewhere.jsonl").write_text(json.dumps({**first, "id": 9101, "email": "m2@x"}) + "\n")
        record = wait_for(lambda: _built(settings, "dummyjson.users", after=before), 180, "the build elsewhere")[-1]
        assert proc.poll() is None, log.read_text()[-3000:]
        assert _created_by_automation(record["flow_run_id"]) == "landing: build dummyjson.users"
        assert record["loaded"]["dummyjson.users"] >= 1
    finally:
        for pid in runners:
            os.kill(pid, signal.SIGCONT)
    assert warehouse_row(stack.settings, "select email from stage_dummyjson__users where user_id = 9101") == ("m2@x",)
    assert not (settings.state_dir / "warehouse.build.duckdb").exists(), "the runner elsewhere has no warehouse file"

    before = time.time()
    (folder / "here.jsonl").write_text(json.dumps({**first, "id": 9102, "email": "m1@x"}) + "\n")
    wait_for(
        lambda: warehouse_row(stack.settings, "select email from stage_dummyjson__users where user_id = 9102"),
        180,
        "the next file built",
    )
    count = "select count(*), count(distinct filename) from landing.dummyjson__users where id in (9101, 9102)"
    assert warehouse_row(stack.settings, count) == (2, 2), "each file's rows once, whichever machine loaded them"
    history = "select count(*) from landing.load_history where accepted_file like 'dummyjson/users/%'"
    assert warehouse_row(stack.settings, history) == warehouse_row(
        stack.settings, "select count(distinct filename) from landing.dummyjson__users"
    )


LOAD_AT_THE_SAME_TIME = r"""
import sys, time
from pathlib import Path
from automations import load
from landing import lake
from landing.catalog import load_catalog
from landing.settings import Settings

settings = Settings()
ds = load_catalog(settings).get("dummyjson.products")
gate, me = Path(sys.argv[1]), sys.argv[2]
con = lake.writer(settings)


class AtCommit:
    # the loader's connection, its load held at the commit until the other writer is there too
    loaded = False

    def execute(self, sql, *args):
        if sql.startswith("insert into landing.load_history"):
            self.loaded = True
        if sql == "commit" and self.loaded:
            (gate / me).touch()
            while len(list(gate.iterdir())) < 2:
                time.sleep(0.02)
        return con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(con, name)


try:
    print("committed", len(load.load(AtCommit(), settings, ds).files), flush=True)
except Exception as exc:
    print("refused", " ".join(str(exc).split())[:400], flush=True)
"""


def test_two_writers_that_bypass_the_slot_never_load_a_file_twice_the_lake_refuses_one(stack, tmp_path):
    """Which guard keeps writers correct: the server's slot first; and without it (two loaders of one dataset on two
    machines, both at their commit at once) DuckLake's own conflict check on the PostgreSQL catalog. Both moved the
    load counter's one row, so the second commit is refused and nothing is written twice."""
    from automations import load
    from landing import lake
    from landing.catalog import load_catalog

    settings = stack.settings.model_copy(
        update={
            "root": tmp_path / "landing",
            "state_dir": tmp_path / "state",
            "lake_catalog": stack.postgres.lake_catalog("lake_conflict"),
            **stack.s3.lake_settings("conflict"),
        }
    )
    ds = load_catalog(settings).get("dummyjson.products")
    ds.accepted_path.mkdir(parents=True)
    (ds.accepted_path / "20260101T000000000000Z-a.jsonl").write_bytes(product_rows("first", 1))
    load.load_all(settings, [ds])  # the tables made, once
    lake.close_writer()
    (ds.accepted_path / "20260102T000000000000Z-b.jsonl").write_bytes(product_rows("both", 2))
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LANDING_"))}
    env.update(settings.to_env())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOAD_AT_THE_SAME_TIME, str(gate), name],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("machine-1", "machine-2")
    ]
    said = [p.communicate(timeout=120) for p in procs]
    outcomes = sorted(out.strip().split(" ", 1)[0] for out, _ in said)
    assert outcomes == ["committed", "refused"], said
    refusal = next(out for out, _ in said if out.startswith("refused"))
    assert "conflict" in refusal.lower(), refusal
    with lake.connect(settings) as con:
        raw = con.execute("select count(*), count(distinct filename) from landing.dummyjson__products").fetchone()
        history = con.execute("select count(*), count(distinct accepted_file) from landing.load_history").fetchone()
    assert raw == (6, 2) and history == (2, 2), "each file's rows and history row once"


def test_bad_urls_and_credentials_stop_up_within_30_s_naming_the_url(stack):
    pg, redis = stack.postgres, stack.redis
    closed = f"postgresql+asyncpg://prefect:x@127.0.0.1:{_closed_port()}/prefect"
    cases = [
        ({"LANDING_PREFECT_DATABASE_URL": closed}, redacted(closed), "does not answer"),
        (
            {"LANDING_PREFECT_DATABASE_URL": pg.url.replace(pg.password, "wrong")},
            "refused the credentials",
            "LANDING_PREFECT_DATABASE_URL",
        ),
        (
            {"LANDING_REDIS_URL": redis.url.replace(redis.password, "wrong")},
            "refused the credentials",
            "LANDING_REDIS_URL",
        ),
        ({"LANDING_REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"}, "does not answer", "LANDING_REDIS_URL"),
        ({"LANDING_REDIS_URL": ""}, "LANDING_REDIS_URL is not set", "make up-scale"),
    ]
    runs = []
    for change, *said in cases:  # at once: each `up` must answer within 30 s on its own, even on a busy machine
        env = {**stack.up_env(), "LANDING_STATE_DIR": str(stack.base / f"bad-config-{len(runs)}"), **change}
        if change.get("LANDING_REDIS_URL") == "":
            del env["LANDING_REDIS_URL"]
        runs.append(
            (
                change,
                said,
                time.monotonic(),
                subprocess.Popen([UP, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
            )
        )
    for change, said, started, proc in runs:
        out = proc.communicate(timeout=60)[0]
        took = time.monotonic() - started
        assert proc.returncode == 1 and took < 30, (change, took, out[-2000:])
        for words in said:
            assert words in out, (change, out[-2000:])
        assert "wrong" not in out.replace("LANDING", ""), "a password in the message"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_r1_kill_9_the_sensor_mid_burst_of_1000_files_loses_nothing(stack, elsewhere):
    """R1 with runners on two machines (the stack's and the one elsewhere) building into one lake."""
    settings = stack.settings
    folder = settings.root / "dummyjson" / "products"
    folder.mkdir(parents=True, exist_ok=True)
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    before = time.time()
    tag = f"r1-{os.getpid()}"
    sensor = stack.components()["sensor"]
    for i in range(BURST):
        (folder / f"burst-{i:04d}.jsonl").write_bytes(product_rows(tag, i))
        if i == BURST // 2:
            os.kill(sensor, signal.SIGKILL)  # nothing is flushed; `landing up` restarts it
    wait_for(lambda: stack.components()["sensor"] != sensor, 60, "landing up to restart the sensor")

    ledger = Ledger(ledger_path(settings.state_dir))

    def burst_records():
        return [r for r in ledger.rows() if "/burst-" in r.path]

    wait_for(
        lambda: len(burst_records()) == BURST and ledger.pending_count() == 0, 240, "every file announced and sent"
    )
    records = burst_records()
    assert {r.status for r in records} == {"announced"} and len({r.event_id for r in records}) == BURST
    assert not list(folder.iterdir()), "every file accepted"

    def rows_built():
        return warehouse_row(
            settings,
            "select count(*), count(distinct source_file) from stage_dummyjson__products where product_name like ?",
            [f"{tag}-%"],
        )

    wait_for(lambda: rows_built() == (BURST * 3, BURST), 300, "every file's rows in the warehouse")
    events = read_events(FILE_CREATED, since, "landing.dataset.dummyjson.products", timeout=120, expect=BURST)
    dropped = sorted(e.payload["dropped_as"] for e in events if "burst-" in e.payload["dropped_as"])
    assert dropped == [f"dummyjson/products/burst-{i:04d}.jsonl" for i in range(BURST)], "one event per file"
    assert len({e.id for e in events}) == len(events)

    time.sleep(settings.burst_window_seconds + 3)  # a trailing run for the burst's last window
    burst_builds = _built(settings, "dummyjson.products", after=before)
    assert burst_builds
    makers = {_created_by_automation(b["flow_run_id"]) for b in burst_builds}
    # the dataset's automation, and the one of the model that needs all its sources; None would be the reconcile run
    assert None not in makers and "landing: build dummyjson.products" in makers, makers
    both = builds(settings) + builds(elsewhere[0])  # the build logs of both machines
    spans = sorted((b["started"], b["at"]) for b in both if b["status"] == "built")
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), "two builds wrote at once"
    loaded = warehouse_row(
        settings,
        "select count(*), count(distinct accepted_file), sum(rows) from landing.load_history "
        "where accepted_file in (select distinct filename from landing.dummyjson__products where title like ?)",
        [f"{tag}-%"],
    )
    assert loaded == (BURST, BURST, BURST * 3), "one history row per file, whichever machine loaded it"
