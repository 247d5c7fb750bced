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
    assert sensor.outbox.fail_streak == 1 and sum("waiting for the server" in r.message for r in caplog.records) == 1


def test_the_outbox_alone_sends_nothing_while_held_and_stops_when_told(settings, monkeypatch):
    """The Outbox on its own: the ledger's events, a wake and a stop; held, it tries no send at all.

    Its control flow only: the send is a stand-in that records each try and fails as an unreachable server does
    (the real transport to an unreachable server is the test above's). With the real one, a full suite once saw no try
    in 60 s (2026-12-06, not reproduced in isolation); a stand-in makes hold, wake and stop the only things tested."""
    import threading
    import time

    from prefect.settings import PREFECT_API_URL, temporary_settings

    import sensors.outbox
    from landing.ledger import Ledger, ledger_path
    from landing.transport import EmitError
    from sensors.outbox import Outbox
    from sensors.screening import SayOnce
    from testkit.local import wait_for

    tried = []

    def unreachable(texts):
        tried.append(len(texts))
        raise EmitError("could not send: the server is unreachable (a stand-in)")

    monkeypatch.setattr(sensors.outbox, "send_events", unreachable)
    monkeypatch.setenv("PREFECT_API_URL", UNREACHABLE)
    ledger = Ledger(ledger_path(settings.state_dir))
    box, stop = Outbox(ledger, SayOnce()), threading.Event()
    runner = threading.Thread(target=box.run, args=(stop,), daemon=True)
    try:
        event = {"id": "00000000-0000-0000-0000-000000000001", "event": "landing.file.created"}
        ledger.record("/x/a.jsonl", "shop.products", "a" * 64, 1, 1, "pending", event_id=event["id"], event=event)
        box.hold = True
        with temporary_settings(updates={PREFECT_API_URL: UNREACHABLE}):
            runner.start()
            box.wake.set()
            time.sleep(0.3)
            assert box.fail_streak == 0 and tried == [], "held, yet it tried to send"
            box.hold = False  # released: the next wake tries, and the unreachable server keeps the event waiting
            box.wake.set()
            # at least one: a busy machine may poll after the backoff's second try (the streak grows each second)
            # (60 s: the first send in a worker imports and starts Prefect's client, seconds on a busy machine)
            wait_for(lambda: box.fail_streak >= 1, 60, "a send to be tried", interval=0.05)
            assert tried and tried[0] == 1, tried  # the one event, in one batch
            stop.set()
            box.wake.set()
            runner.join(5)
        assert not runner.is_alive()
        assert [e["id"] for _, e in ledger.due(limit=10, now=float("inf"))] == [event["id"]]
    finally:
        stop.set()  # a failed wait leaves no thread sending on a closed ledger into the next test
        box.wake.set()
        if runner.is_alive():
            runner.join(5)
        ledger.close()
