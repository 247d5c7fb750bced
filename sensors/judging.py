"""The sensor's judging: candidates validated with dbt's own read, in batches, on a pool of DuckDBs."""

from __future__ import annotations

import logging
import queue

from landing.reader import InvalidFile, connect, judge_many
from sensors.screening import Candidate

log = logging.getLogger("landing.sensor")

VALIDATORS = 2  # DuckDB threads validating a backlog: validation costs about 0.3 ms per small file and thread


def _split(todo: dict[str, list], parts: int) -> list[dict[str, list]]:
    """`todo` in `parts` pieces of about the same size (each dataset's list cut in turn), empty pieces left out."""
    pieces = [{name: items[i::parts] for name, items in todo.items() if items[i::parts]} for i in range(parts)]
    return [p for p in pieces if p]


def _merged(futures: list) -> dict:
    out: dict = {}
    for f in futures:
        out.update(f.result())
    return out


class Judging:
    """Judging: each candidate read the way dbt reads it (landing.reader), a batch per dataset, on a pool of
    validation DuckDBs; the valid ones with their rows and undeclared columns. A part of Sensor
    (sensors/sensor.py), which holds the state."""

    def _validate(self, todo: dict[str, list[Candidate]]) -> dict[str, tuple[int, tuple[str, ...]] | InvalidFile]:
        """Real path → (rows, undeclared columns) or the reason it cannot be built; one DuckDB read per dataset where
        all are valid. Each concurrent call gets a validation DuckDB of its own from a pool."""
        verdicts: dict[str, tuple[int, tuple[str, ...]] | InvalidFile] = {}
        try:
            con = self._cons.get_nowait()
        except queue.Empty:
            con = connect()  # one thread each: measured fastest for batches of small files
        try:
            for items in todo.values():
                verdicts.update(judge_many(con, items[0].dataset, [c.real for c in items]))
        finally:
            self._cons.put(con)
        return verdicts
