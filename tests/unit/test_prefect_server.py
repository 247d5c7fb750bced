"""The server's SQLite transactions take the write lock when they begin (ops.prefect_server), with this Prefect."""

from __future__ import annotations

import asyncio
import sqlite3

import sqlalchemy as sa

from ops.prefect_server import begin_sqlite_transactions_immediately


def test_a_transaction_begun_by_the_server_holds_the_write_lock_from_its_start(tmp_path):
    from prefect.server.database.configurations import AioSqliteConfiguration

    assert begin_sqlite_transactions_immediately()  # False would mean Prefect's code moved: the fix is gone
    db = tmp_path / "prefect.db"
    sqlite3.connect(db).execute("create table t (x)").connection.close()
    config = AioSqliteConfiguration(connection_url=f"sqlite+aiosqlite:///{db}")

    async def probe() -> str:
        engine = await config.engine()
        session = await config.session(engine)
        try:
            async with config.begin_transaction(session):  # as the server begins a write, not with_for_update
                await session.execute(sa.text("select count(*) from t"))  # a read first, as the server's writes do
                other = sqlite3.connect(db, timeout=0)
                try:
                    other.execute("begin immediate")
                    return "another connection could begin a write"
                except sqlite3.OperationalError as exc:
                    return str(exc)
                finally:
                    other.close()
        finally:
            await session.close()
            await engine.dispose()

    assert asyncio.run(probe()) == "database is locked"
