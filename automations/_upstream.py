"""The fence around automations' uses of prefect-dbt, dbt, dbt-duckdb and Prefect internals (docs/upstream.md U1 to U8, U16).

Every private upstream name the build layer touches is here and nowhere else (tests/unit/test_upstream.py checks both:
the fence, and the exact upstream shape each use relies on). docs/upstream.md says what each use is, and why.
"""

from __future__ import annotations

import functools

from landing.events import dataset_asset_key


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
                return Asset(
                    key=dataset_asset_key(name),
                    properties=AssetProperties(name=name, description=manifest_node.description or None),
                )
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
                if (
                    status is None
                    or node is None
                    or node.resource_type not in MATERIALIZATION_NODE_TYPES
                    or not node.relation_name
                    or self.disable_assets
                    or not self._get_node_prefect_config(node).get("enable_assets", True)
                ):
                    continue
                upstream = [
                    self._create_asset_from_node(up, adapter_type)
                    for up, config in self._get_upstream_manifest_nodes_and_configs(node)
                    if up.resource_type in REFERENCE_NODE_TYPES
                    or (up.resource_type in MATERIALIZATION_NODE_TYPES and config.get("enable_assets", True))
                ]
                for asset in upstream:
                    emit_event(
                        event="prefect.asset.referenced", resource=AssetContext.asset_as_resource(asset), related=[]
                    )
                emit_event(
                    event=f"prefect.asset.materialization.{status}",
                    resource=AssetContext.asset_as_resource(self._create_asset_from_node(node, adapter_type)),
                    related=[
                        *(AssetContext.asset_as_related(a) for a in upstream),
                        AssetContext.related_materialized_by("dbt"),
                    ],
                    payload={
                        k: result[k] for k in ("status", "message", "execution_time") if result.get(k) is not None
                    },
                )
                sent += 1
            return sent

    return LandingDbtRunner(manifest=manifest, **kwargs)


_DBT_LEVELS = ["debug", "test", "info", "warn", "error"]  # dbt's event levels, least important first
_LOGGING_LEVELS = {"debug": 10, "test": 10, "info": 20, "warn": 30, "error": 40}


def _flow_run_logger(flow_run: dict | None, flow=None):
    """The logger of dbt's lines when its nodes run without a task each: the flow run's."""
    from prefect.logging.loggers import PrefectLogAdapter, get_logger

    return PrefectLogAdapter(
        get_logger("prefect.flow_runs"),
        extra={
            "flow_run_id": str(flow_run.get("id")) if flow_run else "<unknown>",
            "flow_run_name": flow_run.get("name") if flow_run else "<unknown>",
            "flow_name": flow.name if flow else "<unknown>",
        },
    )


def interrupt_dbt() -> None:
    """Interrupt the open queries of the in-process dbt build (dbt-duckdb: the cursor's `interrupt()`)."""
    try:
        from dbt.adapters.factory import FACTORY
    except ImportError:
        return
    for adapter in list(FACTORY.adapters.values()):
        try:
            adapter.cancel_open_connections()
        except Exception:  # nothing open, or closed meanwhile
            pass


def release_warehouse() -> None:
    """Keep dbt-duckdb's in-process DuckDB instance with the lake attached between builds (attaching it, extensions
    loaded, costs 0.15 to 0.2 s a build), and nothing else: every attached database but the lake is detached.
    Anything odd closes the instance.
    dbt-duckdb keeps the instance in a class attribute and offers no public way to reach or close it.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        conn = getattr(env, "conn", None)
        if env is None:
            return
        try:
            if conn is None or getattr(env, "handle_count", 0):
                raise RuntimeError("a dbt handle is still open")
            with conn.cursor() as cur:
                names = [
                    name
                    for (name,) in cur.execute(
                        "select database_name from duckdb_databases() where not internal and database_name "
                        "not in ('memory', 'lake')"
                    ).fetchall()
                ]
                for name in names:
                    cur.execute('detach "' + name.replace('"', '""') + '"')
        except Exception:
            DuckDBConnectionManager._ENV = None
            env.close()


def close_warehouse() -> None:
    """Close dbt-duckdb's in-process DuckDB instance (the lake's attachment with it)."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    with DuckDBConnectionManager._LOCK:
        env, DuckDBConnectionManager._ENV = DuckDBConnectionManager._ENV, None
        if env is not None:
            env.close()


def set_cancel_intent() -> None:
    """U7: tell Prefect's engine that the SIGTERM about to come is a cancel (the state its runner's control channel
    would set), so the run ends Cancelled, not Crashed."""
    from prefect._internal import control_listener

    control_listener._set_intent("cancel")


def clear_cancel_intent() -> None:
    """U7: forget a cancel intent once the run has ended."""
    from prefect._internal import control_listener

    control_listener.clear_intent()


def share_tls_contexts() -> None:
    """One SSL context per CA bundle for every Prefect client this process makes.

    Each Prefect client loads the CA bundle into a new SSL context (about 40 ms with OpenSSL 3, even for an http://
    API), and a build makes a dozen clients: the flow engine's, and prefect-dbt's, one per dbt log line outside a
    node. Sharing a context is what httpx does within one client; Prefect has no setting for it yet (PrefectHQ/prefect
    pull request 19106, "allow using custom SSL contexts")."""
    import functools
    import ssl
    import types

    import prefect.client.orchestration as orchestration

    if isinstance(orchestration.ssl, types.SimpleNamespace):
        return
    shared = types.SimpleNamespace(**{k: getattr(ssl, k) for k in dir(ssl) if not k.startswith("__")})
    shared.create_default_context = functools.lru_cache(maxsize=4)(ssl.create_default_context)
    orchestration.ssl = shared


def find_dbt_plugins_once() -> None:
    """U16: dbt looks for plugin modules (`dbt_*` on sys.path) once per process, not once per invocation.

    Every `dbtRunner.invoke` sets up dbt's plugin manager, which walks every module on sys.path (`pkgutil.iter_modules`)
    for names starting with `dbt_`: 60 to 90 ms a build in the warm runner, whose sys.path holds Prefect and dbt. dbt
    keeps what it found only with its "test caching" switch on (dbt_common.tests.enable_test_caching), which also
    keeps its parses of Jinja text keyed by the text. A dbt plugin installed while the runner runs is found when it
    restarts."""
    from dbt_common.tests import enable_test_caching

    enable_test_caching()
