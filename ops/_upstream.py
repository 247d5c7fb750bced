"""The fence around ops' uses of Prefect server internals (docs/upstream.md, U11 to U13).

Every private upstream name the `landing` command touches is here and nowhere else (tests/unit/test_upstream.py).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

log = logging.getLogger("landing.prefect_server")


def begin_sqlite_transactions_immediately() -> bool:
    """Make Prefect's SQLite configuration begin every transaction IMMEDIATE; False if Prefect's code moved."""
    try:
        from prefect.server.database import configurations
    except ImportError:
        return False
    config = getattr(configurations, "AioSqliteConfiguration", None)
    mode = getattr(configurations, "SQLITE_BEGIN_MODE", None)
    if config is None or mode is None or not hasattr(config, "begin_transaction"):
        log.warning("Prefect's SQLite configuration has changed; its transactions stay DEFERRED")
        return False

    @asynccontextmanager
    async def begin_transaction(self, session, with_for_update: bool = False):
        token = mode.set("IMMEDIATE")
        try:
            async with session.begin() as transaction:
                yield transaction
        finally:
            mode.reset(token)

    config.begin_transaction = begin_transaction
    return True


def reuse_the_api_app() -> bool:
    """Make `create_app()` with no arguments return the app it made for the current settings without rebuilding its
    cache key; False if Prefect's code moved.

    The server's actions service makes an API client for every action it runs (a run-deployment action: one flow run),
    and each client calls `create_app()`. Prefect caches the app, but its cache key is `Settings.hash_key()`, which
    serializes every setting (`to_environment_variables`), and it also sets up logging again: about 0.3 s of the
    server's event loop per action on 2 cores, a third of its busy time in a py-spy profile of B1. The settings object
    of a server process does not change, so the same object gets the same app."""
    try:
        from prefect.server.api import server
        from prefect.settings import get_current_settings
    except ImportError:
        return False
    made = getattr(server, "create_app", None)
    if made is None or getattr(made, "reuses_app", False):
        return made is not None
    last: dict = {}

    def create_app(
        settings=None,
        ephemeral: bool = False,
        webserver_only: bool = False,
        final: bool = False,
        ignore_cache: bool = False,
    ):
        if settings is not None or ephemeral or webserver_only or final or ignore_cache:
            return made(settings, ephemeral, webserver_only, final, ignore_cache)
        current = get_current_settings()
        if last.get("settings") is not current:
            last.update(settings=current, app=made())
        return last["app"]

    create_app.reuses_app = True
    server.create_app = create_app
    return True


async def prepare_database() -> None:
    """Migrate Prefect's database and register its block types, once, before API processes start: several API
    processes starting on a new PostgreSQL database would each migrate it and register blocks, and collide."""
    from prefect.server.database import provide_database_interface
    from prefect.server.models.block_registration import run_block_auto_registration

    db = provide_database_interface()
    await db.create_db()
    async with await db.session() as session:  # as Prefect's API does it: the registration begins its own transactions
        await run_block_auto_registration(session=session)
