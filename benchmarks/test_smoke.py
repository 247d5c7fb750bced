"""Every benchmark still runs: `python -m benchmarks.run` end to end with tiny sizes (figures are not asserted).

`make bench-smoke` runs it (about 6 minutes). It sits with the benchmarks, outside `make test`: it checks the
benchmark tooling, not the product, and would take a fifth of the suite's 20-minute budget."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from landing.settings import REPO_ROOT


@pytest.mark.timeout(900)
def test_every_benchmark_runs_with_tiny_sizes(tmp_path):
    args = [
        "--reps",
        "1",
        "--files",
        "30",
        "--catch-up",
        "30",
        "--bursts",
        "20/1,30/2",
        "--datasets",
        "5",
        "--publish-mb",
        "1,3",
        "--rebuild-files",
        "40",
        "--mart-files",
        "20",
        "--results",
        str(tmp_path),
        "--deadline",
        "780",
    ]  # a hang prints every thread's stack, then exits 3
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:  # files, not pipes: a stray grandchild cannot hold them open
        code = subprocess.run(
            [sys.executable, "-m", "benchmarks.run", *args], cwd=REPO_ROOT, stdout=stdout, stderr=stderr, timeout=840
        ).returncode
    printed, said = out.read_text(), err.read_text()
    progress = "\n".join(line for line in said.splitlines() if " s: B" in line)
    assert code == 0, f"{progress}\n{printed[-3000:]}\n{said[-6000:]}"
    [out] = tmp_path.glob("bench-*.json")
    results = {r["id"]: r for r in json.loads(out.read_text())["results"]}
    assert sorted(results) == ["B1", "B2", "B2-scale", "B3", "B4", "B5", "B6", "B7", "B8", "B9"]
    for bid, r in results.items():
        assert not r["what"].startswith("failed"), r
    for stack in ("B2", "B2-scale"):
        for n in (20, 30):
            assert results[stack][f"{n}_events"] == n and results[stack][f"{n}_builds"] >= 1, results[stack]
            assert results[stack][f"{n}_rows_missing"] == 0, results[stack]
    assert (
        results["B4"]["exit"] == 0
        and results["B4"]["decided_s_30"] > 0
        and results["B4"]["sent_s_30"] > 0
        and results["B4"]["rss_mb_30"] > 0
    )
    assert results["B5"]["noop_unchanged"] > 0
    for line in ("B1", "B2", "B2-scale", "B3", "B4", "B5", "B6", "B7"):
        assert f"\n{line} " in printed, "the table prints every benchmark"
