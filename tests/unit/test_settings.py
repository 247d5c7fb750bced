"""Settings: the environment another process, and dbt, read them from."""

from __future__ import annotations

from pathlib import Path

from landing.settings import REPO_ROOT, Settings


def test_to_env_round_trips_and_carries_what_dbt_reads(tmp_path, monkeypatch):
    settings = Settings(root=tmp_path / "drop", state_dir=tmp_path / "state", burst_window_seconds=7)
    env = settings.to_env()
    assert env["LANDING_ACCEPTED_ROOT"] == str(tmp_path / "drop" / "_accepted")  # derived, yet dbt needs it
    assert env["LANDING_BUILD_WAREHOUSE_PATH"] == str(settings.build_warehouse)  # the file dbt writes
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    again = Settings()
    assert (again.root, again.accepted, again.warehouse, again.build_warehouse, again.burst_window_seconds) == (
        settings.root,
        settings.accepted,
        settings.warehouse,
        settings.build_warehouse,
        7,
    )


def test_the_build_writes_its_own_file_beside_the_readers_one(tmp_path):
    settings = Settings(state_dir=tmp_path / "state", warehouse_path=tmp_path / "bi" / "shop.duckdb")
    assert settings.warehouse == tmp_path / "bi" / "shop.duckdb"
    assert settings.build_warehouse == tmp_path / "bi" / "shop.build.duckdb"  # same filesystem: publish is a rename
    assert (
        "LANDING_LAKE" in (REPO_ROOT / "dbt" / "profiles.yml").read_text()
        and "LANDING_BUILD_WAREHOUSE_PATH" in (REPO_ROOT / "dbt" / "macros" / "landing_source.sql").read_text()
    )


def test_dbt_env_mismatch_names_each_variable_and_what_to_do(tmp_path):
    settings = Settings(root=tmp_path / "drop", state_dir=tmp_path / "state")
    assert settings.dbt_env_mismatch(settings.to_env()) is None
    said = settings.dbt_env_mismatch({"LANDING_ROOT": "/elsewhere"})
    assert "LANDING_ROOT=/elsewhere where these settings say " + str(tmp_path / "drop") in said
    assert "LANDING_ACCEPTED_ROOT=(unset)" in said and "LANDING_BUILD_WAREHOUSE_PATH=(unset)" in said
    assert "Settings.to_env()" in said


def test_every_setting_has_a_description():
    missing = [name for name, f in Settings.model_fields.items() if not f.description]
    assert not missing, f"settings without a description: {missing}"
    assert Path(Settings().dbt_project_dir).name == "dbt"
