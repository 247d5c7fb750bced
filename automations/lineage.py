"""What a build read and made, shown on its run in the UI: the files new since the last build, rows per model, tests."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from automations._upstream import dbt_runner  # noqa: F401  (re-exported: the build makes its runner here)
from automations.buildlog import BuildRecord
from landing.catalog import Catalog, project_fingerprint
from landing.ledger import Ledger, ledger_path
from landing.settings import Settings

LISTED_FILES = 50  # per dataset in the artifact; the count says how many more


_parsed: dict[str, object] = {}  # the warm runner keeps the parsed project between builds
_parse_lock = threading.Lock()


def parsed_project(settings: Settings, log_path: Path, keep: bool = True, fingerprint: str | None = None):
    """dbt's Manifest of the project as it is now, parsed once per change of the project (or of the environment
    dbt reads): builds then do only the build. None if dbt cannot parse it; the build then reports dbt's error.
    `keep` False parses without keeping the result (a one-off, such as `landing verify`'s scratch copy), so the
    builds' parsed project stays cached. `fingerprint`: the project's, where the caller has it (the catalog's)."""
    from dbt.cli.main import dbtRunner

    project = settings.dbt_project_dir
    key = "|".join(
        [
            fingerprint or project_fingerprint(project),
            str(project),
            str(settings.dbt_target_dir),
            *(f"{k}={v}" for k, v in sorted(settings.dbt_env().items())),
        ]
    )
    with _parse_lock:
        if key in _parsed:
            return _parsed[key]
        done = dbtRunner().invoke(
            [
                "parse",
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(project),
                "--target-path",
                str(settings.dbt_target_dir),
                "--log-path",
                str(log_path),
                "--quiet",
            ]
        )
        if not done.success or done.result is None:
            return None
        if keep:
            _parsed.clear()
            _parsed[key] = done.result
        return done.result


def artifact_key(names: list[str], and_names: list[str]) -> str:
    """One artifact key per kind of build (Prefect keeps each key's versions): lowercase, digits and dashes."""
    text = "-".join(and_names or names)
    return "landing-build-" + re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


def rows_per_model(settings: Settings, built_nodes: list[str], snapshot: int | None = None) -> dict[str, int | None]:
    """Rows in each built model's relation, read from the lake at the build's snapshot (when it has one)."""
    import duckdb

    from landing import lake

    models = [n.split(" ", 1)[1] for n in built_nodes if n.startswith(("model ", "seed ", "snapshot "))]
    rows: dict[str, int | None] = {}
    try:
        con = lake.connect(settings, snapshot=snapshot)
    except (duckdb.Error, lake.NoLake):
        return dict.fromkeys(models)
    with con:
        for model in models:
            try:
                rows[model] = con.execute(f'select count(*) from "{model}"').fetchone()[0]
            except duckdb.Error:
                rows[model] = None
    return rows


def build_markdown(settings: Settings, catalog: Catalog, record: BuildRecord, files: dict[str, list[Path]]) -> str:
    """The artifact: the files this build read first, with the names they were dropped under and their events;
    the rows per model; the tests."""
    ledger = Ledger(ledger_path(settings.state_dir))
    try:
        lines = [
            f"# dbt-build {', '.join(record.datasets)}: {record.status.value}",
            "",
            "## Files this build loaded",
            "",
            "| dataset | accepted file | dropped as | event |",
            "|---|---|---|---|",
        ]
        for name, paths in files.items():
            for path in paths[-LISTED_FILES:]:
                entry = ledger.by_accepted(str(path))
                dropped = Path(entry.path).name if entry else "(landed by its producer)"
                event = f"`{entry.event_id}`" if entry and entry.event_id else ""
                lines.append(f"| {name} | {path.name} | {dropped} | {event} |")
            if len(paths) > LISTED_FILES:
                lines.append(f"| {name} | … and {len(paths) - LISTED_FILES} older | | |")
            if not paths:
                lines.append(f"| {name} | none (built for a project change or by force) | | |")
    finally:
        ledger.close()
    if record.built_nodes:
        lines += ["", "## Models", "", "| model | rows |", "|---|---|"]
        lines += [
            f"| {m} | {'?' if n is None else n} |"
            for m, n in rows_per_model(settings, record.built_nodes, record.snapshot).items()
        ]
    if record.failed_nodes:
        lines += ["", "## Failed", ""] + [f"- {n}" for n in record.failed_nodes]
    if record.tests_run is not None:
        lines += ["", f"## Tests: {record.tests_passed}/{record.tests_run} passed"]
    return "\n".join(lines) + "\n"


def publish(settings: Settings, catalog: Catalog, record: BuildRecord, files: dict[str, list[Path]]) -> None:
    """The build's artifact on its flow run (the run page's Artifacts tab)."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        markdown=build_markdown(settings, catalog, record, files),
        key=artifact_key(record.datasets, record.and_models),
        description=f"What dbt-build {', '.join(record.datasets)} read and built",
    )
