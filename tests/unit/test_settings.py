"""Settings: the environment another process, and dbt, read them from."""

from __future__ import annotations

from pathlib import Path

from landing.settings import REPO_ROOT, Settings


def test_to_env_round_trips_and_carries_what_dbt_reads(tmp_path, monkeypatch):
    settings = Settings(root=tmp_path / "drop", state_dir=tmp_path / "state", burst_window_seconds=7)
    env = settings.to_env()
    assert env["LANDING_ACCEPTED_ROOT"] == str(tmp_path / "drop" / "_accepted")  # derived, yet dbt needs it
    assert env["LANDING_LAKE"] == settings.lake_catalog_uri  # the lake dbt writes
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


def test_a_build_file_from_before_the_lake_is_looked_for_beside_the_readers_old_copy(tmp_path):
    settings = Settings(state_dir=tmp_path / "state", warehouse_path=tmp_path / "bi" / "shop.duckdb")
    assert settings.warehouse == tmp_path / "bi" / "shop.duckdb"
    assert settings.build_warehouse == tmp_path / "bi" / "shop.build.duckdb"  # what an upgrade moves into the lake
    assert "LANDING_LAKE" in (REPO_ROOT / "dbt" / "profiles.yml").read_text()
    assert "LANDING_BUILD_WAREHOUSE_PATH" not in settings.dbt_env()  # dbt reads the lake alone


def test_dbt_env_mismatch_names_each_variable_and_what_to_do(tmp_path):
    settings = Settings(root=tmp_path / "drop", state_dir=tmp_path / "state")
    assert settings.dbt_env_mismatch(settings.to_env()) is None
    said = settings.dbt_env_mismatch({"LANDING_ROOT": "/elsewhere"})
    assert "LANDING_ROOT=/elsewhere where these settings say " + str(tmp_path / "drop") in said
    assert "LANDING_ACCEPTED_ROOT=(unset)" in said and "LANDING_LAKE=(unset)" in said
    assert "Settings.to_env()" in said


def test_every_setting_has_a_description():
    missing = [name for name, f in Settings.model_fields.items() if not f.description]
    assert not missing, f"settings without a description: {missing}"
    assert Path(Settings().dbt_project_dir).name == "dbt"


def test_a_shared_lake_s_credentials_never_reach_a_message_and_reach_every_attach(tmp_path, monkeypatch):
    """A PostgreSQL catalog with a password in it is refused (DuckDB's errors quote the catalog whole), saying where
    the password goes; an s3:// data path's credentials become one secret scoped to the data path, in dbt's
    environment (never in a mismatch message) and in the ATTACH every process runs, and the DuckDB CLI line shows the
    secret as ***. Machines that name one catalog differently share its writer's slot."""
    import pytest

    from automations.build_state import writer_limit_name
    from landing import lake

    for catalog in (
        "postgres:host=db password = s3cr'et dbname=lake",
        "postgres:PASSWORD='a b' host=db",
        "postgres:postgresql://u:s3cr@et@db/lake",
    ):
        with pytest.raises(ValueError, match="pgpass file") as refused:
            Settings(lake_catalog=catalog)
        assert "s3cr" not in str(refused.value) and "a b" not in str(refused.value)
    settings = Settings(
        state_dir=tmp_path,
        lake_catalog="postgres:host=db port=5432 user=lake dbname=lake passfile=/etc/landing/lake.pgpass",
        lake_data_path="s3://warehouse/lake",
        lake_s3_endpoint="127.0.0.1:8333",
        lake_s3_key_id="landing",
        lake_s3_secret="k3y",
        lake_s3_use_ssl=False,
    )
    elsewhere = Settings(
        lake_catalog="postgres:dbname=lake sslmode=require host=DB user=other passfile=/home/x/.pgpass"
    )
    assert (
        writer_limit_name(elsewhere) == writer_limit_name(settings) != writer_limit_name(Settings(state_dir=tmp_path))
    )
    assert settings.lake_secret_sql == (
        "create or replace secret landing_lake_s3 (type s3, scope 's3://warehouse/lake/', region 'us-east-1', "
        "key_id 'landing', secret 'k3y', endpoint '127.0.0.1:8333', url_style 'path', use_ssl false)"
    )
    assert settings.dbt_env()["LANDING_LAKE_SECRET_SQL"] == settings.lake_secret_sql
    mismatch = settings.dbt_env_mismatch({})
    assert "LANDING_LAKE_SECRET_SQL differs" in mismatch and "k3y" not in mismatch
    assert lake.attach_sql(settings).startswith(settings.lake_secret_sql + "; attach ")
    line = lake.cli_line(settings)
    assert "k3y" not in line and "secret '***'" in line
    on_disk = Settings(state_dir=tmp_path)
    assert on_disk.lake_secret_sql is None and on_disk.dbt_env()["LANDING_LAKE_SECRET_SQL"] == ""
    assert not lake.attach_sql(on_disk).startswith("create")
    for k, v in settings.to_env().items():
        monkeypatch.setenv(k, v)
    assert Settings().lake_secret_sql == settings.lake_secret_sql  # the other processes make the same secret
