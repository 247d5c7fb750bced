"""`landing up`: the whole system (Prefect server, deployments, automations, sensor), on the embedded SQLite server, or
on Prefect's distributed setup when PostgreSQL and Redis URLs are set (`landing up-scale` starts both locally)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx

import automations.apply as apply_automations
import automations.serve as build_runner
import flows.serve as export_runner
import sensors as sensor_command
from automations.build_state import STOP_GRACE_SECONDS
from automations.names import BUILD, RECONCILE, STALE
from landing.catalog import load_catalog
from landing.contract import QUARANTINE_DIR
from landing.settings import REPO_ROOT, Settings
from ops.demo import sample_files
from ops import prefect_server, scaleout

EXPORT_POOL = "landing-exports"
PREFLIGHT_SECONDS = 10.0  # per check of a PostgreSQL or Redis URL: `up` says what is wrong well within 30 s


def _auth(env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """The basic-auth credentials Prefect's client sends (PREFECT_API_AUTH_STRING), for our own plain HTTP calls."""
    value = (env if env is not None else os.environ).get("PREFECT_API_AUTH_STRING")
    return tuple(value.split(":", 1)) if value and ":" in value else None


def _healthy(api_url: str, env: dict[str, str] | None = None) -> bool:
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=2, auth=_auth(env)).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(predicate, timeout: float, what: str, procs: list) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode} while waiting for {what}; see its output above")
        if predicate():
            return
        time.sleep(0.5)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


CRASH_WINDOW_SECONDS = 60.0
MAX_RESTARTS = 3  # restarts allowed per component within the window; one more crash stops everything


@dataclass
class Component:
    """One supervised process: how to start it, how to stop it, and when it last crashed."""

    name: str
    args: list[str]
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 20.0
    proc: subprocess.Popen | None = None
    crashes: list[float] = field(default_factory=list)
    restart_at: float | None = None


class Supervisor:
    """Start components, restart a crashed one with backoff, give up (naming it) when it keeps crashing."""

    def __init__(
        self,
        env: dict[str, str],
        window: float = CRASH_WINDOW_SECONDS,
        max_restarts: int = MAX_RESTARTS,
        first_delay: float = 1.0,
    ):
        self.env, self.window, self.max_restarts, self.first_delay = env, window, max_restarts, first_delay
        self.components: list[Component] = []

    def start(self, component: Component) -> Component:
        component.proc = subprocess.Popen(component.args, env=self.env, cwd=REPO_ROOT, start_new_session=True)
        component.restart_at = None
        if component not in self.components:
            self.components.append(component)
        return component

    def check(self) -> str | None:
        """Restart what crashed and is due; the reason to stop everything, or None."""
        now = time.monotonic()
        for c in self.components:
            if c.restart_at is not None:
                if now >= c.restart_at:
                    self.start(c)
                    print(f"{c.name} restarted (pid {c.proc.pid})", flush=True)
                continue
            code = c.proc.poll()
            if code is None:
                continue
            c.crashes = [t for t in c.crashes if now - t < self.window] + [now]
            if len(c.crashes) > self.max_restarts:
                return (
                    f"{c.name} exited with {code} and has crashed {len(c.crashes)} times within {self.window:.0f} s; "
                    f"stopping everything (see its output above)"
                )
            delay = min(self.first_delay * 2 ** (len(c.crashes) - 1), 8 * self.first_delay)
            c.restart_at = now + delay
            print(
                f"{c.name} exited with {code}; restarting it in {delay:g} s "
                f"(restart {len(c.crashes)} of {self.max_restarts} allowed within {self.window:.0f} s)",
                flush=True,
            )
        return None

    def running(self) -> list[tuple[str, subprocess.Popen]]:
        return [(c.name, c.proc) for c in self.components if c.proc is not None]

    def stop_all(self) -> None:
        # Newest first, one at a time: the runners pause their deployments through the server on exit.
        for c in reversed(self.components):
            proc = c.proc
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(c.stop_signal)
            try:
                proc.wait(c.stop_timeout)
            except subprocess.TimeoutExpired:
                print(f"{c.name} did not stop in {c.stop_timeout:.0f} s; killing it")
                proc.kill()
                proc.wait()


def up(settings: Settings | None = None) -> int:
    """Start every piece, print where things are, and supervise them until Ctrl-C (exit 0) or a component that
    keeps crashing (exit 1, naming it). A crashed component is restarted with backoff."""
    settings = settings or Settings()
    pidfile = _claim(settings)
    if pidfile is None:
        return 1
    env = dict(os.environ)
    env.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "1")
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.update(settings.to_env())
    if settings.scale_out:
        problem = scaleout.preflight(settings, PREFLIGHT_SECONDS)
        if problem:
            pidfile.unlink(missing_ok=True)
            print(problem, flush=True)
            return 1
        env.update(scaleout.prefect_env(settings, scaleout.api_auth(settings)))
    supervisor = Supervisor(env)
    stopping = False

    def stop_all(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)

    def spawn(name: str, args: list[str], **how) -> subprocess.Popen:
        return supervisor.start(Component(name, args, **how)).proc

    failure = None
    try:
        if settings.scale_out:
            api_url = _scale_out_server(settings, env, spawn, supervisor.running)
        else:
            api_url = _server(settings, env, spawn, supervisor.running)
        runners = settings.build_runners if settings.scale_out else 1
        for n in range(1, runners + 1):
            # SIGINT: the warm runner lets a build in progress finish (or cancels it after the grace), never Crashed
            spawn(
                "dbt deployment" if runners == 1 else f"dbt runner {n}",
                [sys.executable, "-m", build_runner.__name__],
                stop_signal=signal.SIGINT,
                stop_timeout=STOP_GRACE_SECONDS + 20,
            )
        _wait(
            lambda: all(_deployment_exists(api_url, d, env) for d in (BUILD, STALE, RECONCILE)),
            120,
            "the dbt deployment to register",
            supervisor.running(),
        )
        registering = (
            subprocess.Popen(
                [sys.executable, "-m", export_runner.__name__, "--work-pool", EXPORT_POOL], env=env, cwd=REPO_ROOT
            )
            if settings.scale_out
            else None
        )
        if subprocess.run([sys.executable, "-m", apply_automations.__name__], env=env, cwd=REPO_ROOT).returncode:
            raise SystemExit("apply.py failed; see above")
        if registering is not None:
            if registering.wait():
                raise SystemExit(f"registering the export deployments on work pool {EXPORT_POOL} failed; see above")
            spawn(
                "export worker",
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "worker",
                    "start",
                    "--pool",
                    EXPORT_POOL,
                    "--type",
                    "process",
                    "--name",
                    f"landing-exports-{os.uname().nodename}-{os.getpid()}",
                ],
                stop_signal=signal.SIGINT,
            )
        else:
            spawn("export deployments", [sys.executable, "-m", export_runner.__name__], stop_signal=signal.SIGINT)
        if settings.verify_interval_seconds:
            spawn("verification", [sys.executable, "-m", build_runner.__name__, "--verify"], stop_signal=signal.SIGINT)
        spawn("sensor", [sys.executable, "-m", sensor_command.__name__])
        pids = _write_pids(settings, supervisor, None)
        _banner(settings, api_url)
        while not stopping and failure is None:
            failure = supervisor.check()
            pids = _write_pids(settings, supervisor, pids)
            time.sleep(0.5)
        if failure:
            print(failure, flush=True)
        return 1 if failure else 0
    finally:
        supervisor.stop_all()
        pidfile.unlink(missing_ok=True)
        (settings.state_dir / "up.components.json").unlink(missing_ok=True)
        print("stopped")


def up_scale(settings: Settings | None = None) -> int:
    """`up` on Prefect's distributed setup, with PostgreSQL and Redis of its own on loopback (data in
    <state_dir>/scale-out/, kept between runs), stopped again when `up` ends."""
    from pydantic import SecretStr

    settings = settings or Settings()
    base = settings.state_dir / "scale-out"
    try:
        postgres = scaleout.LocalPostgres(base / "postgres").start()
    except RuntimeError as exc:
        print(f"could not start PostgreSQL: {exc}", flush=True)
        return 1
    redis = scaleout.LocalRedis(base / "redis")
    s3 = scaleout.LocalS3(base / "s3")
    try:
        redis.start()
        update = {"prefect_database_url": SecretStr(postgres.url), "redis_url": SecretStr(redis.url)}
        lake_here = ""
        if settings.lake_catalog is None and settings.lake_data_path is None:  # the lake as machines share it
            s3.start()
            update.update(lake_catalog=postgres.lake_catalog(), **s3.lake_settings())
            lake_here = (
                f"; the lake's catalog in its database `lake`, its data in SeaweedFS's S3 on {s3.endpoint}.\n"
                "For `landing sql` and `landing status` in another shell, set the lake's settings there (the ports "
                "are new each run):\n"
                f"  export LANDING_LAKE_CATALOG='{update['lake_catalog']}' "
                f"LANDING_LAKE_DATA_PATH={update['lake_data_path']} LANDING_LAKE_S3_ENDPOINT={s3.endpoint} "
                f"LANDING_LAKE_S3_KEY_ID={s3.key_id} LANDING_LAKE_S3_SECRET=$(cat {s3.secret_file}) "
                "LANDING_LAKE_S3_USE_SSL=false"
            )
        print(
            f"PostgreSQL on 127.0.0.1:{postgres.port} (data in {postgres.data_dir}), Redis on 127.0.0.1:{redis.port}"
            + lake_here,
            flush=True,
        )
        return up(settings.model_copy(update=update))
    except RuntimeError as exc:
        print(f"could not start the scale-out stack's servers: {exc}", flush=True)
        return 1
    finally:
        redis.stop()
        s3.stop()
        postgres.stop()


def _write_pids(settings: Settings, supervisor: Supervisor, written: dict | None) -> dict:
    """`<state>/up.components.json`: each component's pid, for operators (and tests) who need to find one."""
    pids = {c.name: c.proc.pid for c in supervisor.components if c.proc is not None}
    if pids != written:
        tmp = settings.state_dir / "up.components.tmp"
        tmp.write_text(json.dumps(pids))
        tmp.replace(settings.state_dir / "up.components.json")
    return pids


def _claim(settings: Settings):
    """The pid file that marks this state folder as in use, or None (said why) when a live stack holds it."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    pidfile = settings.state_dir / "up.pid"
    if pidfile.exists():
        try:
            pid = int(pidfile.read_text().strip())
        except ValueError:
            pid = 0
        if pid and _pid_alive(pid):
            print(
                f"already running (pid {pid}, state {settings.state_dir}); stop it with Ctrl-C in its terminal or `kill {pid}`."
            )
            return None
    pidfile.write_text(str(os.getpid()))
    return pidfile


def _local_api(settings: Settings, env: dict[str, str]) -> tuple[str, str, str]:
    """Host, port and URL of the API started here (PREFECT_SERVER_API_HOST/PORT, loopback:4200 by default), with
    `env` pointed at it for every component."""
    port = env.get("PREFECT_SERVER_API_PORT", "4200")
    host = env.get("PREFECT_SERVER_API_HOST", "127.0.0.1")
    api_url = f"http://{host}:{port}/api"
    env["PREFECT_API_URL"] = api_url
    env.setdefault("PREFECT_HOME", str(settings.state_dir / "prefect"))
    # The UI calls the API at PREFECT_UI_API_URL, which defaults to port 4200.
    env.setdefault("PREFECT_UI_API_URL", api_url)
    return host, port, api_url


def _server(settings: Settings, env: dict[str, str], spawn, running) -> str:
    """The API URL of the server at PREFECT_API_URL if it answers, else of a local one started here (env updated)."""
    api_url = env.get("PREFECT_API_URL")
    if api_url and _healthy(api_url):
        print(f"using the Prefect server at {api_url}")
        return api_url
    if api_url:
        print(f"PREFECT_API_URL={api_url} does not answer; starting a local server instead")
    host, port, api_url = _local_api(settings, env)
    spawn(
        "prefect server",
        [sys.executable, "-m", prefect_server.__name__, "server", "start", "--host", host, "--port", port],
    )
    _wait(lambda: _healthy(api_url), 180, f"the Prefect server at {api_url}", running())
    return api_url


def _scale_out_server(settings: Settings, env: dict[str, str], spawn, running) -> str:
    """Prefect's distributed setup on the settings' PostgreSQL and Redis: the database migrated once, API processes
    (`--no-services --workers N`) and the background services in a process apart. Returns the API URL."""
    host, port, api_url = _local_api(settings, env)
    print(
        f"scale-out: Prefect on {scaleout.redacted(env['PREFECT_API_DATABASE_CONNECTION_URL'])} and "
        f"{scaleout.redacted(env['PREFECT_REDIS_MESSAGING_URL'])}; migrating the database",
        flush=True,
    )
    done = subprocess.run([sys.executable, "-m", prefect_server.__name__, "prepare"], env=env, cwd=REPO_ROOT)
    if done.returncode:
        raise SystemExit("migrating Prefect's database failed; see above")
    # done once above: API processes starting together would each migrate and register blocks, and collide
    env["PREFECT_API_DATABASE_MIGRATE_ON_START"] = "false"
    env["PREFECT_API_BLOCKS_REGISTER_ON_START"] = "false"
    spawn(
        "prefect api",
        [
            sys.executable,
            "-m",
            prefect_server.__name__,
            "server",
            "start",
            "--no-services",
            "--workers",
            str(settings.api_workers),
            "--host",
            host,
            "--port",
            port,
        ],
    )
    spawn("prefect services", [sys.executable, "-m", prefect_server.__name__, "server", "services", "start"])
    _wait(lambda: _healthy(api_url, env), 180, f"the Prefect API at {api_url}", running())
    return api_url


def _banner(settings: Settings, api_url: str) -> None:
    """Where the UI, the warehouse and every landing folder are, and a command that drops a first file."""
    catalog = load_catalog(settings)
    ui = api_url[: -len("/api")] if api_url.endswith("/api") else api_url
    print("\n=== up ===")
    print(f"Prefect UI:      {ui}")
    shared = " ".join(
        f"{k}={shlex.quote(os.environ[k])}" for k in ("LANDING_ROOT", "LANDING_STATE_DIR") if os.environ.get(k)
    )
    print(
        f"another shell:   export PREFECT_API_URL={api_url}{' ' + shared if shared else ''} (for `landing status`, ...)"
    )
    if settings.scale_out:
        kept = "LANDING_API_AUTH" if settings.api_auth else str(settings.state_dir / "prefect-api-auth")
        print(
            f"credentials:     the API requires basic auth: user:password in {kept} "
            "(the UI asks for it; for the prefect CLI: export PREFECT_API_AUTH_STRING=user:password)"
        )
    from landing import lake

    print(
        f"warehouse:       the lake {settings.lake_name} (each build a snapshot: `landing sql`, or {lake.cli_line(settings)})"
    )
    print("landing folders:")
    width = max(map(len, catalog.datasets), default=0) + 1
    for name, ds in sorted(catalog.datasets.items()):
        print(f"  {name:<{width}} {ds.path}/{ds.glob}")
    samples = [(p, ds) for p, ds in sample_files(catalog) if ds.name == "dummyjson.users"] or sample_files(catalog)
    if samples:
        sample, ds = samples[-1]
        print("drop a file (dbt reads it once the sensor has accepted it into the accepted area):")
        print(f"  cp {sample.relative_to(REPO_ROOT)} {ds.path}/hello-$(date +%s){ds.suffix_for(sample.name)}")
    print(f"accepted files:  {settings.accepted} (what dbt reads)")
    print(f"quarantine:      {settings.root / QUARANTINE_DIR} (bad files, with a .reason.txt each)")
    print("Ctrl-C stops everything.\n")


def _deployment_exists(api_url: str, name: str, env: dict[str, str] | None = None) -> bool:
    try:
        return httpx.get(f"{api_url}/deployments/name/{name}", timeout=2, auth=_auth(env)).status_code == 200
    except httpx.HTTPError:
        return False
