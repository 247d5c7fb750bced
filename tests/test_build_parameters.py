"""The dbt build refuses anything but known dataset names, before dbt starts."""

from __future__ import annotations

import pytest
from prefect.exceptions import ParameterTypeError

from automations.dbt_build import BuildParameterError, dbt_args, dbt_build, validate_request
from landing.catalog import load_catalog


@pytest.mark.parametrize(
    "datasets, message",
    [
        (["dummyjson.orders"], "unknown dataset 'dummyjson.orders'"),
        (["--vars", "{x: 1}"], "refused dataset '--vars'"),
        (["dummyjson.products --vars {x: 1}"], "refused dataset"),
        (["dummyjson.products; rm -rf /"], "refused dataset"),
        (["../../etc/passwd"], "refused dataset '../../etc/passwd'"),
        (["/tmp/landing/dummyjson/products"], "refused dataset"),
        (["--profiles-dir=/tmp"], "refused dataset"),
        ("dummyjson.products", "datasets: Input should be a valid list"),  # Prefect validates the type
        ([], "must be a non-empty list"),
    ],
)
def test_bad_dataset_parameters_fail_before_dbt(settings, prefect_server, datasets, message):
    with pytest.raises((ValueError, ParameterTypeError), match=message):
        dbt_build(datasets, settings=settings)
    assert not (settings.state_dir / "builds.jsonl").exists(), "dbt must not have been started"
    assert not settings.warehouse.exists()


def test_and_models_must_be_known_and_complete(settings):
    catalog = load_catalog(settings)
    with pytest.raises(BuildParameterError, match="known models needing all sources: cart_lines_enriched"):
        validate_request(["dummyjson.carts"], ["stage_dummyjson__products"], catalog)
    with pytest.raises(BuildParameterError, match="needs dummyjson.products, dummyjson.users in datasets too"):
        validate_request(["dummyjson.carts"], ["cart_lines_enriched"], catalog)


def test_selector_is_built_from_names_only(settings):
    catalog = load_catalog(settings)
    names, and_models = validate_request(["dummyjson.users", "dummyjson.carts"], [], catalog)
    # the sources' not_null tests are left out: the sensor and the loader enforce them on every row
    guaranteed = [
        "source_not_null_dummyjson_carts_id",
        "source_not_null_dummyjson_carts_products",
        "source_not_null_dummyjson_carts_userId",
        "source_not_null_dummyjson_users_email",
        "source_not_null_dummyjson_users_id",
    ]
    assert dbt_args(names, and_models, catalog) == [
        "build",
        "--select",
        "source:dummyjson.carts+",
        "source:dummyjson.users+",
        "--exclude",
        "cart_lines_enriched",
        *guaranteed,
    ]
    all3 = ["dummyjson.carts", "dummyjson.products", "dummyjson.users"]
    args = dbt_args(all3, ["cart_lines_enriched"], catalog)
    assert args[: 2 + len(all3)] == ["build", "--select", *[f"source:{n}+" for n in all3]]
    assert "cart_lines_enriched" not in args and "source_not_null_dummyjson_products_title" in args
    # built once all its sources landed, the AND model then follows each of them (a cart emptied later, say)
    assert "cart_lines_enriched" not in dbt_args(names, [], catalog, frozenset({"cart_lines_enriched"}))
