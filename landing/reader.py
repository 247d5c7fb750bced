"""How a dataset's files are read (its external_location, with the declared schema): the one definition.

The sensor judges a file with it, the loader loads the accepted files with it into the raw tables dbt reads
(`dbt/macros/landing_source.sql` returns those). A file is valid when this read of it succeeds, yields rows, and
fills every required column in every row: a valid file is a buildable file.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import threading
import zlib
from pathlib import Path

from landing.catalog import Dataset

_FIRST_QUOTED = re.compile(r"""'((?:[^']|'')*)'|"([^"]*)\"""")
_CAST_ERRORS = ("Conversion Error", "Could not convert", "Failed to cast", "transform error")


class InvalidFile(ValueError):
    """The file cannot be built for its dataset; the message is the reason written beside the quarantined file."""


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def function_name(location: str) -> str:
    return location.split("(", 1)[0].strip().lower()


def _compact(location: str) -> str:
    return location.replace(" ", "").lower()


def has_filename(location: str) -> bool:
    return "filename=true" in _compact(location)


def reader_call(ds: Dataset, paths: list[str] | None = None, types: dict[str, str] | None = None) -> str:
    """The external_location's reader call, over `paths` instead of its glob when given, with the declared schema:
    read_json gets `columns=` (no sniffing; a missing key reads as NULL), read_csv and read_parquet get
    `union_by_name=true` (each file's own header), read_csv gets `skip=0` (the sniffer may not skip ragged rows)."""
    location = ds.location.strip()
    if paths is not None:
        listed = quote_literal(paths[0]) if len(paths) == 1 else "[" + ", ".join(quote_literal(p) for p in paths) + "]"
        m = _FIRST_QUOTED.search(location)
        location = location[: m.start()] + listed + location[m.end() :] if m else listed
    fn = function_name(location)
    compact = _compact(location)
    extra = []
    if fn.startswith(("read_json", "read_ndjson")) and "columns=" not in compact:
        schema = types or ds.schema
        extra.append(
            "columns={" + ", ".join(f"{quote_literal(c)}: {quote_literal(t)}" for c, t in schema.items()) + "}"
        )
    if fn.startswith(("read_csv", "read_parquet")) and "union_by_name=" not in compact:
        extra.append("union_by_name=true")
    if fn.startswith("read_csv") and "skip=" not in compact:
        extra.append("skip=0")
    if not extra or not location.endswith(")"):
        return location
    return location[:-1] + "".join(", " + e for e in extra) + ")"


def reader_sql(
    ds: Dataset,
    paths: list[str] | None = None,
    types: dict[str, str] | None = None,
    extra: str = "",
    with_filename: bool | None = None,
) -> str:
    """How a file is read as its source declares it, the one definition (validation, the sensor's verdicts and the
    loader all use it; dbt reads what the loader loaded). A subquery yielding exactly the declared columns (cast to
    their declared types), then the select expressions `extra` (over the file's own columns), then `filename` where
    the location asks for it or `with_filename`. A column a file lacks reads as NULL; a column the source does not
    declare is not there. `types` reads the file's columns with other types first (reader_call)."""
    with_filename = has_filename(ds.location) if with_filename is None else with_filename
    call = reader_call(ds, paths, types)
    if with_filename and not has_filename(ds.location) and call.endswith(")"):
        call = call[:-1] + ", filename=true)"
    nulls = [f"cast(null as {t}) as {quote_ident(c)}" for c, t in ds.schema.items()]
    casts = [f"cast({quote_ident(c)} as {t}) as {quote_ident(c)}" for c, t in ds.schema.items()]
    if with_filename:
        nulls.append("cast(null as varchar) as filename")
    return (
        f"(select {', '.join(casts)}{extra}{', filename' if with_filename else ''} from (select {', '.join(nulls)} "
        f"where false union all by name select * from {call}))"
    )


def connect(threads: int = 1):
    """A small in-memory DuckDB for validation: few threads, a bounded memory budget."""
    import duckdb

    return duckdb.connect(":memory:", config={"threads": threads, "memory_limit": "256MB"})


_local = threading.local()


def thread_connection():
    """This thread's validation DuckDB, opened once (opening one takes about 20 ms)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = connect()
    return con


def _checks(ds: Dataset) -> str:
    # every declared column is referenced, so each is read and cast (DuckDB prunes unreferenced columns)
    return ", ".join(f"count(*) filter (where {quote_ident(c)} is null)" for c in ds.columns) or "0"


def _first_message(exc: Exception) -> str:
    text = str(exc)
    for stop in ("\nTry setting", "\nPossible fixes", "\nThe search space", "\n\nLINE "):
        text = text.split(stop, 1)[0]
    text = re.sub(r"^[A-Za-z ]+ Error: ", "", text.strip())
    return " ".join(text.split())[:600]


def validate_file(con, ds: Dataset, path: str) -> int:
    """Rows in the file at `path` if dbt can build it for `ds`; InvalidFile naming the row, column and type if not."""
    try:
        found = con.execute(f"select count(*), {_checks(ds)} from {reader_sql(ds, [path])}").fetchone()
    except Exception as exc:
        raise InvalidFile(_diagnose(con, ds, path, exc)) from None
    return _judge(con, ds, path, found)


def _judge(con, ds: Dataset, path: str, found) -> int:
    rows, nulls = found[0], dict(zip(ds.columns, found[1:]))
    if rows == 0:
        raise InvalidFile(
            f"no rows: the file is empty{' or has only a header' if 'csv' in function_name(ds.location) else ''}"
        )
    for column in ds.required:
        if nulls.get(column) == rows:
            raise InvalidFile(
                f"the required column {column!r} is missing: no row has a value for it "
                f"({ds.name} declares it not_null in dbt)"
            )
        if nulls.get(column):
            n = con.execute(
                f"select n from (select row_number() over () as n, {quote_ident(column)} as v "
                f"from {reader_sql(ds, [path])}) where v is null order by n limit 1"
            ).fetchone()[0]
            raise InvalidFile(
                f"row {n} has no value for the required column {column!r} ({ds.name} declares it not_null in dbt); "
                f"{nulls[column]} of {rows} row(s) lack it"
            )
    return rows


_OPTION = re.compile(r"""(\w+)\s*=\s*(?:'(?:[^']|'')*'|[^,)]+)""")
_SIMPLE_TYPES = {
    "boolean",
    "bool",
    "tinyint",
    "smallint",
    "integer",
    "int",
    "bigint",
    "hugeint",
    "utinyint",
    "usmallint",
    "uinteger",
    "ubigint",
    "float",
    "real",
    "double",
    "varchar",
    "text",
    "string",
}
_SCREENED_OPTIONS = {"format", "compression", "filename"}


def _screen_sql(ds: Dataset, paths: list[str]) -> str | None:
    """A cheaper read of many JSON files that finds the same faults as the dataset's read, or None where it cannot.

    DuckDB 2.0 binds `read_json(..., columns=...)` again for every file it reads, parsing the declared types each
    time: about 0.2 ms of a small file's 0.3 ms. `read_json_objects` reads the same JSON with the same format and
    compression options, and `json_transform` applies the same conversion to the declared types once per query.
    Where a value does not convert, read_json fails and json_transform gives NULL, so a NULL where the file has a
    value counts as a fault here, and so do what the two treat differently: a string for a number or boolean, and a
    repeated key. Only for locations with no options beyond format, compression and filename, and
    scalar declared types (no date or timestamp formats, no nested types); a batch with any fault, and every other
    location, is read by the dataset's own reader (tests/unit/test_reader.py checks that the two agree)."""
    location = ds.location.strip()
    fn = function_name(location)
    if fn not in ("read_json", "read_json_auto", "read_ndjson", "read_ndjson_auto"):
        return None
    options = {m.group(1).lower(): m.group(0).split("=", 1)[1].strip() for m in _OPTION.finditer(location)}
    if not set(options) <= _SCREENED_OPTIONS or not ds.schema:
        return None
    if any(t.strip().lower() not in _SIMPLE_TYPES for t in ds.schema.values()):
        return None
    objects = "read_ndjson_objects" if fn.startswith("read_ndjson") else "read_json_objects"
    listed = "[" + ", ".join(quote_literal(p) for p in paths) + "]"
    args = "".join(f", {k}={v}" for k, v in options.items() if k != "filename")
    spec = quote_literal(json.dumps(ds.schema))
    raw = quote_literal(json.dumps({c: "JSON" for c in ds.schema}))
    # a declared key given twice: read_json refuses it, json_transform takes the first. Counted in the text, where a
    # key may also be written with \u escapes; either (or the name in a value, or a nested key) sends the file to
    # the dataset's own read, which only costs speed
    faults = ["json_type(json) <> 'OBJECT'", "contains(json, '\\u')"]
    for c, t in ds.schema.items():
        key = json.dumps(c)
        faults.append(f"len(json) - len(replace(json, {quote_literal(key)}, '')) > {len(key)}")
        faults.append(f"(t.{quote_ident(c)} is null and r.{quote_ident(c)} is not null)")
        if t.strip().lower() not in ("varchar", "text", "string"):
            # a string for a number or boolean: the two casts differ ("+5", "1_000")
            faults.append(f"json_type(r.{quote_ident(c)}) = 'VARCHAR'")
    nulls = ", ".join(f"count(*) filter (where t.{quote_ident(c)} is null)" for c in ds.columns) or "0"
    # the keys no declared column binds (exact names, as read_json binds them), from the same read
    declared = "[" + ", ".join(quote_literal(c) for c in ds.columns) + "]::varchar[]"
    keys = (
        "list_sort(list_filter(list_distinct(flatten(list(json_keys(json)) filter (where json_type(json) = 'OBJECT'))), "
        f"lambda k: not list_contains({declared}, k)))"
    )
    return (
        f"select filename, count(*) filter (where {' or '.join(faults)}), {keys}, count(*), {nulls} "
        f"from (select filename, json, json_transform(json, {spec}) as t, json_transform(json, {raw}) as r "
        f"from {objects}({listed}{args}, filename=true)) group by filename"
    )


def judge_many(con, ds: Dataset, paths: list[str]) -> dict[str, tuple[int, tuple[str, ...]] | InvalidFile]:
    """Per file: its rows and its undeclared columns (undeclared_columns) if dbt can build it for `ds`, else
    InvalidFile with the reason. A JSON dataset with scalar types is read once for both, however many files (the
    screen, _screen_sql); a file the screen finds odd, and other datasets, are read by the dataset's own reader, and
    their columns looked up apart."""
    out: dict[str, tuple[int, tuple[str, ...]] | InvalidFile] = {}
    screen = _screen_sql(ds, paths)
    if screen is not None:
        try:
            found = {row[0]: row[1:] for row in con.execute(screen).fetchall()}
        except Exception:
            found = {}  # at least one file the JSON reader cannot read: each is read on its own below
        odd = []
        for p in paths:
            figures = found.get(p)
            if figures is None or figures[0]:
                odd.append(p)  # a fault (or a file with no rows): the dataset's own read decides, and names the reason
                continue
            try:
                out[p] = (_judge(con, ds, p, figures[2:]), tuple(figures[1]))
            except InvalidFile as exc:
                out[p] = exc
        if odd:
            out.update(_judge_apart(con, ds, odd))
        return {p: out[p] for p in paths}
    return _judge_apart(con, ds, paths)


def _judge_apart(con, ds: Dataset, paths: list[str]) -> dict[str, tuple[int, tuple[str, ...]] | InvalidFile]:
    """judge_many by the dataset's own reader: a read for the verdicts, and one for the columns of the valid files."""
    rows: dict[str, int | InvalidFile] = {}
    if len(paths) > 1 and has_filename(ds.location):
        try:
            found = con.execute(
                f"select filename, count(*), {_checks(ds)} from {reader_sql(ds, paths)} group by filename"
            ).fetchall()
        except Exception:
            found = None  # at least one bad file: judge each on its own below
        if found is not None:
            by_name = {row[0]: row[1:] for row in found}
            for p in paths:
                try:
                    rows[p] = _judge(con, ds, p, by_name.get(p, (0, *[0] * len(ds.columns))))
                except InvalidFile as exc:
                    rows[p] = exc
    if not rows:
        for p in paths:
            try:
                rows[p] = validate_file(con, ds, p)
            except InvalidFile as exc:
                rows[p] = exc
    extra = undeclared_columns(con, ds, [p for p, v in rows.items() if not isinstance(v, InvalidFile)])
    return {p: v if isinstance(v, InvalidFile) else (v, extra.get(p, ())) for p, v in rows.items()}


_OBJECT_OPTIONS = {"format", "compression", "maximum_object_size", "ignore_errors"}


def objects_call(ds: Dataset, paths: list[str]) -> str:
    """Each JSON object of `paths` as text (`json`), with its file (`filename`): read_json_objects (or
    read_ndjson_objects) with the dataset's format and compression options."""
    location = ds.location.strip()
    options = {m.group(1).lower(): m.group(0).split("=", 1)[1].strip() for m in _OPTION.finditer(location)}
    args = "".join(f", {k}={v}" for k, v in options.items() if k in _OBJECT_OPTIONS)
    fn = "read_ndjson_objects" if function_name(location).startswith("read_ndjson") else "read_json_objects"
    return f"{fn}([{', '.join(quote_literal(p) for p in paths)}]{args}, filename=true)"


def undeclared_columns(con, ds: Dataset, paths: list[str], file_key: str | None = None) -> dict[str, tuple[str, ...]]:
    """Per file of `paths` that carries any: the top-level columns the source does not declare, sorted (schema drift).
    JSON: its objects' keys, in one read of all `paths`, compared by exact name (as read_json binds them); CSV and
    Parquet: each file's own header, compared case-insensitively (as their readers bind them); a file that cannot be read here counts as having none. With `file_key`
    (JSON only: a compacted part), each object names its file in that key, which is not a column."""
    if not paths:
        return {}
    declared = {c.lower() for c in ds.columns} | ({file_key.lower()} if file_key else set())
    out: dict[str, tuple[str, ...]] = {}
    if function_name(ds.location).startswith(("read_json", "read_ndjson")):
        # read_json binds a key to a declared column only when they are spelled the same: `FirstName` is undeclared
        exact = {*ds.columns, *([file_key] if file_key else [])}
        source = f"json->>{quote_literal('$.' + file_key)}" if file_key else "filename"
        try:
            found = con.execute(
                f"select f, list(distinct k order by k) from (select {source} as f, unnest(json_keys(json)) as k "
                f"from {objects_call(ds, paths)} where json_type(json) = 'OBJECT') "
                "where k not in (select unnest(?::varchar[])) group by f",
                [sorted(exact)],
            ).fetchall()
        except Exception:
            if file_key:
                raise  # our own part: a failure to read it is not "no drift"
            return {}
        return {f: tuple(keys) for f, keys in found if keys}
    for p in paths:
        try:
            names = [r[0] for r in con.execute(f"describe select * from {reader_call(ds, [p])}").fetchall()]
        except Exception:
            continue
        extra = tuple(sorted(n for n in names if n.lower() not in declared and n != "filename"))
        if extra:
            out[p] = extra
    return out


def _diagnose(con, ds: Dataset, path: str, exc: Exception) -> str:
    """A reason naming the row, column and declared type where the read failed on a value, else DuckDB's own words."""
    message = _first_message(exc)
    fn = function_name(ds.location)
    if "Option filename adds column" in str(exc):
        return (
            "the file has a column named 'filename', which the reader adds itself (filename=true in "
            f"{ds.name}'s external_location): rename that column in the file and drop it again"
        )
    if fn.startswith("read_csv"):
        ragged = _ragged_csv_row(path)
        if ragged:
            return ragged
    if any(marker in str(exc) for marker in _CAST_ERRORS):
        loose = {c: "JSON" for c in ds.columns} if fn.startswith(("read_json", "read_ndjson")) else None
        try:
            present = {
                r[0] for r in con.execute(f"describe select * from {reader_call(ds, [path], types=loose)}").fetchall()
            }
            for column, dtype in ds.schema.items():
                if column not in present:
                    continue
                bad = con.execute(
                    f"select n, v from (select row_number() over () as n, {quote_ident(column)} as v "
                    f"from {reader_call(ds, [path], types=loose)}) "
                    f"where v is not null and try_cast(v as {dtype}) is null order by n limit 1"
                ).fetchone()
                if bad:
                    return f"row {bad[0]}, column {column!r}: value {str(bad[1])[:80]!r} does not cast to the declared type {dtype}"
        except Exception:
            pass
    return message


GZIP_SUFFIXES = (".gz", ".gzip")


class _Hashing(io.RawIOBase):
    """A binary file read through, its bytes hashed as they go by (for a reader that consumes it, such as gzip's)."""

    def __init__(self, fh, sha):
        self.fh, self.sha = fh, sha

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.fh.readinto(buffer)
        self.sha.update(memoryview(buffer)[:n])
        return n


def digest(path: str, chunk: int = 1 << 20) -> tuple[str, str | None]:
    """A file's sha256 and, for a gzip file, what is wrong with its stream (None when whole), from one read. A
    gzip file cut short (a transfer that stopped) must never load part of its rows; DuckDB 1.5 reads such a file up
    to the cut without an error when the cut falls between lines. Python's gzip reader decides what is whole: every
    member (`cat a.gz b.gz` is one gzip file), NUL padding after the last one ignored, as gzip(1) does."""
    sha = hashlib.sha256()
    problem = None
    with open(path, "rb") as fh:
        if path.endswith(GZIP_SUFFIXES):
            hashing = _Hashing(fh, sha)
            try:
                with gzip.GzipFile(fileobj=io.BufferedReader(hashing, chunk)) as stream:
                    while stream.read(chunk):
                        pass
            except EOFError:
                problem = "the gzip stream is cut short (the file is truncated): re-send the file whole"
            except (gzip.BadGzipFile, zlib.error) as exc:
                problem = f"not a valid gzip stream ({exc}): re-send the file whole"
        while block := fh.read(chunk):  # what the gzip reader left (all of a file that is not gzip)
            sha.update(block)
    return sha.hexdigest(), problem


def _ragged_csv_row(path: str) -> str | None:
    """The first CSV row whose field count differs from the header's, if any (DuckDB's sniffer gives up on these)."""
    try:
        raw = Path(path).read_bytes()
        if path.endswith((".gz", ".gzip")):
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
    except (OSError, EOFError, ValueError, gzip.BadGzipFile):
        return None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    if not header:
        return None
    for row in reader:
        if row and len(row) != len(header):
            return (
                f"line {reader.line_num} has {len(row)} field(s) where the header has {len(header)} "
                f"({', '.join(header)[:120]}): a ragged CSV row"
            )
    return None
