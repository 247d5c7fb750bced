"""A sensor running in the test process, and helpers to read back exactly what it announced."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from landing.catalog import load_catalog
from landing.contract import INCOMING_DIR, rows_to_jsonl, write_atomically
from landing.events import FILE_CREATED
from sensors.sensor import Sensor
from testkit.local import read_events


def rows(tag: str, n: int = 3) -> bytes:
    """JSONL unique to `tag`, so no two tests share an event id on the shared server."""
    return "".join(json.dumps({"id": i, "title": f"{tag}-{i}", "price": 1.5}) + "\n" for i in range(n)).encode()


def accepted_without_event(settings, dataset: str, rows: list[dict]) -> Path:
    """A file in the dataset's accepted area whose event was lost: what a trigger lost under load leaves behind."""
    ds = load_catalog(settings).get(dataset)
    return write_atomically(ds.accepted_path, rows_to_jsonl(rows), ds.suffix, incoming=settings.accepted / INCOMING_DIR)


class Harness:
    def __init__(self, settings, polling=False):
        self.settings = settings
        self.polling = polling
        self.since = datetime.now(timezone.utc) - timedelta(seconds=2)
        self.sensor: Sensor | None = None
        self.folder = settings.root / "dummyjson" / "products"
        self.folder.mkdir(parents=True, exist_ok=True)

    def start(self):
        self.sensor = Sensor(self.settings, polling=self.polling, poll_interval=0.2).start()
        return self

    def stop(self):
        if self.sensor:
            self.sensor.stop()
            self.sensor = None

    def events(self, name=FILE_CREATED, expect=None, timeout=20):
        root = str(Path(os.path.realpath(self.settings.root)))
        found = read_events(name, self.since, "landing.dataset.", timeout=timeout, expect=None)
        deadline = time.monotonic() + timeout
        while True:
            mine = [
                e for e in found if str(e.payload.get("path", e.payload.get("quarantined_to", ""))).startswith(root)
            ]
            if expect is None or len(mine) >= expect or time.monotonic() > deadline:
                return mine
            time.sleep(0.5)
            found = read_events(name, self.since, "landing.dataset.", timeout=timeout, expect=None)

    def quiet_events(self, name=FILE_CREATED):
        """Events after giving the sensor time to (wrongly) announce something."""
        if self.sensor:
            self.sensor.drain()
        time.sleep(self.settings.settle_seconds + 1.5)
        return self.events(name)
