"""`landing sql`: query the readers' warehouse, read-only, without knowing where it is."""

from __future__ import annotations

import csv
import sys

from automations.buildlog import UnknownPoint, snapshot_at  # noqa: F401  (`landing sql --at` resolves here)
from landing.settings import Settings

HELP = (
    "statements end with ';'. .tables lists the models, .refresh leaves --at for the newest snapshot (each query "
    "reads the newest one anyway), "
    ".quit (or Ctrl-D) leaves"
)


def _connect(settings: Settings, at: str | None = None):
    from landing import lake

    return lake.connect(settings, snapshot=None if at is None else snapshot_at(settings, at))


def _show(con, statement: str, as_csv: bool, out) -> None:
    relation = con.sql(statement)
    if relation is None:
        return
    if as_csv:
        writer = csv.writer(_Lines(out), lineterminator="")
        writer.writerow(relation.columns)
        for row in relation.fetchall():
            writer.writerow(row)
    else:
        out(str(relation).rstrip("\n"))


class _Lines:
    """A file-like for csv.writer that hands each row to `out` as one line."""

    def __init__(self, out):
        self.out = out

    def write(self, text: str) -> None:
        self.out(text)


def _statements(con, script: str) -> list[str]:
    return [str(s.query).strip().rstrip(";") for s in con.extract_statements(script)]


def _explain_error(settings: Settings, exc: Exception) -> str:
    text = str(exc).splitlines()[0]
    if "read-only" in text.lower():
        text += (
            f". The lake {settings.lake_name} is opened read-only: change models in the dbt project, and keep "
            "scratch tables in a database of your own (ATTACH ':memory:' AS scratch)"
        )
    return f"error: {text}"


def sql(
    query: str = "", csv: bool = False, settings: Settings | None = None, out=print, stdin=None, at: str | None = None
) -> int:
    """Run `query` (or the script on standard input, or an interactive shell on a terminal) on the lake, read-only:
    each statement reads the newest snapshot, or the one `at` names. 1 when a statement failed."""
    import duckdb

    from landing import lake

    settings = settings or Settings()
    stdin = stdin or sys.stdin
    try:
        con = _connect(settings, at)
    except (lake.NoLake, UnknownPoint) as exc:
        out(str(exc))
        return 1
    except duckdb.Error as exc:
        out(f"error: could not open the lake {settings.lake_name}: {exc}")
        return 1
    try:
        if query.strip():
            return _run_script(con, query, csv, settings, out)
        if not stdin.isatty():
            return _run_script(con, stdin.read(), csv, settings, out)
        return _shell(con, settings, csv, out, stdin)
    finally:
        con.close()


def _run_script(con, script: str, as_csv: bool, settings: Settings, out) -> int:
    import duckdb

    try:
        for statement in _statements(con, script):
            _show(con, statement, as_csv, out)
    except duckdb.Error as exc:
        out(_explain_error(settings, exc))
        return 1
    return 0


def _shell(con, settings: Settings, as_csv: bool, out, stdin) -> int:
    out(f"the lake {settings.lake_name}, read-only, at snapshot {_snapshot(con)}; {HELP}")
    try:
        return _loop(con, settings, as_csv, out, stdin)
    finally:
        con.close()


def _loop(con, settings: Settings, as_csv: bool, out, stdin) -> int:
    import duckdb

    pending = ""
    while True:
        try:
            sys.stdout.write("landing> " if not pending else "    ...> ")
            sys.stdout.flush()
            line = stdin.readline()
        except KeyboardInterrupt:
            pending = ""
            out("")
            continue
        if not line:
            out("")
            return 0
        command = line.strip()
        if not pending and command.startswith("."):
            if command in (".quit", ".exit", ".q"):
                return 0
            if command == ".refresh":
                con.close()
                con = _connect(settings)
                out(f"at the newest snapshot, {_snapshot(con)}")
            elif command == ".tables":
                _show(con, "select table_name from information_schema.tables order by 1", as_csv, out)
            else:
                out(HELP)
            continue
        pending += line
        if not command.endswith(";"):
            continue
        try:
            for statement in _statements(con, pending):
                _show(con, statement, as_csv, out)
        except duckdb.Error as exc:
            out(_explain_error(settings, exc))
        pending = ""


def _snapshot(con) -> str:
    found = con.execute("from lake.current_snapshot()").fetchone()
    return str(found[0]) if found else "?"
