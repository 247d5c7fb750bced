"""The landing contract: atomic files, the event shape read back from a real server, the catalog."""

from __future__ import annotations

import os
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from landing import contract
from landing.events import EVENT_NAMESPACE, FILE_CREATED
from landing.transport import EmitError
from landing.catalog import UnknownDatasetError, load_catalog, split_location
from landing.ledger import Ledger, ledger_path
from landing.reader import InvalidFile
from testkit.local import using_server, read_events

NAME = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{12}\.jsonl$")


def test_catalog_comes_from_dbt_sources(settings):
    catalog = load_catalog(settings)
    assert sorted(catalog.datasets) == [
        "dummyjson.carts",
        "dummyjson.products",
        "dummyjson.users",
        "finance.exchange_rates",
        "inventory.stock_movements",
    ]
    products = catalog.get("dummyjson.products")
    assert products.path == settings.root / "dummyjson" / "products"
    assert products.accepted_path == settings.root / "_accepted" / "dummyjson" / "products"
    assert products.glob == "*.json*"
    assert products.columns == ("id", "title", "price", "category", "brand", "stock")
    assert products.required == ("id", "title", "price")
    assert catalog.dataset_for_path(products.path / "a.jsonl").name == "dummyjson.products"
    assert catalog.dataset_for_path(products.path / "a.csv") is None
    assert catalog.dataset_for_path(products.accepted_path / "a.jsonl") is None, (
        "the accepted area is not a drop folder"
    )
    assert catalog.dataset_for_path(settings.root / "elsewhere" / "a.jsonl") is None
    mart = catalog.models["cart_lines_enriched"]
    assert mart.requires_all_sources and set(mart.datasets) == {
        "dummyjson.carts",
        "dummyjson.products",
        "dummyjson.users",
    }
    assert [m.name for m in catalog.and_models()] == ["cart_lines_enriched"]


def test_unknown_dataset_names_the_known_ones(settings):
    with pytest.raises(UnknownDatasetError, match=r"unknown dataset 'nope.things'.*dummyjson.products"):
        load_catalog(settings).get("nope.things")


def test_split_location():
    assert split_location("read_json('/r/a/b/*.jsonl', x=1)") == ("/r/a/b", "*.jsonl")
    assert split_location("/r/a/part-*.json") == ("/r/a", "part-*.json")


def test_land_is_atomic_sortable_and_recorded(settings, prefect_server):
    catalog = load_catalog(settings)
    first = contract.land_rows("dummyjson.products", [{"id": 1, "title": "a", "price": 1}], "test", settings, catalog)
    second = contract.land_rows(
        "dummyjson.products",
        [{"id": 2, "title": "b", "price": 1}, {"id": 3, "title": "c", "price": 1}],
        "test",
        settings,
        catalog,
    )
    folder = catalog.get("dummyjson.products").accepted_path
    names = sorted(os.listdir(folder))
    assert names == [os.path.basename(first.path), os.path.basename(second.path)]
    assert all(NAME.match(n) for n in names)
    assert second.rows == 2 and second.relative_path == f"dummyjson/products/{names[1]}"
    assert open(second.path, "rb").read() == b'{"id":2,"title":"b","price":1}\n{"id":3,"title":"c","price":1}\n'
    assert not catalog.get("dummyjson.products").path.exists(), "producers land straight into the accepted area"
    ledger = Ledger(ledger_path(settings.state_dir))
    assert {(r.path, r.status, r.accepted_path) for r in ledger.rows()} == {
        (f.path, "announced", f.path) for f in (first, second)
    }
    ledger.close()


def test_a_file_dbt_could_not_build_is_never_landed(settings, prefect_server):
    catalog = load_catalog(settings)
    with pytest.raises(
        InvalidFile,
        match=r"dummyjson.users: test produced a file dbt could not build \(the required column 'email' is missing",
    ):
        contract.land_rows("dummyjson.users", [{"id": 1}], "test", settings, catalog)
    accepted = catalog.get("dummyjson.users").accepted_path
    assert not accepted.exists() or os.listdir(accepted) == []
    assert os.listdir(settings.accepted / contract.INCOMING_DIR) == []
    ledger = Ledger(ledger_path(settings.state_dir))
    assert ledger.rows() == [] and ledger.pending_count() == 0
    ledger.close()


def test_failed_write_leaves_no_file(settings, prefect_server, monkeypatch):
    catalog = load_catalog(settings)

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(contract.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        contract.land_rows("dummyjson.products", [{"id": 1, "title": "a", "price": 1}], "test", settings, catalog)
    folder = catalog.get("dummyjson.products").accepted_path
    assert os.listdir(folder) == [] and os.listdir(settings.accepted / contract.INCOMING_DIR) == []
    ledger = Ledger(ledger_path(settings.state_dir))
    assert ledger.rows() == []
    ledger.close()


def test_event_read_back_from_server_has_every_field(settings, prefect_server):
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    landed = contract.land_rows("dummyjson.users", [{"id": 7, "email": "a@b"}], "test:contract", settings)
    events = read_events(FILE_CREATED, since, "landing.dataset.dummyjson.users", expect=1)
    assert len(events) == 1
    event = events[0]
    assert event.id == uuid.uuid5(EVENT_NAMESPACE, f"dummyjson.users:{landed.sha256}")
    assert event.resource.id == "landing.dataset.dummyjson.users"
    assert event.resource.name == "dummyjson.users"
    [file] = event.related
    assert file.id == f"landing.file.{landed.relative_path}"
    assert file.role == "file" and file["sha256"] == landed.sha256
    assert set(event.payload) == {
        "dataset",
        "path",
        "relative_path",
        "bytes",
        "sha256",
        "rows",
        "landed_at",
        "producer",
        "dropped_as",
        "undeclared_columns",
    }
    assert event.payload["dropped_as"] is None and event.payload["undeclared_columns"] == []
    assert event.payload["rows"] == 1 and event.payload["producer"] == "test:contract"
    assert event.payload["path"] == landed.path and event.payload["bytes"] == os.path.getsize(landed.path)


def test_unreachable_server_is_retried_then_a_clear_error_and_the_event_waits(settings, caplog):

    settings = settings.model_copy(update={"emit_patience_seconds": 2.0})
    with using_server("http://127.0.0.1:9/api"):
        with pytest.raises(
            EmitError, match=r"landed for dummyjson.carts, but its event was not sent.*prefect server start"
        ):
            contract.land_rows(
                "dummyjson.carts", [{"id": 1, "userId": 2, "products": [{"id": 3, "quantity": 1}]}], "test", settings
            )
    assert "Retrying in" in caplog.text
    [name] = os.listdir(load_catalog(settings).get("dummyjson.carts").accepted_path)
    ledger = Ledger(ledger_path(settings.state_dir))
    [(event_id, event)] = ledger.due(now=float("inf"))
    assert event["payload"]["relative_path"] == f"dummyjson/carts/{name}"
    [record] = ledger.rows()
    assert record.status == "pending" and record.event_id == event_id
