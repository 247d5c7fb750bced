"""The sensor's judging (sensors/judging.py), without a server: dbt's own read decides, and the reason names the row,
column and type."""

from __future__ import annotations


from tests.unit.sensor_kit import drop, outbox


def test_a_file_missing_a_required_column_is_quarantined_with_its_reason(sensor, settings):
    path = drop(sensor, "shop.products", "no-title.jsonl", b'{"id": 1, "price": 2}\n')
    assert sensor.process(path) == "quarantined"
    reason = (settings.root / "_quarantine" / "shop.products" / "no-title.jsonl.reason.txt").read_text()
    assert "the required column 'title' is missing" in reason
    [event] = outbox(settings)
    assert event["event"] == "landing.file.rejected" and "title" in event["payload"]["reason"]


def test_explain_tells_why_a_file_was_quarantined_from_either_of_its_paths(sensor, settings, catalog):
    from ops.inspect import explain

    path = drop(sensor, "shop.products", "bad.jsonl", b'{"id": "seven", "title": "t"}\n')
    assert sensor.process(path) == "quarantined"
    moved = str(settings.root / "_quarantine" / "shop.products" / "bad.jsonl")
    for target in (moved, path):
        lines: list[str] = []
        assert explain(target, settings, out=lines.append, catalog=catalog) == 0
        text = "\n".join(lines)
        assert f"quarantined {moved} (dropped as {path})" in text
        assert "row 1, column 'id'" in text and "landing.file.rejected" in text


def test_undeclared_columns_are_named_in_the_files_event(sensor, settings):
    path = drop(
        sensor, "shop.products", "wider.jsonl", b'{"id": 1, "title": "a", "price": 1, "colour": "red", "Brand": "b"}\n'
    )
    assert sensor.process(path) == "accepted"
    [event] = outbox(settings)
    # read_json binds a key to a declared column only when spelled the same: `Brand` does not fill `brand`
    assert event["payload"]["undeclared_columns"] == ["Brand", "colour"]


def test_the_judge_alone_gives_rows_and_undeclared_columns_or_the_reason(settings, catalog, tmp_path):
    """The Judge on its own: candidates in, verdicts out, from one read per dataset; it moves and records nothing."""
    import os

    from landing.reader import InvalidFile
    from sensors.judging import Judge
    from sensors.screening import Candidate

    ds = catalog.get("shop.products")
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_bytes(b'{"id": 1, "title": "a", "colour": "red"}\n{"id": 2, "title": "b"}\n')
    bad.write_bytes(b'{"id": 1}\n')
    judge = Judge()
    try:
        verdicts = judge.judge(
            {ds.name: [Candidate(str(p), str(p), ds, os.stat(p), "0" * 64, "e") for p in (good, bad)]}
        )
    finally:
        judge.close()
    assert verdicts[str(good)] == (2, ("colour",))
    assert isinstance(verdicts[str(bad)], InvalidFile) and "'title'" in str(verdicts[str(bad)])
    assert good.exists() and bad.exists()
