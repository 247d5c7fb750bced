"""Checks that a dropped file fits its dataset's format before it is announced."""

from __future__ import annotations

import json

from landing.catalog import Dataset


class InvalidFile(ValueError):
    """The file does not fit its dataset; the message is the reason written beside the quarantined file."""


def validate_jsonl(data: bytes, dataset: Dataset, max_bytes: int) -> int:
    """Rows in `data` if it is non-empty JSONL of objects carrying the dataset's declared columns."""
    if len(data) > max_bytes:
        raise InvalidFile(f"file is {len(data)} bytes, over the {max_bytes}-byte cap (LANDING_MAX_FILE_BYTES)")
    if not data.strip():
        raise InvalidFile("file is empty")
    if not data.endswith(b"\n"):
        raise InvalidFile("last line has no newline: the file looks truncated")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFile(f"not UTF-8 text (byte {exc.start}): binary file?") from None
    required = set(dataset.columns)
    rows = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidFile(f"line {number} is not valid JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(row, dict):
            raise InvalidFile(f"line {number} is a JSON {type(row).__name__}, not an object")
        missing = required - row.keys()
        if missing:
            raise InvalidFile(
                f"line {number} lacks the field(s) {', '.join(sorted(missing))} that {dataset.name} declares in dbt"
            )
        rows += 1
    return rows
