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


def test_the_decider_alone_carries_out_a_batch_and_announces_once(settings, catalog, tmp_path):
    """The Decider on its own: a Batch and its verdicts in (made here by hand), the files moved and recorded."""
    from landing.ledger import Ledger, ledger_path
    from landing.reader import InvalidFile
    from sensors.deciding import Decider
    from sensors.screening import Batch, Candidate

    ds = catalog.get("shop.products")
    ds.path.mkdir(parents=True)
    ds.accepted_path.mkdir(parents=True)
    good, bad = ds.path / "good.jsonl", ds.path / "bad.jsonl"
    good.write_bytes(GOOD)
    bad.write_bytes(b"{}\n")
    candidates = [Candidate(str(p), str(p), ds, os.stat(p), p.name[0] * 64, p.name) for p in (good, bad)]
    announced = []
    ledger = Ledger(ledger_path(settings.state_dir))
    root = settings.root.resolve()
    try:
        decider = Decider(
            root, ledger, str(settings.accepted.resolve()) + os.sep, str(root) + os.sep, lambda: announced.append(1)
        )
        decisions = decider.decide(
            Batch(todo={ds.name: candidates}), {str(good): (1, ("colour",)), str(bad): InvalidFile("no rows")}
        )
        records = {os.path.basename(r.path): r for r in ledger.rows()}
    finally:
        ledger.close()
    assert decisions == {str(good): "accepted", str(bad): "quarantined"}
    [accepted] = os.listdir(ds.accepted_path)
    assert (ds.accepted_path / accepted).read_bytes() == GOOD
    assert records["good.jsonl"].undeclared_columns(ds.declared_digest) == ("colour",)
    assert records["bad.jsonl"].status == "quarantined" and records["bad.jsonl"].reason == "no rows"
    assert announced and not good.exists() and not bad.exists()


def test_a_move_a_crash_interrupted_is_finished_by_the_next_start_s_scan(sensor, settings):
    """kill -9 between the ledger's record and the move leaves the file in the drop folder, recorded as it is now:
    the start-up scan must still pick it up (CI's R1 lost three files this way), and the move finishes once."""
    path = drop(sensor, "shop.products", "crashed.jsonl", GOOD)
    ds = sensor.catalog.get("shop.products")
    original = sensor.decider.accept  # record, then "crash" before the move

    def record_only(good):
        from sensors import deciding

        moved = deciding.publish
        deciding.publish = lambda src, dest: None
        try:
            return original(good)
        finally:
            deciding.publish = moved

    sensor.decider.accept = record_only
    assert sensor.process(path) == "accepted" and os.path.exists(path)
    [record] = sensor.ledger.rows()
    assert record.status == "pending" and not os.path.exists(record.accepted_path)
    sensor.decider.accept = original

    assert sensor.catch_up() == 1
    assert not os.path.exists(path) and os.listdir(ds.accepted_path) == [os.path.basename(record.accepted_path)]
    assert [r.status for r in sensor.ledger.rows()] == ["pending"] and len(outbox(settings)) == 1
    assert sensor.catch_up() == 0


def test_a_move_that_cannot_finish_leaves_its_file_and_never_holds_up_the_scan(sensor, settings):
    """A recorded file whose move keeps failing (its accepted folder gone) is said and left in place; the scan decides
    every other file all the same, each time it runs."""
    import shutil

    ds = sensor.catalog.get("shop.products")
    stuck = drop(sensor, "shop.products", "stuck.jsonl", GOOD)
    sensor.ledger.record_many(
        [
            dict(
                path=stuck,
                dataset=ds.name,
                sha256="f" * 64,
                size=os.stat(stuck).st_size,
                mtime_ns=os.stat(stuck).st_mtime_ns,
                status="pending",
                accepted_path=str(settings.root / "gone" / "x.jsonl"),
            )
        ]
    )
    shutil.rmtree(settings.root / "gone", ignore_errors=True)
    other = drop(sensor, "shop.products", "other.jsonl", b'{"id": 2, "title": "b", "price": 2.5}\n')
    assert sensor.catch_up() == 2
    assert os.path.exists(stuck) and not os.path.exists(other)
    assert sensor.catch_up() == 1 and os.path.exists(stuck), "tried again on the next scan"


def test_the_scan_does_not_read_again_a_file_it_knows_as_accepted(sensor, settings):
    """`cp -p` of an accepted file back into its folder (the same name, size and mtime): the scan skips it."""
    path = drop(sensor, "shop.products", "a.jsonl", GOOD)
    st = os.stat(path)
    assert sensor.process(path) == "accepted"
    drop(sensor, "shop.products", "a.jsonl", GOOD)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert sensor.catch_up() == 0 and os.path.exists(path)
