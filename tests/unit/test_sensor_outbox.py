"""The sensor's outbox (sensors/outbox.py), without a server: an unreachable server keeps every event in the ledger,
retried with backoff, and says so once."""

from __future__ import annotations

import logging

from tests.unit.sensor_kit import drop, outbox

UNREACHABLE = "http://127.0.0.1:9/api"  # nothing listens on port 9


def test_an_unreachable_server_keeps_the_events_and_backs_off(sensor, settings, monkeypatch, caplog):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("PREFECT_API_URL", UNREACHABLE)  # the sensor's own process reads the environment
    with temporary_settings(updates={PREFECT_API_URL: UNREACHABLE}):  # where Prefect is loaded, its settings count
        for i, name in enumerate(("a.jsonl", "b.jsonl")):
            data = b'{"id": %d, "title": "a", "price": 1.5}\n' % i
            assert sensor.process(drop(sensor, "shop.products", name, data)) == "accepted"
        with caplog.at_level(logging.WARNING, logger="landing.sensor"):
            assert sensor.flush_once() is False
            assert sensor.flush_once() is False  # not due yet: backed off, nothing tried
    assert len(outbox(settings)) == 2  # still there, sent on a later try
    assert sensor._fail_streak == 1 and sum("waiting for the server" in r.message for r in caplog.records) == 1
