"""The Prefect UI's event feed, loaded in headless Chromium, shows a landed file with readable ids."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from landing.contract import land_rows
from landing.events import FILE_CREATED
from ops.local import using_server, read_events
from ops.local import PrefectServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"), reason="chromium is not installed (.ci/run installs it)")
def test_event_feed_shows_the_landing_event(settings, tmp_path):

    assert CHROMIUM, "CI must have chromium: .ci/run installs Debian's chromium package"
    server = PrefectServer(tmp_path / "prefect-ui", ui=True).start()
    try:
        with using_server(server.api_url):
            since = datetime.now(timezone.utc) - timedelta(seconds=5)
            landed = land_rows("dummyjson.products", [{"id": 1, "title": "seen in the UI", "price": 1}], "test:ui", settings)
            # the server stores received events in batches: wait until its API lists it, as the UI will ask
            assert read_events(FILE_CREATED, since, "landing.dataset.", timeout=30, expect=1)
        expected = ["landing.file.created", "landing.dataset.dummyjson.products", f"landing.file.{landed.relative_path}"]
        dom = ""
        for _ in range(5):  # the single-page app renders the feed after its API calls return; a busy machine is slow
            dom = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=15000", "--dump-dom",
                 f"http://127.0.0.1:{server.port}/events"],
                capture_output=True, text=True, timeout=90,
            ).stdout
            if all(text in dom for text in expected):  # the event's name can show (in the filter) before its row
                break
        for text in expected:
            assert text in dom, f"{text!r} is not on the events page"
    finally:
        server.stop()
