"""landing/events.py is the contract and docs/events.md describes it: names, ids and payload fields agree."""

from __future__ import annotations

import re
import uuid

from landing import events
from landing.events import LandedFile
from landing.settings import REPO_ROOT

DOC = (REPO_ROOT / "docs" / "events.md").read_text()


def landed(**kw) -> LandedFile:
    return LandedFile(
        **{
            "dataset": "shop.orders",
            "path": "/acc/shop/orders/1.jsonl",
            "relative_path": "shop/orders/1.jsonl",
            "bytes": 3,
            "sha256": "ab" * 32,
            "rows": 1,
            "landed_at": "2026-11-25T00:00:00+00:00",
            "producer": "test",
            **kw,
        }
    )


def builders() -> dict[str, dict]:
    """One event of each kind, as the module builds it."""
    return {
        events.FILE_CREATED: events.file_created(landed()),
        events.FILE_REJECTED: events.file_rejected(
            "shop.orders", "shop/orders/x.jsonl", "ab" * 32, "bad", "/q/x.jsonl"
        ),
        events.DATASET_STALE: events.dataset_stale("shop.orders", 60, 5, None),
        events.BUILD_FAILED: events.build_failed("shop.orders", ["stage_orders"], "boom", None),
        events.PROJECT_CHANGED: events.project_changed("/p/dbt", "f1", "f0"),
        events.VERIFY_FAILED: events.verify_failed(
            "/s/warehouse.duckdb",
            ["shop.orders"],
            [{"model": "stage_orders", "datasets": ["shop.orders"], "only_live": 1, "only_full": 1}],
            None,
        ),
    }


def test_the_doc_names_exactly_the_events_the_module_defines():
    documented = set(re.findall(r"`(landing\.(?:file|dataset|build|project|verify)\.[a-z]+)`", DOC))
    assert documented == {
        events.FILE_CREATED,
        events.FILE_REJECTED,
        events.DATASET_STALE,
        events.BUILD_FAILED,
        events.PROJECT_CHANGED,
        events.VERIFY_FAILED,
    }


def test_the_created_payload_fields_are_the_documented_ones():
    documented = set(re.findall(r"^\| `payload\.([a-z_0-9]+)` \|", DOC, re.M))
    assert documented == set(builders()[events.FILE_CREATED]["payload"])


def test_the_other_events_payload_fields_are_the_documented_ones():
    table = DOC.split("## Other events", 1)[1]
    for name, event in builders().items():
        if name == events.FILE_CREATED:
            continue
        row = re.search(rf"^\| `{re.escape(name)}` \| [^|]+ \| (.+) \|$", table, re.M)
        assert row, f"{name} has no row in docs/events.md's 'Other events'"
        assert set(re.findall(r"`([a-z_0-9]+)`", row.group(1))) == set(event["payload"]), name


def test_every_event_is_about_its_dataset_and_reads_well_in_the_ui():
    for name, event in builders().items():
        if name == events.PROJECT_CHANGED:
            assert event["resource"]["prefect.resource.id"] == "landing.project.dbt"
            continue
        if name == events.VERIFY_FAILED:
            assert event["resource"]["prefect.resource.id"] == "landing.verify.warehouse"
            assert event["related"] == [
                {"prefect.resource.id": "landing.dataset.shop.orders", "prefect.resource.role": "dataset"}
            ]
            continue
        assert event["resource"] == {
            "prefect.resource.id": "landing.dataset.shop.orders",
            "prefect.resource.name": "shop.orders",
        }
        uuid.UUID(event["id"])


def test_the_same_content_is_the_same_event_and_each_rejected_drop_its_own():
    assert events.file_created(landed())["id"] == events.file_created(landed(path="/elsewhere"))["id"]
    assert events.file_created(landed())["id"] != events.file_created(landed(dataset="shop.products"))["id"]
    a = events.file_rejected("shop.orders", "shop/orders/a.jsonl", "00", "empty", "/q/a")
    b = events.file_rejected("shop.orders", "shop/orders/b.jsonl", "00", "empty", "/q/b")
    assert a["id"] != b["id"]
    assert a["related"][0]["prefect.resource.id"] == "landing.file.shop/orders/a.jsonl"
