"""Models and schema fixture shared by the instrumentation tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from database_server import dsn

from data_bridge_core import Column, Engine, Table, relationship
from scratch_schema import fresh_schema

DSN = dsn()


class Author(Table):
    id: int = Column(primary_key=True)
    name: str
    email: str = Column(unique=True)
    age: int = 0
    active: bool = True
    country: str | None = None
    articles: list[Article] = relationship(back_populates="author")

    class Settings:
        table_name = "authors"


class Article(Table):
    id: int = Column(primary_key=True)
    author_id: int = Column(foreign_key="authors.id")
    title: str
    author: Author = relationship(back_populates="articles")
    remarks: list[Remark] = relationship(back_populates="article")

    class Settings:
        table_name = "articles"


class Remark(Table):
    id: int = Column(primary_key=True)
    article_id: int = Column(foreign_key="articles.id")
    body: str
    article: Article = relationship(back_populates="remarks")

    class Settings:
        table_name = "remarks"


@pytest.fixture
async def blog_engine() -> AsyncIterator[Engine]:
    """An engine on a fresh schema holding 3 authors, 2 articles each, 1 remark per article."""
    async with fresh_schema("dbi") as schema:
        engine = Engine(DSN, min_size=0, max_size=4, options=f"-c search_path={schema}")
        try:
            await engine.create_all(Author, Article, Remark)
            conn = await engine.acquire()
            try:
                async with conn.transaction():
                    for i in range(3):
                        await conn.execute(
                            "INSERT INTO authors (id, name, email, age, active, country) "
                            "OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, %s, true, %s)",
                            (i + 1, f"a{i}", f"a{i}@x.org", 20 + 10 * i, "DE" if i else "FR"),
                        )
                        for j in range(2):
                            article_id = i * 2 + j + 1
                            await conn.execute(
                                "INSERT INTO articles (id, author_id, title) "
                                "OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s)",
                                (article_id, i + 1, f"t{article_id}"),
                            )
                            await conn.execute(
                                "INSERT INTO remarks (article_id, body) VALUES (%s, %s)",
                                (article_id, "ok"),
                            )
                    for table in ("authors", "articles"):
                        await conn.execute(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 100)"
                        )
            finally:
                await engine.release(conn)
            yield engine
        finally:
            await engine.dispose()
