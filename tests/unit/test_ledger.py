"""The ledger's transitions: recorded, held, due, sent, failed and retried, forgotten; and the catch-up backlog."""

from __future__ import annotations

import pytest

from landing.ledger import Ledger


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path / "ledger.sqlite")
    yield led
    led.close()


def event(eid: str) -> dict:
    return {"id": eid, "event": "landing.file.created", "payload": {"dataset": "shop.orders"}}


def record(ledger, path: str, eid: str, **kw) -> None:
    ledger.record(
        path, "shop.orders", "ab" * 32, 10, 1, kw.pop("status", "pending"), event_id=eid, event=event(eid), **kw
    )


def test_a_recorded_file_and_its_event_are_there_after_a_reopen(tmp_path):
    led = Ledger(tmp_path / "l.sqlite")
    record(led, "/d/a.jsonl", "e1", accepted_path="/acc/1.jsonl")
    led.close()
    led = Ledger(tmp_path / "l.sqlite")
    rec = led.file("/d/a.jsonl")
    assert (rec.status, rec.event_id, rec.accepted_path) == ("pending", "e1", "/acc/1.jsonl")
    assert led.by_accepted("/acc/1.jsonl") == rec
    assert [eid for eid, _ in led.due()] == ["e1"]
    led.close()


def test_events_are_due_oldest_first_and_sent_ones_are_announced(ledger):
    for i in range(3):
        record(ledger, f"/d/{i}.jsonl", f"e{i}")
    assert [eid for eid, _ in ledger.due()] == ["e0", "e1", "e2"]
    ledger.mark_sent(["e0", "e1"])
    assert [eid for eid, _ in ledger.due()] == ["e2"]
    assert ledger.file("/d/0.jsonl").status == "announced"
    assert ledger.pending_count() == 1


def test_a_failed_send_waits_until_its_retry_time(ledger):
    record(ledger, "/d/a.jsonl", "e1")
    ledger.mark_failed(["e1"], retry_at=2e9)
    assert ledger.due() == []
    assert [eid for eid, _ in ledger.due(now=3e9)] == ["e1"]


def test_a_held_event_is_not_due_until_released(ledger):
    record(ledger, "/d/a.jsonl", "e1", hold_seconds=3600)
    assert ledger.due() == []
    ledger.release(["e1"])
    assert [eid for eid, _ in ledger.due()] == ["e1"]


def test_forget_drops_the_record_and_its_unsent_event(ledger):
    record(ledger, "/d/a.jsonl", "e1")
    ledger.forget("/d/a.jsonl")
    assert ledger.file("/d/a.jsonl") is None and ledger.due() == []


def test_the_same_event_id_is_kept_once_and_owned_by_its_first_path(ledger):
    record(ledger, "/d/a.jsonl", "e1")
    record(ledger, "/d/b.jsonl", "e1")
    assert ledger.pending_count() == 1
    assert ledger.event_owners(["e1", "nope"]) == {"e1": "/d/a.jsonl"}
    assert set(ledger.files_for(["/d/a.jsonl", "/d/b.jsonl", "/d/c.jsonl"])) == {"/d/a.jsonl", "/d/b.jsonl"}


def test_the_backlog_keeps_unknown_or_changed_files_in_arrival_order(ledger):
    ledger.record("/d/known.jsonl", "shop.orders", "aa", 10, 1, "announced")
    ledger.record("/d/changed.jsonl", "shop.orders", "bb", 10, 1, "announced")
    found = [
        (30, "/d/late.jsonl", 5, 1, True),
        (10, "/d/known.jsonl", 10, 1, True),
        (20, "/d/changed.jsonl", 11, 2, True),
        (5, "/d/early.jsonl", 5, 1, False),
    ]
    backlog = ledger.backlog(iter(found))
    assert backlog.total == 3
    chunks = list(backlog.chunks(2))
    assert chunks == [[("/d/early.jsonl", False), ("/d/changed.jsonl", True)], [("/d/late.jsonl", True)]]
