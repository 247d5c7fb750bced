"""`python -m ops.prefect_server server start ...`: Prefect's own CLI, with SQLite write transactions begun IMMEDIATE and
the API app reused by the server's own clients (and `... prepare`: migrate the database and register block types once,
before several API processes start).

Prefect begins its SQLite transactions DEFERRED (IMMEDIATE only `with_for_update`). A deferred transaction that has
read and must then write after another connection committed fails at once with SQLITE_BUSY_SNAPSHOT: the busy
timeout does not apply. The triggers service writes a reactive trigger's next bucket right after it fires, so the
actions service's request that creates the flow run fails with "database is locked" (503), and Prefect's client
retries it 2 s later; a burst of events also loses run-deployment actions this way. Begun IMMEDIATE, a transaction
takes the write lock first and waits its turn under the busy timeout instead. docs/benchmarks.md has the evidence.
On PostgreSQL nothing changes.
"""

from __future__ import annotations

import sys

from ops._upstream import begin_sqlite_transactions_immediately, prepare_database, reuse_the_api_app


def main() -> None:
    begin_sqlite_transactions_immediately()
    reuse_the_api_app()
    if sys.argv[1:] == ["prepare"]:
        import asyncio

        asyncio.run(prepare_database())
        return
    from prefect.cli import app

    sys.argv[0] = "prefect"
    app()


if __name__ == "__main__":
    main()
