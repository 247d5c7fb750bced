"""The sensor sends events without loading Prefect: what that saves is what keeps it fast and small at scale."""

from __future__ import annotations

import subprocess
import sys

from landing.settings import REPO_ROOT
from landing.transport import events_url


def test_the_sensor_process_never_imports_prefect():
    code = (
        "import sys, sensors.__main__, landing.contract, landing.reader, landing.ledger; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_events_url_follows_the_api_url():
    assert events_url("http://127.0.0.1:4200/api") == "ws://127.0.0.1:4200/api/events/in"
    assert events_url("https://prefect.example.com/api/") == "wss://prefect.example.com/api/events/in"
