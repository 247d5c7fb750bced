"""The sensor's screening (sensors/screening.py), without a server: ignored, unmatched, refused, over the cap, duplicates,
and a backlog in arrival order."""

from __future__ import annotations

import hashlib
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


def screener(settings, catalog, ledger, max_file_bytes=1_000_000):
    from sensors.screening import SayOnce, Screener

    root = str(settings.root.resolve()) + os.sep
    own = (str(settings.accepted.resolve()) + os.sep, root + "_quarantine" + os.sep)
    return Screener(catalog, ledger, root, own, max_file_bytes, SayOnce())


def test_the_screener_alone_reads_and_identifies_and_leaves_the_work_to_the_decider(settings, catalog, tmp_path):
    """The Screener on its own: paths in, a Batch out; it reads the ledger, writes nothing and moves nothing."""
    from landing.ledger import Ledger, ledger_path
    from sensors.screening import Candidate, ToQuarantine, Unfinished

    folder = catalog.get("shop.products").path
    folder.mkdir(parents=True)
    for name, data in (("a.jsonl", GOOD), ("b.jsonl", GOOD), ("big.jsonl", GOOD * 100), (".hidden", GOOD)):
        (folder / name).write_bytes(data)
    (folder / "crashed.jsonl").write_bytes(b'{"id": 9}\n')
    ledger = Ledger(ledger_path(settings.state_dir))
    try:
        st = (folder / "crashed.jsonl").stat()
        ledger.record(
            str(folder / "crashed.jsonl"),
            "shop.products",
            "f" * 64,
            st.st_size,
            st.st_mtime_ns,
            "pending",
            accepted_path=str(settings.accepted / "shop" / "products" / "x.jsonl"),
        )
        before = ledger.rows()
        s = screener(settings, catalog, ledger, max_file_bytes=len(GOOD) * 10)
        batch = s.screen_many(
            [str(folder / n) for n in ("a.jsonl", "b.jsonl", "big.jsonl", ".hidden", "crashed.jsonl")]
        )
        assert ledger.rows() == before
    finally:
        ledger.close()
    assert batch.decisions == {str(folder / ".hidden"): "ignored: temporary or hidden name"}
    [[first]] = batch.todo.values()
    assert isinstance(first, Candidate) and first.path == str(folder / "a.jsonl")
    assert first.sha256 == hashlib.sha256(GOOD).hexdigest()
    [(again, owner)] = batch.duplicates
    assert (again.path, owner) == (str(folder / "b.jsonl"), str(folder / "a.jsonl"))
    [big] = batch.quarantine
    assert isinstance(big, ToQuarantine) and "LANDING_MAX_FILE_BYTES" in big.reason
    [crashed] = batch.unfinished
    assert isinstance(crashed, Unfinished) and crashed.accepted.endswith("x.jsonl")
    assert sorted(os.listdir(folder)) == [".hidden", "a.jsonl", "b.jsonl", "big.jsonl", "crashed.jsonl"]


def test_the_same_bytes_dropped_again_under_the_same_name_are_a_duplicate(sensor, settings):
    """`cp a.jsonl landing/…/` run twice: the second copy is not accepted or announced again, and the first drop's
    record (which `explain` and the loader read) stays as it was."""
    path = drop(sensor, "shop.products", "a.jsonl", GOOD)
    assert sensor.process(path) == "accepted"
    [first] = sensor.ledger.rows()
    for _ in range(2):
        assert drop(sensor, "shop.products", "a.jsonl", GOOD) == path
        assert sensor.process(path) == "duplicate"
    assert sensor.ledger.rows() == [first] and os.path.exists(path) and len(outbox(settings)) == 1
    assert len(os.listdir(sensor.catalog.get("shop.products").accepted_path)) == 1
    os.unlink(path)
    assert sensor.process(drop(sensor, "shop.products", "a.jsonl", GOOD + GOOD)) == "accepted"


def test_explain_says_a_file_dropped_again_under_its_name_is_a_duplicate_left_in_place(sensor, settings, catalog):
    from ops.inspect import explain

    path = drop(sensor, "shop.products", "a.jsonl", GOOD)
    assert sensor.process(path) == "accepted"
    assert drop(sensor, "shop.products", "a.jsonl", GOOD) == path and sensor.process(path) == "duplicate"
    lines: list[str] = []
    explain(path, settings, out=lines.append, catalog=catalog)
    assert any(line.startswith("now       the same bytes were dropped") for line in lines), lines
    drop(sensor, "shop.products", "a.jsonl", GOOD + GOOD)  # not yet decided: other content
    lines.clear()
    explain(path, settings, out=lines.append, catalog=catalog)
    assert any("holds other content since" in line for line in lines), lines
