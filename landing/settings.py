"""The one settings object for the project: every path and URL, from LANDING_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]  # a checkout's root: tests, benchmarks and the samples, not defaults


class Settings(BaseSettings):
    """Settings for flows, the sensor, the automations and the dbt deployment.

    Every field reads the environment variable `LANDING_<FIELD>` (for example
    `LANDING_ROOT`, `LANDING_WAREHOUSE_PATH`). Prefect's own settings
    (`PREFECT_API_URL`, `PREFECT_HOME`, ...) stay Prefect's.
    """

    # hide_input_in_errors: a refused value is not repeated in the error (a catalog or URL may hold a password)
    model_config = SettingsConfigDict(env_prefix="LANDING_", extra="ignore", hide_input_in_errors=True)

    root: Path = Field(
        default=Path("/tmp/landing"),
        description="Landing root, where people and other systems drop files: each dataset has a folder below it "
        "(LANDING_ROOT). dbt never reads here.",
    )
    accepted_root: Path | None = Field(
        default=None,
        description="Where accepted files live and dbt reads (LANDING_ACCEPTED_ROOT, the root every source's "
        "external_location names). Defaults to <root>/_accepted; keep it on the same filesystem as the root so "
        "accepting a file is a rename.",
    )
    state_dir: Path = Field(
        default_factory=lambda: Path.cwd() / ".state",
        description="Folder for local state: the warehouse, the build runs' dbt target folder, the ledger, the build log "
        "(default: .state in the directory the command starts in). "
        "(The catalog cache lives in the dbt project's own target/ folder, keyed by the project's content.)",
    )
    warehouse_path: Path | None = Field(
        default=None,
        description="Where the readers' copy was before the lake (a DuckDB file published by copy after every build): "
        "the first build on the lake deletes it, and the build's own file is named after it. Defaults to "
        "<state_dir>/warehouse.duckdb. Readers read the lake (lake_catalog).",
    )
    build_warehouse_path: Path | None = Field(
        default=None,
        description="The build's own DuckDB file of a warehouse from before the lake held the raw tables and the "
        "load history: the first build moves every table of it into the lake, keeping each row and load id, and "
        "renames it <name>.moved-to-lake. Defaults to <name>.build.duckdb beside warehouse_path.",
    )
    lake_catalog: str | None = Field(
        default=None,
        description="The readers' warehouse is a DuckLake: this is its catalog, a SQLite file (on one machine) or "
        "`postgres:<libpq connection string>` (machines that share it). dbt writes its models there; each commit is "
        "a snapshot readers see at once, and no reader ever blocks a build. Defaults to <state_dir>/lake.sqlite.",
    )
    lake_data_path: str | None = Field(
        default=None,
        description="Where the lake's Parquet files live: a folder, or an s3:// prefix machines share. Defaults to "
        "<state_dir>/lake/.",
    )
    lake_s3_endpoint: str | None = Field(
        default=None,
        description="For an s3:// lake_data_path on an S3-compatible server (SeaweedFS, MinIO, Ceph): its host:port. "
        "Unset for AWS S3.",
    )
    lake_s3_key_id: str | None = Field(
        default=None,
        description="The access key id that reads and writes an s3:// lake_data_path (every runner and reader needs it).",
    )
    lake_s3_secret: SecretStr | None = Field(
        default=None, description="The secret access key that goes with lake_s3_key_id."
    )
    lake_s3_region: str = Field(default="us-east-1", description="The region of an s3:// lake_data_path.")
    lake_s3_use_ssl: bool = Field(
        default=True,
        description="Whether the S3 endpoint speaks HTTPS (false for a server on loopback without TLS).",
    )
    snapshot_retention_hours: float = Field(
        default=168.0,
        ge=0,
        description="How long the lake keeps a snapshot readers can go back to (`landing sql --at`, `landing "
        "rollback`). Maintenance (the landing-maintain deployment) expires older ones, folds small files into larger "
        "ones and deletes files no snapshot needs, so the lake's files and disk stay bounded however many builds run.",
    )
    transient_retries: int = Field(
        default=4,
        ge=0,
        description="How many times a build that failed for a reason other than its data (a lock on the warehouse, the "
        "Prefect server unreachable) is tried again at once, with backoff (0.5, 1, 2, 4 s ...). A data failure (a test, "
        "a cast) is never retried.",
    )
    accepted_retention_days: float = Field(
        default=7.0,
        ge=0,
        description="How long an accepted JSON file stays as it landed once it is loaded into the warehouse. After "
        "that, a build folds each day's loaded files of a dataset into one compressed part under "
        "<accepted root>/_compacted/<dataset>/ (every field of every row, with the file each came from) and deletes "
        "them, so a folder does not grow with everything that ever landed and `landing rebuild` reads one part per "
        "day instead of thousands of small files. 0 keeps every file as it landed. CSV and Parquet files always stay.",
    )
    dbt_project_dir: Path = Field(
        default_factory=lambda: Path.cwd() / "dbt",
        description="The dbt project (with its profiles.yml) whose sources define the datasets (default: dbt in the "
        "directory the command starts in, as in a checkout of this repository).",
    )
    dummyjson_base_url: str = Field(
        default="https://dummyjson.com",
        description="Base URL of the DummyJSON API the E&L flows export from.",
    )
    http_timeout_seconds: float = Field(
        default=10.0,
        description="Connect and read timeout, in seconds, for each HTTP request of an export.",
    )
    http_retries: int = Field(
        default=5,
        description="How many times an export retries a request answered with 429 or 5xx, or that failed to connect.",
    )
    http_backoff_seconds: float = Field(
        default=0.5,
        description="Base of the exponential backoff between retries (Retry-After wins when the server sends it).",
    )
    emit_patience_seconds: float = Field(
        default=120.0,
        description="How long a flow keeps retrying a landing event while the Prefect server is unreachable; after that "
        "the event waits in the ledger's outbox and the sensor sends it.",
    )
    page_size: int = Field(
        default=100,
        description="Rows asked for per page (DummyJSON's `limit`); paging goes on until `total`.",
    )
    burst_window_seconds: int = Field(
        default=5,
        description="Burst window: the first file of a window builds at once, a catch-up build runs when the window closes.",
    )
    and_window_seconds: int = Field(
        default=3600,
        description="Default window within which every source of a model that needs all its sources must land.",
    )
    reconcile_seconds: int = Field(
        default=300,
        description="Safety net: how often the landing-reconcile deployment builds any dataset whose files changed "
        "since its last successful build (a trigger lost under load); 0 turns it off.",
    )
    maintain_seconds: int = Field(
        default=3600,
        ge=0,
        description="How often the landing-maintain deployment keeps the lake bounded: snapshots past "
        "snapshot_retention_hours expired, files with many deleted rows rewritten, small files merged, files no "
        "snapshot needs deleted. It holds the writer's slot while it works (a build waits); 0 turns it off.",
    )
    reconcile_grace_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Safety net: the reconcile run builds a dataset only when its newest file landed at least this many "
        "seconds ago and no build has covered it, so it never races the automations' own builds of fresh files.",
    )
    verify_interval_seconds: int = Field(
        default=86400,
        ge=0,
        description="How often the landing-verify deployment checks the incremental builds (`landing verify`): every "
        "model downstream of a landing dataset is built from scratch in a scratch copy of the readers' warehouse and "
        "compared with the live tables; a difference sends landing.verify.failed. Runs fall on multiples of the "
        "interval after 03:00 UTC (daily at 03:00 by default); 0 turns it off.",
    )
    max_file_bytes: int = Field(
        default=50 * 1024 * 1024,
        description="The sensor quarantines dropped files larger than this many bytes (validation reads the whole file).",
    )
    settle_seconds: float = Field(
        default=2.0,
        description="Sensor: a file whose size and mtime stayed the same this long is complete (polling mode, catch-up of files still being written).",
    )
    close_quiet_seconds: float = Field(
        default=0.05,
        ge=0,
        description="Sensor (inotify): after a writer closes a file, how long nothing more may happen to it (a write, "
        "a chmod, a utime) before it is accepted, so that tools which set the mode or times after closing (shutil.copy, "
        "copy2, wget, curl -R) finish first; each change starts the wait again. A file renamed into place is accepted "
        "at once.",
    )
    rescan_seconds: float = Field(
        default=60.0,
        description="Sensor: how often to rescan the landing folders for files no filesystem event announced (moved in from elsewhere).",
    )
    prefect_database_url: SecretStr | None = Field(
        default=None,
        description="Scale-out: PostgreSQL URL of Prefect's database (postgresql+asyncpg://user:password@host:5432/prefect, "
        "PostgreSQL 14 or newer). Set with redis_url, `landing up` runs Prefect's distributed setup on them instead of "
        "the embedded SQLite server; `make up-scale` starts both on loopback and sets them.",
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="Scale-out: Redis URL (redis://:password@host:6379/0) for Prefect's messaging broker and cache, "
        "causal ordering, concurrency leases and Docket. Needed with prefect_database_url.",
    )
    api_auth: SecretStr | None = Field(
        default=None,
        description="Scale-out: the `user:password` Prefect's API requires (basic auth) and every component sends. "
        "Unset, `landing up` makes one once and keeps it in <state_dir>/prefect-api-auth (mode 600).",
    )
    api_workers: int = Field(
        default=2,
        ge=1,
        description="Scale-out: API server processes (`prefect server start --no-services --workers N`), the background "
        "services running apart in one more process.",
    )
    build_runners: int = Field(
        default=2,
        ge=1,
        description="Scale-out: warm runners serving the dbt deployments. Builds of one warehouse still run one at a time "
        "(a Prefect global concurrency limit keyed on the warehouse); runners let builds of other warehouses not wait.",
    )
    dbt_node_tasks: bool = Field(
        default=False,
        description="Run each dbt node as a Prefect task (prefect-dbt's default), so the build run's graph shows every "
        "model and test; it costs about 0.3 s a node on 2 cores. Off, dbt's log lines still go to the run and the build "
        "emits the same asset events (materializations, with their upstream datasets) in one batch at its end.",
    )
    export_cron: str = Field(
        default="0 * * * *",
        description="Cron schedule of the E&L export deployments; the only cron schedules in the system.",
    )

    @property
    def scale_out(self) -> bool:
        """Whether `landing up` runs Prefect's distributed setup (PostgreSQL and Redis) rather than the embedded server."""
        return self.prefect_database_url is not None or self.redis_url is not None

    @property
    def warehouse(self) -> Path:
        """The readers' copy from before the lake (removed by the first build on the lake; names the build's file)."""
        return self.warehouse_path or self.state_dir / "warehouse.duckdb"

    @property
    def lake_catalog_uri(self) -> str:
        """The lake as DuckDB's ATTACH names it (`ducklake:sqlite:<file>` or `ducklake:postgres:<connection>`)."""
        catalog = self.lake_catalog or str(self.state_dir / "lake.sqlite")
        return f"ducklake:{catalog}" if catalog.startswith("postgres:") else f"ducklake:sqlite:{catalog}"

    @field_validator("lake_catalog")
    @classmethod
    def _catalog_without_password(cls, value: str | None) -> str | None:
        if value and _has_password(value):
            raise ValueError(
                "LANDING_LAKE_CATALOG holds a password, and DuckDB's error messages quote the catalog whole: put the "
                "password in a pgpass file (add passfile=/path/to/file, mode 600, a line host:port:dbname:user:password) "
                "or in PGPASSWORD, and leave it out of the catalog"
            )
        return value

    @property
    def lake_name(self) -> str:
        """The lake as messages name it: its catalog with any password hidden."""
        return _hide_password(self.lake_catalog_uri)

    @property
    def lake_secret_sql(self) -> str | None:
        """The CREATE SECRET that lets DuckDB read and write an s3:// data path (scoped to it, so it never replaces a
        reader's own secrets); None for a data path on a disk. Every connection that attaches the lake runs it."""
        if not self.lake_data.startswith("s3://"):
            return None

        def lit(text: str) -> str:
            return "'" + text.replace("'", "''") + "'"

        options = [f"scope {lit(self.lake_data)}", f"region {lit(self.lake_s3_region)}"]
        if self.lake_s3_key_id:
            secret = self.lake_s3_secret.get_secret_value() if self.lake_s3_secret else ""
            options += [f"key_id {lit(self.lake_s3_key_id)}", f"secret {lit(secret)}"]
        if self.lake_s3_endpoint:
            options += [f"endpoint {lit(self.lake_s3_endpoint)}", "url_style 'path'"]
        options.append(f"use_ssl {str(self.lake_s3_use_ssl).lower()}")
        return f"create or replace secret landing_lake_s3 (type s3, {', '.join(options)})"

    @property
    def lake_data(self) -> str:
        """The lake's data path, ending in a separator as DuckLake wants it."""
        path = self.lake_data_path or str(self.state_dir / "lake")
        return path if path.endswith("/") else path + "/"

    @property
    def build_warehouse(self) -> Path:
        """The build file of a warehouse from before the lake held the raw tables (moved into it by the first build)."""
        return self.build_warehouse_path or self.warehouse.with_name(
            f"{self.warehouse.stem}.build{self.warehouse.suffix}"
        )

    @property
    def accepted(self) -> Path:
        """The root of the accepted area: the only files dbt reads."""
        return self.accepted_root or self.root / "_accepted"

    @property
    def dbt_target_dir(self) -> Path:
        """The target folder of the build runs (manifest, run results), in the state folder; the catalog cache is in the
        project's target/."""
        return self.state_dir / "dbt-target"

    @property
    def builds_log(self) -> Path:
        """One JSON line per build decision of the dbt deployment."""
        return self.state_dir / "builds.jsonl"

    def to_env(self) -> dict[str, str]:
        """These settings as the environment another process reads them from: the LANDING_* variables (unset optional
        ones left out), and the ones the dbt project reads through env_var()."""
        prefix = self.model_config["env_prefix"]
        fields = {
            f"{prefix}{name.upper()}": str(value.get_secret_value() if isinstance(value, SecretStr) else value)
            for name, value in self.model_dump().items()
            if value is not None
        }
        return {**fields, **self.dbt_env()}

    def dbt_env(self) -> dict[str, str]:
        """Environment variables the dbt project reads through env_var()."""
        return {
            "LANDING_ROOT": str(self.root),
            "LANDING_ACCEPTED_ROOT": str(self.accepted),
            "LANDING_LAKE": self.lake_catalog_uri,
            "LANDING_LAKE_DATA_PATH": self.lake_data,
            "LANDING_LAKE_SECRET_SQL": self.lake_secret_sql or "",
        }

    def dbt_env_mismatch(self, environ: Mapping[str, str]) -> str | None:
        """Why dbt, reading `environ`, would not read these settings' folders and warehouse; None if it would."""
        wrong = [
            f"{k} differs from these settings (not shown: it holds credentials)"
            if k == "LANDING_LAKE_SECRET_SQL"
            else f"{k}={_hide_password(environ.get(k, '(unset)'))} where these settings say {_hide_password(v)}"
            for k, v in self.dbt_env().items()
            if environ.get(k) != v
        ]
        if not wrong:
            return None
        return (
            "dbt reads the landing folders and the warehouse from the environment (env_var() in the dbt project), "
            f"and this process has {'; '.join(wrong)}. Start the process with the settings' environment "
            "(Settings.to_env(); `landing up` does this) rather than passing other settings to a running one."
        )


_PASSWORD = r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)"  # libpq's key = value, the value quoted or not
_URL_PASSWORD = r"(://[^/:@\s]*:)[^/\s]*@"  # a URL's user:password@ (to the last @ before the path)


def _hide_password(text: str) -> str:
    """`text` with a libpq `password=...` or a URL's `user:password@` shown as ***."""
    import re

    text = re.sub(_PASSWORD, r"\1***", text, flags=re.I)
    return re.sub(_URL_PASSWORD, r"\1***@", text)


def _has_password(text: str) -> bool:
    import re

    return bool(re.search(_PASSWORD, text, flags=re.I) or re.search(_URL_PASSWORD, text))


@contextmanager
def environment(updates: Mapping[str, str]) -> Iterator[None]:
    """This process's environment with `updates`, then back as it was (for dbt, which reads its folders and
    warehouse through env_var(): `environment(settings.dbt_env())`)."""
    saved = {k: os.environ.get(k) for k in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
