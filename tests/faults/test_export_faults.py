"""R8: a throttled then failing API. The export finishes within its retry budget, or fails leaving no file."""

from __future__ import annotations

import time

import pytest

from flows.dummyjson import ExportError, export_dummyjson
from landing.catalog import load_catalog


def distinct(dummyjson, tag):
    """Content of our own: the server drops a repeated event id (same dataset and content) for 30 minutes."""
    dummyjson.tables["users"] = [dict(u, test=tag) for u in dummyjson.tables["users"]]


def files(settings):
    folder = load_catalog(settings).get("dummyjson.users").accepted_path
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_throttling_within_the_retry_budget_lands_every_row(settings, dummyjson, prefect_server):
    # 429 with Retry-After: 1 for 3 s, then one 500 on the third page: 5 retries with Retry-After cover it
    settings = settings.model_copy(update={"dummyjson_base_url": dummyjson.url, "http_retries": 6})
    distinct(dummyjson, "r8-within-budget")
    dummyjson.throttle_until = time.monotonic() + 3
    dummyjson.faults.extend([None, None, 500])
    landed = export_dummyjson("users", settings=settings)
    assert landed.rows == 208 and len(files(settings)) == 1


def test_throttling_beyond_the_budget_fails_cleanly(settings, dummyjson, prefect_server):
    settings = settings.model_copy(update={"dummyjson_base_url": dummyjson.url, "http_retries": 2})
    dummyjson.throttle_until = time.monotonic() + 30
    with pytest.raises(ExportError, match=r"/users\?limit=100&skip=0: .*(429|after retries|still failing)"):
        export_dummyjson("users", settings=settings)
    assert files(settings) == [], "no partial file under a final name"
