"""The RealWorld (Conduit) models of examples/realworld_queries.py, for the relational
query tests, and their seeded ``conduit`` fixture.

Users follow users (``follows``), write articles, tag them (``article_tags``)
and favorite them (``favorites``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from core_fixtures import DSN

from data_bridge_core import Engine, Session
from example_files import load_example

# One definition of the models: the example's (examples/realworld_queries.py).
_example = load_example("realworld_queries")
User, Follow, Article = _example.User, _example.Follow, _example.Article
Tag, ArticleTag, Favorite = _example.Tag, _example.ArticleTag, _example.Favorite
MODELS = _example.MODELS
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def conduit(schema: str) -> AsyncIterator[Engine]:
    """An engine on the test's schema with the Conduit tables, seeded:

    ann (1) writes a1 "Intro" [python, sql] and a3 "Joins" [sql]; bob (2) writes
    a2 "Async" [python]; cat (3) writes nothing. ann follows bob, cat follows ann
    and bob. Views: a1 10, a2 5, a3 7. Favorites: bob -> a1, cat -> a1, cat -> a2.
    """
    engine = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
    await engine.create_all(*MODELS)
    try:
        async with Session(engine) as session:
            ann, bob, cat = User(username="ann"), User(username="bob"), User(username="cat")
            python, sql = Tag(name="python"), Tag(name="sql")
            session.add_all([ann, bob, cat])
            await session.flush()
            a1 = Article(
                author=ann, slug="intro", title="Intro", views=10, created_at=T0, tags=[python, sql]
            )
            a2 = Article(
                author=bob,
                slug="async",
                title="Async",
                views=5,
                created_at=T0 + timedelta(days=1),
                tags=[python],
            )
            a3 = Article(
                author=ann,
                slug="joins",
                title="Joins",
                views=7,
                created_at=T0 + timedelta(days=2),
                tags=[sql],
            )
            session.add_all([a1, a2, a3])
            await session.flush()
            session.add_all(
                [
                    Follow(follower_id=ann.id, followee_id=bob.id),
                    Follow(follower_id=cat.id, followee_id=ann.id),
                    Follow(follower_id=cat.id, followee_id=bob.id),
                    Favorite(user_id=bob.id, article_id=a1.id),
                    Favorite(user_id=cat.id, article_id=a1.id),
                    Favorite(user_id=cat.id, article_id=a2.id),
                ]
            )
            await session.commit()
        yield engine
    finally:
        await engine.dispose()
