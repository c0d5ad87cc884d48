"""examples/realworld_queries.py: the Conduit feed, tag list and article list, one query each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from core_fixtures import DSN, StatementLog

from data_bridge_core import Engine, Session
from example_files import load_example

example: Any = load_example("realworld_queries")


@pytest.fixture
async def realworld(schema: str) -> AsyncIterator[Engine]:
    engine = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
    await engine.migrate(example.MIGRATIONS)  # the shipped migrations build what it queries
    try:
        async with Session(engine) as session:
            await example.seed(session)
        yield engine
    finally:
        await engine.dispose()


def day(n: int) -> datetime:
    return datetime.fromisoformat(f"2026-01-0{n}T00:00:00+00:00")


async def test_the_shipped_migrations_match_the_models(realworld: Engine) -> None:
    from data_bridge_core.migrations import Migrator

    # what `data-bridge migrations check` runs: all applied, nothing left to generate
    result = await Migrator(realworld, example.MIGRATIONS).check(example.MODELS)
    assert (result.pending, result.operations) == ([], [])


async def test_the_feed_is_one_query_of_the_followed_authors_articles(
    realworld: Engine, sql: StatementLog
) -> None:
    async with Session(realworld) as session:
        ids = dict(
            await session.find(example.User)
            .select(example.User.username, example.User.id)
            .to_list()
        )
        sql.clear()
        rows = await example.feed(session, ids["cat"])  # cat follows ann and bob
        assert rows == [
            ("joins", "Joins", day(3), "ann", 0),
            ("async", "Async", day(2), "bob", 1),
            ("intro", "Intro", day(1), "ann", 2),
        ]
        assert rows[0].author == "ann" and rows[2].favorites == 2
        assert await example.feed(session, ids["ann"]) == [("async", "Async", day(2), "bob", 1)]
        assert await example.feed(session, ids["bob"]) == []
        assert await example.feed(session, ids["cat"], limit=1, offset=1) == [rows[1]]
        assert len(sql.statements) == 4  # one statement per call


async def test_the_tag_list_is_one_query_with_the_counts(
    realworld: Engine, sql: StatementLog
) -> None:
    async with Session(realworld) as session:
        sql.clear()
        assert await example.tag_list(session) == [("python", 2), ("sql", 2)]
        assert len(sql.statements) == 1


async def test_the_article_list_is_one_query_whatever_the_filters(
    realworld: Engine, sql: StatementLog
) -> None:
    async with Session(realworld) as session:
        sql.clear()
        everything = await example.article_list(session)
        assert [r[0] for r in everything] == ["joins", "async", "intro"]
        assert [r[4] for r in everything] == [0, 1, 2]
        python = await example.article_list(session, tag="python")
        assert [r[0] for r in python] == ["async", "intro"]
        by_ann = await example.article_list(session, author="ann", tag="sql")
        assert [r[0] for r in by_ann] == ["joins", "intro"]
        liked = await example.article_list(session, favorited_by="cat", limit=1)
        assert liked == [("async", "Async", day(2), "bob", 1)]
        assert await example.article_list(session, favorited_by="nobody") == []
        assert len(sql.statements) == 5
