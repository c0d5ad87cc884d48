"""A schema of the test's own on the run's server, so suites run side by side."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import psycopg
from database_server import dsn

from data_bridge_core import Engine, Table


@asynccontextmanager
async def fresh_schema(prefix: str, *, owned_by_role: bool = False) -> AsyncIterator[str]:
    """A new schema named ``<prefix>_<random>``, dropped with all it holds on the way out.

    ``owned_by_role``: also a LOGIN role of the same name owning it, dropped after it
    (the PgBouncer tier connects as that role; see core_fixtures).
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(dsn(), autocommit=True) as conn:
        if owned_by_role:
            # Its search_path is its schema alone, as the other tiers' engines set it:
            # the default "$user", public would show a stray table another program left
            # in public (a data_bridge_migrations, say) to the test.
            await conn.execute(f'CREATE ROLE "{name}" LOGIN')
            await conn.execute(f'ALTER ROLE "{name}" SET search_path = "{name}"')
            await conn.execute(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"')
        else:
            await conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        async with await psycopg.AsyncConnection.connect(dsn(), autocommit=True) as conn:
            await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
            if owned_by_role:
                await conn.execute(f'DROP ROLE "{name}"')


@contextmanager
def engine_on_loop(
    prefix: str, *models: type[Table]
) -> Iterator[tuple[asyncio.AbstractEventLoop, Engine]]:
    """An event loop of its own and an engine on a `fresh_schema` holding ``models``
    (created), for a hypothesis property: ``@given`` runs synchronous functions, which
    drive the loop with ``run_until_complete``. Disposed, dropped and closed on exit."""
    loop = asyncio.new_event_loop()
    try:
        schema = fresh_schema(prefix)

        async def start() -> Engine:
            name = await schema.__aenter__()
            engine = Engine(dsn(), min_size=0, max_size=2, options=f"-c search_path={name}")
            await engine.create_all(*models)
            return engine

        engine = loop.run_until_complete(start())
        try:
            yield loop, engine
        finally:

            async def stop() -> None:
                await engine.dispose()
                await schema.__aexit__(None, None, None)

            loop.run_until_complete(stop())
    finally:
        loop.close()
