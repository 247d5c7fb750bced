"""The dataset catalog, derived from the dbt project's sources by dbt's own parser and cached."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from landing.settings import Settings

CACHE_VERSION = 3
_IGNORED_DIRS = {"target", "logs", "dbt_packages", ".user.yml"}
_FIRST_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")
_WILDCARD = re.compile(r"[*?\[]")


class CatalogError(Exception):
    """The dbt project could not be parsed into a catalog."""


class UnknownDatasetError(ValueError):
    """A dataset name that no dbt source defines."""


@dataclass(frozen=True)
class Dataset:
    """One dbt source table with `meta.external_location`: a folder where files land."""

    name: str  # "<source>.<table>"
    source: str
    table: str
    unique_id: str
    location: str  # the rendered external_location
    folder: str  # absolute folder the files land in
    glob: str  # file pattern inside the folder, e.g. "*.jsonl"
    columns: tuple[str, ...] = ()
    description: str = ""
    freshness_warn_seconds: int | None = None
    freshness_error_seconds: int | None = None
    stale_after_override: int | None = None  # meta.landing.stale_after_seconds

    @property
    def stale_after_seconds(self) -> int | None:
        """When to call the dataset stale: meta override, else dbt freshness warn_after, else error_after."""
        return self.stale_after_override or self.freshness_warn_seconds or self.freshness_error_seconds

    @property
    def path(self) -> Path:
        return Path(self.folder)

    def data_files(self) -> list[os.DirEntry]:
        """The dataset's landed files (matching its glob, not hidden), sorted by name; none if the folder is missing."""
        try:
            entries = os.scandir(self.path)
        except FileNotFoundError:
            return []
        with entries:
            return sorted((e for e in entries if fnmatch.fnmatchcase(e.name, self.glob) and not e.name.startswith(".")),
                          key=lambda e: e.name)

    @property
    def suffix(self) -> str:
        """The file suffix new files get, taken from the glob (".jsonl")."""
        return PurePosixPath(self.glob).suffix or ".jsonl"


@dataclass(frozen=True)
class Model:
    """A dbt model and the datasets it reads, directly or through other models."""

    name: str
    unique_id: str
    datasets: tuple[str, ...]
    requires_all_sources: bool = False
    within_seconds: int | None = None


@dataclass
class Catalog:
    """Datasets and models of one dbt project, rendered for one landing root."""

    root: str
    datasets: dict[str, Dataset] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)

    def get(self, name: str) -> Dataset:
        """The dataset called `name`, or UnknownDatasetError naming the known ones."""
        try:
            return self.datasets[name]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self.datasets)) or "none"
            raise UnknownDatasetError(
                f"unknown dataset {name!r}: the dbt project defines {known}. "
                "Add a source table with meta.external_location to the dbt project to add one."
            ) from None

    def folder(self, name: str) -> Path:
        return self.get(name).path

    def dataset_for_path(self, path: str | os.PathLike) -> Dataset | None:
        """The dataset whose folder and glob the file at `path` matches, if any."""
        p = Path(os.path.abspath(path))
        for ds in self.datasets.values():
            if p.parent == ds.path and fnmatch.fnmatchcase(p.name, ds.glob):
                return ds
        return None

    def and_models(self) -> list[Model]:
        """Models that opt in to being built only once all their datasets have landed."""
        return [m for m in self.models.values() if m.requires_all_sources and len(m.datasets) > 1]

    def to_json(self) -> dict:
        return {
            "root": self.root,
            "datasets": [asdict(d) for d in self.datasets.values()],
            "models": [asdict(m) for m in self.models.values()],
        }

    @classmethod
    def from_json(cls, data: dict) -> "Catalog":
        datasets = {}
        for d in data["datasets"]:
            d["columns"] = tuple(d["columns"])
            datasets[d["name"]] = Dataset(**d)
        models = {}
        for m in data["models"]:
            m["datasets"] = tuple(m["datasets"])
            models[m["name"]] = Model(**m)
        return cls(root=data["root"], datasets=datasets, models=models)


def split_location(location: str) -> tuple[str, str]:
    """Folder and glob of the first path in an external_location such as read_json('/r/a/*.jsonl', ...)."""
    m = _FIRST_QUOTED.search(location)
    path = m.group(1) if m else location
    parts = PurePosixPath(path).parts
    for i, part in enumerate(parts):
        if _WILDCARD.search(part):
            return str(PurePosixPath(*parts[:i])), str(PurePosixPath(*parts[i:]))
    return str(PurePosixPath(path).parent), PurePosixPath(path).name


def _period_seconds(spec: dict | None) -> int | None:
    if not spec or not spec.get("count") or not spec.get("period"):
        return None
    unit = {"minute": 60, "hour": 3600, "day": 86400}[spec["period"]]
    return int(spec["count"]) * unit


def catalog_from_manifest(manifest: dict, root: str) -> Catalog:
    """Build the catalog from a dbt manifest (as a dict, the shape of manifest.json)."""
    catalog = Catalog(root=root)
    for uid, src in sorted(manifest.get("sources", {}).items()):
        location = (src.get("meta") or {}).get("external_location") or (
            src.get("config", {}).get("meta") or {}
        ).get("external_location")
        if not location:
            continue
        folder, glob = split_location(location)
        if "/" in glob:
            raise CatalogError(
                f"source {src['source_name']}.{src['name']}: external_location {location!r} "
                "must put files directly in one folder (a glob like <folder>/*.jsonl)"
            )
        freshness = src.get("freshness") or {}
        landing_meta = (src.get("meta") or {}).get("landing") or {}
        name = f"{src['source_name']}.{src['name']}"
        catalog.datasets[name] = Dataset(
            name=name,
            source=src["source_name"],
            table=src["name"],
            unique_id=uid,
            location=location,
            folder=folder,
            glob=glob,
            columns=tuple(src.get("columns", {}).keys()),
            description=src.get("description") or "",
            freshness_warn_seconds=_period_seconds(freshness.get("warn_after")),
            freshness_error_seconds=_period_seconds(freshness.get("error_after")),
            stale_after_override=landing_meta.get("stale_after_seconds"),
        )
    by_uid = {d.unique_id: d.name for d in catalog.datasets.values()}
    nodes = manifest.get("nodes", {})
    memo: dict[str, frozenset[str]] = {}

    def upstream(uid: str) -> frozenset[str]:
        if uid in memo:
            return memo[uid]
        memo[uid] = frozenset()
        found: set[str] = set()
        for parent in nodes.get(uid, {}).get("depends_on", {}).get("nodes", []):
            if parent in by_uid:
                found.add(by_uid[parent])
            elif parent in nodes:
                found |= upstream(parent)
        memo[uid] = frozenset(found)
        return memo[uid]

    for uid, node in sorted(nodes.items()):
        if node.get("resource_type") != "model":
            continue
        meta = (node.get("config", {}).get("meta") or node.get("meta") or {}).get("landing") or {}
        within = meta.get("within_seconds")
        catalog.models[node["name"]] = Model(
            name=node["name"],
            unique_id=uid,
            datasets=tuple(sorted(upstream(uid))),
            requires_all_sources=bool(meta.get("requires_all_sources", False)),
            within_seconds=int(within) if within is not None else None,
        )
    return catalog


ROOT_PLACEHOLDER = "/__LANDING_ROOT__"


def _project_fingerprint(project: Path) -> str:
    import dbt.version

    h = hashlib.sha256(f"v{CACHE_VERSION}|dbt {dbt.version.__version__}".encode())
    for dirpath, dirnames, filenames in os.walk(project):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith((".yml", ".yaml", ".sql", ".csv", ".md")):
                p = Path(dirpath, name)
                h.update(str(p.relative_to(project)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def parse_manifest(project: Path) -> dict:
    """Run dbt's parser in this process, with LANDING_ROOT as a placeholder, and return the manifest."""
    from dbt.cli.main import dbtRunner

    target = project / "target"
    saved = os.environ.get("LANDING_ROOT")
    os.environ["LANDING_ROOT"] = ROOT_PLACEHOLDER
    try:
        result = dbtRunner().invoke(
            [
                "parse",
                "--project-dir", str(project),
                "--profiles-dir", str(project),
                "--target-path", str(target),
                "--log-path", str(target / "logs"),
                "--no-partial-parse",
                "--quiet",
            ]
        )
    finally:
        if saved is None:
            os.environ.pop("LANDING_ROOT", None)
        else:
            os.environ["LANDING_ROOT"] = saved
    if not result.success or result.result is None:
        raise CatalogError(
            f"dbt could not parse the project in {project}: {result.exception}. "
            "Run `dbt parse` there to see the error."
        )
    return json.loads((target / "manifest.json").read_text())


def _render_root(catalog: Catalog, root: str) -> Catalog:
    root = os.path.abspath(root)
    datasets = {}
    for name, ds in catalog.datasets.items():
        d = asdict(ds)
        d["location"] = ds.location.replace(ROOT_PLACEHOLDER, root)
        d["folder"] = os.path.abspath(ds.folder.replace(ROOT_PLACEHOLDER, root))
        datasets[name] = Dataset(**{**d, "columns": ds.columns})
    return Catalog(root=root, datasets=datasets, models=catalog.models)


def load_catalog(settings: Settings | None = None) -> Catalog:
    """The catalog of the settings' dbt project, for its landing root.

    dbt parses the project once per content change; the result is cached in the project's
    target folder with the landing root as a placeholder, so every root shares it.
    """
    settings = settings or Settings()
    project = Path(settings.dbt_project_dir).resolve()
    if not (project / "dbt_project.yml").exists():
        raise CatalogError(f"no dbt project at {project}: set LANDING_DBT_PROJECT_DIR to the folder holding dbt_project.yml")
    key = _project_fingerprint(project)
    cache = project / "target" / "landing_catalog.json"
    try:
        data = json.loads(cache.read_text())
        if data.get("key") == key:
            return _render_root(Catalog.from_json(data["catalog"]), str(settings.root))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    catalog = catalog_from_manifest(parse_manifest(project), ROOT_PLACEHOLDER)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".landing_catalog.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": key, "catalog": catalog.to_json()}, indent=1))
    os.replace(tmp, cache)
    return _render_root(catalog, str(settings.root))
