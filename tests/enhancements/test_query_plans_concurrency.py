"""Query plans taken while other tasks of the same session write (issue 19, item 3)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from enhancements_fixtures import Instrument
from instrumentation_models import DSN, Article
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import DatabaseError, Engine, Session
from data_bridge_core.query_plans import generic_plan


async def _committed_titles(engine: Engine) -> int:
    async with Session(engine) as session:
        return await session.find(Article).filter(Article.title.like("w%")).count()


async def _reads_and_writes(session: Session, count: int) -> None:
    async def reads() -> None:
        for i in range(count):  # a shape of its own each: every read gets a plan
            await session.execute(f"SELECT count(*) + %s FROM articles WHERE id <> {i}", (i,))

    async def writes() -> None:
        for i in range(count):
            await session.execute(
                "INSERT INTO articles (author_id, title) VALUES (1, %s)", (f"w{i}",)
            )

    await asyncio.gather(reads(), writes())


async def test_plans_taken_while_another_task_writes_never_undo_its_acknowledged_writes(
    instrument_with: Instrument, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument_with(explain_threshold_ms=0)
    async with asyncio.timeout(120):
        async with Session(blog_engine) as session:
            await _reads_and_writes(session, 100)
            await session.commit()
        assert await _committed_titles(blog_engine) == 100
    planned = [
        s
        for s in spans.get_finished_spans()
        if s.name == "db.query.execute" and any(e.name == "query_plan" for e in s.events)
    ]
    assert len(planned) == 100  # the plans were taken: this is not the option being off


async def test_without_plans_the_same_tasks_keep_every_write(blog_engine: Engine) -> None:
    async with asyncio.timeout(120):
        async with Session(blog_engine) as session:
            await _reads_and_writes(session, 100)
            await session.commit()
        assert await _committed_titles(blog_engine) == 100


async def test_no_plan_is_taken_in_an_aborted_transaction(blog_engine: Engine) -> None:
    async with Session(blog_engine) as session:
        await session.execute("SELECT 1")
        with pytest.raises(DatabaseError):
            await session.execute("SELECT 1 / 0")
        assert await generic_plan(session, "SELECT * FROM articles WHERE id = %s") is None
        await session.rollback()
        await session.execute("SELECT 1")
        plan = await generic_plan(session, "SELECT * FROM articles WHERE id = %s")
        assert plan is not None and "articles" in plan


async def test_a_plan_asked_for_while_another_task_commits_waits_and_takes_nothing(
    blog_engine: Engine,
) -> None:
    async with Session(blog_engine) as session:
        await session.execute("INSERT INTO articles (author_id, title) VALUES (1, 'wc')")
        commit = asyncio.create_task(session.commit())
        await asyncio.sleep(0)  # the commit holds the session
        plan = await generic_plan(session, "SELECT * FROM articles WHERE id = %s")
        await commit
        assert plan is None  # the transaction it would have run in is over
    async with await psycopg.AsyncConnection.connect(DSN) as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert await _committed_titles(blog_engine) == 1
