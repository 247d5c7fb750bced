"""Shared fixtures (a real Prefect server for the session, settings on tmp_path, a loopback DummyJSON), the e2e
marker and the order modules run in."""

from __future__ import annotations

import pytest

from landing.settings import REPO_ROOT, Settings


# The slowest modules first: `make test` spreads whole modules over two workers (pytest-xdist, --dist loadfile) in
# this order, so the long ones start at once instead of finishing last.
SLOW_FIRST = (
    "test_scale_out.py",
    "test_stack.py",
    "test_zero_code_source.py",
    "test_incremental.py",
    "test_equivalence.py",
    "faults/test_server_outage.py",
    "faults/test_sensor_crash.py",
    "test_automations.py",
    "test_readers.py",
    "test_run_control.py",
    "test_sensor.py",
    "faults/test_one_writer.py",
    "test_ui.py",
)


def pytest_ignore_collect(collection_path, config):
    """`-m "not e2e"` (the unit layer) does not even import the e2e modules: everything outside tests/unit is e2e."""
    if (config.getoption("markexpr") or "").strip() == "not e2e" and collection_path.suffix == ".py":
        here = collection_path.resolve()
        unit = REPO_ROOT / "tests" / "unit"
        if here.is_relative_to(REPO_ROOT / "tests") and not here.is_relative_to(unit) and here.name != "conftest.py":
            return True
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/unit/" not in item.nodeid.replace("\\", "/") and not item.nodeid.startswith("unit/"):
            item.add_marker(pytest.mark.e2e)  # everything outside tests/unit runs against real servers and processes

    def weight(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return next((i for i, name in enumerate(SLOW_FIRST) if path.endswith(name)), len(SLOW_FIRST))

    items.sort(key=weight)  # stable: tests keep their order within a module


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One real Prefect server (SQLite) for the session; the test process, its threads and its children use it."""
    from testkit.local import (
        PrefectServer,
        using_server,
    )  # imported by the e2e layer only: the unit layer starts faster

    server = PrefectServer(tmp_path_factory.mktemp("prefect-home")).start()
    try:
        with using_server(server.api_url):
            yield server
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)
    finally:
        server.stop()


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings with every path under tmp_path, on the repository's dbt project."""
    return Settings(
        root=tmp_path / "landing",
        state_dir=tmp_path / "state",
        dbt_project_dir=REPO_ROOT / "dbt",
        http_backoff_seconds=0.01,
        reconcile_seconds=0,  # a test that wants the scheduled safety net turns it on
        verify_interval_seconds=0,  # and the scheduled verification (daily at 03:00 UTC) the same
    )


@pytest.fixture
def sensor_settings(settings):
    return settings.model_copy(update={"settle_seconds": 1.0, "rescan_seconds": 3600})


@pytest.fixture
def dummyjson():
    from testkit.dummyjson_fake import DummyJSONServer

    with DummyJSONServer() as server:
        yield server
