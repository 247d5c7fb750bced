"""Issue 30's measured choice of the readers' warehouse: today's copy after each build against DuckLake (SQLite catalog,
Parquet on the local disk), at growing sizes: the cost from a build's commit until a new reader process sees its rows,
whether a reader holding a connection sees it, and the disk used.

    uv run python -m benchmarks.warehouse_choice --sizes-mb 100,1000,10000
    uv run python -m benchmarks.warehouse_choice --builds 10000/100   # maintenance keeps files and disk bounded

Each size: one table of random doubles (they barely compress, so the size on disk is the data), then 5 builds that
each replace 1,000 keys (an incremental model's delete+insert)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from landing import lake

BYTES_PER_ROW = 14  # an id and two random doubles, as DuckDB stores them (measured)
BUILDS = 5

READER = r"""
import sys, time
t0 = time.perf_counter()
import duckdb
t_import = time.perf_counter() - t0
kind, where, ext = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "copy":
    con = duckdb.connect(where, read_only=True)
    table = "t"
else:
    con = duckdb.connect(config={"extension_directory": ext, "autoinstall_known_extensions": False})
    con.execute(f"attach 'ducklake:sqlite:{where}' as lake (read_only)")
    table = "lake.t"
t1 = time.perf_counter()
n = con.execute(f"select count(*) from {table} where id < 0").fetchone()[0]
print(n, round(t1 - t0 - t_import, 4), round(time.perf_counter() - t1, 4))
"""


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def lake_connection(ext: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"extension_directory": str(ext), "autoinstall_known_extensions": False})
    lake.install(con)  # from the wheels' files, as the product installs them
    return con


def new_reader(kind: str, where: Path, ext: Path) -> tuple[int, float, float, float]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", READER, kind, str(where), str(ext)], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), time.perf_counter() - started, float(out[1]), float(out[2])


def copy_arm(base: Path, rows: int, ext: Path) -> dict:
    build, readers = base / "build.duckdb", base / "warehouse.duckdb"
    with duckdb.connect(str(build)) as con:
        con.execute(f"create table t as select range as id, random() as a, random() as b from range({rows})")
    shutil.copyfile(build, readers)
    samples = []
    for i in range(BUILDS):
        with duckdb.connect(str(build)) as con:
            con.execute(f"delete from t where id between {i * 1000} and {i * 1000 + 999}")
            con.execute(f"insert into t select -range - 1 - {i * 1000}, random(), random() from range(1000)")
        started = time.perf_counter()  # dbt's Done: the build's connection is closed
        tmp = readers.with_name(".publishing")
        shutil.copyfile(build, tmp)
        os.replace(tmp, readers)
        publish = time.perf_counter() - started
        seen, reader, _, _ = new_reader("copy", readers, ext)
        assert seen == (i + 1) * 1000, seen
        samples.append((publish, publish + reader))
    data = build.stat().st_size
    return {
        "data_mb": round(data / 1e6),
        "publish_s": round(statistics.median(s[0] for s in samples), 3),
        "done_to_new_reader_s": round(statistics.median(s[1] for s in samples), 3),
        "disk_x": round((build.stat().st_size + readers.stat().st_size) / data, 2),
        "disk_x_during_publish": round((build.stat().st_size + 2 * readers.stat().st_size) / data, 2),
    }


def lake_arm(base: Path, rows: int, ext: Path) -> dict:
    catalog, data = base / "lake.sqlite", base / "lake_data"
    with sqlite3.connect(catalog) as db:  # without WAL a reader's open transaction fails the writer's commit
        db.execute("pragma journal_mode=wal")
    con = lake_connection(ext)
    con.execute(f"attach 'ducklake:sqlite:{catalog}' as lake (data_path '{data}/')")
    con.execute(f"create table lake.t as select range as id, random() as a, random() as b from range({rows})")
    initial = du(data)
    held = lake_connection(ext)  # a notebook that keeps its connection for the whole run
    held.execute(f"attach 'ducklake:sqlite:{catalog}' as lake (read_only)")
    held.execute("select count(*) from lake.t").fetchone()
    samples = []
    for i in range(BUILDS):
        started = time.perf_counter()
        con.execute("begin")
        con.execute(f"delete from lake.t where id between {i * 1000} and {i * 1000 + 999}")
        con.execute(f"insert into lake.t select -range - 1 - {i * 1000}, random(), random() from range(1000)")
        con.execute("commit")
        committed = time.perf_counter()  # dbt's Done: the model's transaction has committed
        seen, reader, start, query = new_reader("lake", catalog, ext)
        assert seen == (i + 1) * 1000, seen
        held_seen = held.execute("select count(*) from lake.t where id < 0").fetchone()[0]
        samples.append((committed - started, reader, start, query, held_seen == seen))
    after = du(data) + catalog.stat().st_size
    started = time.perf_counter()
    con.execute("call ducklake_merge_adjacent_files('lake')")
    con.execute("call ducklake_expire_snapshots('lake', older_than => now())")
    con.execute("call ducklake_cleanup_old_files('lake', cleanup_all => true)")
    maintenance = time.perf_counter() - started
    files = sum(1 for p in data.rglob("*") if p.is_file())
    out = {
        "data_mb": round(initial / 1e6),
        "build_commit_s": round(statistics.median(s[0] for s in samples), 3),
        "done_to_new_reader_s": round(statistics.median(s[1] for s in samples), 3),
        "reader_attach_s": round(statistics.median(s[2] for s in samples), 3),
        "reader_query_s": round(statistics.median(s[3] for s in samples), 4),
        "held_reader_sees_each_build": all(s[4] for s in samples),
        "disk_x": round(after / initial, 3),
        "maintenance_s": round(maintenance, 2),
        "disk_x_after_maintenance": round((du(data) + catalog.stat().st_size) / initial, 3),
        "files_after_maintenance": files,
    }
    held.close()
    con.close()
    return out


def maintenance_arm(base: Path, builds: int, every: int, ext: Path) -> dict:
    """`builds` small builds (each replaces 100 keys of a 100,000-row table and moves a mark: two commits, as a dbt
    build of a staging model does) on one connection kept open, as the warm runner keeps dbt's, with the product's
    maintenance (landing.lake.maintain: inlined rows flushed, files with deletes rewritten, adjacent files merged,
    snapshots past the retention expired, unneeded files deleted) every `every` builds, retention 0: the files, the
    disk and the writer's memory as the builds go, to show they stay bounded, and what a build and a maintenance
    cost."""
    import resource

    from landing import lake
    from landing.settings import Settings

    settings = Settings(root=base / "landing", state_dir=base / "state", snapshot_retention_hours=0)
    lake.prepare(settings)
    data = Path(settings.lake_data)
    catalog = lake.sqlite_catalog(settings)
    con = lake.connect(settings, read_only=False)
    con.execute("create table lake.t as select range as id, random() as a, random() as b from range(100000)")
    con.execute("create table lake.marks (model varchar, high bigint)")
    initial = du(data) + catalog.stat().st_size
    seen, build_s, maintain_s = [], [], []
    for i in range(builds):
        started = time.perf_counter()
        keys = f"{(i * 100) % 100000} and {(i * 100) % 100000 + 99}"
        con.execute("begin")
        con.execute(f"delete from lake.t where id between {keys}")
        con.execute(
            f"insert into lake.t select range, random(), random() from range({(i * 100) % 100000}, {(i * 100) % 100000 + 100})"
        )
        con.execute("commit")
        con.execute("begin")
        con.execute("delete from lake.marks")
        con.execute(f"insert into lake.marks values ('t', {i})")
        con.execute("commit")
        build_s.append(time.perf_counter() - started)
        if (i + 1) % every == 0:
            maintain_s.append(lake.maintain(settings, say=lambda *_: None)["seconds"])
        if (i + 1) in {builds // 10, builds // 2, builds} or (i + 1) == every:
            files = sum(1 for p in data.rglob("*") if p.is_file())
            seen.append(
                {
                    "builds": i + 1,
                    "files": files,
                    "disk_x": round((du(data) + catalog.stat().st_size) / initial, 2),
                    "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                }
            )
    assert con.execute("select count(*) from lake.t").fetchall()[0][0] == 100000
    con.close()
    return {
        "every": every,
        "as_the_builds_go": seen,
        "build_s_p50": round(statistics.median(build_s), 4),
        "build_s_last_1000_p50": round(statistics.median(build_s[-1000:]), 4),
        "maintenance_s_p50": round(statistics.median(maintain_s), 3) if maintain_s else None,
        "catalog_mb": round(catalog.stat().st_size / 1e6, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="100,1000,10000")
    parser.add_argument("--arms", default="copy,lake")
    parser.add_argument(
        "--builds", default="", help="instead: N small builds with maintenance every M (N/M, e.g. 10000/100)"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="warehouse-choice-"))
    ext = work / "extensions"
    lake_connection(ext).close()
    results = {"duckdb": duckdb.__version__, "cpus": os.cpu_count()}
    if args.builds:
        builds, every = (int(n) for n in args.builds.split("/"))
        try:
            (work / "maintenance").mkdir()
            results["maintenance"] = maintenance_arm(work / "maintenance", builds, every, ext)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(results, indent=1))
        return
    try:
        for mb in [int(s) for s in args.sizes_mb.split(",")]:
            rows = mb * 1_000_000 // BYTES_PER_ROW
            for arm in args.arms.split(","):
                base = work / f"{arm}-{mb}"
                base.mkdir()
                t0 = time.perf_counter()
                figures = (copy_arm if arm == "copy" else lake_arm)(base, rows, ext)
                results[f"{arm}@{mb}MB"] = {**figures, "arm_s": round(time.perf_counter() - t0, 1)}
                print(f"{arm}@{mb}MB", json.dumps(results[f"{arm}@{mb}MB"]), flush=True)
                shutil.rmtree(base)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
