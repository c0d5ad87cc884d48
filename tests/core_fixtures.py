"""The API.md models and a per-test schema for the core tests.

With ``DATA_BRIDGE_TEST_PGBOUNCER_DSN`` set (the PgBouncer tier of .ci/run,
scripts/ci-pgbouncer.sh), the ``engine`` fixture connects through that
PgBouncer in transaction mode with ``prepare_threshold=None``. PgBouncer
refuses the ``options`` startup parameter that sets the schema elsewhere, and
a ``SET search_path`` would leak to other clients of the same server
connection, so each test gets a role named like its schema: the default
search path (``"$user", public``) then puts the test's tables in its schema.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import psycopg
import pytest
from database_server import dsn
from psycopg.conninfo import make_conninfo

from data_bridge_core import Column, Engine, Session, Table, relationship
from scratch_schema import fresh_schema

DSN = dsn()
PGBOUNCER_DSN = os.environ.get("DATA_BRIDGE_TEST_PGBOUNCER_DSN")


class User(Table):
    id: int = Column(primary_key=True)
    name: str
    email: str = Column(unique=True)
    age: int = 0
    active: bool = True
    country: str | None = None
    created_at: datetime = Column(default_factory=datetime.now)
    posts: list[Post] = relationship(back_populates="author")

    class Settings:
        table_name = "users"


class Post(Table):
    id: int = Column(primary_key=True)
    author_id: int = Column(foreign_key="users.id")
    title: str
    author: User = relationship(back_populates="posts")
    comments: list[Comment] = relationship(back_populates="post")

    class Settings:
        table_name = "posts"


class Comment(Table):
    id: int = Column(primary_key=True)
    post_id: int = Column(foreign_key="posts.id", index=True)
    body: str
    post: Post = relationship(back_populates="comments")

    class Settings:
        table_name = "comments"


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with fresh_schema("dbt", owned_by_role=bool(PGBOUNCER_DSN)) as name:
        yield name


@pytest.fixture
async def engine(schema: str) -> AsyncIterator[Engine]:
    if PGBOUNCER_DSN:
        through_pgbouncer = make_conninfo(PGBOUNCER_DSN, user=schema)
        eng = Engine(through_pgbouncer, min_size=0, max_size=4, prepare_threshold=None)
    else:
        eng = Engine(DSN, min_size=0, max_size=4, options=f"-c search_path={schema}")
    await eng.create_all(Comment, Post, User)  # reverse order on purpose: FK order is computed
    try:
        yield eng
    finally:
        await eng.dispose()


async def fetch(schema: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read what is really committed, through a separate connection."""
    async with await psycopg.AsyncConnection.connect(
        DSN, autocommit=True, options=f"-c search_path={schema}"
    ) as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall()


class StatementLog:
    """Records the SQL text of every Session.run_statement call (wraps the real method)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[str] = []
        original: Callable[..., Awaitable[Any]] = Session.run_statement

        async def logged(session: Session, statement: str, *args: Any, **kwargs: Any) -> Any:
            self.statements.append(statement)
            return await original(session, statement, *args, **kwargs)

        monkeypatch.setattr(Session, "run_statement", logged)

    def clear(self) -> None:
        self.statements.clear()


@pytest.fixture
def sql(monkeypatch: pytest.MonkeyPatch) -> StatementLog:
    return StatementLog(monkeypatch)


async def seed(engine: Engine, users: int = 3, posts: int = 2, comments: int = 1) -> None:
    async with Session(engine) as session:
        for i in range(users):
            user = User(
                name=f"u{i}",
                email=f"u{i}@x.org",
                age=10 + 10 * i,
                country=("DE", "FR", None)[i % 3],
            )
            session.add(user)
            for j in range(posts):
                post = Post(title=f"p{i}.{j}", author=user)
                post.comments = [Comment(body=f"c{k}") for k in range(comments)]
                session.add(post)
        await session.commit()
