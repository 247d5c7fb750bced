"""Run the benchmarks (B1 to B6) on the real stack on loopback; print each figure against its target."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
from datetime import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import sensors as sensor_command
from landing.settings import REPO_ROOT, Settings
from ops.dummyjson_fake import DummyJSONServer
from ops.local import PrefectServer
from ops.dummyjson_fake import product_rows
from ops.local import Served, builds, dbt_environment, using_server, wait_for, warehouse_row

RESULTS = REPO_ROOT / "benchmarks" / "results"


def settings_in(base: Path, **kw) -> Settings:
    return Settings(root=base / "landing", state_dir=base / "state", dbt_project_dir=REPO_ROOT / "dbt", **{"reconcile_seconds": 0, **kw})


def b1_drop_to_build(base: Path, server: PrefectServer, reps: int) -> dict:
    """Drop one file → build complete, with the warm runner, and with Prefect's runner (the native pattern) as baseline."""
    warm = _drop_to_build(base / "b1-warm", server, reps, ())
    native = _drop_to_build(base / "b1-native", server, reps, ("--subprocess",))
    p50, p95 = statistics.median(warm), warm[max(0, int(len(warm) * 0.95) - 1)]
    speedup = statistics.median(native) / p50
    return {"id": "B1", "what": f"drop one file → dbt build complete (staging), {reps} drops; baseline: Prefect runner, poll 1 s",
            "p50_s": round(p50, 2), "p95_s": round(p95, 2), "native_p50_s": round(statistics.median(native), 2),
            "speedup": round(speedup, 1), "target": "p50 ≤ 2.5 s, p95 ≤ 5 s, ≥ 3×",
            "met": p50 <= 2.5 and p95 <= 5 and speedup >= 3, "samples": [round(t, 2) for t in warm],
            "native_samples": [round(t, 2) for t in native]}


def _drop_to_build(base: Path, server: PrefectServer, reps: int, serve_args: tuple[str, ...]) -> list[float]:
    """Seconds from a file's rename into place (seen by the sensor) to the end of its dbt build, `reps` times."""
    from automations.apply import apply

    settings = settings_in(base, burst_window_seconds=5)
    env = {**os.environ, **settings.to_env(), "PREFECT_API_URL": server.api_url}
    rows = json.loads((REPO_ROOT / "tests/fixtures/dummyjson/products.json").read_text())
    base.mkdir(parents=True, exist_ok=True)
    with Served(settings, server.api_url, base / "serve.log", serve_args):
        asyncio.run(apply(settings, out=lambda *_: None))
        sensor = subprocess.Popen([sys.executable, "-m", sensor_command.__name__], env=env, stdout=open(base / "sensor.log", "wb"),
                                  stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: b"watching" in (base / "sensor.log").read_bytes(), 60, "the sensor to start")
            folder = settings.root / "dummyjson" / "products"
            times = []
            for i in range(reps):
                done = len([b for b in builds(settings) if b["status"] == "built"])
                data = "".join(json.dumps(dict(r, bench=f"{base.name}-{i}")) + "\n" for r in rows[:50]).encode()
                tmp = folder / f".b1-{i}.tmp"
                tmp.write_bytes(data)
                t0 = time.time()
                os.rename(tmp, folder / f"b1-{i:03d}.jsonl")
                wait_for(lambda: len([b for b in builds(settings) if b["status"] == "built"]) > done, 180,
                         f"the build of {folder.name}/b1-{i:03d}.jsonl (see {base}/serve.log and sensor.log)", interval=0.05)
                built = [b for b in builds(settings) if b["status"] == "built"][-1]
                times.append(built["at"] - t0)
                if i < reps - 1:
                    time.sleep(settings.burst_window_seconds + 2)  # let the trailing run pass, so each drop starts quiet
        finally:
            sensor.terminate()
            sensor.wait(30)
    return sorted(times)


def b2_burst(base: Path, server: PrefectServer, files: int, seconds: float) -> dict:
    """`files` files dropped over `seconds` for one dataset: events, dbt builds, and when every row is in the warehouse."""
    from automations.apply import apply
    from ops.local import read_events
    from landing.events import FILE_CREATED

    settings = settings_in(base / "b2", burst_window_seconds=5)
    env = {**os.environ, **settings.to_env(), "PREFECT_API_URL": server.api_url}
    folder = settings.root / "dummyjson" / "products"
    folder.mkdir(parents=True)
    tag = f"b2-{time.time()}"
    with Served(settings, server.api_url, base / "b2-serve.log"):
        asyncio.run(apply(settings, out=lambda *_: None))
        sensor = subprocess.Popen([sys.executable, "-m", sensor_command.__name__], env=env, stdout=open(base / "b2-sensor.log", "wb"),
                                  stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: b"watching" in (base / "b2-sensor.log").read_bytes(), 60, "the sensor to start")
            from datetime import datetime, timedelta, timezone

            since = datetime.now(timezone.utc) - timedelta(seconds=2)
            t0 = time.time()
            for i in range(files):
                tmp = folder / f".b2-{i}.tmp"
                tmp.write_bytes(product_rows(tag, i))
                os.rename(tmp, folder / f"b2-{i:05d}.jsonl")
                time.sleep(max(0.0, t0 + seconds * (i + 1) / files - time.time()))
            last = time.time()
            sql = "select count(*) from stage_dummyjson__products where product_name like ?"
            while ((warehouse_row(settings, sql, [f"{tag}-%"]) or (0,))[0]) < files * 3 and time.time() - last < 180:
                time.sleep(0.2)
            all_rows = time.time() - last
            events = read_events(FILE_CREATED, since, "landing.dataset.dummyjson.products", timeout=120, expect=files)
            time.sleep(settings.burst_window_seconds + 5)  # trailing runs
            done = builds(settings)
        finally:
            sensor.terminate()
            sensor.wait(30)
    built = [b for b in done if b["status"] == "built"]
    return {"id": "B2", "what": f"{files} files over {seconds:.0f} s for one dataset (window 5 s)",
            "events": len(events), "dbt_builds": len(built), "runs": len(done),
            "all_rows_after_last_file_s": round(all_rows, 1),
            "target": "all events, ≤ 3 builds, rows ≤ 20 s", "met": len(events) == files and len(built) <= 3 and all_rows <= 20}


def b3_growth(base: Path, small: int, large: int) -> dict:
    """One new file built with `small` files already landed, then with `large`: the cost should follow new data."""
    from automations.dbt_build import dbt_build

    settings = settings_in(base / "b3")
    folder = settings.accepted / "dummyjson" / "products"  # as if accepted: this measures the build alone
    folder.mkdir(parents=True)
    tag = f"b3-{time.time()}"

    def land(first: int, last: int):
        for i in range(first, last):
            (folder / f"b3-{i:05d}.jsonl").write_bytes(product_rows(tag, i))

    def timed_build() -> float:
        t0 = time.time()
        with dbt_environment(settings):
            assert dbt_build(["dummyjson.products"], settings=settings)["status"] == "built"
        return time.time() - t0

    land(0, small)
    timed_build()  # first build: parse, create
    land(small, small + 1)
    with_small = timed_build()
    land(small + 1, large)
    timed_build()
    land(large, large + 1)
    with_large = timed_build()
    ratio = with_large / with_small
    return {"id": "B3", "what": f"build after one new file, {small} vs {large} files already landed (in-process dbt_build)",
            "small_s": round(with_small, 2), "large_s": round(with_large, 2), "ratio": round(ratio, 2),
            "target": "ratio ≤ 1.5", "met": ratio <= 1.5}


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
            (folder / f"f{i:06d}.jsonl").write_text(json.dumps({"id": i, "title": f"b4-{stamp}-{i}", "price": 1}) + "\n")
        old = time.time() - 60
        for p in folder.iterdir():
            os.utime(p, (old, old))
        server = PrefectServer(base / f"b4-prefect-{files}").start()  # idle: no earlier benchmark's events to digest
        try:
            env = {**os.environ, **settings.to_env(), "PREFECT_API_URL": server.api_url}
            log = base / f"b4-{files}.log"
            t0 = time.time()
            proc = subprocess.Popen([sys.executable, "-m", sensor_command.__name__, "--once"], env=env, stdout=open(log, "wb"),
                                    stderr=subprocess.STDOUT)
            peak, give_up = 0.0, t0 + 120 + files / 50
            while proc.poll() is None:  # the child's own high-water mark (wait4's counts this process's pages at fork)
                peak = max(peak, _high_water_mb(proc.pid))
                if time.time() > give_up:
                    proc.kill()
                    raise RuntimeError(f"`sensors --once` over {files} files still running after {give_up - t0:.0f} s: {log.read_text()[-2000:]}")
                time.sleep(0.05)
            status = proc.returncode
            sent = time.time() - t0
        finally:
            server.stop()
        decided = next((datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() - t0
                        for line in log.read_text().splitlines() if "caught up:" in line), float("nan"))
        figures[files] = (round(decided, 2), round(sent, 2), round(peak, 1), status)
        shutil.rmtree(settings.root, ignore_errors=True)
    main = figures.get(10000) or figures[max(figures)]
    rss = [f[2] for f in figures.values()]
    return {"id": "B4", "what": f"sensor catch-up of {', '.join(map(str, figures))} unannounced files (process start to "
            "every file decided; to every event read by the server)",
            **{f"decided_s_{n}": f[0] for n, f in figures.items()}, **{f"sent_s_{n}": f[1] for n, f in figures.items()},
            **{f"rss_mb_{n}": f[2] for n, f in figures.items()}, "exit": max(f[3] for f in figures.values()),
            "target": "10,000 decided ≤ 5 s, RSS ≤ 150 MB, flat",
            "met": main[0] <= 5 and max(rss) <= 150 and max(rss) <= 1.15 * min(rss)}


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
    tables = "\n".join(textwrap.dedent(f"""\
          - name: t{i:02d}
            meta:
              external_location: "read_json('{{{{ env_var('LANDING_ACCEPTED_ROOT', '/tmp/landing/_accepted') }}}}/bench/t{i:02d}/*.jsonl')"
        """) for i in range(datasets - 3))
    (project / "models" / "bench.yml").write_text("version: 2\nsources:\n  - name: bench\n    tables:\n" + textwrap.indent(tables, "      "))
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
    return {"id": "B5", "what": f"apply.py with {datasets} datasets ({total} automations)",
            "full_sync_s": round(full, 2), "noop_s": round(noop, 2), "noop_unchanged": len(again.unchanged),
            "target": "full ≤ 5 s, no-op ≤ 2 s", "met": full <= 5 and noop <= 2}


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
    return {"id": "B6", "what": "export products, carts, users (610 rows, 3 events): export-dummyjson-all, one flow run",
            "seconds": round(took, 2), "three_flow_runs_s": round(three_runs, 2), "target": "≤ 3 s", "met": took <= 3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--only", nargs="*", default=["B1", "B2", "B3", "B4", "B5", "B6"], help="which benchmarks to run")
    parser.add_argument("--reps", type=int, default=20, help="B1 repetitions")
    parser.add_argument("--files", type=int, default=10000, help="B3's large file count")
    parser.add_argument("--catch-up", type=lambda text: [int(n) for n in text.split(",")], default=[1000, 10000, 100000],
                        help="B4 file counts, comma-separated (default 1000,10000,100000)")
    parser.add_argument("--burst", type=int, default=1000, help="B2 file count (dropped over --burst-seconds)")
    parser.add_argument("--burst-seconds", type=float, default=10.0, help="B2 burst duration")
    parser.add_argument("--datasets", type=int, default=50, help="B5 dataset count")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the JSON results")
    parser.add_argument("--deadline", type=float, default=None,
                        help="after this many seconds, print every thread's stack and exit 3 (a hang shows where it is)")
    args = parser.parse_args(argv)
    if args.deadline:
        faulthandler.dump_traceback_later(args.deadline, exit=True)
    started = time.time()
    base = Path(tempfile.mkdtemp(prefix="landing-bench-"))
    server = PrefectServer(base / "prefect").start()
    results = []
    try:
        with using_server(server.api_url):
            plan = {
                "B1": lambda: b1_drop_to_build(base, server, args.reps),
                "B2": lambda: b2_burst(base, server, args.burst, args.burst_seconds),
                "B3": lambda: b3_growth(base, 10, args.files),
                "B6": lambda: b6_exports(base, server),
                "B5": lambda: b5_apply(base, server, args.datasets),
                "B4": lambda: b4_sensor_catch_up(base, args.catch_up),  # servers of its own
            }
            for bid, run in plan.items():
                if bid not in args.only:
                    continue
                print(f"{time.time() - started:7.1f} s: {bid} starts", file=sys.stderr, flush=True)
                try:
                    results.append(run())
                except Exception as exc:  # one broken benchmark must not hide the others' figures
                    results.append({"id": bid, "what": f"failed: {exc.__class__.__name__}: {str(exc)[:200]}", "target": "-", "met": False})
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
        figure = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("id", "what", "target", "met") and "samples" not in k)
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
