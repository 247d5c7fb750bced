"""What the sensor's unit tests share: a drop into a dataset's folder, the outbox's events (the `sensor` fixture is in
conftest.py)."""

from __future__ import annotations


from landing.ledger import Ledger

GOOD = b'{"id": 1, "title": "a", "price": 1.5}\n'


def drop(sensor, dataset: str, name: str, data: bytes) -> str:
    path = sensor.catalog.get(dataset).path / name
    path.write_bytes(data)
    return str(path)


def outbox(settings) -> list[dict]:
    led = Ledger(settings.state_dir / "ledger.sqlite")
    try:
        return [e for _, e in led.due(limit=100, now=float("inf"))]
    finally:
        led.close()
