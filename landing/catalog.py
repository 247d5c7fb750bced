"""The dataset catalog, derived from the dbt project's sources by dbt's own parser and cached."""

from __future__ import annotations

import fcntl
import fnmatch
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath

from landing.settings import Settings

CACHE_VERSION = 8
_IGNORED_DIRS = {"target", "logs", "dbt_packages", ".user.yml"}
_FIRST_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")
_WILDCARD = re.compile(r"[*?\[]")


@functools.lru_cache(maxsize=1024)
def _suffix_for(glob: str, usual: str, suffixes: tuple[str, ...]) -> str:
    for n in range(1, len(suffixes) + 1):
        candidate = "".join(suffixes[-n:])
        if fnmatch.fnmatchcase("x" + candidate, glob) and (n > 1 or suffixes[-1].lower() not in COMPRESSION_SUFFIXES):
            return candidate
    return "".join(suffixes[-2:]) or usual


COMPRESSION_SUFFIXES = (".gz", ".gzip", ".zst", ".zstd")
_LISTINGS: dict[tuple[str, str], tuple[int, float, list[str]]] = {}
_LISTINGS_LOCK = threading.Lock()
_SETTLED = 0.1  # a folder's mtime ticks in the kernel's clock steps (a few ms): a listing taken this long after the
# folder's last change is complete, so while the mtime stays the same it can be reused


def _listing(folder: str, glob: str) -> list[str]:
    """The data file names in `folder` matching `glob` (hidden names never), sorted. A build lists its dataset's
    accepted folder more than once; at 100,000 files a listing costs about 0.25 s, so it is reused while the folder's
    mtime is unchanged and was already settled when it was listed."""
    try:
        mtime = os.stat(folder).st_mtime_ns
    except FileNotFoundError:
        return []
    key = (folder, glob)
    with _LISTINGS_LOCK:
        cached = _LISTINGS.get(key)
    if cached and cached[0] == mtime and cached[1] - mtime / 1e9 > _SETTLED:
        return cached[2]
    listed_at = time.time()
    match = _glob_regex(glob)
    try:
        names = sorted(n for n in os.listdir(folder) if match(n) and not n.startswith("."))
    except FileNotFoundError:
        return []
    with _LISTINGS_LOCK:
        _LISTINGS[key] = (mtime, listed_at, names)
    return names


@functools.lru_cache(maxsize=256)
def _glob_regex(glob: str):
    return re.compile(fnmatch.translate(glob)).match


DEFAULT_TYPE = "VARCHAR"


KINDS = {
    "append": "every row of every file counts: events such as stock movements",
    "snapshot": "each file holds the newest version of the keys it carries: the newest landed version of a key wins",
}


class CatalogError(Exception):
    """The dbt project could not be parsed into a catalog."""


class UnknownDatasetError(ValueError):
    """A dataset name that no dbt source defines."""


@dataclass(frozen=True)
class Dataset:
    """One dbt source table with `meta.external_location`: a drop folder, and the accepted folder dbt reads."""

    name: str  # "<source>.<table>"
    source: str
    table: str
    unique_id: str
    location: str  # the rendered external_location: dbt's reader over the accepted folder
    folder: str  # absolute folder people and systems drop files into (under LANDING_ROOT)
    accepted_folder: str  # absolute folder of accepted files, the only ones dbt reads (under LANDING_ACCEPTED_ROOT)
    glob: str  # file pattern inside both folders, e.g. "*.jsonl"
    columns: tuple[str, ...] = ()  # every column the source declares, in order
    column_types: tuple[str, ...] = ()  # their declared data_type (VARCHAR where none is declared)
    required: tuple[str, ...] = ()  # columns with a not_null test: present and non-null in every row
    description: str = ""
    freshness_warn_seconds: int | None = None
    freshness_error_seconds: int | None = None
    stale_after_override: int | None = None  # meta.landing.stale_after_seconds
    rescue: bool = False  # meta.landing.rescue: keep undeclared columns in the raw table's `_rescued` JSON column
    kind: str = "append"  # meta.landing.kind: what a file means (KINDS); "append" where the source does not say
    key: tuple[str, ...] = ()  # meta.landing.key: the declared columns that name one thing (kind "snapshot")
    accepted_relative: str = ""  # the accepted folder below LANDING_ACCEPTED_ROOT, e.g. "dummyjson/products"
    # the names of the source's not_null tests: what the sensor and the loader enforce on every row of every file
    not_null_tests: tuple[str, ...] = ()

    @property
    def stale_after_seconds(self) -> int | None:
        """When to call the dataset stale: meta override, else dbt freshness warn_after, else error_after."""
        return self.stale_after_override or self.freshness_warn_seconds or self.freshness_error_seconds

    @property
    def path(self) -> Path:
        """The drop folder."""
        return Path(self.folder)

    @property
    def accepted_path(self) -> Path:
        """The accepted folder: what dbt reads."""
        return Path(self.accepted_folder)

    @property
    def schema(self) -> dict[str, str]:
        """Declared column → declared data_type."""
        return dict(zip(self.columns, self.column_types))

    @property
    def declared_digest(self) -> str:
        """Names the declaration a judgement of a file's undeclared columns holds for: the declared columns and the
        reader with its options (its quoted file path left out: moving the folder changes nothing)."""
        reader = re.sub(r"'(?:[^']|'')*'", "''", self.location, count=1)
        return hashlib.sha256("\n".join([reader, *self.columns]).encode()).hexdigest()[:16]

    def file_id(self, path: str | os.PathLike) -> str:
        """What names an accepted file wherever the folder is mounted: its accepted folder below the accepted root
        and its accepted name (a landing stamp and the content's hash), e.g. `dummyjson/products/2026...-ab12.jsonl`.
        The load history, the raw tables and the staging models' `source_file` use it, never a full path."""
        return f"{self.accepted_relative}/{os.path.basename(path)}"

    def matches(self, name: str) -> bool:
        """A data file name for this dataset: matches the glob and is not hidden."""
        return fnmatch.fnmatchcase(name, self.glob) and not name.startswith(".")

    def data_files(self) -> list[os.DirEntry]:
        """The dataset's accepted files (what dbt reads), sorted by name, that is by landing time."""
        try:
            entries = os.scandir(self.accepted_path)
        except FileNotFoundError:
            return []
        with entries:
            return sorted((e for e in entries if self.matches(e.name)), key=lambda e: e.name)

    def data_names(self) -> list[str]:
        """The names of the dataset's accepted files, sorted (by landing time): one directory read and no stat per
        file, reused while the folder is unchanged (see `_listing`)."""
        return _listing(self.accepted_folder, self.glob)

    @property
    def suffix(self) -> str:
        """The suffix files landed by a producer get: the glob's literal ending ("*.csv.gz" → ".csv.gz"), else the
        reader's usual one (".jsonl", ".csv", ".parquet") where the glob allows it."""
        tail = self.glob.rsplit("*", 1)[-1]
        reader = self.location.split("(", 1)[0].strip().lower()
        usual = ".csv" if "csv" in reader else ".parquet" if "parquet" in reader else ".jsonl"
        for candidate in (tail, usual, usual.rstrip("l")):
            if candidate and not _WILDCARD.search(candidate) and fnmatch.fnmatchcase("x" + candidate, self.glob):
                return candidate
        return usual

    def suffix_for(self, name: str) -> str:
        """The accepted name's suffix for a dropped file: as much of its name's ending as the glob needs to match."""
        parts = name.lstrip(".").split(".")[1:] if not name.endswith(".") else []  # PurePosixPath(name).suffixes
        return _suffix_for(self.glob, self.suffix, tuple("." + p for p in parts))


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
    fingerprint: str = ""  # project_fingerprint of the project it was read from, computed once per load_catalog

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
        """The dataset whose drop folder and glob the file at `path` matches, if any."""
        folder, name = os.path.split(os.path.abspath(path))
        for ds in self.datasets.values():
            if folder == ds.folder and ds.matches(name):
                return ds
        return None

    def dataset_for_accepted(self, path: str | os.PathLike) -> Dataset | None:
        """The dataset whose accepted folder holds the file at `path`, if any."""
        p = Path(os.path.abspath(path))
        for ds in self.datasets.values():
            if p.parent == ds.accepted_path:
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
            for key in ("columns", "column_types", "required", "key", "not_null_tests"):
                d[key] = tuple(d[key])
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


def _not_null_columns(manifest: dict) -> dict[str, set[str]]:
    """Source unique_id → columns carrying a not_null data test."""
    out: dict[str, set[str]] = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "test" or (node.get("test_metadata") or {}).get("name") != "not_null":
            continue
        column = node.get("column_name")
        for parent in node.get("depends_on", {}).get("nodes", []):
            if parent.startswith("source.") and column:
                out.setdefault(parent, set()).add(column)
    return out


def _not_null_tests(manifest: dict) -> dict[str, list[tuple[str, str]]]:
    """Source unique_id → (column, name) of each not_null test on it alone (a test on a source and a model is kept)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "test" or (node.get("test_metadata") or {}).get("name") != "not_null":
            continue
        parents = node.get("depends_on", {}).get("nodes", [])
        if len(parents) == 1 and parents[0].startswith("source.") and node.get("column_name") and node.get("name"):
            out.setdefault(parents[0], []).append((node["column_name"], node["name"]))
    return out


def _key(landing_meta: dict) -> tuple[str, ...]:
    key = landing_meta.get("key") or ()
    return (key,) if isinstance(key, str) else tuple(key)


def _kind(name: str, landing_meta: dict, columns: tuple[str, ...], required: set[str]) -> str:
    """The source's declared meaning (meta.landing.kind), checked: a snapshot names its key, declared and not_null."""
    kind = landing_meta.get("kind", "append")
    fix = "see docs/adding-a-source.md, 'What a file means'"
    if kind not in KINDS:
        raise CatalogError(
            f"source {name}: meta.landing.kind {kind!r} is not one of {', '.join(sorted(KINDS))}: "
            + "; ".join(f"{k}: {v}" for k, v in KINDS.items())
            + f" ({fix})"
        )
    key = _key(landing_meta)
    if kind == "snapshot":
        if not key:
            raise CatalogError(f"source {name}: kind snapshot needs meta.landing.key, the columns naming a row ({fix})")
        for column in key:
            if column not in columns:
                raise CatalogError(
                    f"source {name}: meta.landing.key names {column!r}, which the source does not declare ({fix})"
                )
            if column not in required:
                raise CatalogError(
                    f"source {name}: the key column {column!r} needs `data_tests: [not_null]`: a row without its key "
                    f"cannot be matched with its newer versions ({fix})"
                )
    elif key:
        raise CatalogError(f"source {name}: meta.landing.key is for kind snapshot; kind {kind} has none ({fix})")
    return kind


def catalog_from_manifest(manifest: dict) -> Catalog:
    """Build the catalog from a dbt manifest parsed with the root placeholders (the shape of manifest.json)."""
    catalog = Catalog(root=ROOT_PLACEHOLDER)
    required = _not_null_columns(manifest)
    not_null_tests = _not_null_tests(manifest)
    for uid, src in sorted(manifest.get("sources", {}).items()):
        location = (src.get("meta") or {}).get("external_location") or (src.get("config", {}).get("meta") or {}).get(
            "external_location"
        )
        if not location:
            continue
        name = f"{src['source_name']}.{src['name']}"
        folder, glob = split_location(location)
        if "/" in glob:
            raise CatalogError(
                f"source {name}: external_location {location!r} "
                "must put files directly in one folder (a glob like <folder>/*.jsonl)"
            )
        if not (folder + "/").startswith(ACCEPTED_PLACEHOLDER + "/"):
            raise CatalogError(
                f"source {name}: external_location {location!r} must read below "
                "{{ env_var('LANDING_ACCEPTED_ROOT', '/tmp/landing/_accepted') }}: dbt reads accepted files only, "
                "and files are dropped into the same folder below LANDING_ROOT (see docs/adding-a-source.md)"
            )
        relative = folder[len(ACCEPTED_PLACEHOLDER) :]
        freshness = src.get("freshness") or {}
        landing_meta = (src.get("meta") or {}).get("landing") or {}
        columns = src.get("columns") or {}
        catalog.datasets[name] = Dataset(
            name=name,
            source=src["source_name"],
            table=src["name"],
            unique_id=uid,
            location=location,
            folder=ROOT_PLACEHOLDER + relative,
            accepted_folder=folder,
            glob=glob,
            columns=tuple(columns),
            column_types=tuple((c.get("data_type") or DEFAULT_TYPE) for c in columns.values()),
            required=tuple(c for c in columns if c in required.get(uid, ())),
            description=src.get("description") or "",
            freshness_warn_seconds=_period_seconds(freshness.get("warn_after")),
            freshness_error_seconds=_period_seconds(freshness.get("error_after")),
            stale_after_override=landing_meta.get("stale_after_seconds"),
            rescue=bool(landing_meta.get("rescue", False)),
            kind=_kind(name, landing_meta, tuple(columns), required.get(uid, set())),
            key=_key(landing_meta),
            accepted_relative=relative.strip("/"),
            # only the tests the loader enforces: on a declared column, in `required`
            not_null_tests=tuple(sorted(t for c, t in not_null_tests.get(uid, ()) if c in columns)),
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
ACCEPTED_PLACEHOLDER = "/__LANDING_ACCEPTED_ROOT__"
_PARSE_LOCK = threading.Lock()  # dbt's parser and the placeholder environment are process-wide


@functools.cache
def _dbt_version() -> str:
    from importlib.metadata import version  # not dbt.version: importing dbt takes about 2 s

    return version("dbt-core")  # a scan of the installed packages: once per process


def project_fingerprint(project: Path) -> str:
    """A digest of the dbt project's content (models, sources, macros, seeds, settings) and of dbt's version."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|dbt {_dbt_version()}".encode())
    for dirpath, dirnames, filenames in os.walk(project):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith((".yml", ".yaml", ".sql", ".csv", ".md")):
                p = Path(dirpath, name)
                h.update(str(p.relative_to(project)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def parse_manifest(project: Path, target: Path) -> dict:
    """Run dbt's parser into `target`, with the roots as placeholders, and return the manifest.

    The parser runs in a child process with its own environment: dbt reads the roots through env_var(), and changing
    this process's environment would change it for a dbt build running on another thread."""
    placeholders = {"LANDING_ROOT": ROOT_PLACEHOLDER, "LANDING_ACCEPTED_ROOT": ACCEPTED_PLACEHOLDER}
    args = [
        "parse",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(target),
        "--log-path",
        str(target / "logs"),
        "--no-partial-parse",
        "--quiet",
    ]
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from dbt.cli.main import cli; sys.exit(cli())", *args],
        env={**os.environ, **placeholders},
        capture_output=True,
        text=True,
    )
    manifest = target / "manifest.json"
    if done.returncode != 0 or not manifest.exists():
        said = " ".join((done.stdout + done.stderr).split())[-1500:]
        raise CatalogError(
            f"dbt could not parse the project in {project}: {said or f'exit code {done.returncode}'}. "
            "Run `dbt parse` there to see the error."
        )
    return json.loads(manifest.read_text())


def render_roots(catalog: Catalog, root: str, accepted: str) -> Catalog:
    """A catalog parsed with the root placeholders, for these landing and accepted roots."""
    root, accepted = os.path.abspath(root), os.path.abspath(accepted)

    def render(text: str) -> str:
        return text.replace(ACCEPTED_PLACEHOLDER, accepted).replace(ROOT_PLACEHOLDER, root)

    datasets = {
        name: replace(
            ds,
            location=render(ds.location),
            folder=os.path.abspath(render(ds.folder)),
            accepted_folder=os.path.abspath(render(ds.accepted_folder)),
        )
        for name, ds in catalog.datasets.items()
    }
    return Catalog(root=root, datasets=datasets, models=catalog.models)


def _read_cache(cache: Path, key: str) -> Catalog | None:
    try:
        data = json.loads(cache.read_text())
        if data.get("key") == key:
            return Catalog.from_json(data["catalog"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def load_catalog(settings: Settings | None = None) -> Catalog:
    """The catalog of the settings' dbt project, for its landing and accepted roots.

    dbt parses the project once per content change; the result is cached in the project's target folder with the
    roots as placeholders, so every root shares it. Any number of processes may load it at once on a cold or changed
    project: one parses (under a lock, into a private folder) and publishes the cache atomically, the others wait and
    read it.
    """
    settings = settings or Settings()
    project = Path(settings.dbt_project_dir).resolve()
    if not (project / "dbt_project.yml").exists():
        raise CatalogError(
            f"no dbt project at {project}: set LANDING_DBT_PROJECT_DIR to the folder holding dbt_project.yml"
        )
    key = project_fingerprint(project)
    cache = project / "target" / "landing_catalog.json"
    catalog = _read_cache(cache, key)
    if catalog is None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with _PARSE_LOCK, open(cache.with_name(".landing_catalog.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            catalog = _read_cache(cache, key)  # another process may have parsed it while this one waited
            if catalog is None:
                private = Path(tempfile.mkdtemp(prefix=".landing-parse-", dir=cache.parent))
                try:
                    catalog = catalog_from_manifest(parse_manifest(project, private))
                    tmp = private / "landing_catalog.json"
                    tmp.write_text(json.dumps({"key": key, "catalog": catalog.to_json()}, indent=1))
                    os.replace(tmp, cache)
                finally:
                    shutil.rmtree(private, ignore_errors=True)
    rendered = render_roots(catalog, str(settings.root), str(settings.accepted))
    rendered.fingerprint = key
    return rendered
