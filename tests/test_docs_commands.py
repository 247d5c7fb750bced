"""Every command the README and docs name exists: make targets are in the Makefile, Python entry points and the
`landing` console script answer --help."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from landing.settings import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
TEXT = "\n".join(p.read_text() for p in DOCS)
MAKE_TARGETS = sorted(set(re.findall(r"\bmake ([a-z][a-z-]*)\b", TEXT)))
PY_COMMANDS = sorted(
    set(
        m.strip()
        for m in re.findall(r"python ((?:-m [a-z_.]+(?: (?:up|status|explain|demo))?)|(?:automations/apply\.py))", TEXT)
    )
)
LANDING_COMMANDS = sorted(
    set(re.findall(r"\blanding (up-scale|up|demo|status|explain|sql|rebuild|replay|verify)\b", TEXT))
)
LANDING = Path(sys.executable).with_name("landing")  # the console script (`[project.scripts]`) uv sync installs


def test_docs_name_commands():
    assert "test" in MAKE_TARGETS and "up" in MAKE_TARGETS
    assert "-m sensors" in PY_COMMANDS and "automations/apply.py" in PY_COMMANDS
    assert {"up", "explain", "sql"} <= set(LANDING_COMMANDS)


@pytest.mark.parametrize("command", LANDING_COMMANDS)
def test_landing_command_answers_help(command):
    result = subprocess.run(
        [str(LANDING), command, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"usage: landing {command}" in result.stdout


@pytest.mark.parametrize("target", MAKE_TARGETS)
def test_make_target_exists(target):
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(rf"^{re.escape(target)}:", makefile, re.M), (
        f"`make {target}` is documented but not in the Makefile"
    )


@pytest.mark.parametrize("command", PY_COMMANDS)
def test_python_command_answers_help(command):
    result = subprocess.run(
        [sys.executable, *command.split(), "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout.lower()  # argparse says "usage:", Prefect's CLI (ops.prefect_server) "Usage:"


def test_every_event_is_in_the_contract_and_the_architecture():
    from landing import events

    names = {
        v
        for k, v in vars(events).items()
        if k.isupper() and isinstance(v, str) and v.startswith("landing.") and not v.endswith(".")
    }
    contract = (REPO_ROOT / "docs" / "events.md").read_text()
    architecture = (REPO_ROOT / "docs" / "architecture.md").read_text()
    assert {n for n in names if f"`{n}`" not in contract} == set(), "docs/events.md misses an event"
    assert {n for n in names if f"`{n}`" not in architecture} == set(), "docs/architecture.md's events row misses one"


def test_the_fault_sizes_the_guarantees_name_are_the_tests_sizes():
    from tests.faults import test_sensor_crash

    guarantees = (REPO_ROOT / "docs" / "guarantees.md").read_text()
    said = re.search(r"kill -9 the sensor during a ([\d,]+)-file burst", guarantees)
    assert said and int(said.group(1).replace(",", "")) == test_sensor_crash.FILES
    assert f"{test_sensor_crash.FILES * 3:,} rows from {test_sensor_crash.FILES:,} files" in guarantees
