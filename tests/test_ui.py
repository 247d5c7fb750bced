"""The Prefect UI, loaded in headless Chromium: the event feed shows a landed file with readable ids, and a build
run's page shows the file that caused it and the build's artifact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest

from landing.contract import land_rows
from landing.events import FILE_CREATED
from testkit.dummyjson_fake import load_fixture
from testkit.local import PrefectServer, Served, builds, free_port, read_events, using_server, wait_for
from sensors.sensor import Sensor

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


needs_chromium = pytest.mark.skipif(
    not CHROMIUM and not os.environ.get("CI"), reason="chromium is not installed (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """A Prefect server with its UI, for this module; the test process and its children use it."""
    assert CHROMIUM, "CI must have chromium: .ci/run installs Debian's chromium package"
    server = PrefectServer(tmp_path_factory.mktemp("prefect-ui"), ui=True).start()
    try:
        with using_server(server.api_url):
            yield server
    finally:
        server.stop()


def page_dom(url: str, profile, expected: list[str]) -> str:
    """The page's DOM once every expected text is on it (the single-page app renders after its API calls return;
    a busy machine is slow), or the last DOM after five tries."""
    dom = ""
    for _ in range(5):
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        ).stdout
        if all(text in dom for text in expected):
            break
    return dom


def page_text_after_clicks(url: str, profile, labels: list[str], expected: list[str], timeout: float = 90) -> str:
    """The text of the page reached from `url` by clicking what is labelled `labels` (each as it appears), once
    every expected text is on it: headless Chromium driven over the DevTools protocol, as a user clicks."""
    import httpx
    from websockets.sync.client import connect

    port = free_port()
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "--window-size=1400,4000",
            "about:blank",
        ],  # tall: lists render what is in view
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    text = ""
    try:
        pages = wait_for(lambda: _devtools_pages(httpx, port), 30, "Chromium's DevTools endpoint", interval=0.2)
        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as ws:
            calls = iter(range(1, 10_000))

            def call(method: str, **params):
                ident = next(calls)
                ws.send(json.dumps({"id": ident, "method": method, "params": params}))
                while True:
                    reply = json.loads(ws.recv(timeout=30))
                    if reply.get("id") == ident:
                        return reply.get("result", {})

            call("Page.navigate", url=url)
            click = (
                f"(() => {{ for (const label of {json.dumps(labels)}) {{"
                "  const hits = [...document.querySelectorAll('*')].filter(e => e.textContent.trim() === label);"
                "  if (hits.length) hits[hits.length - 1].click(); }"
                " return document.body ? document.body.innerText : ''; })()"
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                text = (
                    call("Runtime.evaluate", expression=click, returnByValue=True).get("result", {}).get("value") or ""
                )
                if all(e in text for e in expected):
                    break
                time.sleep(1)
    finally:
        browser.kill()
        browser.wait()
    return text


def _devtools_pages(httpx, port: int):
    try:
        return [t for t in httpx.get(f"http://127.0.0.1:{port}/json", timeout=2).json() if t.get("type") == "page"]
    except httpx.HTTPError:
        return None


@needs_chromium
def test_event_feed_shows_the_landing_event(settings, tmp_path, ui_server):
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    landed = land_rows("dummyjson.products", [{"id": 1, "title": "seen in the UI", "price": 1}], "test:ui", settings)
    # the server stores received events in batches: wait until its API lists it, as the UI will ask
    assert read_events(FILE_CREATED, since, "landing.dataset.", timeout=30, expect=1)
    # the event's name can show (in the filter) before its row: wait for all three
    expected = ["landing.file.created", "landing.dataset.dummyjson.products", f"landing.file.{landed.relative_path}"]
    dom = page_dom(f"http://127.0.0.1:{ui_server.port}/events", tmp_path / "chrome", expected)
    for text in expected:
        assert text in dom, f"{text!r} is not on the events page"


@needs_chromium
def test_a_build_runs_page_shows_the_file_that_caused_it_and_its_artifact(settings, tmp_path, ui_server):
    from prefect.deployments import run_deployment

    from automations.names import BUILD

    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    dropped = settings.root / "dummyjson" / "users" / "dropped-for-the-ui.jsonl"
    dropped.parent.mkdir(parents=True, exist_ok=True)
    dropped.write_text("".join(json.dumps(u) + "\n" for u in load_fixture("users")[:12]))
    os.utime(dropped, (time.time() - 60, time.time() - 60))  # settled: written a minute ago
    sensor = Sensor(settings).start(watch=False)  # the sensor's --once: accept and announce what is there
    sensor.drain(timeout=60)
    sensor.stop()
    with Served(settings, ui_server.api_url, tmp_path / "runner.log"):
        run = run_deployment(BUILD, parameters={"datasets": ["dummyjson.users"]}, timeout=120)
    assert run.state.is_completed(), run.state
    [record] = [b for b in builds(settings) if b["flow_run_id"] == str(run.id)]
    accepted = record["newest_files"]["dummyjson.users"]
    # the staging model's asset event names its upstream as the dataset, not dbt-duckdb's read_json(...) call
    [referenced] = read_events(
        "prefect.asset.referenced", since, "landing://dataset/dummyjson.users", expect=1, timeout=30
    )
    assert referenced.resource.get("prefect.resource.name") == "dummyjson.users"
    # the model's materialization, sent by the build itself (no task per dbt node): upstream the dataset, by dbt, in this run
    [made] = read_events("prefect.asset.materialization.succeeded", since, "duckdb://", expect=1, timeout=30)
    assert made.resource.get("prefect.resource.name", "").endswith("stage_dummyjson__users"), made.resource
    related = {(r.id, r.role) for r in made.related}
    assert {
        ("landing://dataset/dummyjson.users", "asset"),
        ("dbt", "asset-materialized-by"),
        (f"prefect.flow-run.{run.id}", "flow-run"),
    } <= related, related

    expected = ["Files this build loaded", accepted, dropped.name, "stage_dummyjson__users", "12"]
    # the run page's Artifacts tab, then the build's artifact on it (a card titled with the artifact's key)
    text = page_text_after_clicks(
        f"http://127.0.0.1:{ui_server.port}/runs/flow-run/{run.id}",
        tmp_path / "chrome",
        ["Artifacts", "landing-build-dummyjson-users"],
        expected,
    )
    (tmp_path / "run-page.txt").write_text(text)
    for item in expected:
        assert item in text, f"{item!r} is not on the run's page ({run.id}; its text: {tmp_path / 'run-page.txt'})"
