"""`make demo`: drop the shipped sample files, wait for the builds they cause, print row counts and run links."""

from __future__ import annotations

import json
import sys
import time

from landing.catalog import load_catalog
from landing.contract import write_atomically
from automations import buildlog
from automations.buildlog import BuildStatus
from landing.settings import REPO_ROOT, Settings
from landing import lake
from ops import NO_API


def demo(settings: Settings | None = None, timeout: float = 180, out=print) -> int:
    from prefect.settings import PREFECT_API_URL

    settings = settings or Settings()
    catalog = load_catalog(settings)
    api = PREFECT_API_URL.value()
    if not api:
        out(NO_API)
        return 1
    import httpx

    try:
        httpx.get(f"{api}/health", timeout=3).raise_for_status()
    except httpx.HTTPError:
        out(f"the Prefect server at {api} does not answer: start the stack with `make up` first")
        return 1
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    started = time.time()
    dropped = {}
    for sample, ds in sample_files(catalog):
        # a field unique to this demo run, so the sensor does not take the file for a duplicate of the last demo
        data, rows = unique_copy(sample, stamp)
        path = write_atomically(ds.path, data, ds.suffix_for(sample.name))
        dropped[ds.name] = path
        out(f"dropped {rows:>4} rows for {ds.name:<26} → {path}")
    if not dropped:
        out("no sample file matches a dataset of the dbt project")
        return 1
    waiting_for = {f"build {name}" for name in dropped}
    and_models = [m for m in catalog.and_models() if set(m.datasets) <= set(dropped)]
    waiting_for |= {f"build {m.name} (all sources)" for m in and_models}
    seen_runs: dict[str, str] = {}
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = set()
        for b in buildlog.read(settings.builds_log):
            if b.at < started or b.status != BuildStatus.BUILT:
                continue
            seen_runs[b.flow_run_id] = "+".join(b.datasets) + (" (all sources)" if b.and_models else "")
            for name in b.datasets:
                if not b.and_models:
                    done.add(f"build {name}")
            for m in b.and_models:
                done.add(f"build {m} (all sources)")
        left = sorted(waiting_for - done)
        sys.stdout.write(f"\rwaiting for: {', '.join(left) or 'nothing'} ({int(time.time() - started)}s)".ljust(110))
        sys.stdout.flush()
        if not left:
            break
        time.sleep(1)
    out("")
    if waiting_for - done:
        out(f"timed out after {timeout:.0f}s; ask why with: landing explain {next(iter(dropped.values()))}")
        return 1
    out(f"all builds done in {time.time() - started:.1f}s\n")
    _print_counts(settings, catalog, out)
    ui = api[: -len("/api")] if api.endswith("/api") else api
    out("\nruns:")
    for run_id, what in seen_runs.items():
        out(f"  {what:<50} {ui}/runs/flow-run/{run_id}")
    return 0


def sample_files(catalog) -> list:
    """(file, dataset) for each sample in samples/<source>/<table>.<ext> whose dataset the dbt project declares."""
    found = []
    for sample in sorted((REPO_ROOT / "samples").glob("*/*")):
        ds = catalog.datasets.get(f"{sample.parent.name}.{sample.name.split('.', 1)[0]}")
        if ds is not None and ds.matches(sample.name):
            found.append((sample, ds))
    return found


def unique_copy(sample, stamp: str) -> tuple[bytes, int]:
    """The sample's rows with an extra `_demo_run` column (which no source declares, so dbt ignores it)."""
    if sample.suffix == ".csv":
        lines = [line for line in sample.read_text().splitlines() if line.strip()]
        text = lines[0] + ",_demo_run\n" + "".join(f"{line},{stamp}\n" for line in lines[1:])
        return text.encode(), len(lines) - 1
    if sample.suffix == ".parquet":
        import tempfile

        import duckdb

        with tempfile.TemporaryDirectory() as tmp, duckdb.connect() as con:
            out = f"{tmp}/sample.parquet"
            con.execute(
                f"copy (select *, '{stamp}' as _demo_run from read_parquet('{sample}')) to '{out}' (format parquet)"
            )
            rows = con.execute(f"select count(*) from read_parquet('{out}')").fetchone()[0]
            return open(out, "rb").read(), rows
    rows = [dict(json.loads(line), _demo_run=stamp) for line in sample.read_text().splitlines() if line.strip()]
    return "".join(json.dumps(r) + "\n" for r in rows).encode(), len(rows)


def _print_counts(settings: Settings, catalog, out) -> None:
    import duckdb

    # the lake: a build never holds it, so this never waits
    with lake.connect(settings) as con:
        out(f"{'model':<40} rows")
        for name in sorted(catalog.models):
            try:
                n = con.execute(f'select count(*) from "{name}"').fetchone()[0]
            except duckdb.Error:
                n = "not built"
            out(f"{name:<40} {n}")
    out(f"query it: `landing sql`, or {lake.cli_line(settings)}")


if __name__ == "__main__":
    sys.exit(demo())
