"""Time dbt builds of products (incremental, 1 file each) on this checkout's profile: file (main/lake) or lake (lake2)."""
import json, os, sys, time, tempfile, statistics
from pathlib import Path
from landing.settings import Settings, environment
from landing.catalog import load_catalog
from automations import load

base = Path(tempfile.mkdtemp(prefix="proto-"))
settings = Settings(root=base / "landing", state_dir=base / "state")
catalog = load_catalog(settings)
ds = catalog.get("dummyjson.products")
ds.accepted_path.mkdir(parents=True, exist_ok=True)
try:
    from landing import lake
    lake.prepare(settings)
    mode = "lake"
except Exception:
    mode = "file"
from dbt.cli.main import dbtRunner
project = str(settings.dbt_project_dir)
times = []
with environment(settings.dbt_env()):
    runner = None
    for i in range(8):
        rows = "".join(json.dumps({"id": i * 10 + k, "title": f"t{i}", "price": 1.5, "category": "c", "brand": "b", "stock": 3}) + "\n" for k in range(10))
        (ds.accepted_path / f"20260101T0000{i:02d}000000Z-p{i}.jsonl").write_text(rows)
        load.load_all(settings, [ds])
        t0 = time.perf_counter()
        res = dbtRunner().invoke(["build", "--select", "source:dummyjson.products+", "--exclude", "test_type:unit", "cart_lines_enriched", "--project-dir", project, "--profiles-dir", project, "--target-path", str(settings.dbt_target_dir), "--log-path", str(base / "logs"), "-q", "--log-level-file", "debug"])
        dt = time.perf_counter() - t0
        from automations.build_state import release_warehouse; release_warehouse()
        import traceback; res.exception and traceback.print_exception(res.exception); assert res.success, res.exception or [str(r.message) for r in res.result]
        times.append(dt)
print(base); print(mode, "dbt build s:", [round(t, 2) for t in times], "median of last 6:", round(statistics.median(times[2:]), 3))
if mode == "lake":
    con = lake.connect(settings)
    print(con.execute("select count(*) from stage_dummyjson__products").fetchone(), con.execute("select * from landing.model_marks").fetchall())
    print("snapshots", lake.newest_snapshot(settings))
