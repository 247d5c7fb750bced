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
