"""The dependency rules (docs/architecture.md): imports point down, ops → flows/sensors/automations → landing, and no
module imports itself back through others (a module cycle)."""

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


def module_name(path) -> str:
    rel = path.relative_to(REPO_ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def module_imports(path, known: set[str]) -> set[str]:
    """Modules of ours that the module imports, lazy imports included (`from a import b` counts `a.b` where that is a
    module of ours, else `a`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in known else node.module)
    return found & known


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each module cycle of `graph` (module → the modules it imports) once, as the path that closes it."""
    found, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(trail[trail.index(nxt) :] + [node, nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_no_module_cycles():
    paths = {module_name(p): p for _, p in modules()}
    known = set(paths)
    graph = {name: module_imports(path, known) - {name} for name, path in paths.items()}
    assert cycles(graph) == [], (
        "module cycles (import A → B → A), move the shared names down into a module of their own"
    )


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a.load": {"a.compact"}, "a.compact": {"a.load"}}) == [["a.compact", "a.load", "a.compact"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "d": {"b"}}) == []
