"""Build state and the build log: signatures, watermarks, the one-writer lock, typed records."""

from __future__ import annotations

import threading
import time

from automations import buildlog
from automations.build_state import EMPTY_SIGNATURE, Watermarks, dataset_signature, warehouse_lock
from automations.buildlog import BuildRecord, BuildStatus


def test_a_build_record_reads_back_typed(tmp_path):
    log = tmp_path / "builds.jsonl"
    buildlog.append(
        log, BuildRecord(status=BuildStatus.FAILED, datasets=["shop.orders"], failed_nodes=["stage_orders"])
    )
    buildlog.append(log, BuildRecord(status=BuildStatus.BUILT, datasets=["shop.orders"], started=1.0))
    first, second = buildlog.read(log)
    assert first.status is BuildStatus.FAILED and first.failed_nodes == ["stage_orders"]
    assert second.status == "built" and second.as_dict()["status"] == "built"


def test_a_missing_log_is_empty_and_unknown_fields_are_ignored(tmp_path):
    assert buildlog.read(tmp_path / "none.jsonl") == []
    log = tmp_path / "builds.jsonl"
    log.write_text('{"status": "up to date", "datasets": ["a.b"], "at": 1, "from_a_newer_version": 1}\n')
    assert buildlog.read(log)[0].status is BuildStatus.UP_TO_DATE


def test_a_record_being_appended_is_not_read_until_its_line_is_complete(tmp_path):
    """A reader can see an append in progress (B1's reader did, once in 80 drops): its half line is not a record."""
    log = tmp_path / "builds.jsonl"
    buildlog.append(log, BuildRecord(status=BuildStatus.BUILT, datasets=["shop.orders"], started=1.0))
    whole = log.read_text()
    with open(log, "a") as fh:
        fh.write(whole[: len(whole) // 2])
    assert [r.status for r in buildlog.read(log)] == [BuildStatus.BUILT]
    with open(log, "a") as fh:
        fh.write(whole[len(whole) // 2 :])
    assert [r.status for r in buildlog.read(log)] == [BuildStatus.BUILT, BuildStatus.BUILT]


def test_the_signature_changes_when_a_file_lands(catalog):
    ds = catalog.get("shop.orders")
    assert dataset_signature(ds) == EMPTY_SIGNATURE
    ds.accepted_path.mkdir(parents=True)
    (ds.accepted_path / "1.jsonl").write_text('{"id": 1}\n')
    one = dataset_signature(ds)
    assert one != EMPTY_SIGNATURE and dataset_signature(ds) == one
    (ds.accepted_path / "2.jsonl").write_text('{"id": 2}\n')
    assert dataset_signature(ds) != one


def test_watermarks_survive_a_rewrite_and_a_corrupt_file_reads_as_none(tmp_path):
    marks = Watermarks(tmp_path / "w.json")
    marks.write({"one:a.b": "x"})
    assert marks.read() == {"one:a.b": "x"}
    (tmp_path / "w.json").write_text("{half")
    assert marks.read() == {}


def test_one_writer_at_a_time_on_a_warehouse(settings):
    order = []

    def second():
        with warehouse_lock(settings):
            order.append("second")

    with warehouse_lock(settings):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"]


def test_failed_nodes_come_from_the_run_end_results():
    from automations.dbt_build import failed_nodes

    results = {
        "model.p.stage_orders": {"status": "success"},
        "test.p.not_null_stage_orders_id": {"status": "fail"},
        "model.p.order_lines": {"status": "error"},
        "model.p.skipped": {"status": "skipped"},
    }
    assert failed_nodes(results) == ["not_null_stage_orders_id", "order_lines"]
    assert failed_nodes(None) == []


def test_node_summary_counts_what_dbt_built_and_tested():
    from automations.dbt_build import node_summary

    results = {
        "model.p.stage_orders": {"status": "success"},
        "seed.p.countries": {"status": "success"},
        "model.p.order_lines": {"status": "skipped"},
        "test.p.not_null_stage_orders_id": {"status": "pass"},
        "test.p.unique_stage_orders_id": {"status": "fail"},
        "unit_test.p.stage_orders.t": {"status": "pass"},
    }
    assert node_summary(results) == {
        "built_nodes": ["model stage_orders", "seed countries"],
        "tests_run": 3,
        "tests_passed": 2,
    }
    assert node_summary(None) == {"built_nodes": [], "tests_run": 0, "tests_passed": 0}
