"""`python -m sensors`: run the landing sensor until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from landing.settings import Settings
from sensors.sensor import Sensor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sensors",
        description="Watch LANDING_ROOT and emit one landing.file.created event per complete data file. "
        "Needs PREFECT_API_URL; events wait in the ledger while the server is down.",
    )
    parser.add_argument(
        "--polling",
        action="store_true",
        help="poll instead of inotify (network filesystems); a file counts once its size and mtime are stable",
    )
    parser.add_argument(
        "--once", action="store_true", help="catch up on files not in the ledger, send their events, and exit"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    logging.getLogger("prefect").setLevel(logging.WARNING)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sensor = Sensor(Settings(), polling=args.polling).start(watch=not args.once)
    if args.once:
        sensor.drain(timeout=None)
    else:
        stop.wait()
    left = sensor.stop(flush_timeout=None if args.once else 5)
    logging.getLogger("landing.sensor").info("stopped; %d event(s) left in the ledger", left)
    return 0


if __name__ == "__main__":
    sys.exit(main())
