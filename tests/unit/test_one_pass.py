"""One pass on the hot path: between a drop and its rows, a file's bytes are read three times (the kernel counts)."""

from __future__ import annotations

import os
from dataclasses import replace

import duckdb
import pytest

from automations import load
from landing.ledger import Ledger, ledger_path
from tests.support.opens import Opens

ROWS = b'{"id": 1, "title": "a", "price": 1.5, "colour": "red"}\n{"id": 2, "title": "b", "size": 3}\n'


def drop_and_load(sensor, settings, ds, name: str, data: bytes) -> tuple[int, int, str]:
    """Drop a file, let the sensor decide it and the loader load it; the opens of its bytes by each, and its id."""
    with Opens([ds.path, ds.accepted_path]) as opens:
        path = ds.path / name
        path.write_bytes(data)
        written, before = opens.of(name), set(os.listdir(ds.accepted_path))
        assert sensor.process(str(path)) == "accepted"
        (accepted,) = set(os.listdir(ds.accepted_path)) - before
        by_sensor = opens.of(name) - written
        with duckdb.connect(str(settings.state_dir / "w.duckdb")) as con:
            done = load.load(con, settings, ds)
        assert [os.path.basename(p) for p in done.files] == [accepted]
        return by_sensor, opens.of(accepted), ds.file_id(accepted)


def test_a_dropped_json_file_is_read_three_times_and_its_keys_scanned_once(sensor, settings, catalog):
    ds = catalog.get("shop.products")
    by_sensor, by_loader, file_id = drop_and_load(sensor, settings, ds, "a.jsonl", ROWS)
    # the sensor: the hash, then one read that validates and finds the undeclared keys; the loader: one read for the
    # rows, trusting the keys the sensor recorded in the ledger (today's figure was 3 + 2)
    assert (by_sensor, by_loader) == (2, 1)
    with duckdb.connect(str(settings.state_dir / "w.duckdb")) as con:
        assert load.history(con, file_id)[5] == ["colour", "size"]
        assert con.execute(f"select id, title, price from {load.raw_table(ds)} order by id").fetchall() == [
            (1, "a", 1.5),
            (2, "b", None),
        ]


def test_a_rescue_dataset_reads_the_objects_once_more_for_what_it_keeps(sensor, settings, catalog):
    ds = replace(catalog.get("shop.products"), rescue=True)
    sensor.catalog.datasets[ds.name] = ds
    by_sensor, by_loader, file_id = drop_and_load(sensor, settings, ds, "a.jsonl", ROWS)
    assert (by_sensor, by_loader) == (2, 2)
    with duckdb.connect(str(settings.state_dir / "w.duckdb")) as con:
        got = con.execute(f"select id, _rescued::varchar from {load.raw_table(ds)} order by id").fetchall()
    assert got == [(1, '{"colour":"red"}'), (2, '{"size":3}')]


@pytest.mark.parametrize("change", ["declare colour", "drop price", "reader option"])
def test_a_judgement_against_another_declaration_is_not_trusted(sensor, settings, catalog, change):
    ds = catalog.get("shop.products")
    path = ds.path / "a.jsonl"
    path.write_bytes(ROWS)
    assert sensor.process(str(path)) == "accepted"
    (accepted,) = os.listdir(ds.accepted_path)
    ledger = Ledger(ledger_path(settings.state_dir))
    try:
        record = ledger.by_accepted(str(ds.accepted_path / accepted))
    finally:
        ledger.close()
    assert record.undeclared_columns(ds.declared_digest) == ("colour", "size")
    if change == "declare colour":
        changed = replace(ds, columns=(*ds.columns, "colour"), column_types=(*ds.column_types, "varchar"))
        expected = ["size"]
    elif change == "reader option":  # how the file is read changed, the columns did not
        changed = replace(ds, location=ds.location.replace("format='auto'", "format='newline_delimited'"))
        expected = ["colour", "size"]
    else:
        keep = [i for i, c in enumerate(ds.columns) if c != "price"]
        changed = replace(
            ds, columns=tuple(ds.columns[i] for i in keep), column_types=tuple(ds.column_types[i] for i in keep)
        )
        expected = ["colour", "price", "size"]
    assert record.undeclared_columns(changed.declared_digest) is None
    with duckdb.connect(str(settings.state_dir / "w.duckdb")) as con:
        load.load(con, settings, changed)
        assert load.history(con, changed.file_id(accepted))[5] == expected


def test_a_file_changed_in_the_accepted_area_after_its_judgement_is_read_again(sensor, settings, catalog):
    ds = catalog.get("shop.products")
    path = ds.path / "a.jsonl"
    path.write_bytes(ROWS)
    assert sensor.process(str(path)) == "accepted"
    (accepted,) = os.listdir(ds.accepted_path)
    (ds.accepted_path / accepted).write_bytes(b'{"id": 5, "title": "e", "weight": 2}\n')  # by hand, same name
    with duckdb.connect(str(settings.state_dir / "w.duckdb")) as con:
        load.load(con, settings, ds)
        assert load.history(con, ds.file_id(accepted))[5] == ["weight"]
