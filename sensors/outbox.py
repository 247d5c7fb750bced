"""The sensor's outbox: events recorded in the ledger, sent to the Prefect server in order."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from landing.ledger import Ledger
from landing.transport import EmitError, send_events
from sensors.screening import SayOnce

log = logging.getLogger("landing.sensor")


class Outbox:
    """The ledger's unsent events sent to the Prefect server, in order, retried with backoff; sent ones marked.
    `wake` starts a send at once; `hold` keeps sends back (a large catch-up decides first)."""

    def __init__(self, ledger: Ledger, say: SayOnce):
        self.ledger, self.say = ledger, say
        self.wake = threading.Event()
        self.hold = False
        self.fail_streak = 0
        self.server_down = False

    def run(self, stop: threading.Event) -> None:
        """Send due events whenever woken (or every second) until `stop`."""
        while not stop.is_set():
            self.wake.wait(1.0)
            self.wake.clear()
            while not stop.is_set() and not self.hold and self.flush_once():
                pass

    def flush_once(self, force: bool = False) -> bool:
        """Send one batch of due events; True if a batch was sent."""
        due = self.ledger.due_texts(limit=2000, now=float("inf") if force else None)
        if not due:
            return False
        ids = [eid for eid, _, _, _ in due]
        try:
            send_events([text for _, _, _, text in due])
        except EmitError as exc:
            self.fail_streak += 1
            retry_in = min(30.0, 0.5 * 2 ** min(6, self.fail_streak - 1))
            self.ledger.mark_failed(ids, time.time() + retry_in)
            if not self.server_down:
                log.warning(
                    "waiting for the server: %d event(s) kept in the ledger, retrying with backoff (%s)", len(ids), exc
                )
            for _, dataset, path, _ in due:
                self.say(path, f"{dataset} {Path(path).name}: waiting for the server")
            self.server_down = True
            return False
        self.ledger.mark_sent(ids)
        if self.server_down:
            log.info("server is back: sent %d waiting event(s)", len(ids))
        self.server_down = False
        self.fail_streak = 0
        if len(due) <= 20:
            for eid, dataset, path, text in due:
                verb = "announced" if '"landing.file.created"' in text else "rejection announced"
                log.info("%s %s: %s (event %s)", dataset, Path(path).name, verb, eid)
        else:  # a backlog: a line per batch (each file has had its own "accepted" or "quarantined" line)
            counts: dict[str, int] = {}
            for _, dataset, _, _ in due:
                counts[dataset] = counts.get(dataset, 0) + 1
            log.info("announced %s", ", ".join(f"{n} event(s) of {d}" for d, n in sorted(counts.items())))
        return True
