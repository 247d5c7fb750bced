"""Run the benchmarks (B1 to B9) on the real stack on loopback; print each figure against its target."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
from datetime import datetime
import os
import platform
import pwd
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import sensors as sensor_command
from landing.catalog import load_catalog
from landing.settings import REPO_ROOT, Settings
from landing import lake
from testkit.dummyjson_fake import DummyJSONServer
from testkit.local import PrefectServer
from testkit.dummyjson_fake import product_rows
from testkit.local import Served, builds, dbt_environment, using_server, wait_for, warehouse_row

RESULTS = REPO_ROOT / "benchmarks" / "results"


def settings_in(base: Path, **kw) -> Settings:
    return Settings(
        root=base / "landing",
        state_dir=base / "state",
        dbt_project_dir=REPO_ROOT / "dbt",
        **{"reconcile_seconds": 0, **kw},
    )


DELIVERIES = ("rename", "mv", "cp", "write")  # how people and tools put a file in a drop folder
# where a drop's time goes, in order: the sensor's decision (for a close, its quiet wait too), the event sent, the
# automation's run created, the run claimed and started, the build's preparation (writer slot, readers' file, parse),
# the load, dbt, the readers' publish, and the build's record
STAGES = ("sensor", "send", "trigger", "claim", "prepare", "load", "dbt", "publish", "record")


def b1_drop_to_build(base: Path, reps: int, deliveries: tuple[str, ...] = DELIVERIES, landed: int = 0) -> dict:
    """Drop one file → its dbt build complete, for each way of dropping it, with the warm runner and with Prefect's
    runner (`--subprocess`, poll 1 s: the native pattern). Each arm has a fresh server of its own, and the arms take
    turns ABBA (warm, native, native, warm, ...), so neither gains from the time or the other's load."""
    arms = {"warm": _Arm(base / "b1-warm", ()), "native": _Arm(base / "b1-native", ("--subprocess",))}
    samples: dict[str, dict[str, list[float]]] = {arm: {d: [] for d in deliveries} for arm in arms}
    try:
        for arm in arms.values():
            arm.preload(landed)
            arm.start()
            # not counted: each arm's first build also parses the project, warms caches and loads what was landed
            arm.drop("rename", -1, timeout=180 + landed / 100)
        for delivery in deliveries:
            for i in range(reps):
                for name in ("warm", "native") if i % 2 == 0 else ("native", "warm"):
                    samples[name][delivery].append(arms[name].drop(delivery, i))
    finally:
        for arm in arms.values():
            arm.stop()
    figures, met = {}, True
    for delivery in deliveries:
        warm, native = sorted(samples["warm"][delivery]), sorted(samples["native"][delivery])
        p50, p95 = statistics.median(warm), _p95(warm)
        ratio = statistics.median(native) / p50
        figures.update(
            {
                f"{delivery}_p50_s": round(p50, 2),
                f"{delivery}_p95_s": round(p95, 2),
                f"{delivery}_native_p50_s": round(statistics.median(native), 2),
                f"{delivery}_ratio": round(ratio, 1),
            }
        )
        met = met and p50 <= 1.0 and p95 <= 1.5 and ratio >= 3
    figures["warm_stages_p50_s"] = stage_table(arms["warm"].stages, deliveries)
    return {
        "id": "B1",
        "what": f"drop one file → dbt build complete (staging), {reps} drops per delivery and arm, "
        f"{landed} files already landed and loaded, "
        "ABBA, a fresh server per arm; baseline: Prefect's runner, poll 1 s",
        **figures,
        "target": "p50 ≤ 1.0 s, p95 ≤ 1.5 s, ≥ 3×, each delivery",
        "met": met,
        "samples": {arm: {d: [round(t, 2) for t in v] for d, v in by.items()} for arm, by in samples.items()},
    }


def stage_table(stages: list[tuple[str, dict[str, float]]], deliveries: tuple[str, ...]) -> dict:
    """Per delivery, the median seconds of each stage (STAGES) over its drops; printed as a table too."""
    table = {}
    for delivery in deliveries:
        rows = [d for how, d in stages if how == delivery and d]
        if rows:
            table[delivery] = {name: round(statistics.median(d[name] for d in rows), 3) for name in STAGES}
    print(
        f"\nB1, warm runner: where a drop's time goes, median s over the drops\n{'stage':<9}"
        + "".join(f"{d:>9}" for d in table)
    )
    for name in STAGES:
        print(f"{name:<9}" + "".join(f"{table[d][name]:>9.3f}" for d in table))
    print(f"{'total':<9}" + "".join(f"{sum(table[d].values()):>9.3f}" for d in table), flush=True)
    return table


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(len(ordered) * 0.95)) - 1)]


class _Arm:
    """One B1 arm: its own Prefect server, dbt runner, automations and sensor, and a products folder to drop into."""

    def __init__(self, base: Path, serve_args: tuple[str, ...]):
        self.base = base
        # a short window: the trailing run of one drop is over before the next drop
        self.settings = settings_in(
            base, burst_window_seconds=2, accepted_retention_days=0
        )  # the 100,000 files stay loose
        self.serve_args = serve_args
        self.folder = self.settings.root / "dummyjson" / "products"
        self.outside = base / "outside"  # on the same disk, outside the watched tree: where `mv` and `cp` start
        self.rows = json.loads((REPO_ROOT / "tests/fixtures/dummyjson/products.json").read_text())[:50]
        self.stages: list[tuple[str, dict[str, float]]] = []  # per drop: its delivery, where its time went (STAGES)

    def preload(self, files: int) -> None:
        """`files` product files already in the accepted area (as if landed long ago), three products each."""
        folder = self.settings.accepted / "dummyjson" / "products"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(files):
            (folder / f"20250101T000000{i:06d}Z-landed.jsonl").write_bytes(product_rows("landed", 1000 + i))

    def start(self) -> None:
        from automations.apply import apply

        self.base.mkdir(parents=True, exist_ok=True)
        self.outside.mkdir(exist_ok=True)
        self.server = PrefectServer(self.base / "prefect").start()
        with using_server(self.server.api_url):
            self.served = Served(
                self.settings, self.server.api_url, self.base / "serve.log", self.serve_args
            ).__enter__()
            asyncio.run(apply(self.settings, out=lambda *_: None))
        env = {**os.environ, **self.settings.to_env(), "PREFECT_API_URL": self.server.api_url}
        self.sensor = subprocess.Popen(
            [sys.executable, "-m", sensor_command.__name__],
            env=env,
            stdout=open(self.base / "sensor.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: b"watching" in (self.base / "sensor.log").read_bytes(), 60, "the sensor to start")

    def stop(self) -> None:
        if getattr(self, "sensor", None) is not None:
            self.sensor.terminate()
            self.sensor.wait(30)
        if getattr(self, "served", None) is not None:
            self.served.__exit__(None, None, None)
        if getattr(self, "server", None) is not None:
            self.server.stop()

    def _built(self) -> list[dict]:
        return [b for b in builds(self.settings) if b["status"] == "built"]

    def _stages(self, build: dict, dropped: str, t0: float) -> dict[str, float]:
        """Where one drop's time went, in seconds per stage (STAGES), from the ledger, the flow run and the build log."""
        import sqlite3
        from uuid import UUID

        from prefect.client.orchestration import get_client

        from landing.ledger import ledger_path

        with sqlite3.connect(ledger_path(self.settings.state_dir)) as db:
            recorded, sent = db.execute(
                "select created_at, sent_at from outbox where path = ? order by created_at desc limit 1", (dropped,)
            ).fetchone() or (None, None)
        with self._api(), get_client(sync_client=True) as client:
            created = client.read_flow_run(UUID(build["flow_run_id"])).created.timestamp()
        marks = build.get("stages") or {}
        times = [t0, recorded, sent, created, marks.get("run"), marks.get("prepared"), marks.get("loaded")]
        times += [marks.get("dbt"), marks.get("published"), build["at"]]
        if any(t is None for t in times):
            return {}
        return {name: times[i + 1] - times[i] for i, name in enumerate(STAGES)}

    def drop(self, delivery: str, i: int, timeout: float = 180) -> float:
        """Seconds from the file being complete in the drop folder to the end of its dbt build."""
        done = len(self._built())
        data = "".join(json.dumps(dict(r, bench=f"{self.base.name}-{delivery}-{i}")) + "\n" for r in self.rows).encode()
        target = self.folder / f"b1-{delivery}-{i:03d}.jsonl"
        if delivery == "rename":  # written under a temporary name in the folder, then renamed
            tmp = self.folder / f".{target.name}.tmp"
            tmp.write_bytes(data)
            os.rename(tmp, target)
        elif delivery == "mv":  # written elsewhere on the disk, then moved in
            tmp = self.outside / target.name
            tmp.write_bytes(data)
            os.rename(tmp, target)
        elif delivery == "cp":  # copied in: the file grows in place until cp closes it
            src = self.outside / f"src-{target.name}"
            src.write_bytes(data)
            shutil.copyfile(src, target)
        elif delivery == "write":  # written in place by the producer
            with open(target, "wb") as fh:
                fh.write(data)
        else:
            raise ValueError(f"unknown delivery {delivery!r}; one of {', '.join(DELIVERIES)}")
        t0 = time.time()
        wait_for(
            lambda: len(self._built()) > done,
            timeout,
            f"the build of {target} (see {self.base}/serve.log and sensor.log)",
            interval=0.05,
        )
        took = self._built()[-1]["at"] - t0
        if i >= 0:
            self.stages.append((delivery, self._stages(self._built()[-1], str(target), t0)))
        # quiet before the next drop, in this arm and the other: the trailing run (scheduled a second after the window)
        # is deleted unstarted by the warm runner, or records "up to date" in a whole new process with Prefect's
        # runner, which would overlap the other arm's drop
        wait_for(self._idle, 60, f"the trailing run after {target}", interval=0.1)
        time.sleep(1.0)
        return took

    def _idle(self) -> bool:
        """No build run of this arm is scheduled, pending or running."""
        from testkit.local import runs_of

        with self._api():
            return all(r.state is not None and r.state.is_final() for r in runs_of())

    def _api(self):
        return using_server(self.server.api_url)


class _ScaleArm(_Arm):
    """B1's drops on the scale-out stack: `landing up` on a PostgreSQL and a Redis of its own (testkit.local.ScaleOutStack)."""

    def __init__(self, base: Path):
        super().__init__(base, ())
        self.settings = settings_in(base, burst_window_seconds=5, reconcile_seconds=300)

    def start(self) -> None:
        from testkit.local import ScaleOutStack

        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)  # PostgreSQL runs as the `postgres` user when this runs as root
        self.outside.mkdir(exist_ok=True)
        self.stack = ScaleOutStack(self.base, self.settings).start()
        self.settings = self.stack.settings  # the lake as the stack shares it: catalog in PostgreSQL, data in S3
        wait_for(lambda: b"watching" in self.stack.log.read_bytes(), 60, "the sensor to start")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._server = using_server(self.stack.api_url, self.stack.auth)
        self._server.__enter__()

    def _api(self):
        return using_server(self.stack.api_url, self.stack.auth)

    def stop(self) -> None:
        if getattr(self, "_server", None) is not None:
            self._server.__exit__(None, None, None)
        if getattr(self, "stack", None) is not None:
            self.stack.stop()


BURSTS = ((1000, 10.0), (10000, 60.0))  # B2: files over seconds, for one dataset


def b2_burst(base: Path, server: PrefectServer, bursts: tuple[tuple[int, float], ...] = BURSTS) -> dict:
    """B2 on the embedded server: bursts of files for one dataset, each dropped over some seconds, with the
    automations, a warm runner and the sensor on the benchmark's SQLite server."""
    from automations.apply import apply

    settings = settings_in(base / "b2", burst_window_seconds=5)
    env = {**os.environ, **settings.to_env(), "PREFECT_API_URL": server.api_url}
    figures = {}
    with Served(settings, server.api_url, base / "b2-serve.log"):
        asyncio.run(apply(settings, out=lambda *_: None))
        sensor = subprocess.Popen(
            [sys.executable, "-m", sensor_command.__name__],
            env=env,
            stdout=open(base / "b2-sensor.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: b"watching" in (base / "b2-sensor.log").read_bytes(), 60, "the sensor to start")
            for files, seconds in bursts:
                figures.update(_burst(settings, files, seconds, "sqlite"))
        finally:
            sensor.terminate()
            sensor.wait(30)
    figures["db_locked_log_lines"] = server.log.read_text(errors="replace").count("database is locked")
    return {
        "id": "B2",
        "what": "embedded SQLite server: " + _bursts_said(bursts),
        **figures,
        "target": "(scale-out's, for reference)",
        "met": _burst_met(figures, bursts),
    }


def b2_scale_out(base: Path, reps: int, bursts: tuple[tuple[int, float], ...] = BURSTS) -> dict:
    """B2 on the scale-out stack (`landing up` on PostgreSQL and Redis, API processes and services apart, two dbt
    runners), right after B1's drops on the same server: the stack has served load before the burst."""
    arm = _ScaleArm(base / "b2-scale")
    figures: dict = {}
    try:
        arm.start()
        arm.drop("rename", -1)  # not counted: the first build parses the project
        b1 = sorted(arm.drop(d, i) for i in range(reps) for d in ("rename", "mv"))
        figures.update({"b1_before_p50_s": round(statistics.median(b1), 2), "b1_before_drops": len(b1)})
        for files, seconds in bursts:
            figures.update(_burst(arm.settings, files, seconds, "scale"))
    finally:
        arm.stop()
    return {
        "id": "B2-scale",
        "what": "scale-out stack (PostgreSQL, Redis, 2 API processes, services apart, 2 runners), "
        f"after {reps * 2} B1 drops on it: " + _bursts_said(bursts),
        **figures,
        "target": "all events and rows, 0 failed actions, ≤ 3 builds/1,000; rows ≤ 20 s (1,000)",
        "met": _burst_met(figures, bursts),
    }


def _bursts_said(bursts) -> str:
    return (
        "; ".join(f"{files:,} files over {seconds:.0f} s" for files, seconds in bursts) + " (one dataset, window 5 s)"
    )


def _burst_met(figures: dict, bursts) -> bool:
    """The scale-out targets: every event, no failed action, ≤ 3 builds per 1,000 files, every row; and for bursts of
    up to 1,000 files, every row in the warehouse ≤ 20 s after the last file."""
    return all(
        figures.get(f"{n}_events") == n
        and figures.get(f"{n}_failed_actions") == 0
        and figures.get(f"{n}_rows_missing") == 0
        and figures.get(f"{n}_builds", 1e9) <= max(3, 3 * n / 1000)
        and (n > 1000 or (figures.get(f"{n}_rows_after_last_s") or 1e9) <= 20)
        for n, _ in bursts
    )


def _burst(settings: Settings, files: int, seconds: float, label: str) -> dict:
    """Drop `files` product files over `seconds` (each written under a temporary name, then renamed); figures:
    events, dbt builds, seconds from the last file to all its rows in the warehouse, failed automation actions."""
    from datetime import timedelta, timezone

    from landing.events import FILE_CREATED
    from testkit.local import read_events

    folder = settings.root / "dummyjson" / "products"
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"b2-{label}-{files}"
    tag = f"{prefix}-{time.time()}"
    since = datetime.now(timezone.utc) - timedelta(seconds=2)
    t0 = time.time()
    for i in range(files):
        tmp = folder / f".{prefix}-{i}.tmp"
        tmp.write_bytes(product_rows(tag, i))
        os.rename(tmp, folder / f"{prefix}-{i:05d}.jsonl")
        time.sleep(max(0.0, t0 + seconds * (i + 1) / files - time.time()))
    last = time.time()
    sql = "select count(*) from stage_dummyjson__products where product_name like ?"
    patience = max(180.0, files * 0.06)
    rows = 0
    while rows < files * 3 and time.time() - last < patience:
        rows = (warehouse_row(settings, sql, [f"{tag}-%"]) or (rows,))[0]
        time.sleep(0.2)
    all_rows = time.time() - last if rows >= files * 3 else None
    time.sleep(settings.burst_window_seconds + 5)  # trailing runs
    events = read_events(FILE_CREATED, since, "landing.dataset.dummyjson.products", timeout=300, expect=files)
    mine = {e.id for e in events if e.payload.get("dropped_as", "").startswith(f"dummyjson/products/{prefix}-")}
    failed = read_events("prefect.automation.action.failed", since, "prefect.automation.", timeout=5)
    built = [b for b in builds(settings) if b["status"] == "built" and b["at"] > t0]
    return {
        f"{files}_events": len(mine),
        f"{files}_builds": len(built),
        f"{files}_rows_after_last_s": round(all_rows, 1) if all_rows is not None else None,
        f"{files}_rows_missing": files * 3 - rows,
        f"{files}_failed_actions": len(failed),
    }


def b3_growth(base: Path, sizes: list[int], reps: int = 3) -> dict:
    """A build after one new file, with each of `sizes` files already landed (and loaded): the cost should follow the
    new data. Each point is the median of `reps` builds, each after one more file; the build log says how many files
    each build read (loaded)."""
    from automations.dbt_build import dbt_build

    settings = settings_in(base / "b3", accepted_retention_days=0)  # every file stays as it landed: the harder case
    folder = settings.accepted / "dummyjson" / "products"  # as if accepted: this measures the build alone
    folder.mkdir(parents=True)
    tag, landed = f"b3-{time.time()}", 0

    def land(upto: int):
        nonlocal landed
        for i in range(landed, upto):
            (folder / f"20260101T000000{i:06d}Z-b3.jsonl").write_bytes(product_rows(tag, i))
        landed = max(landed, upto)

    def build() -> tuple[float, int]:
        t0 = time.time()
        with dbt_environment(settings):
            assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"
        took = time.time() - t0
        return took, builds(settings)[-1]["loaded"].get("dummyjson.products", 0)

    figures = {}
    for size in sizes:
        land(size)
        t0 = time.time()
        build()  # loads what landed up to here (the first also parses the project)
        figures[f"{size}_catch_up_s"] = round(time.time() - t0, 1)
        samples = []
        for _ in range(reps):
            land(landed + 1)
            samples.append(build())
        figures[f"{size}_s"] = round(statistics.median(s[0] for s in samples), 2)
        figures[f"{size}_files_read"] = max(s[1] for s in samples)
    ratio = figures[f"{sizes[-1]}_s"] / figures[f"{sizes[0]}_s"]
    return {
        "id": "B3",
        "what": f"in-process dbt_build after one new file, with {', '.join(map(str, sizes))} files "
        f"already landed and loaded (median of {reps}); files_read: accepted files the build read",
        **figures,
        "ratio": round(ratio, 2),
        "target": "ratio ≤ 1.2, one file read",
        "met": ratio <= 1.2 and all(figures[f"{n}_files_read"] == 1 for n in sizes),
    }


def b4_sensor_catch_up(base: Path, sizes: list[int]) -> dict:
    """`python -m sensors --once` over N unannounced files, for each N, each on a fresh server: seconds until every
    file is decided (validated, recorded, accepted: the sensor's "caught up" line), seconds until the server has read
    every event (exit), and peak RSS, which must not grow with N."""
    figures = {}
    for files in sizes:
        settings = settings_in(base / f"b4-{files}")
        folder = settings.root / "dummyjson" / "products"
        folder.mkdir(parents=True)
        stamp = time.time()
        for i in range(files):
            (folder / f"f{i:06d}.jsonl").write_text(
                json.dumps({"id": i, "title": f"b4-{stamp}-{i}", "price": 1}) + "\n"
            )
        old = time.time() - 60
        for p in folder.iterdir():
            os.utime(p, (old, old))
        server = PrefectServer(base / f"b4-prefect-{files}").start()  # idle: no earlier benchmark's events to digest
        try:
            env = {**os.environ, **settings.to_env(), "PREFECT_API_URL": server.api_url}
            log = base / f"b4-{files}.log"
            t0 = time.time()
            proc = subprocess.Popen(
                [sys.executable, "-m", sensor_command.__name__, "--once"],
                env=env,
                stdout=open(log, "wb"),
                stderr=subprocess.STDOUT,
            )
            peak, give_up = 0.0, t0 + 120 + files / 50
            while proc.poll() is None:  # the child's own high-water mark (wait4's counts this process's pages at fork)
                peak = max(peak, _high_water_mb(proc.pid))
                if time.time() > give_up:
                    proc.kill()
                    raise RuntimeError(
                        f"`sensors --once` over {files} files still running after {give_up - t0:.0f} s: {log.read_text()[-2000:]}"
                    )
                time.sleep(0.05)
            status = proc.returncode
            sent = time.time() - t0
        finally:
            server.stop()
        decided = next(
            (
                datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() - t0
                for line in log.read_text().splitlines()
                if "caught up:" in line
            ),
            float("nan"),
        )
        figures[files] = (round(decided, 2), round(sent, 2), round(peak, 1), status)
        shutil.rmtree(settings.root, ignore_errors=True)
    main = figures.get(10000) or figures[max(figures)]
    rss = [f[2] for f in figures.values()]
    return {
        "id": "B4",
        "what": f"sensor catch-up of {', '.join(map(str, figures))} unannounced files (process start to "
        "every file decided; to every event read by the server)",
        **{f"decided_s_{n}": f[0] for n, f in figures.items()},
        **{f"sent_s_{n}": f[1] for n, f in figures.items()},
        **{f"rss_mb_{n}": f[2] for n, f in figures.items()},
        "exit": max(f[3] for f in figures.values()),
        "target": "10,000 decided ≤ 5 s, RSS ≤ 150 MB, flat",
        "met": main[0] <= 5 and max(rss) <= 150 and max(rss) <= 1.15 * min(rss),
    }


def _high_water_mb(pid: int) -> float:
    """Peak resident memory of a running process (VmHWM), in MB; 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def b5_apply(base: Path, server: PrefectServer, datasets: int) -> dict:
    """apply.py with `datasets` sources: a full sync, then a no-op re-run."""
    from automations.apply import apply
    from automations.serve import deployments

    project = base / "b5-dbt"
    shutil.copytree(REPO_ROOT / "dbt", project, ignore=shutil.ignore_patterns("target", "logs"))
    tables = "\n".join(
        textwrap.dedent(f"""\
          - name: t{i:02d}
            meta:
              external_location: "read_json('{{{{ env_var('LANDING_ACCEPTED_ROOT', '/tmp/landing/_accepted') }}}}/bench/t{i:02d}/*.jsonl')"
        """)
        for i in range(datasets - 3)
    )
    (project / "models" / "bench.yml").write_text(
        "version: 2\nsources:\n  - name: bench\n    tables:\n" + textwrap.indent(tables, "      ")
    )
    settings = Settings(root=base / "b5" / "landing", state_dir=base / "b5" / "state", dbt_project_dir=project)
    from landing.catalog import load_catalog

    load_catalog(settings)  # parse once, outside the timing
    for d in deployments():
        d.apply()
    t0 = time.time()
    first = asyncio.run(apply(settings, out=lambda *_: None))
    full = time.time() - t0
    t0 = time.time()
    again = asyncio.run(apply(settings, out=lambda *_: None))
    noop = time.time() - t0
    total = len(first.create) + len(first.update) + len(first.unchanged)
    return {
        "id": "B5",
        "what": f"apply.py with {datasets} datasets ({total} automations)",
        "full_sync_s": round(full, 2),
        "noop_s": round(noop, 2),
        "noop_unchanged": len(again.unchanged),
        "target": "full ≤ 5 s, no-op ≤ 2 s",
        "met": full <= 5 and noop <= 2,
    }


def b6_exports(base: Path, server: PrefectServer) -> dict:
    """Export products, carts and users from a loopback DummyJSON: one concurrent flow run, and three flow runs."""
    from flows.dummyjson import export_dummyjson, export_dummyjson_all
    from landing.catalog import load_catalog

    with DummyJSONServer() as api:

        def settings_for(name: str) -> Settings:
            settings = settings_in(base / name).model_copy(update={"dummyjson_base_url": api.url})
            load_catalog(settings)  # parse outside the timing
            return settings

        one, three = settings_for("b6-one-run"), settings_for("b6-three-runs")
        t0 = time.time()
        export_dummyjson_all(["products", "carts", "users"], settings=one)
        took = time.time() - t0
        api.tables = {t: [dict(r, b6="three") for r in rows] for t, rows in api.tables.items()}  # content of its own
        t0 = time.time()
        for table in ("products", "carts", "users"):
            export_dummyjson(table, settings=three)
        three_runs = time.time() - t0
    return {
        "id": "B6",
        "what": "export products, carts, users (610 rows, 3 events): export-dummyjson-all, one flow run",
        "seconds": round(took, 2),
        "three_flow_runs_s": round(three_runs, 2),
        "target": "≤ 3 s",
        "met": took <= 3,
    }


READER_PROCESS = (
    "import duckdb, sys; con = duckdb.connect(); con.execute(sys.argv[1]); "
    "print(con.execute('select count(*) from lake.rows_here').fetchall()[0][0])"
)


def b7_publish(base: Path, sizes_mb: list[int]) -> dict:
    """From a build's commit in the lake (dbt's "Done" for a model: its transaction committed) until readers count the
    build's rows, for lakes of each size: a reader that keeps its connection (a notebook, a BI tool's pool), a new
    connection in a running reader process (a dashboard's query), and a new process (a script: Python's start, the
    extensions' load and the attach included). Disk: the lake's files and catalog against the live data."""
    from landing import lake

    figures, met = {}, True
    for mb in sizes_mb:
        settings = settings_in(base / f"b7-{mb}")
        lake.prepare(settings)
        data = Path(settings.lake_data)
        with lake.connect(settings, read_only=False) as con:
            con.execute("create table lake.rows_here (id bigint, a double, b double)")
            step = 2_000_000  # random doubles barely compress: about 8 bytes each on disk
            done = 0
            while sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) < mb * 1_000_000:
                con.execute(
                    f"insert into lake.rows_here select range, random(), random() from range({done}, {done + step})"
                )
                done += step
            rows = con.execute("select count(*) from lake.rows_here").fetchall()[0][0]
        writer = lake.connect(settings, read_only=False)  # the warm runner's dbt instance, kept open
        held = lake.connect(settings)
        held.execute("select count(*) from lake.rows_here").fetchall()
        attach = lake.attach_sql(settings)
        samples = []
        for i in range(5):
            writer.execute("begin")  # a build replaces 1,000 keys and adds one
            writer.execute(f"delete from lake.rows_here where id between {i * 1000} and {i * 1000 + 999}")
            writer.execute(
                f"insert into lake.rows_here select -range - 1 - {i * 1001}, random(), random() from range(1001)"
            )
            writer.execute("commit")
            rows += 1
            done = time.perf_counter()
            seen_held = held.execute("select count(*) from lake.rows_here").fetchall()[0][0]
            t_held = time.perf_counter() - done
            done = time.perf_counter()
            with lake.connect(settings) as fresh:  # this process loaded the extensions before, as a running tool has
                seen_new = fresh.execute("select count(*) from lake.rows_here").fetchall()[0][0]
            t_new = time.perf_counter() - done
            done = time.perf_counter()
            seen_process = subprocess.run(
                [sys.executable, "-c", READER_PROCESS, attach], capture_output=True, text=True, check=True
            ).stdout.strip()
            t_process = time.perf_counter() - done
            assert seen_held == seen_new == int(seen_process) == rows, (seen_held, seen_new, seen_process, rows)
            samples.append((t_held, t_new, t_process))
        writer.close()
        held.close()
        with lake.connect(settings) as con:
            live = lake._footprint(con)[1]
        disk = (
            sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) + lake.sqlite_catalog(settings).stat().st_size
        )
        new_s = statistics.median(s[1] for s in samples)
        figures.update(
            {
                f"{mb}mb_data_mb": round(live / 1e6, 1),
                f"{mb}mb_held_reader_s": round(statistics.median(s[0] for s in samples), 3),
                f"{mb}mb_new_connection_s": round(new_s, 3),
                f"{mb}mb_new_process_s": round(statistics.median(s[2] for s in samples), 3),
                f"{mb}mb_disk_x": round(disk / live, 2),
            }
        )
        met = met and new_s <= 0.2 and disk / live <= 1.3
        shutil.rmtree(base / f"b7-{mb}", ignore_errors=True)
    return {
        "id": "B7",
        "what": "a build's commit in the lake → readers count its rows (median of 5): a held connection, a new "
        "connection in a running process, a new process; disk against the live data",
        **figures,
        "target": "a new connection ≤ 0.2 s and disk ≤ 1.3× at every size",
        "met": met,
    }


def b8_rebuild(base: Path, files: int, days: int = 10) -> dict:
    """The load step of `landing rebuild` (every accepted file of a dataset loaded again) from `files` small files as
    they landed, and from their compacted form (one part per landing day, LANDING_ACCEPTED_RETENTION_DAYS)."""
    from datetime import datetime, timezone

    from automations import compact, load

    settings = settings_in(base / "b8", accepted_retention_days=0)  # first every file as it landed
    ds = load_catalog(settings).get("dummyjson.products")
    ds.accepted_path.mkdir(parents=True)
    for i in range(files):
        day = 1 + i * days // files
        (ds.accepted_path / f"202601{day:02d}T000000{i:06d}Z-b8.jsonl").write_bytes(product_rows("b8", i))

    def reload() -> tuple[float, int]:
        t0 = time.time()
        done = load.load_all(settings, [ds], reload=True)[0]
        return round(time.time() - t0, 2), done.rows

    load.load_all(settings, [ds])
    loose_s, loose_rows = reload()
    t0 = time.time()
    done = compact.compact(
        lake.writer(settings),
        settings.model_copy(update={"accepted_retention_days": 7}),
        ds,
        now=datetime(2026, 2, 1, tzinfo=timezone.utc),
    )
    compact_s = round(time.time() - t0, 2)
    parts_s, parts_rows = reload()
    return {
        "id": "B8",
        "what": f"load step of a rebuild of {files} small files ({loose_rows} rows) landed over {days} days: "
        f"from the files as they landed, then from {len(done.parts)} compacted parts (compacting took {compact_s} s)",
        "loose_s": loose_s,
        "compacted_s": parts_s,
        "same_rows": loose_rows == parts_rows,
        "left_in_folder": len(ds.data_names()),
        "target": "compacted ≤ loose",
        "met": parts_s <= loose_s and loose_rows == parts_rows,
    }


def b9_mart(base: Path, sizes: list[int], reps: int = 3, carts: int = 10) -> dict:
    """The mart `cart_lines_enriched` (a table, rebuilt whole when it runs) after one new carts file, with each of
    `sizes` carts files already landed, every file a snapshot of the same `carts` carts (as DummyJSON's export is):
    its cost follows the current cart lines, not the files landed. Median of `reps` builds of carts and the mart."""

    from automations.dbt_build import dbt_build

    settings = settings_in(base / "b9", accepted_retention_days=0)
    catalog = load_catalog(settings)
    for name, rows in (
        ("dummyjson.products", [{"id": i, "title": f"p{i}", "price": 1.5} for i in range(1, 101)]),
        ("dummyjson.users", [{"id": i, "email": f"u{i}@x"} for i in range(1, 51)]),
    ):
        folder = catalog.get(name).accepted_path
        folder.mkdir(parents=True)
        (folder / "20260101T000000000000Z-b9.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    folder = catalog.get("dummyjson.carts").accepted_path
    folder.mkdir(parents=True)
    landed = 0

    def cart_file(i: int) -> bytes:
        return "".join(
            json.dumps(
                {
                    "id": c,
                    "userId": 1 + c % 50,
                    "products": [
                        {
                            "id": 1 + (c + k + i) % 100,
                            "title": "t",
                            "price": 2.0,
                            "quantity": 1 + k,
                            "total": 2.0,
                            "discountedTotal": 1.5,
                        }
                        for k in range(3)
                    ],
                }
            )
            + "\n"
            for c in range(1, carts + 1)
        ).encode()

    def land(upto: int) -> None:
        nonlocal landed
        for i in range(landed, upto):
            (folder / f"20260102T000000{i:06d}Z-b9.jsonl").write_bytes(cart_file(i))
        landed = max(landed, upto)

    def build() -> float:
        t0 = time.time()
        with dbt_environment(settings):
            assert (
                dbt_build(
                    ["dummyjson.carts", "dummyjson.products", "dummyjson.users"],
                    and_models=["cart_lines_enriched"],
                    settings=settings,
                )["status"]
                == "built"
            )
        return time.time() - t0

    figures = {}
    for size in sizes:
        land(size)
        t0 = time.time()
        build()
        figures[f"{size}_catch_up_s"] = round(time.time() - t0, 1)
        samples = []
        for _ in range(reps):
            land(landed + 1)
            samples.append(build())
        figures[f"{size}_s"] = round(statistics.median(samples), 2)
        with lake.connect(settings) as con:
            figures[f"{size}_mart_rows"] = con.execute("select count(*) from cart_lines_enriched").fetchone()[0]
            t0 = time.time()
            con.execute("create temp table again as select * from cart_lines_enriched").fetchall()
            figures[f"{size}_mart_copy_s"] = round(time.time() - t0, 4)
    ratio = figures[f"{sizes[-1]}_s"] / figures[f"{sizes[0]}_s"]
    return {
        "id": "B9",
        "what": f"in-process dbt_build of carts and the mart cart_lines_enriched after one new carts file, with "
        f"{', '.join(map(str, sizes))} carts files landed (each the same {carts} carts; median of {reps})",
        **figures,
        "ratio": round(ratio, 2),
        "target": "ratio ≤ 1.2: the mart's cost follows its rows, not the files landed",
        "met": ratio <= 1.2,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument(
        "--only",
        nargs="*",
        default=["B1", "B2", "B2-scale", "B3", "B4", "B5", "B6", "B7", "B8", "B9"],
        help="which benchmarks to run (B2-scale: B2 on the scale-out stack; needs PostgreSQL and Redis)",
    )
    parser.add_argument("--reps", type=int, default=10, help="B1 drops per delivery and arm")
    parser.add_argument(
        "--deliveries",
        nargs="*",
        default=list(DELIVERIES),
        choices=DELIVERIES,
        help="B1: how files are dropped (default: all)",
    )
    parser.add_argument(
        "--landed", type=int, default=0, help="B1: product files already landed (and loaded) before the drops"
    )
    parser.add_argument(
        "--files", type=int, default=10000, help="B3's largest file count (it also measures 10 and 10,000 files)"
    )
    parser.add_argument(
        "--mart-files", type=int, default=10000, help="B9: carts files landed before the mart's builds (and 10)"
    )
    parser.add_argument(
        "--catch-up",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1000, 10000, 100000],
        help="B4 file counts, comma-separated (default 1000,10000,100000)",
    )
    parser.add_argument(
        "--bursts",
        default=",".join(f"{n}/{s:g}" for n, s in BURSTS),
        help="B2 bursts on each stack: FILES/SECONDS, comma-separated (default 1000/10,10000/60)",
    )
    parser.add_argument(
        "--publish-mb",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 100, 1000],
        help="B7 lake sizes in MB, comma-separated (default 1,100,1000)",
    )
    parser.add_argument("--rebuild-files", type=int, default=100_000, help="B8: small files landed before the rebuild")
    parser.add_argument("--datasets", type=int, default=50, help="B5 dataset count")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the JSON results")
    parser.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="after this many seconds, print every thread's stack and exit 3 (a hang shows where it is; the work "
        "folder is left behind then)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder (landed files, warehouses, servers' data; gigabytes at the default sizes) and "
        "print where it is; without it, it is removed at the end, also after a failure or Ctrl-C",
    )
    args = parser.parse_args(argv)
    bursts = tuple((int(n), float(sec)) for n, sec in (b.split("/") for b in args.bursts.split(",")))
    if args.deadline:
        faulthandler.dump_traceback_later(args.deadline, exit=True)
    started = time.time()
    base = Path(tempfile.mkdtemp(prefix="landing-bench-"))
    try:
        return _run(args, base, bursts, started)
    finally:
        if args.keep:
            print(f"work folder kept: {base}", file=sys.stderr, flush=True)
        else:
            left = remove_work_folder(base)
            if left:
                print(
                    f"could not remove {len(left)} path(s) in the work folder {base}, e.g. {'; '.join(left[:3])}; "
                    f"remove them as their owner (sudo rm -rf {base})",
                    file=sys.stderr,
                    flush=True,
                )


def remove_work_folder(base: Path) -> list[str]:
    """Remove the work folder; return what could not be removed ("path: reason"). The scale-out stack's PostgreSQL
    writes files as `postgres`, and a folder without write or search permission for us stops a plain rmtree: each
    failure is retried once after giving us rwx on the folder (and its parent), which works where we own them."""
    left: list[str] = []

    def retry(function, path, exc_info):
        try:
            for folder in (os.path.dirname(path), path):
                mode = os.lstat(folder).st_mode
                if stat.S_ISDIR(mode) and os.path.commonpath([folder, base]) == str(base):
                    os.chmod(folder, stat.S_IMODE(mode) | stat.S_IRWXU)
            if function in (os.rmdir, os.unlink, os.remove):
                function(path)
            else:  # the folder could not be opened or listed: remove it now that it can be
                shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            where = exc.filename if exc.filename and exc.filename != path else path
            first = exc_info[1] if where == path else exc
            left.append(f"{where}: {getattr(first, 'strerror', None) or first} ({_owner(where)})")

    if base.exists():
        shutil.rmtree(base, onerror=retry)
    return left


def _owner(path: str) -> str:
    try:
        uid = os.lstat(path).st_uid
    except OSError:
        return "gone"
    try:
        return f"owned by {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"owned by uid {uid}"


def _run(args, base: Path, bursts, started: float) -> int:
    base.chmod(0o755)  # the scale-out stack's PostgreSQL runs as the `postgres` user when this runs as root
    server = PrefectServer(base / "prefect").start()
    results = []
    try:
        with using_server(server.api_url):
            plan = {
                "B1": lambda: b1_drop_to_build(
                    base, args.reps, tuple(args.deliveries), args.landed
                ),  # servers of its own
                "B2": lambda: b2_burst(base, server, bursts),
                "B2-scale": lambda: b2_scale_out(base, max(1, min(args.reps, 5)), bursts),
                "B3": lambda: b3_growth(base, sorted({10, min(10_000, args.files), args.files})),
                "B6": lambda: b6_exports(base, server),
                "B5": lambda: b5_apply(base, server, args.datasets),
                "B4": lambda: b4_sensor_catch_up(base, args.catch_up),  # servers of its own
                "B7": lambda: b7_publish(base, args.publish_mb),
                "B8": lambda: b8_rebuild(base, args.rebuild_files),
                "B9": lambda: b9_mart(base, sorted({10, args.mart_files})),
            }
            for bid, run in plan.items():
                if bid not in args.only:
                    continue
                print(f"{time.time() - started:7.1f} s: {bid} starts", file=sys.stderr, flush=True)
                try:
                    results.append(run())
                except Exception as exc:  # one broken benchmark must not hide the others' figures
                    results.append(
                        {
                            "id": bid,
                            "what": f"failed: {exc.__class__.__name__}: {str(exc)[:200]}",
                            "target": "-",
                            "met": False,
                        }
                    )
                print(json.dumps(results[-1]), flush=True)
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            # flush the in-process flows' logs and events while the server is up, or exit waits on them forever
            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)
    finally:
        server.stop()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"\n{'id':<4} {'figure':<46} {'target':<26} met  what")
    for r in results:
        figure = ", ".join(
            f"{k}={v}"
            for k, v in r.items()
            if k not in ("id", "what", "target", "met") and "samples" not in k and "stages" not in k
        )
        print(f"{r['id']:<4} {figure:<46} {r['target']:<26} {'yes' if r['met'] else 'NO ':<4} {r['what']}")
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    print(f"\n{machine}; written to {out}", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Prefect's queue services drain at interpreter exit with no time limit, and with the server stopped their retries
    # can keep a finished run from exiting: every figure is printed and written by now.
    os._exit(code)
