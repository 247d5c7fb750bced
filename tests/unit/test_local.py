"""testkit.local's environment helpers: where this process, its threads and dbt look."""

from __future__ import annotations

import os
import threading

from landing.settings import Settings
from testkit.local import dbt_environment, using_server


def test_using_server_reaches_threads_started_outside_prefects_context(monkeypatch):
    from prefect.settings import get_current_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    seen = []
    with using_server("http://127.0.0.1:1/api"):
        assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:1/api"
        t = threading.Thread(target=lambda: seen.append(get_current_settings().api.url))  # no context copied
        t.start()
        t.join()
    assert seen == ["http://127.0.0.1:1/api"], "a bare thread would start a throwaway server of its own"
    assert "PREFECT_API_URL" not in os.environ


def test_dbt_environment_sets_what_dbt_reads_then_restores(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDING_ROOT", "/before")
    monkeypatch.delenv("LANDING_WAREHOUSE_PATH", raising=False)
    settings = Settings(root=tmp_path / "drop", state_dir=tmp_path / "state")
    with dbt_environment(settings):
        assert settings.dbt_env_mismatch(os.environ) is None
    assert os.environ["LANDING_ROOT"] == "/before" and "LANDING_WAREHOUSE_PATH" not in os.environ
