"""What admitting one build to the warehouse costs: Prefect's `concurrency()` against our direct lease calls.

A fresh embedded server; `--reps` enter-and-exit rounds of each, one slot of a global concurrency limit, no contention.
docs/upstream.md (U15) says which the build uses and why.

    uv run python -m benchmarks.concurrency_cost --reps 30
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from testkit.local import PrefectServer, using_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.concurrency_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        server = PrefectServer(Path(home)).start()
        try:
            with using_server(server.api_url):
                figures = _measure(args.reps)
        finally:
            server.stop()
    for name, samples in figures.items():
        print(
            f"{name:<28} median {statistics.median(samples):.3f} s   p95 {sorted(samples)[int(0.95 * (len(samples) - 1))]:.3f} s"
        )
    gap = statistics.median(figures["prefect concurrency()"]) - statistics.median(figures["direct lease calls"])
    print(f"concurrency() costs {gap:+.3f} s a build more than the direct calls (target to adopt it: ≤ 0.02 s)")


def _measure(reps: int) -> dict[str, list[float]]:
    from prefect.concurrency.sync import concurrency

    from automations.build_state import WRITER_LEASE_SECONDS, _ensure_writer_limit, _writer_slot

    name = "bench-warehouse"
    _ensure_writer_limit(name)
    figures: dict[str, list[float]] = {"direct lease calls": [], "prefect concurrency()": []}
    for _ in range(2):  # warm both paths (imports, the first client)
        with _writer_slot(name, 60):
            pass
        with concurrency(name, occupy=1, lease_duration=WRITER_LEASE_SECONDS, strict=True):
            pass
    for _ in range(reps):
        t0 = time.perf_counter()
        with _writer_slot(name, 60):
            pass
        figures["direct lease calls"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with concurrency(name, occupy=1, lease_duration=WRITER_LEASE_SECONDS, strict=True):
            pass
        figures["prefect concurrency()"].append(time.perf_counter() - t0)
    return figures


if __name__ == "__main__":
    main()
