"""The server's SQLite transactions take the write lock when they begin (ops.prefect_server), with this Prefect."""

from __future__ import annotations

import asyncio
import sqlite3

import sqlalchemy as sa

from ops._upstream import begin_sqlite_transactions_immediately


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


def test_the_servers_own_api_clients_reuse_its_app_without_serializing_the_settings_again(monkeypatch):
    """Each action of the actions service makes an API client, and each client calls `create_app()`: with the app
    reused, the settings are not serialized again (Settings.hash_key, the cost of Prefect's own cache)."""
    from prefect.server.api import server
    from prefect.server.api.clients import OrchestrationClient
    from prefect.settings import Settings

    from ops._upstream import reuse_the_api_app

    monkeypatch.setattr(server, "create_app", server.create_app)  # the patch is undone after the test
    assert reuse_the_api_app()  # False would mean Prefect's code moved: the fix is gone
    first = server.create_app()
    keys = []
    made = Settings.hash_key
    monkeypatch.setattr(Settings, "hash_key", lambda self: keys.append(1) or made(self))
    client = OrchestrationClient()  # as the actions service makes one per action
    assert client._http_client._transport.app is first
    assert server.create_app() is first
    assert keys == []
    assert server.create_app(ignore_cache=True) is not first  # any argument: Prefect's own create_app
