"""What a build read and made, shown on its run in the UI: the files new since the last build, rows per model, tests."""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path

from automations.buildlog import BuildRecord
from landing.catalog import Catalog, project_fingerprint
from landing.events import dataset_asset_key
from landing.ledger import Ledger, ledger_path
from landing.settings import Settings

LISTED_FILES = 50  # per dataset in the artifact; the count says how many more


def dbt_runner(manifest=None, node_tasks: bool = True, **kwargs):
    """prefect-dbt's runner, with each dbt source's asset named as the dataset (`landing://dataset/<source>.<table>`),
    and dbt given `manifest`, the parsed project, when there is one (see `parsed_project`).

    prefect-dbt keys a source's asset by its relation name, which for a source read from files is dbt-duckdb's
    `read_json(...)` call over the accepted folder: unreadable in the UI, and it changes with the landing root.
    With `node_tasks` off, dbt's nodes run without a Prefect task each (dbt's log still goes to the flow run), and
    `emit_asset_events` sends the asset events those tasks would have sent.
    """
    from dbt.contracts.graph.nodes import SourceDefinition
    from prefect.assets import Asset, AssetProperties
    from prefect_dbt import PrefectDbtRunner

    class LandingDbtRunner(PrefectDbtRunner):
        def _create_asset_from_node(self, manifest_node, adapter_type):  # prefect-dbt's hook, private
            if isinstance(manifest_node, SourceDefinition):
                name = f"{manifest_node.source_name}.{manifest_node.name}"
                return Asset(key=dataset_asset_key(name),
                             properties=AssetProperties(name=name, description=manifest_node.description or None))
            return super()._create_asset_from_node(manifest_node, adapter_type)

        def _create_unified_callback(self, task_state, log_level, context, **kw):  # prefect-dbt's, private
            if node_tasks:
                return super()._create_unified_callback(task_state, log_level, context, **kw)
            kw["create_tasks_for_nodes"] = False
            callback = super()._create_unified_callback(task_state, log_level, context, **kw)
            flow_run_context = context.get("flow_run_context")
            if not flow_run_context:
                return callback
            # dbt's lines straight to the flow run's logger: prefect-dbt's queue rebuilds the whole run context (settings
            # included) for each line outside a node, and a build waited for that queue to drain
            logger = _flow_run_logger(flow_run_context.get("flow_run"), flow_run_context.get("flow"))
            lowest = _DBT_LEVELS.index(str(log_level.value)) if str(log_level.value) in _DBT_LEVELS else 2

            def on_event(event) -> None:
                if event.info.name in ("NodeStart", "NodeFinished"):
                    callback(event)  # prefect-dbt's bookkeeping of the node (its status, skipped dependants)
                    return
                level = str(getattr(event.info.level, "value", event.info.level))
                msg = event.info.msg
                if level in _DBT_LEVELS and _DBT_LEVELS.index(level) >= lowest and msg and msg.strip():
                    logger.log(_LOGGING_LEVELS[level], msg)

            return on_event

        def invoke(self, args, **kwargs):
            if manifest is None:
                return super().invoke(args, **kwargs)
            # prefect-dbt makes its dbtRunner without a manifest, so dbt parses the project on every call
            import prefect_dbt.core.runner as module

            made = module.dbtRunner
            module.dbtRunner = functools.partial(made, manifest=manifest)
            try:
                return super().invoke(args, **kwargs)
            finally:
                module.dbtRunner = made

        def emit_asset_events(self, run_results: dict[str, dict]) -> int:
            """The asset events prefect-dbt's node tasks send, for the nodes dbt built (`run_results`, by unique id):
            `prefect.asset.referenced` per upstream asset, and `prefect.asset.materialization.succeeded` (or `.failed`)
            related to the upstream assets and to dbt. The number of materializations sent (0 when node tasks sent them)."""
            if node_tasks:
                return 0
            from prefect.context import AssetContext
            from prefect.events import emit_event
            from prefect_dbt.core.runner import MATERIALIZATION_NODE_TYPES, REFERENCE_NODE_TYPES

            adapter_type = self.manifest.metadata.adapter_type
            sent = 0
            for uid, result in run_results.items():
                status = {"success": "succeeded", "error": "failed"}.get(str(result.get("status")))
                node = self.manifest.nodes.get(uid)
                if (status is None or node is None or node.resource_type not in MATERIALIZATION_NODE_TYPES
                        or not node.relation_name or self.disable_assets
                        or not self._get_node_prefect_config(node).get("enable_assets", True)):
                    continue
                upstream = [self._create_asset_from_node(up, adapter_type)
                            for up, config in self._get_upstream_manifest_nodes_and_configs(node)
                            if up.resource_type in REFERENCE_NODE_TYPES
                            or (up.resource_type in MATERIALIZATION_NODE_TYPES and config.get("enable_assets", True))]
                for asset in upstream:
                    emit_event(event="prefect.asset.referenced", resource=AssetContext.asset_as_resource(asset), related=[])
                emit_event(
                    event=f"prefect.asset.materialization.{status}",
                    resource=AssetContext.asset_as_resource(self._create_asset_from_node(node, adapter_type)),
                    related=[*(AssetContext.asset_as_related(a) for a in upstream), AssetContext.related_materialized_by("dbt")],
                    payload={k: result[k] for k in ("status", "message", "execution_time") if result.get(k) is not None},
                )
                sent += 1
            return sent

    return LandingDbtRunner(manifest=manifest, **kwargs)


_DBT_LEVELS = ["debug", "test", "info", "warn", "error"]  # dbt's event levels, least important first
_LOGGING_LEVELS = {"debug": 10, "test": 10, "info": 20, "warn": 30, "error": 40}


def _flow_run_logger(flow_run: dict | None, flow=None):
    """The logger of dbt's lines when its nodes run without a task each: the flow run's."""
    from prefect.logging.loggers import PrefectLogAdapter, get_logger

    return PrefectLogAdapter(get_logger("prefect.flow_runs"), extra={
        "flow_run_id": str(flow_run.get("id")) if flow_run else "<unknown>",
        "flow_run_name": flow_run.get("name") if flow_run else "<unknown>",
        "flow_name": flow.name if flow else "<unknown>"})


_parsed: dict[str, object] = {}  # the warm runner keeps the parsed project between builds
_parse_lock = threading.Lock()


def parsed_project(settings: Settings, log_path: Path):
    """dbt's Manifest of the project as it is now, parsed once per change of the project (or of the environment
    dbt reads): builds then do only the build. None if dbt cannot parse it; the build then reports dbt's error."""
    from dbt.cli.main import dbtRunner

    project = settings.dbt_project_dir
    key = "|".join([project_fingerprint(project), str(project), str(settings.dbt_target_dir),
                    *(f"{k}={v}" for k, v in sorted(settings.dbt_env().items()))])
    with _parse_lock:
        if key in _parsed:
            return _parsed[key]
        done = dbtRunner().invoke(["parse", "--project-dir", str(project), "--profiles-dir", str(project),
                                   "--target-path", str(settings.dbt_target_dir), "--log-path", str(log_path), "--quiet"])
        if not done.success or done.result is None:
            return None
        _parsed.clear()
        _parsed[key] = done.result
        return done.result


def artifact_key(names: list[str], and_names: list[str]) -> str:
    """One artifact key per kind of build (Prefect keeps each key's versions): lowercase, digits and dashes."""
    text = "-".join(and_names or names)
    return "landing-build-" + re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


def rows_per_model(settings: Settings, built_nodes: list[str]) -> dict[str, int | None]:
    """Rows in each built model's relation, read from the warehouse after the build released it."""
    import duckdb

    models = [n.split(" ", 1)[1] for n in built_nodes if n.startswith(("model ", "seed ", "snapshot "))]
    rows: dict[str, int | None] = {}
    try:
        con = duckdb.connect(str(settings.warehouse), read_only=True)
    except duckdb.Error:
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
        lines = [f"# dbt-build {', '.join(record.datasets)}: {record.status.value}", "",
                 "## Files this build loaded", "", "| dataset | accepted file | dropped as | event |",
                 "|---|---|---|---|"]
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
        lines += [f"| {m} | {'?' if n is None else n} |" for m, n in rows_per_model(settings, record.built_nodes).items()]
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
