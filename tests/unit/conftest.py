"""The unit layer's fixtures: a small project's catalog built from a manifest written here, with no server.

No test here starts a server or a browser; `test_reader.py` also parses the shipped dbt project with dbt.
"""

from __future__ import annotations

import pytest

from landing.catalog import ACCEPTED_PLACEHOLDER, catalog_from_manifest, render_roots
from landing.settings import Settings


def source(name: str, table: str, location: str, columns: dict[str, str], freshness_hours: int | None = None) -> dict:
    return {
        "source_name": name,
        "name": table,
        "description": f"{name} {table}",
        "meta": {"external_location": location},
        "columns": {c: {"name": c, "data_type": t} for c, t in columns.items()},
        "freshness": {"warn_after": {"count": freshness_hours, "period": "hour"}} if freshness_hours else {},
    }


def not_null(source_uid: str, column: str) -> dict:
    return {
        "resource_type": "test",
        "test_metadata": {"name": "not_null"},
        "column_name": column,
        "depends_on": {"nodes": [source_uid]},
    }


def model(name: str, parents: list[str], **landing) -> dict:
    return {
        "resource_type": "model",
        "name": name,
        "depends_on": {"nodes": parents},
        "config": {"meta": {"landing": landing} if landing else {}},
    }


def manifest() -> dict:
    """Two JSON sources and a CSV one; staging models on each; a mart that needs both JSON sources."""
    acc = ACCEPTED_PLACEHOLDER
    return {
        "sources": {
            "source.p.shop.products": source(
                "shop",
                "products",
                f"read_json('{acc}/shop/products/*.jsonl', format='auto', filename=true)",
                {"id": "integer", "title": "varchar", "price": "double", "brand": "varchar"},
                24,
            ),
            "source.p.shop.orders": source(
                "shop",
                "orders",
                f"read_json('{acc}/shop/orders/*.jsonl', format='auto', filename=true)",
                {"id": "integer", "product_id": "integer"},
            ),
            "source.p.fx.rates": source(
                "fx",
                "rates",
                f"read_csv('{acc}/fx/rates/*.csv*', header=true, filename=true)",
                {"day": "date", "currency": "varchar", "rate": "double"},
            ),
        },
        "nodes": {
            "test.p.nn_id": not_null("source.p.shop.products", "id"),
            "test.p.nn_title": not_null("source.p.shop.products", "title"),
            "test.p.nn_order": not_null("source.p.shop.orders", "id"),
            "model.p.stage_products": model("stage_products", ["source.p.shop.products"]),
            "model.p.stage_orders": model("stage_orders", ["source.p.shop.orders"]),
            "model.p.stage_rates": model("stage_rates", ["source.p.fx.rates"]),
            "model.p.order_lines": model(
                "order_lines",
                ["model.p.stage_orders", "model.p.stage_products"],
                requires_all_sources=True,
                within_seconds=600,
            ),
            "model.p.order_report": model("order_report", ["model.p.order_lines", "model.p.stage_rates"]),
        },
    }


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(root=tmp_path / "landing", state_dir=tmp_path / "state", settle_seconds=0.0)


@pytest.fixture
def catalog(settings):
    return render_roots(catalog_from_manifest(manifest()), str(settings.root), str(settings.accepted))


@pytest.fixture
def sensor(settings, catalog):
    from sensors.sensor import Sensor

    s = Sensor(settings, catalog=catalog)
    for ds in catalog.datasets.values():
        ds.path.mkdir(parents=True, exist_ok=True)
        ds.accepted_path.mkdir(parents=True, exist_ok=True)
    yield s
    s.stop(flush_timeout=0)
