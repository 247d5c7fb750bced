"""The sensor's judging: candidates validated with dbt's own read, in batches, on a pool of DuckDBs."""

from __future__ import annotations

import logging
import queue

from landing.reader import InvalidFile, connect, judge_many
from sensors.screening import Candidate

log = logging.getLogger("landing.sensor")

VALIDATORS = 2  # DuckDB threads validating a backlog: validation costs about 0.3 ms per small file and thread

Verdicts = dict[str, "tuple[int, tuple[str, ...]] | InvalidFile"]


def split(todo: dict[str, list], parts: int) -> list[dict[str, list]]:
    """`todo` in `parts` pieces of about the same size (each dataset's list cut in turn), empty pieces left out."""
    pieces = [{name: items[i::parts] for name, items in todo.items() if items[i::parts]} for i in range(parts)]
    return [p for p in pieces if p]


def merged(futures: list) -> dict:
    out: dict = {}
    for f in futures:
        out.update(f.result())
    return out


class Judge:
    """Each candidate read the way dbt reads it (landing.reader.judge_many), a batch per dataset: its rows and
    undeclared columns, or why it cannot be built. Concurrent calls each take a validation DuckDB from a pool."""

    def __init__(self) -> None:
        self._cons: queue.Queue = queue.Queue()  # validation DuckDBs, opened as needed and reused

    def judge(self, todo: dict[str, list[Candidate]]) -> Verdicts:
        """Real path → (rows, undeclared columns) or the reason it cannot be built."""
        verdicts: Verdicts = {}
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

    def close(self) -> None:
        while not self._cons.empty():
            self._cons.get_nowait().close()
