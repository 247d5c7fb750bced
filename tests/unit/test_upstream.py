"""The upstream fence and contracts (docs/upstream.md): private upstream names only in `_upstream.py` modules, and
the exact upstream shape each entry relies on, checked without a server or a browser.

Each contract names its docs/upstream.md entry when it fails, and names the upstream attribute whose removal must make
it fail (the second test removes it and checks that it does). `make canary` runs this file against the newest
releases and prints which entries hold.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import traceback
from pathlib import Path

import pytest

from landing.settings import REPO_ROOT

UPSTREAM = {
    "prefect",
    "prefect_dbt",
    "prefect_redis",
    "dbt",
    "watchdog",
    "httpx",
    "websockets",
    "duckdb",
    "pydantic",
    "pydantic_settings",
    "sqlalchemy",
    "fastapi",
    "uvicorn",
}
# modules that are an upstream package's internals though their names are public
INTERNAL = (
    "prefect.server",
    "prefect._internal",
    "prefect_dbt.core.runner",
    "dbt.adapters.factory",
    "dbt.adapters.duckdb.connections",
    "watchdog.observers.api",
    "watchdog.observers.inotify",
)
PRODUCT = ("landing", "flows", "sensors", "automations", "ops", "benchmarks")
FENCE = "_upstream.py"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _internal(module: str) -> bool:
    return any(module == i or module.startswith(i + ".") for i in INTERNAL)


def _root(node):
    while isinstance(node, ast.Attribute):
        node = node.value
    return node


def private_uses(source: str) -> list[str]:
    """Where a module touches an upstream package's private or internal names: imports of private or internal
    modules and names, private attributes of upstream objects (and of `super()` or `self` in a subclass of one),
    and assignments to upstream attributes (a patch)."""
    tree = ast.parse(source)
    bound: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in UPSTREAM:
                    bound.add(a.asname or a.name.split(".")[0])
                    if any(_private(p) for p in a.name.split(".")) or _internal(a.name):
                        found.append(f"line {node.lineno}: import {a.name}")
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] in UPSTREAM
        ):
            for a in node.names:
                bound.add(a.asname or a.name)
                if any(_private(p) for p in node.module.split(".")) or _private(a.name) or _internal(node.module):
                    found.append(f"line {node.lineno}: from {node.module} import {a.name}")
    subclasses = [
        c
        for c in ast.walk(tree)
        if isinstance(c, ast.ClassDef) and any(isinstance(_root(b), ast.Name) and _root(b).id in bound for b in c.bases)
    ]
    for cls in subclasses:
        own = {n.name for n in ast.walk(cls) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and node.attr not in own
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ):
                found.append(f"line {node.lineno}: self.{node.attr} in {cls.name}, a subclass of an upstream class")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = _root(node)
            if isinstance(root, ast.Name) and root.id in bound:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
            elif isinstance(root, ast.Call) and isinstance(root.func, ast.Name) and root.func.id == "super":
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(t, ast.Attribute) and isinstance(_root(t), ast.Name) and _root(t).id in bound:
                        found.append(f"line {node.lineno}: assigns {ast.unparse(t)}")
    return found


def product_modules():
    for package in PRODUCT:
        yield from sorted((REPO_ROOT / package).rglob("*.py"))


def test_private_upstream_names_are_used_only_behind_the_fence():
    offenders = {
        str(p.relative_to(REPO_ROOT)): uses
        for p in product_modules()
        if p.name != FENCE and (uses := private_uses(p.read_text()))
    }
    assert offenders == {}, (
        "private or internal upstream names outside an _upstream.py module: move the use into "
        f"its layer's _upstream.py and add a docs/upstream.md entry: {offenders}"
    )


def test_the_fence_test_finds_each_kind_of_use():
    assert private_uses("from prefect._internal import control_listener")
    assert private_uses("from prefect.types import _datetime")
    assert private_uses("import prefect_dbt.core.runner as m\nm.dbtRunner = None")
    assert private_uses("from dbt.adapters.duckdb.connections import DuckDBConnectionManager as D\nD._ENV")
    assert private_uses(
        "from prefect_dbt import PrefectDbtRunner\nclass R(PrefectDbtRunner):\n"
        "    def f(self):\n        return self._create_asset_from_node(1, 2)"
    )
    assert private_uses("class R(object):\n    def f(self):\n        return super()._hook()")
    assert not private_uses(
        "import prefect\nfrom prefect import flow\nclass A:\n    def f(self):\n        return self._x"
    )


def test_every_fenced_module_is_in_the_inventory():
    inventory = (REPO_ROOT / "docs" / "upstream.md").read_text()
    for path in product_modules():
        if path.name == FENCE:
            assert str(path.relative_to(REPO_ROOT)) in inventory, f"{path} is not named in docs/upstream.md"
    for entry, *_ in CONTRACTS:
        assert f"### {entry}" in inventory, f"contract {entry} has no docs/upstream.md entry"


# ---- the contracts: one per docs/upstream.md entry -------------------------------------------------------------

CONTRACTS: list[tuple[str, object, tuple[str, str]]] = []  # (entry, check, (module path of the owner, attribute))


def contract(entry: str, owner: str, attribute: str):
    """`owner` is `module` or `module:Class`; removing `attribute` from it must make the check fail."""

    def register(check):
        CONTRACTS.append((entry, check, (owner, attribute)))
        return check

    return register


def _resolve(owner: str):
    module, _, name = owner.partition(":")
    obj = importlib.import_module(module)
    for part in filter(None, name.split(".")):
        obj = getattr(obj, part)
    return obj


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


@contract("U1", "prefect_dbt:PrefectDbtRunner", "_create_asset_from_node")
def u1_asset_from_node():
    from prefect_dbt import PrefectDbtRunner

    assert _params(PrefectDbtRunner._create_asset_from_node)[:3] == ["self", "manifest_node", "adapter_type"]


@contract("U2", "prefect_dbt:PrefectDbtRunner", "_create_unified_callback")
def u2_unified_callback():
    from prefect_dbt import PrefectDbtRunner

    params = _params(PrefectDbtRunner._create_unified_callback)
    assert params[:4] == ["self", "task_state", "log_level", "context"] and "create_tasks_for_nodes" in params
    assert "_create_unified_callback(" in inspect.getsource(PrefectDbtRunner.invoke)


@contract("U3", "prefect_dbt.core.runner", "dbtRunner")
def u3_runner_module_global():
    from dbt.cli.main import dbtRunner
    import prefect_dbt.core.runner as module

    assert module.dbtRunner is dbtRunner and "manifest" in _params(dbtRunner.__init__)
    assert "dbtRunner(" in inspect.getsource(module.PrefectDbtRunner.invoke)  # looked up in the module at each call


@contract("U4", "prefect_dbt:PrefectDbtRunner", "_get_upstream_manifest_nodes_and_configs")
def u4_asset_event_helpers():
    from prefect_dbt import PrefectDbtRunner
    from prefect_dbt.core.runner import MATERIALIZATION_NODE_TYPES, REFERENCE_NODE_TYPES

    assert _params(PrefectDbtRunner._get_node_prefect_config)[:2] == ["self", "manifest_node"]
    assert _params(PrefectDbtRunner._get_upstream_manifest_nodes_and_configs)[:2] == ["self", "manifest_node"]
    assert MATERIALIZATION_NODE_TYPES and REFERENCE_NODE_TYPES
    assert isinstance(inspect.getattr_static(PrefectDbtRunner, "manifest"), property)
    assert "disable_assets" in _params(PrefectDbtRunner.__init__)


@contract("U5", "dbt.adapters.duckdb.connections:DuckDBConnectionManager", "_ENV")
def u5_duckdb_handle():
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    assert hasattr(DuckDBConnectionManager._LOCK, "acquire") and "_ENV" in vars(DuckDBConnectionManager)
    assert "cls._ENV" in inspect.getsource(DuckDBConnectionManager.open)  # the handle dbt-duckdb keeps and reuses
    from dbt.adapters.duckdb.environments.local import LocalEnvironment

    handle = inspect.getsource(LocalEnvironment.handle)  # release_warehouse detaches through the instance it keeps
    assert "self.conn" in handle and "self.handle_count += 1" in handle


@contract("U6", "dbt.adapters.factory", "FACTORY")
def u6_adapter_factory():
    from dbt.adapters.factory import FACTORY

    assert isinstance(FACTORY.adapters, dict)
    from dbt.adapters.base import BaseAdapter

    assert callable(BaseAdapter.cancel_open_connections)


@contract("U7", "prefect._internal.control_listener", "_set_intent")
def u7_cancel_intent():
    from prefect._internal import control_listener

    control_listener._set_intent("cancel")
    try:
        assert control_listener.get_intent() == "cancel"
    finally:
        control_listener.clear_intent()
    assert control_listener.get_intent() is None


@contract("U8", "prefect.client.orchestration", "ssl")
def u8_client_tls_context():
    import ssl

    import prefect.client.orchestration as orchestration

    assert orchestration.ssl is ssl or hasattr(orchestration.ssl, "create_default_context")
    source = inspect.getsource(orchestration.PrefectClient.__init__)
    assert "ssl.create_default_context(" in source and 'httpx_settings.setdefault("verify"' in source


@contract("U9", "prefect.events.clients:PrefectEventsClient", "_force_checkpoint")
def u9_force_checkpoint():
    from prefect.events.clients import PrefectEventsClient

    assert inspect.iscoroutinefunction(PrefectEventsClient._force_checkpoint)
    assert _params(PrefectEventsClient._force_checkpoint) == ["self"]


@contract("U10", "prefect.server.api.events", "stream_events_in")
def u10_events_websocket():
    from prefect.events import clients
    from prefect.server.api import events

    routes = {getattr(r, "path", None) for r in events.router.routes}
    assert "/events/in" in routes and callable(events.stream_events_in)
    source = inspect.getsource(clients.PrefectEventsClient)
    assert 'Subprotocol("prefect")' in source and '"type": "auth"' in source


@contract("U11", "prefect.server.database.configurations", "SQLITE_BEGIN_MODE")
def u11_sqlite_begin_mode():
    from prefect.server.database import configurations

    assert isinstance(configurations.SQLITE_BEGIN_MODE.get(), (str, type(None)))
    assert _params(configurations.AioSqliteConfiguration.begin_transaction)[:3] == [
        "self",
        "session",
        "with_for_update",
    ]
    assert "SQLITE_BEGIN_MODE.get()" in inspect.getsource(configurations)  # read when the connection begins


@contract("U12", "prefect.server.api.server", "create_app")
def u12_create_app():
    from prefect.server.api import server

    assert _params(server.create_app) == ["settings", "ephemeral", "webserver_only", "final", "ignore_cache"]


@contract("U13", "prefect.server.models.block_registration", "run_block_auto_registration")
def u13_prepare_database():
    from prefect.server.database import provide_database_interface
    from prefect.server.models.block_registration import run_block_auto_registration

    assert callable(provide_database_interface) and _params(run_block_auto_registration) == ["session"]


@contract("U14", "watchdog.observers.inotify", "InotifyFullEmitter")
def u14_drop_folder_observer():
    """Behaviour, not source text: the fenced observer (`sensors/_upstream.py: inotify_observer()`) on a temporary drop
    folder reports (a) a written file as created and closed, (b) a rename in from a sibling folder as a move to it,
    within 0.4 s though a move out of the folder came just before it (watchdog's default observer holds an unpaired
    IN_MOVED_FROM 0.5 s, and every event behind it, then reports the rename in as created), and (c) a rename within
    the folder as a move to the new name, and (d) a write and a utime after the close as modified and attrib. Without
    `InotifyFullEmitter` the fence falls back to the default observer, and (b) fails."""
    import os
    import tempfile
    import threading
    import time
    from importlib.metadata import version

    from watchdog.events import FileSystemEventHandler

    from sensors._upstream import inotify_observer

    wd, prompt = f"watchdog {version('watchdog')}", 0.4
    seen: list[tuple[float, object]] = []  # (time.monotonic() at dispatch, event)
    arrived = threading.Condition()

    class Recorder(FileSystemEventHandler):
        def on_any_event(self, event):
            with arrived:
                seen.append((time.monotonic(), event))
                arrived.notify_all()

    def path_of(event, kind):
        return os.fsdecode(event.dest_path if kind == "moved" else event.src_path)

    def wait_for(kind, path, since, timeout=1.5):
        """Seconds from `since` to the first `kind` event for `path` (a move's dest_path), or None."""
        with arrived:
            while True:
                for t, e in seen:
                    if t >= since and e.event_type == kind and path_of(e, kind) == path:
                        return t - since
                left = since + timeout - time.monotonic()
                if left <= 0:
                    return None
                arrived.wait(left)

    def saw(since):
        with arrived:
            files = [(t, e) for t, e in seen if t >= since and not e.is_directory]
        shown = [
            f"{e.event_type} {os.path.basename(os.fsdecode(e.src_path)) or repr('')}"
            + (f" -> {os.path.basename(os.fsdecode(e.dest_path))}" if e.dest_path else "")
            + f" at +{(t - since) * 1000:.0f} ms"
            for t, e in files[:6]
        ]
        return f"observer {type(observer).__name__}; saw: {'; '.join(shown) or 'no file event'}"

    with tempfile.TemporaryDirectory(prefix="u14-") as tmp:
        drop, sibling = os.path.join(tmp, "drop"), os.path.join(tmp, "sibling")
        os.mkdir(drop)
        os.mkdir(sibling)
        for name, folder in (("leaving.csv", drop), ("incoming.csv", sibling), ("renamed.csv", drop)):
            with open(os.path.join(folder, name), "w") as f:
                f.write("id\n1\n")
        observer = None
        try:
            observer = inotify_observer()
            observer.schedule(Recorder(), drop, recursive=False)
            observer.start()
        except Exception as exc:
            if observer is not None and observer.is_alive():
                observer.stop()
            raise AssertionError(f"the fenced observer no longer starts on {wd}: {type(exc).__name__}: {exc}") from exc
        try:
            # (a) created, written, closed
            since, written = time.monotonic(), os.path.join(drop, "written.csv")
            with open(written, "w") as f:
                f.write("id\n1\n")
            assert wait_for("created", written, since) is not None, (
                f"no created event for a file written into the folder: {wd} no longer reports IN_CREATE through the "
                f"fenced emitter ({saw(since)})"
            )
            assert wait_for("closed", written, since) is not None, (
                f"no closed event for a written file: {wd} no longer reports IN_CLOSE_WRITE through the fenced "
                f"emitter ({saw(since)})"
            )
            # (b) a move out, then a rename in from a sibling folder
            since, incoming = time.monotonic(), os.path.join(drop, "incoming.csv")
            os.rename(os.path.join(drop, "leaving.csv"), os.path.join(sibling, "leaving.csv"))
            os.rename(os.path.join(sibling, "incoming.csv"), incoming)
            took = wait_for("moved", incoming, since)
            assert took is not None, (
                f"no moved event for a file renamed in from a sibling folder: {wd} no longer reports an unpaired "
                f"IN_MOVED_TO as a move from '' through the fenced emitter, so the sensor would wait for the file "
                f"to settle ({saw(since)})"
            )
            assert took < prompt, (
                f"a rename in after a move out was reported {took * 1000:.0f} ms later (limit {prompt * 1000:.0f} "
                f"ms): {wd} holds events behind an unpaired IN_MOVED_FROM (its 0.5 s move pairing), so the fenced "
                f"emitter's event mask no longer keeps IN_MOVED_FROM out ({saw(since)})"
            )
            # (c) a rename within the folder
            since, renamed = time.monotonic(), os.path.join(drop, "renamed-to.csv")
            os.rename(os.path.join(drop, "renamed.csv"), renamed)
            took = wait_for("moved", renamed, since)
            assert took is not None, (
                f"no moved event to the new name for a rename within the folder: {wd} no longer reports IN_MOVED_TO "
                f"through the fenced emitter ({saw(since)})"
            )
            assert took < prompt, (
                f"a rename within the folder was reported {took * 1000:.0f} ms later (limit {prompt * 1000:.0f} ms): "
                f"{wd} delays IN_MOVED_TO through the fenced emitter ({saw(since)})"
            )
            # (d) a write and a utime after the close: each restarts the sensor's quiet wait
            since = time.monotonic()
            with open(written, "a") as f:
                f.write("2\n")
            assert wait_for("modified", written, since) is not None, (
                f"no modified event for a write after a close: {wd} no longer reports IN_MODIFY through the fenced "
                f"emitter ({saw(since)})"
            )
            since = time.monotonic()
            os.utime(written, (1, 1))
            assert wait_for("attrib", written, since) is not None, (
                f"no attrib event for a utime after a close: {wd} no longer reports IN_ATTRIB through the fenced "
                f"emitter ({saw(since)})"
            )
        finally:
            observer.stop()
            observer.join(5)


@contract(
    "U15",
    "prefect.client.orchestration._concurrency_limits.client:ConcurrencyLimitClient",
    "increment_concurrency_slots_with_lease",
)
def u15_concurrency_leases():
    from prefect.client.orchestration import SyncPrefectClient

    assert _params(SyncPrefectClient.increment_concurrency_slots_with_lease)[:5] == [
        "self",
        "names",
        "slots",
        "mode",
        "lease_duration",
    ]
    assert _params(SyncPrefectClient.renew_concurrency_lease)[:3] == ["self", "lease_id", "lease_duration"]
    assert _params(SyncPrefectClient.release_concurrency_slots_with_lease)[:2] == ["self", "lease_id"]


@contract("U16", "dbt_common.tests", "enable_test_caching")
def u16_dbt_plugins_found_once():
    from dbt.plugins import manager
    from dbt_common import tests as switch

    was, kept, scan = switch.test_caching_enabled(), manager._MODULES_CACHE, manager.PluginManager.get_prefixed_modules
    scans = []
    manager.PluginManager.get_prefixed_modules = classmethod(lambda cls: scans.append(1) or {})
    manager._MODULES_CACHE = None
    switch.enable_test_caching()
    try:
        manager.PluginManager.from_modules("p")
        manager.PluginManager.from_modules("p")
        assert len(scans) == 1, f"dbt looked for plugin modules {len(scans)} times in two set-ups with caching on"
    finally:
        manager.PluginManager.get_prefixed_modules, manager._MODULES_CACHE = scan, kept
        if not was:
            switch.disable_test_caching()


def failure(exc: BaseException) -> str:
    """What broke, never a bare `AssertionError:`: the exception's message, or for an assert without one, its line."""
    message = str(exc).strip()
    if not message:
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        message = (
            f"{frame.line} (no message; {Path(frame.filename).name} line {frame.lineno})" if frame else "no message"
        )
    return f"{type(exc).__name__}: {message}"


@pytest.mark.parametrize("entry, check, removes", CONTRACTS, ids=[c[0] for c in CONTRACTS])
def test_upstream_contract_holds(entry, check, removes):
    try:
        check()
    except Exception as exc:  # AssertionError, or the name is gone
        pytest.fail(f"docs/upstream.md {entry} no longer holds: {failure(exc)}")


def test_a_failure_always_says_what_broke():
    try:
        raise AssertionError()  # what an assert without a message raises outside pytest (`make canary`)
    except AssertionError as exc:
        said = failure(exc)
    assert said.startswith("AssertionError: raise AssertionError()  # what") and "test_upstream.py line" in said, said
    assert failure(KeyError("InotifyFD")) == "KeyError: 'InotifyFD'"


@pytest.mark.parametrize("entry, check, removes", CONTRACTS, ids=[c[0] for c in CONTRACTS])
def test_upstream_contract_fails_without_the_upstream_name(entry, check, removes, monkeypatch):
    owner, attribute = removes
    monkeypatch.delattr(_resolve(owner), attribute)
    with pytest.raises(Exception):
        check()


def canary_table() -> list[tuple[str, str, str]]:
    """(entry, holds or the failure, versions): `make canary` prints it."""
    from importlib.metadata import version

    versions = ", ".join(
        f"{p} {version(p)}" for p in ("prefect", "prefect-dbt", "dbt-core", "dbt-duckdb", "duckdb", "watchdog")
    )
    rows = []
    for entry, check, _ in CONTRACTS:
        try:
            check()
            rows.append((entry, "holds", versions))
        except Exception as exc:
            rows.append((entry, f"BREAKS: {failure(exc)}", versions))
    return rows


if __name__ == "__main__":  # `make canary`: python -m tests.unit.test_upstream in the canary's environment
    table = canary_table()
    print(f"{'entry':<6} result   ({table[0][2] if table else ''})")
    for entry, result, _ in table:
        print(f"{entry:<6} {result}")
    raise SystemExit(0 if all(r == "holds" for _, r, _ in table) else 1)
