"""Validation is dbt's own read of one file: every format, every bad case, a reason naming row, column and type."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil

import pytest

from landing.catalog import load_catalog
from landing.reader import InvalidFile, connect, judge_many, reader_sql, validate_file
from landing.settings import REPO_ROOT


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    from landing.settings import Settings

    base = tmp_path_factory.mktemp("reader")
    return load_catalog(Settings(root=base / "landing", state_dir=base / "state"))


@pytest.fixture(scope="module")
def con():
    c = connect()
    yield c
    c.close()


def write(tmp_path, name: str, data: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


PRODUCT = '{"id": 1, "title": "a", "price": 1.5}\n'


@pytest.mark.parametrize(
    "name, data, rows",
    [
        ("only-required.jsonl", PRODUCT, 1),
        ("all-columns.jsonl", '{"id": 1, "title": "a", "price": 1.5, "category": "c", "brand": "b", "stock": 3}\n', 1),
        ("extra-columns.jsonl", '{"id": 1, "title": "a", "price": 1.5, "colour": "red"}\n', 1),
        ("no-final-newline.jsonl", PRODUCT.strip(), 1),
        ("array.json", '[{"id": 1, "title": "a", "price": 1}, {"id": 2, "title": "b", "price": 2}]', 2),
        ("compressed.jsonl.gz", gzip.compress(PRODUCT.encode() * 3, mtime=0), 3),
    ],
)
def test_good_json_files(catalog, con, tmp_path, name, data, rows):
    assert validate_file(con, catalog.get("dummyjson.products"), write(tmp_path, name, data)) == rows


def test_zstd_json_and_csv(catalog, con, tmp_path):
    con.execute(
        f"copy (select 1 as id, 'a' as title, 2.5 as price) to '{tmp_path}/p.jsonl.zst' (format json, compression zstd)"
    )
    assert validate_file(con, catalog.get("dummyjson.products"), f"{tmp_path}/p.jsonl.zst") == 1
    con.execute(
        f"copy (select 'EUR' as currency, 1.1 as rate_to_usd, date '2026-11-24' as as_of) "
        f"to '{tmp_path}/r.csv.zst' (format csv, header, compression zstd)"
    )
    assert validate_file(con, catalog.get("finance.exchange_rates"), f"{tmp_path}/r.csv.zst") == 1


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("empty.jsonl", "", "no rows: the file is empty"),
        ("malformed.jsonl", PRODUCT + '{"id": 2, "title": \n', "Malformed JSON"),
        ("cut.jsonl", PRODUCT + '{"id": 2, "tit', "unexpected end of data"),
        ("binary.jsonl", bytes(range(256)) * 4, "Malformed JSON"),
        ("scalars.jsonl", "[1, 2, 3]\n", "Expected OBJECT"),
        ("missing-required.jsonl", '{"id": 1, "title": "a"}\n', "the required column 'price' is missing"),
        (
            "one-row-missing.jsonl",
            PRODUCT + '{"id": 2, "title": "b"}\n' + PRODUCT,
            "row 2 has no value for the required column 'price'",
        ),
        ("null-required.jsonl", '{"id": 1, "title": null, "price": 1}\n', "required column 'title' is missing"),
        (
            "bad-type.jsonl",
            PRODUCT + '{"id": "seven", "title": "b", "price": 2}\n',
            "row 2, column 'id': value '\"seven\"' does not cast to the declared type integer",
        ),
        # DuckDB 2.0 says the GZIP stream is cut; 1.5 reads what it holds and says the JSON ends early
        ("truncated.jsonl.gz", gzip.compress(PRODUCT.encode() * 50, mtime=0)[:30], "GZIP|unexpected end of data"),
    ],
)
def test_bad_json_files(catalog, con, tmp_path, name, data, reason):
    with pytest.raises(InvalidFile) as err:
        validate_file(con, catalog.get("dummyjson.products"), write(tmp_path, name, data))
    assert re.search(reason, str(err.value)) if "|" in reason else reason in str(err.value)


RATES = "currency,rate_to_usd,as_of\n"


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("header-only.csv", RATES, "no rows: the file is empty or has only a header"),
        (
            "ragged.csv",
            RATES + "EUR,1.1,2026-11-24\nGBP,1.2,2026-11-24,oops\n",
            "line 3 has 4 field(s) where the header has 3",
        ),
        (
            "bad-type.csv",
            RATES + "EUR,1.1,2026-11-24\nGBP,lots,2026-11-24\n",
            "row 2, column 'rate_to_usd': value 'lots' does not cast to the declared type double",
        ),
        (
            "bad-date.csv",
            RATES + "EUR,1.1,yesterday\n",
            "column 'as_of': value 'yesterday' does not cast to the declared type date",
        ),
        ("missing-column.csv", "currency,as_of\nEUR,2026-11-24\n", "the required column 'rate_to_usd' is missing"),
        (
            "filename-column.csv",
            RATES.rstrip() + ",filename\nEUR,1.1,2026-11-24,x.csv\n",
            "the file has a column named 'filename', which the reader adds itself",
        ),
    ],
)
def test_bad_csv_files(catalog, con, tmp_path, name, data, reason):
    with pytest.raises(InvalidFile) as err:
        validate_file(con, catalog.get("finance.exchange_rates"), write(tmp_path, name, data))
    assert reason in str(err.value)


def test_csv_columns_in_any_order_and_gzip(catalog, con, tmp_path):
    ds = catalog.get("finance.exchange_rates")
    assert (
        validate_file(con, ds, write(tmp_path, "reordered.csv", "as_of,currency,rate_to_usd\n2026-11-24,EUR,1.1\n"))
        == 1
    )
    assert (
        validate_file(con, ds, write(tmp_path, "r.csv.gz", gzip.compress((RATES + "EUR,1.1,2026-11-24\n").encode())))
        == 1
    )


def test_parquet_good_and_corrupt(catalog, con, tmp_path):
    ds = catalog.get("inventory.stock_movements")
    sample = REPO_ROOT / "samples" / "inventory" / "stock_movements.parquet"
    good = shutil.copy(sample, tmp_path / "good.parquet")
    assert validate_file(con, ds, str(good)) == 40
    with pytest.raises(InvalidFile, match="magic bytes"):
        validate_file(con, ds, write(tmp_path, "corrupt.parquet", sample.read_bytes()[:200]))
    con.execute(f"copy (select 1 as product_id, 5 as quantity) to '{tmp_path}/no-id.parquet' (format parquet)")
    with pytest.raises(InvalidFile, match="required column 'movement_id' is missing"):
        validate_file(con, ds, f"{tmp_path}/no-id.parquet")


def validate_many(con, ds, paths):
    """judge_many's verdicts, rows only: the sensor's judgement as validate_file gives it for one file."""
    return {p: v if isinstance(v, InvalidFile) else v[0] for p, v in judge_many(con, ds, paths).items()}


def test_many_files_in_one_read_and_each_bad_one_named(catalog, con, tmp_path):
    ds = catalog.get("dummyjson.products")
    good = [write(tmp_path, f"g{i}.jsonl", PRODUCT * (i + 1)) for i in range(20)]
    assert validate_many(con, ds, good) == {p: i + 1 for i, p in enumerate(good)}
    bad = write(tmp_path, "bad.jsonl", '{"id": "x", "title": "a", "price": 1}\n')
    empty = write(tmp_path, "empty.jsonl", "")
    verdicts = validate_many(con, ds, [*good[:3], bad, empty])
    assert [verdicts[p] for p in good[:3]] == [1, 2, 3]
    assert "column 'id'" in str(verdicts[bad]) and "no rows" in str(verdicts[empty])


def test_the_read_yields_exactly_the_declared_columns(catalog, con, tmp_path):
    ds = catalog.get("dummyjson.products")
    path = write(tmp_path, "p.jsonl", '{"id": 1, "title": "a", "price": 1.5, "colour": "red"}\n')
    cursor = con.execute(f"select * from {reader_sql(ds, [path])}")
    assert [c[0] for c in cursor.description] == [*ds.columns, "filename"]
    assert cursor.fetchall() == [(1, "a", 1.5, None, None, None, path)]


P = '"title": "a", "price": 1.5'
# Files the batch screen (json_transform over read_json_objects) could judge differently from read_json itself.
TRICKY = {
    "good": '{"id": 1, %s}\n' % P,
    "object-in-varchar": '{"id": 1, %s, "brand": {"a": 1}}\n' % P,
    "number-in-varchar": '{"id": 1, "title": 5, "price": 1}\n',
    "string-number": '{"id": "7", %s}\n' % P,
    "string-plus-number": '{"id": "+5", %s}\n' % P,
    "string-underscore-number": '{"id": "1_000", %s}\n' % P,
    "string-exponent": '{"id": "1e2", %s}\n' % P,
    "float-for-integer": '{"id": 1.5, %s}\n' % P,
    "overflow": '{"id": 99999999999, %s}\n' % P,
    "bad-double": '{"id": 1, "title": "a", "price": "abc"}\n',
    "boolean-for-integer": '{"id": true, %s}\n' % P,
    "object-for-integer": '{"id": {"x": 1}, %s}\n' % P,
    "other-case-key": '{"ID": 1, %s}\n' % P,
    "repeated-key": '{"id": 1, "id": 2, %s}\n' % P,
    "repeated-escaped-key": '{"\\u0069d": 1, "id": 2, %s}\n' % P,
    "repeated-undeclared-key": '{"id": 1, "x": 1, "x": 2, %s}\n' % P,
    "key-in-a-value": '{"id": 1, "title": "x \\"id\\": y", "price": 1}\n',
    "scalar-line": '{"id": 1, %s}\n5\n' % P,
    "null-line": '{"id": 1, %s}\nnull\n' % P,
    "array-file": '[{"id": 1, %s}, {"id": 2, %s}]' % (P, P),
    "array-with-scalar": '[{"id": 1, %s}, 3]' % P,
    "two-objects-one-line": '{"id": 1, %s}{"id": 2, %s}\n' % (P, P),
    "crlf-and-blank-lines": '{"id": 1, %s}\r\n\r\n{"id": 2, %s}\r\n' % (P, P),
    "empty-string-for-integer": '{"id": 1, %s, "stock": ""}\n' % P,
    "nan": '{"id": 1, "title": "a", "price": NaN}\n',
    "malformed": '{"id": 1, %s,\n' % P,
    "whitespace-only": "  \n\n",
}


def test_the_batch_screen_never_accepts_what_the_dataset_read_refuses(catalog, con, tmp_path):
    """The catch-up's cheaper batch read must agree with read_json on every file: same rows, or both refuse."""
    ds = catalog.get("dummyjson.products")
    paths = {name: write(tmp_path, f"{name}.jsonl", data) for name, data in TRICKY.items()}
    each = {}
    for name, path in paths.items():
        try:
            each[name] = validate_file(con, ds, path)
        except InvalidFile as exc:
            each[name] = type(exc)
    good = [write(tmp_path, f"g{i}.jsonl", TRICKY["good"]) for i in range(2)]
    screened = {}
    for name, path in paths.items():  # each beside good files: a file the JSON reader cannot read fails the batch
        verdicts = validate_many(con, ds, [good[0], path, good[1]])
        assert verdicts[good[0]] == verdicts[good[1]] == 1
        screened[name] = verdicts[path] if isinstance(verdicts[path], int) else type(verdicts[path])
    assert screened == each
    assert each["repeated-key"] is InvalidFile and each["string-plus-number"] is InvalidFile  # the cases that differ


def test_the_batch_screen_only_where_it_reads_like_the_dataset(catalog):
    from landing.reader import _screen_sql

    assert _screen_sql(catalog.get("dummyjson.products"), ["a", "b"]) is not None
    assert _screen_sql(catalog.get("dummyjson.carts"), ["a", "b"]) is None  # a nested type
    assert _screen_sql(catalog.get("finance.exchange_rates"), ["a", "b"]) is None  # CSV


def _flushed_gzip(lines: list[bytes]) -> tuple[bytes, int]:
    """A gzip stream flushed after every line, and where its first half ends: a cut there falls between lines."""
    import zlib

    deflate, out, half = zlib.compressobj(6, zlib.DEFLATED, 31), b"", 0
    for i, line in enumerate(lines):
        out += deflate.compress(line) + deflate.flush(zlib.Z_FULL_FLUSH)
        if i == len(lines) // 2 - 1:
            half = len(out)
    return out + deflate.flush(), half


@pytest.mark.parametrize(
    "case, problem",
    [
        ("whole", None),
        ("two members", None),
        ("NUL padding", None),
        ("not gzip", "not a valid gzip stream"),
        ("cut between lines", "cut short"),
        ("cut in the trailer", "cut short"),
        ("garbage after", "not a valid gzip stream"),
    ],
)
def test_digest_hashes_in_one_read_and_finds_a_gzip_file_cut_short(tmp_path, case, problem):
    """A transfer that stopped leaves a gzip file whose first lines read fine (DuckDB 1.5 loads them without a word):
    the sensor's one read finds it, and the sha256 is the file's all the same."""
    from landing.reader import digest

    lines = [json.dumps({"id": i, "title": "t", "price": 1}).encode() + b"\n" for i in range(2000)]
    whole, half = _flushed_gzip(lines)
    data = {
        "whole": whole,
        "two members": whole + gzip.compress(lines[0]),
        "NUL padding": whole + b"\0" * 512,
        "not gzip": b"".join(lines),
        "cut between lines": whole[:half],
        "cut in the trailer": whole[:-4],
        "garbage after": whole + b"junk",
    }[case]
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(data)
    sha256, found = digest(str(path), chunk=4096)
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert found is None if problem is None else problem in found
