"""`make canary`: install the newest releases of the packages whose internals we touch into a throwaway environment,
run the docs/upstream.md contracts there, and print which entries hold.

A package whose newest release does not install here (dbt-core 1.12 downloads a binary from GitHub at build time) is
held at the bound in pyproject.toml, and the table says so.

Arguments pin a release instead of the newest, to check another version in range the same way:
`uv run --frozen python -m tests.canary watchdog==7.1.0` (remove .canary first, as `make canary` does).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".canary"
PACKAGES = ["prefect", "prefect-dbt", "dbt-core", "dbt-duckdb", "duckdb", "watchdog"]
ALSO = ["pydantic-settings", "pytest"]


def _bounds() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        name = re.split(r"[<>=!\[ ;]", dep, maxsplit=1)[0]
        out[name.lower()] = dep.split(";")[0].strip()
    return out


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()


def _ducklake_news(requirement: str) -> str:
    """Which DuckDB release PyPI's newest DuckLake build is for (each requires one `duckdb==X`), against our DuckDB
    requirement: the readers' warehouse moves to DuckLake when both meet (docs/architecture.md, "The readers'
    warehouse")."""
    import json
    import urllib.request

    from packaging.requirements import Requirement

    try:
        with urllib.request.urlopen("https://pypi.org/pypi/duckdb-extension-ducklake/json", timeout=30) as answer:
            newest = json.load(answer)["info"]["version"]
    except (OSError, ValueError, KeyError) as exc:
        return f"DuckLake: could not ask PyPI for duckdb-extension-ducklake ({exc})"
    if Requirement(requirement).specifier.contains(newest, prereleases=True):
        return (
            f"DuckLake: duckdb-extension-ducklake {newest} is built for DuckDB {newest}, which `{requirement}` allows"
        )
    return (
        f"DuckLake: the newest build is for DuckDB {newest}, outside `{requirement}`: the readers' warehouse waits "
        "for a build for our DuckDB, or for the pin to move to it (with the whole suite and this canary green)"
    )


def main(pins: list[str] = ()) -> int:
    pinned = {_name(p): p for p in pins}
    unknown = sorted(set(pinned) - set(PACKAGES))
    if unknown:
        print(f"only {', '.join(PACKAGES)} can be pinned, not {', '.join(unknown)}")
        return 2
    for requirement in pinned.values():
        print(f"pinned: {requirement}")
    subprocess.run(["uv", "venv", "-q", "--python", "3.11", str(VENV)], check=True)
    bounds, held = _bounds(), {}
    for _ in range(len(PACKAGES) + 1):
        wanted = [pinned.get(p, held.get(p, p)) for p in PACKAGES] + ALSO
        done = subprocess.run(
            ["uv", "pip", "install", "-q", "--upgrade", "--python", str(VENV / "bin" / "python"), *wanted],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            break
        culprit = next(
            (
                p
                for p in PACKAGES
                if p not in held and p not in pinned and re.search(rf"`{re.escape(p)}` \(v", done.stderr)
            ),
            None,
        )
        if culprit is None:
            print(done.stderr[-3000:])
            return 2
        reason = next(
            (line.strip() for line in done.stderr.splitlines() if "failed to download" in line or "error:" in line), ""
        )
        held[culprit] = bounds.get(culprit, culprit)
        print(f"{culprit}: the newest release does not install here ({reason[:160]}); held at {held[culprit]}")
    else:
        return 2
    print(_ducklake_news(bounds.get("duckdb", "duckdb")))
    return subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "tests.unit.test_upstream"],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    ).returncode


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.canary", description=__doc__)
    parser.add_argument(
        "pins",
        nargs="*",
        metavar="PIN",
        help=f"a release to install instead of the newest, e.g. watchdog==7.1.0 ({', '.join(PACKAGES)})",
    )
    sys.exit(main(parser.parse_args().pins))
