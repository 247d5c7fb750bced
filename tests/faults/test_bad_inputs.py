"""R3: bad inputs mixed with good files; each is quarantined or refused with a reason, the good ones flow."""

from __future__ import annotations

import os
from pathlib import Path

from landing.events import FILE_CREATED, FILE_REJECTED
from tests.support.sensing import Harness, rows


def test_bad_inputs_are_quarantined_or_refused_and_good_files_flow(sensor_settings, prefect_server, tmp_path):
    h = Harness(sensor_settings)
    tag = tmp_path.name
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(rows(f"outside-{tag}"))
    h.start()
    try:
        f = h.folder
        quarantined = {
            "malformed.jsonl": (b'{"id": 1, "title": "a", "price": 1}\n{"id": 2, "title": \n', "Malformed JSON"),
            "empty.jsonl": (b"", "no rows: the file is empty"),
            "truncated.jsonl": (rows(f"trunc-{tag}")[:-7], "unexpected end of data"),
            "binary.jsonl": (bytes(range(256)) * 8 + b"\n", "Malformed JSON"),
            "wrong-fields.jsonl": (
                b'{"sku": "X-1", "name": "no id, title or price"}\n',
                "required column 'id' is missing",
            ),
            "array.jsonl": (b"[1, 2, 3]\n", "Expected OBJECT"),
            "bad-type.jsonl": (
                b'{"id": 1, "title": "a", "price": 1}\n{"id": "seven", "title": "b", "price": 2}\n',
                "row 2, column 'id': value '\"seven\"' does not cast to the declared type integer",
            ),
        }
        for name, (data, _) in quarantined.items():
            (f / name).write_bytes(data)
        with open(f / "huge.jsonl", "wb") as fh:  # 100 MB, over the 50 MiB default cap; never read
            fh.truncate(100 * 1024 * 1024)
        (f / "escape.jsonl").symlink_to(outside)
        (f / "..evil.jsonl").write_bytes(rows(f"dotdot-{tag}"))
        (f / "dir.jsonl").mkdir()
        os.mkfifo(f / "pipe.jsonl")
        for name in ("x.tmp", "x.part", "x.jsonl~", ".x.jsonl"):
            (f / name).write_bytes(rows(f"temp-{name}-{tag}"))
        good = {"good-1.jsonl": rows(f"good1-{tag}"), "produkt ünïcødé mit leerzeichen.jsonl": rows(f"unicode-{tag}")}
        for name, data in good.items():
            (f / name).write_bytes(data)

        created = h.events(FILE_CREATED, expect=2)
        rejected = h.events(FILE_REJECTED, expect=len(quarantined) + 1)
        h.sensor.drain()
        created, rejected = h.quiet_events(FILE_CREATED), h.quiet_events(FILE_REJECTED)
    finally:
        h.stop()

    assert sorted(Path(e.payload["dropped_as"]).name for e in created) == sorted(good)
    reasons = {Path(e.payload["relative_path"]).name: e.payload["reason"] for e in rejected}
    assert set(reasons) == set(quarantined) | {"huge.jsonl"}
    for name, (_, why) in quarantined.items():
        assert why in reasons[name], (name, reasons[name])
    assert "over the 52428800-byte cap" in reasons["huge.jsonl"]

    qdir = Path(os.path.realpath(sensor_settings.root)) / "_quarantine" / "dummyjson.products"
    for name in [*quarantined, "huge.jsonl"]:
        assert (qdir / name).exists() and not (h.folder / name).exists()
        assert "reason:" in (qdir / f"{name}.reason.txt").read_text()
    # refused or ignored, and left exactly where they were
    assert outside.read_bytes() == rows(f"outside-{tag}") and (h.folder / "escape.jsonl").is_symlink()
    for name in ("..evil.jsonl", "dir.jsonl", "pipe.jsonl", "x.tmp", "x.part", "x.jsonl~", ".x.jsonl"):
        assert os.path.lexists(h.folder / name), name
