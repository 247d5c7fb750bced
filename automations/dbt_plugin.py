"""dbt-duckdb plugin (dbt/profiles.yml `plugins:`): an s3:// lake data path's credentials, made in dbt's DuckDB instance
before the profile attaches the lake, from this process's environment and never through dbt's env_var() (whose
values dbt keeps in its target folder)."""

from __future__ import annotations

import os

from dbt.adapters.duckdb.plugins import BasePlugin

SECRET_SQL = "LANDING_LAKE_SECRET_SQL"  # Settings.dbt_env sets it: Settings.lake_secret_sql, or empty


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:
        sql = os.environ.get(SECRET_SQL)
        if sql:
            conn.execute(sql)
