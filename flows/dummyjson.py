"""E&L flows: export DummyJSON endpoints page by page and land them through the landing contract."""

from __future__ import annotations

import json
from typing import Any

import requests
from prefect import flow, get_run_logger, task
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from landing.catalog import Catalog, load_catalog
from landing.contract import land_rows
from landing.events import LandedFile
from landing.settings import Settings

SOURCE = "dummyjson"


class ExportError(RuntimeError):
    """An export could not fetch complete, well-formed data; nothing was landed."""


def make_session(settings: Settings) -> requests.Session:
    """A session that retries 429 and 5xx with exponential backoff, honouring Retry-After."""
    retry = Retry(
        total=settings.http_retries,
        connect=settings.http_retries,
        read=settings.http_retries,
        status=settings.http_retries,
        backoff_factor=settings.http_backoff_seconds,
        backoff_max=30,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "landing-pipelines/0.1"
    return session


def fetch_page(session: requests.Session, url: str, key: str, skip: int, limit: int, timeout: float) -> dict[str, Any]:
    """One page of `key` rows; ExportError naming the endpoint on any bad answer."""
    where = f"{url}?limit={limit}&skip={skip}"
    try:
        response = session.get(url, params={"limit": limit, "skip": skip}, timeout=timeout)
    except requests.exceptions.RetryError as exc:
        raise ExportError(
            f"{where}: still failing after retries ({exc}). Check the API's status and try again later."
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise ExportError(
            f"{where}: cannot reach the API ({exc.__class__.__name__}: {exc}). "
            "Check LANDING_DUMMYJSON_BASE_URL and the network."
        ) from exc
    if response.status_code != 200:
        raise ExportError(
            f"{where}: answered HTTP {response.status_code} after retries. "
            "Check the API's status and try again later; nothing was landed."
        )
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError) as exc:
        raise ExportError(f"{where}: the answer is not valid JSON ({exc}). Nothing was landed.") from exc
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise ExportError(
            f"{where}: the answer has no {key!r} list (keys: {sorted(body) if isinstance(body, dict) else type(body).__name__}). "
            "The API changed or the URL is wrong; nothing was landed."
        )
    if not isinstance(body.get("total"), int):
        raise ExportError(f"{where}: the answer has no integer 'total'. Nothing was landed.")
    return body


@task(name="fetch-dummyjson", retries=0)
def fetch_all(table: str, settings: Settings) -> list[dict[str, Any]]:
    """Every row of a DummyJSON endpoint, paging with limit/skip until `total`."""
    logger = get_run_logger()
    url = f"{settings.dummyjson_base_url.rstrip('/')}/{table}"
    rows: list[dict[str, Any]] = []
    with make_session(settings) as session:
        while True:
            page = fetch_page(session, url, table, len(rows), settings.page_size, settings.http_timeout_seconds)
            rows.extend(page[table])
            total = page["total"]
            if len(rows) >= total:
                break
            if not page[table]:
                raise ExportError(
                    f"{url}: an empty page at skip={len(rows)} before total={total}. "
                    "The API is inconsistent; nothing was landed."
                )
    logger.info("fetched %d %s rows from %s", len(rows), table, url)
    return rows


@task(name="land-dataset")
def land(dataset: str, rows: list[dict[str, Any]], producer: str, settings: Settings, catalog: Catalog) -> LandedFile:
    """Land the rows atomically and emit the landing event."""
    landed = land_rows(dataset, rows, producer=producer, settings=settings, catalog=catalog)
    get_run_logger().info(
        "landed %s: %s (%d rows, event %s)", dataset, landed.relative_path, landed.rows, landed.event_id
    )
    return landed


@flow(name="export-dummyjson", flow_run_name="export-dummyjson-{table}", log_prints=True)
def export_dummyjson(table: str, settings: Settings | None = None) -> LandedFile:
    """Export one DummyJSON endpoint (`products`, `carts`, `users`, ... any dummyjson source table in dbt)."""
    settings = settings or Settings()
    catalog = load_catalog(settings)
    dataset = catalog.get(f"{SOURCE}.{table}").name
    rows = fetch_all(table, settings)
    return land(dataset, rows, producer=f"flow:export-dummyjson/{table}", settings=settings, catalog=catalog)


def exportable_tables(catalog: Catalog) -> list[str]:
    """DummyJSON endpoints the dbt project declares as sources."""
    return sorted(ds.table for ds in catalog.datasets.values() if ds.source == SOURCE)


@flow(name="export-dummyjson-all", flow_run_name="export-dummyjson-all", log_prints=True)
def export_dummyjson_all(tables: list[str] | None = None, settings: Settings | None = None) -> list[LandedFile]:
    """Export several DummyJSON endpoints (default: every one the dbt project declares) concurrently, in one flow run.

    Each table lands and announces its own file as soon as its fetch is done; one failing table fails the run
    after the others have landed.
    """
    settings = settings or Settings()
    catalog = load_catalog(settings)
    tables = tables or exportable_tables(catalog)
    datasets = [catalog.get(f"{SOURCE}.{table}").name for table in tables]  # unknown tables fail before any fetch
    fetched = [fetch_all.submit(table, settings) for table in tables]
    landing, errors = [], []
    for dataset, table, future in zip(datasets, tables, fetched):
        try:
            rows = future.result()
        except Exception as exc:  # the other tables still land; the run fails below, naming this one
            errors.append(exc)
            continue
        landing.append(
            land.submit(dataset, rows, producer=f"flow:export-dummyjson/{table}", settings=settings, catalog=catalog)
        )
    landed = [future.result() for future in landing]
    if errors:
        raise errors[0]
    return landed
