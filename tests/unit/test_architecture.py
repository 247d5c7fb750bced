"""The one dependency rule (docs/architecture.md): imports point down, ops → flows/sensors/automations → landing."""

from __future__ import annotations

import ast
import re

import pytest

from landing.settings import REPO_ROOT

LAYERS = {"landing": 0, "flows": 1, "sensors": 1, "automations": 1, "ops": 2, "testkit": 3, "benchmarks": 4}
OURS = ("landing", "flows", "sensors", "automations", "ops", "testkit", "benchmarks", "tests")


def modules():
    for package in LAYERS:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            yield package, path


def imported(path) -> set[str]:
    """Top-level packages of ours that the module imports (anywhere in it, lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(OURS)


@pytest.mark.parametrize(
    "package, path", list(modules()), ids=lambda v: str(v.relative_to(REPO_ROOT)) if hasattr(v, "relative_to") else v
)
def test_imports_point_down_and_never_into_tests(package, path):
    for other in imported(path):
        assert other != "tests", f"{path.relative_to(REPO_ROOT)} imports tests"
        if other != package:
            assert LAYERS[other] < LAYERS[package] or package == "benchmarks", (
                f"{path.relative_to(REPO_ROOT)} ({package}) imports {other}: sideways or upward"
            )


def test_no_process_is_started_by_a_module_name_written_as_a_string():
    pattern = re.compile(r"""["']-m["']\s*,\s*["'](?:landing|flows|sensors|automations|ops)\b""")
    offenders = [str(p.relative_to(REPO_ROOT)) for _, p in modules() if pattern.search(p.read_text())]
    assert offenders == []
