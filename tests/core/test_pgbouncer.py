"""Behind a real PgBouncer in transaction mode (the PgBouncer tier: scripts/ci-pgbouncer.sh).

The tier runs the session, transaction, streaming and relationship tests
through PgBouncer (core_fixtures.py) and these concurrent workloads. Skipped
unless ``DATA_BRIDGE_TEST_PGBOUNCER_DSN`` names the PgBouncer.
"""

from __future__ import annotations

import asyncio

import pytest
from core_fixtures import PGBOUNCER_DSN, User, seed
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from data_bridge_core import Engine, Session
from data_bridge_core.errors import PreparedStatementError

pytestmark = pytest.mark.skipif(
    not PGBOUNCER_DSN,
    reason="needs DATA_BRIDGE_TEST_PGBOUNCER_DSN (the PgBouncer tier, scripts/ci-pgbouncer.sh)",
)

SESSIONS = 24
COUNTS_PER_SESSION = 12


async def count_concurrently(engine: Engine) -> list[list[int] | BaseException]:
    """24 sessions counting a dozen times each: the same statement, many times, in parallel."""

    async def one_session() -> list[int]:
        async with Session(engine) as session:
            return [await session.find(User).count() for _ in range(COUNTS_PER_SESSION)]

    return await asyncio.gather(*(one_session() for _ in range(SESSIONS)), return_exceptions=True)


def pgbouncer_engine(schema: str, **connect_kwargs: object) -> Engine:
    assert PGBOUNCER_DSN is not None
    through = make_conninfo(PGBOUNCER_DSN, user=schema)
    return Engine(through, min_size=0, max_size=8, **connect_kwargs)


async def test_concurrent_counts_through_pgbouncer_pass_with_prepare_threshold_none(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=3)
    through = pgbouncer_engine(schema, prepare_threshold=None)
    try:
        results = await count_concurrently(through)
    finally:
        await through.dispose()
    assert results == [[3] * COUNTS_PER_SESSION] * SESSIONS


async def test_concurrent_counts_with_default_settings_pass_or_raise_the_clear_error(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=3)
    through = pgbouncer_engine(schema)  # psycopg prepares a statement after 5 runs
    try:
        results = await count_concurrently(through)
    finally:
        await through.dispose()
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        assert isinstance(failure, PreparedStatementError), repr(failure)
        assert "prepare_threshold=None" in str(failure)
    passed = [r for r in results if not isinstance(r, BaseException)]
    assert passed == [[3] * COUNTS_PER_SESSION] * (SESSIONS - len(failures))


@pytest.mark.usefixtures("instrumented")
async def test_query_spans_through_pgbouncer_show_pgbouncers_address_not_the_servers(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    await seed(engine, users=2)
    async with Session(engine) as session:
        assert len(await session.find(User).to_list()) == 2
    [find] = [s for s in spans.get_finished_spans() if s.name == "db.query.find"]
    assert PGBOUNCER_DSN is not None
    bouncer = conninfo_to_dict(PGBOUNCER_DSN)
    assert find.attributes is not None
    assert find.attributes["server.address"] == "127.0.0.1"
    assert find.attributes["server.port"] == int(str(bouncer["port"]))  # not 5432
