"""The sensor's screening (sensors/screening.py), without a server: ignored, unmatched, refused, over the cap, duplicates,
and a backlog in arrival order."""

from __future__ import annotations

import json
import os

import pytest

from sensors.sensor import Sensor
from tests.unit.sensor_kit import GOOD, drop, outbox


def test_the_same_content_under_another_name_is_a_duplicate_left_in_place(sensor, settings):
    assert sensor.process(drop(sensor, "shop.products", "a.jsonl", GOOD)) == "accepted"
    again = drop(sensor, "shop.products", "copy of a.jsonl", GOOD)
    assert sensor.process(again) == "duplicate"
    assert os.path.exists(again) and len(outbox(settings)) == 1


def test_duplicates_within_one_batch_are_accepted_once(sensor, settings):
    paths = [drop(sensor, "shop.products", f"{i}.jsonl", GOOD) for i in range(3)]
    decisions = sensor.process_many(paths)
    assert sorted(decisions.values()) == ["accepted", "duplicate", "duplicate"]
    assert len(outbox(settings)) == 1


@pytest.mark.parametrize("name", [".hidden.jsonl", "x.jsonl.part", "x.jsonl~", "x.tmp"])
def test_temporary_and_hidden_names_are_never_data(sensor, name):
    assert sensor.process(drop(sensor, "shop.products", name, GOOD)).startswith("ignored")


def test_a_file_no_source_declares_is_left_alone(sensor, settings):
    (settings.root / "elsewhere").mkdir(parents=True)
    path = settings.root / "elsewhere" / "x.jsonl"
    path.write_bytes(GOOD)
    assert sensor.process(str(path)) == "unmatched" and path.exists()


def test_a_symlink_out_of_the_root_is_refused(sensor, tmp_path):
    outside = tmp_path / "secret.jsonl"
    outside.write_bytes(GOOD)
    link = sensor.catalog.get("shop.products").path / "link.jsonl"
    link.symlink_to(outside)
    assert sensor.process(str(link)) == "refused" and outside.exists()


def test_a_file_over_the_cap_is_quarantined_naming_the_setting(settings, catalog):
    s = Sensor(settings.model_copy(update={"max_file_bytes": 10}), catalog=catalog)
    try:
        catalog.get("shop.products").path.mkdir(parents=True)
        assert s.process(drop(s, "shop.products", "big.jsonl", GOOD)) == "quarantined"
        assert "LANDING_MAX_FILE_BYTES" in json.dumps(outbox(settings))
    finally:
        s.stop(flush_timeout=0)


def test_the_catch_up_decides_a_backlog_in_arrival_order(sensor, settings):
    rows = [b'{"id": %d, "title": "t", "price": 1}\n' % i for i in range(3)]
    for name, data in zip(["c.jsonl", "a.jsonl", "b.jsonl"], rows):
        drop(sensor, "shop.products", name, data)
        os.utime(sensor.catalog.get("shop.products").path / name, (1, 1))  # long settled
    assert sensor.catch_up() == 3
    dropped = [e["payload"]["dropped_as"] for e in outbox(settings)]
    assert dropped == ["shop/products/c.jsonl", "shop/products/a.jsonl", "shop/products/b.jsonl"]
    assert sensor.catch_up() == 0
