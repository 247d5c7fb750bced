"""The catalog from a manifest: datasets, their folders and schema, and the walk from models up to their sources."""

from __future__ import annotations

import re

import pytest

from landing.catalog import ACCEPTED_PLACEHOLDER, CatalogError, catalog_from_manifest
from tests.unit.conftest import manifest, source


def test_each_source_with_an_external_location_is_a_dataset_with_a_drop_and_an_accepted_folder(catalog, settings):
    assert sorted(catalog.datasets) == ["fx.rates", "shop.orders", "shop.products"]
    products = catalog.get("shop.products")
    assert products.path == settings.root / "shop" / "products"
    assert products.accepted_path == settings.accepted / "shop" / "products"
    assert products.schema == {"id": "integer", "title": "varchar", "price": "double", "brand": "varchar"}


def test_required_columns_are_the_ones_with_a_not_null_test(catalog):
    assert catalog.get("shop.products").required == ("id", "title")
    assert catalog.get("fx.rates").required == ()


def test_models_know_every_dataset_upstream_through_other_models(catalog):
    assert catalog.models["stage_rates"].datasets == ("fx.rates",)
    assert catalog.models["order_lines"].datasets == ("shop.orders", "shop.products")
    assert catalog.models["order_report"].datasets == ("fx.rates", "shop.orders", "shop.products")
    assert [m.name for m in catalog.and_models()] == ["order_lines"]
    assert catalog.models["order_lines"].within_seconds == 600


def test_a_location_outside_the_accepted_root_is_refused_naming_the_source():
    bad = manifest()
    bad["sources"]["source.p.x.y"] = source("x", "y", "read_json('/data/x/y/*.jsonl')", {"id": "integer"})
    with pytest.raises(CatalogError, match=r"source x.y: .*must read below .*LANDING_ACCEPTED_ROOT"):
        catalog_from_manifest(bad)


def test_a_glob_into_subfolders_is_refused():
    bad = manifest()
    bad["sources"]["source.p.x.y"] = source(
        "x", "y", f"read_json('{ACCEPTED_PLACEHOLDER}/x/*/y.jsonl')", {"id": "integer"}
    )
    with pytest.raises(CatalogError, match="directly in one folder"):
        catalog_from_manifest(bad)


def test_paths_map_to_datasets_by_folder_and_glob(catalog, settings):
    folder = settings.root / "fx" / "rates"
    assert catalog.dataset_for_path(folder / "april.csv").name == "fx.rates"
    assert catalog.dataset_for_path(folder / "april.csv.gz").name == "fx.rates"
    assert catalog.dataset_for_path(folder / "april.json") is None
    assert catalog.dataset_for_path(settings.root / "fx" / "april.csv") is None
    assert catalog.dataset_for_accepted(settings.accepted / "fx" / "rates" / "x.csv").name == "fx.rates"
    assert catalog.get("fx.rates").suffix_for("april.csv.gz") == ".csv.gz"


@pytest.mark.parametrize(
    "landing, error",
    [
        ({"kind": "merge"}, "meta.landing.kind 'merge' is not one of append, snapshot"),
        ({"kind": "snapshot"}, "kind snapshot needs meta.landing.key"),
        ({"kind": "snapshot", "key": ["nope"]}, "meta.landing.key names 'nope', which the source does not declare"),
        ({"kind": "snapshot", "key": ["brand"]}, "the key column 'brand' needs `data_tests: [not_null]`"),
        ({"kind": "append", "key": ["id"]}, "meta.landing.key is for kind snapshot"),
    ],
)
def test_a_declared_meaning_is_checked_with_what_to_do(landing, error):
    m = manifest()
    m["sources"]["source.p.shop.products"]["meta"]["landing"] = landing
    with pytest.raises(CatalogError, match=re.escape(error)):
        catalog_from_manifest(m)


def test_a_snapshot_source_gives_its_kind_and_key():
    m = manifest()
    m["sources"]["source.p.shop.products"]["meta"]["landing"] = {"kind": "snapshot", "key": "id"}
    ds = catalog_from_manifest(m).datasets["shop.products"]
    assert (ds.kind, ds.key, ds.accepted_relative) == ("snapshot", ("id",), "shop/products")
