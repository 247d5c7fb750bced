"""DuckLake, the readers' warehouse to be: its DuckDB extensions, installed from PyPI's wheels with no network."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# extension → the PyPI package that ships its build (one DuckDB release per package release: pyproject.toml pins both)
PACKAGES = {
    "ducklake": "duckdb-extension-ducklake",
    "sqlite_scanner": "duckdb-extension-sqlite-scanner",
    "postgres_scanner": "duckdb-extension-postgres-scanner",
}


class MissingExtension(RuntimeError):
    """A DuckDB extension the lake needs has no build here for the installed DuckDB."""


def extension_file(name: str) -> Path:
    """The `.duckdb_extension` file of `name` that its PyPI package ships for the installed DuckDB."""
    import duckdb

    package = PACKAGES[name]
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or spec.origin is None:
        raise MissingExtension(
            f"the DuckDB extension {name} is not installed: `uv sync` installs {package}=={duckdb.__version__}"
        )
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise MissingExtension(
            f"{package} has no build of {name} for DuckDB {duckdb.__version__} (looked for {path}): install the "
            "release of both that pyproject.toml pins (`uv sync --frozen`)"
        )
    return path


def install(con, names: tuple[str, ...] = ("ducklake", "sqlite_scanner")) -> None:
    """Install `names` into the connection's extension directory from the wheels' files (once: a file INSTALL is a
    copy, never a download) and load them."""
    installed = dict(
        con.execute(
            "select extension_name, installed and install_mode = 'CUSTOM_PATH' from duckdb_extensions()"
        ).fetchall()
    )
    for name in names:
        if not installed.get(name):
            con.execute(f"install '{extension_file(name)}'")
        con.execute(f"load {name}")
