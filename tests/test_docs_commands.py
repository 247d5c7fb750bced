"""Every command the README and docs name exists: make targets are in the Makefile, Python entry points and the
`landing` console script answer --help. Every repo path and test they cite exists, each `_upstream.py` module's
header names the docs/upstream.md entries its table gives that module, and a section they point to by title exists."""

from __future__ import annotations

import ast
import fnmatch
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


# ---- paths and test names the docs cite exist --------------------------------------------------------------------

# A repo path is a top-level folder of the repo, then a path: `automations/load.py`, `tests/unit/`,
# `dbt/models/staging/*/__sources.yml` (a glob, or a `<placeholder>` read as one, must match something). Runtime paths
# (/tmp/landing/..., `.state/...`, `$LANDING_ROOT/...`, `_compacted/<dataset>/...`) begin with no repo folder, or
# follow a `/` or `$`, so they are not taken for repo paths.
REPO_FOLDERS = sorted({p.name for p in REPO_ROOT.iterdir() if p.is_dir() and p.name[0] not in "._"} | {".ci"})
REPO_PATH = re.compile(rf"(?<![\w./$~-])((?:{'|'.join(map(re.escape, REPO_FOLDERS))})/(?:[\w.*-]|<[\w ]+>|/)*)")
NOT_IN_THE_REPO = (  # named by the docs on purpose, absent from a fresh checkout: keep this short
    "benchmarks/results/",  # written by `make bench` (git-ignored)
    "dbt/target/",  # dbt's own output, where the catalog cache lives (git-ignored)
    "dbt/models/staging/shop/",  # the example source docs/adding-a-source.md adds
)
PATHS = sorted(
    {
        (doc.name, path.rstrip("."))
        for doc in DOCS
        for path in REPO_PATH.findall(doc.read_text())
        if not path.rstrip(".").startswith(NOT_IN_THE_REPO)
    }
)

# A test cited with its file: `tests/x.py::test_y`, `::test_z` after it on the same line (a table row), or
# "`test_y` in `tests/x.py`". A `*` in the name must match at least one test.
TEST_FILE = r"(?:tests|benchmarks)/[\w/]+\.py"


def _cited_tests() -> list[tuple[str, str, str]]:
    cited = set()
    for doc in DOCS:
        for line in doc.read_text().splitlines():
            last = None
            for m in re.finditer(rf"({TEST_FILE})?::(test_[\w*]+)|({TEST_FILE})", line):
                last = m.group(1) or m.group(3) or last
                if m.group(2):
                    assert last, f"{doc.name}: `::{m.group(2)}` follows no test file: {line}"
                    cited.add((doc.name, last, m.group(2)))
            cited |= {(doc.name, f, n) for n, f in re.findall(rf"`(test_[\w*]+)` in `?({TEST_FILE})", line)}
    return sorted(cited)


CITED_TESTS = _cited_tests()


def test_docs_cite_paths_and_tests():  # the extractors find what the docs cite, and take no runtime path for a repo one
    assert {("README.md", "automations/load.py"), ("guarantees.md", "tests/faults/test_killed_load.py")} <= set(PATHS)
    assert "/tmp/landing/_accepted" in TEXT and not [p for _, p in PATHS if p.startswith("landing/_accepted")]
    assert len(CITED_TESTS) > 40


@pytest.mark.parametrize("doc, path", PATHS, ids=[f"{d}:{p}" for d, p in PATHS])
def test_a_path_the_docs_name_exists(doc, path):
    pattern = re.sub(r"<[\w ]+>", "*", path).rstrip("/")
    found = any(REPO_ROOT.glob(pattern)) if "*" in pattern else (REPO_ROOT / pattern).exists()
    assert found, f"{doc} names `{path}`, which is not in the repo"


@pytest.mark.parametrize("doc, path, name", CITED_TESTS, ids=[f"{d}:{p}::{n}" for d, p, n in CITED_TESTS])
def test_a_test_the_docs_cite_exists(doc, path, name):
    file = REPO_ROOT / path
    assert file.is_file(), f"{doc} cites {path}::{name}, but there is no {path}"
    defined = re.findall(r"^\s*(?:async\s+)?def (test_\w+)", file.read_text(), re.M)
    assert fnmatch.filter(defined, name), f"{doc} cites {path}::{name}, which {path} does not define"


# ---- the upstream fence: docs/upstream.md's table, each fence module's header, and the entries the code names ------

UPSTREAM = (REPO_ROOT / "docs" / "upstream.md").read_text()
ENTRIES = set(re.findall(r"^### (U\d+)$", UPSTREAM, re.M))
FENCES = sorted(p.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.glob("*/_upstream.py"))


def u_numbers(text: str) -> set[str]:
    """Every entry `text` names: `U3`, and `U1 to U8` for U1, U2, ..., U8."""
    return {f"U{n}" for a, b in re.findall(r"\bU(\d+)(?: to U(\d+))?\b", text) for n in range(int(a), int(b or a) + 1)}


FENCE_TABLE = {  # | layer | `x/_upstream.py` | U1 to U8 |
    path: u_numbers(entries)
    for path, entries in re.findall(r"^\|[^|\n]*\| `(\w+/_upstream\.py)` \|([^|\n]*)\|", UPSTREAM, re.M)
}


def test_the_upstream_table_lists_every_fence_module_and_only_entries_that_exist():
    assert sorted(FENCE_TABLE) == FENCES, "docs/upstream.md's table and the */_upstream.py modules differ"
    assert {u for us in FENCE_TABLE.values() for u in us} - ENTRIES == set(), "the table names an entry with no ###"


@pytest.mark.parametrize("fence", FENCES)
def test_a_fence_modules_header_names_the_entries_the_table_gives_it(fence):
    header = ast.get_docstring(ast.parse((REPO_ROOT / fence).read_text())) or ""
    assert u_numbers(header) == FENCE_TABLE.get(fence), (
        f"{fence}'s docstring names {sorted(u_numbers(header))}, docs/upstream.md's table {FENCE_TABLE.get(fence)}"
    )


def test_every_entry_the_code_names_is_in_upstream_md():
    named = {u: fence for fence in FENCES for u in u_numbers((REPO_ROOT / fence).read_text())}
    contracts = (REPO_ROOT / "tests" / "unit" / "test_upstream.py").read_text()
    named |= {u: "a contract() in tests/unit/test_upstream.py" for u in re.findall(r'contract\(\s*"(U\d+)"', contracts)}
    assert len(named) >= 10
    assert {u: where for u, where in named.items() if u not in ENTRIES} == {}, "no `### U<n>` in docs/upstream.md"


# ---- a section the docs point to by its title exists -------------------------------------------------------------

SECTIONS = sorted(
    set(
        (doc.name, target, title)
        for doc in DOCS
        for target, title in re.findall(r'`?(?:docs/)?([\w-]+\.md)`?, "([^"]+)"', doc.read_text())
    )
)


@pytest.mark.parametrize("doc, target, title", SECTIONS, ids=[f"{d}:{t}:{s}" for d, t, s in SECTIONS])
def test_a_section_the_docs_point_to_exists(doc, target, title):
    text = (REPO_ROOT / "docs" / target).read_text()
    heading = re.search(rf"^#+ {re.escape(title)}", text, re.M)  # a heading, or a table row's first cell
    assert heading or re.search(rf"^\| {re.escape(title)} \|", text, re.M), f'{doc} points to {target}, "{title}"'
