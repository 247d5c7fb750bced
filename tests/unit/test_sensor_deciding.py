"""The sensor's decisions (sensors/deciding.py), without a server: an accepted file moved under the contract's name with
its event in the outbox."""

from __future__ import annotations

import os


from tests.unit.sensor_kit import GOOD, drop, outbox


def test_a_good_file_is_moved_to_the_accepted_area_and_its_event_waits_in_the_outbox(sensor, settings):
    path = drop(sensor, "shop.products", "mine.jsonl", GOOD)
    assert sensor.process(path) == "accepted"
    assert not os.path.exists(path)
    [accepted] = os.listdir(sensor.catalog.get("shop.products").accepted_path)
    [event] = outbox(settings)
    assert event["event"] == "landing.file.created"
    assert event["payload"]["path"].endswith(accepted) and event["payload"]["dropped_as"] == "shop/products/mine.jsonl"
    assert event["payload"]["rows"] == 1
