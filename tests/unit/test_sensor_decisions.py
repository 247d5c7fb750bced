"""The sensor's decisions about single files, without a server: accept, quarantine, duplicate, ignore, refuse."""

from __future__ import annotations

import json
import os

import pytest

from landing.ledger import Ledger
from sensors.sensor import Sensor

GOOD = b'{"id": 1, "title": "a", "price": 1.5}\n'


@pytest.fixture
def sensor(settings, catalog):
    s = Sensor(settings, catalog=catalog)
    for ds in catalog.datasets.values():
        ds.path.mkdir(parents=True, exist_ok=True)
        ds.accepted_path.mkdir(parents=True, exist_ok=True)
    yield s
    s.stop(flush_timeout=0)


def drop(sensor, dataset: str, name: str, data: bytes) -> str:
    path = sensor.catalog.get(dataset).path / name
    path.write_bytes(data)
    return str(path)


def outbox(settings) -> list[dict]:
    led = Ledger(settings.state_dir / "ledger.sqlite")
    try:
        return [e for _, e in led.due(limit=100, now=float("inf"))]
    finally:
        led.close()


def test_a_good_file_is_moved_to_the_accepted_area_and_its_event_waits_in_the_outbox(sensor, settings):
    path = drop(sensor, "shop.products", "mine.jsonl", GOOD)
    assert sensor.process(path) == "accepted"
    assert not os.path.exists(path)
    [accepted] = os.listdir(sensor.catalog.get("shop.products").accepted_path)
    [event] = outbox(settings)
    assert event["event"] == "landing.file.created"
    assert event["payload"]["path"].endswith(accepted) and event["payload"]["dropped_as"] == "shop/products/mine.jsonl"
    assert event["payload"]["rows"] == 1


def test_a_file_missing_a_required_column_is_quarantined_with_its_reason(sensor, settings):
    path = drop(sensor, "shop.products", "no-title.jsonl", b'{"id": 1, "price": 2}\n')
    assert sensor.process(path) == "quarantined"
    reason = (settings.root / "_quarantine" / "shop.products" / "no-title.jsonl.reason.txt").read_text()
    assert "the required column 'title' is missing" in reason
    [event] = outbox(settings)
    assert event["event"] == "landing.file.rejected" and "title" in event["payload"]["reason"]


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


def test_explain_tells_why_a_file_was_quarantined_from_either_of_its_paths(sensor, settings, catalog):
    from ops.inspect import explain

    path = drop(sensor, "shop.products", "bad.jsonl", b'{"id": "seven", "title": "t"}\n')
    assert sensor.process(path) == "quarantined"
    moved = str(settings.root / "_quarantine" / "shop.products" / "bad.jsonl")
    for target in (moved, path):
        lines: list[str] = []
        assert explain(target, settings, out=lines.append, catalog=catalog) == 0
        text = "\n".join(lines)
        assert f"quarantined {moved} (dropped as {path})" in text
        assert "row 1, column 'id'" in text and "landing.file.rejected" in text
