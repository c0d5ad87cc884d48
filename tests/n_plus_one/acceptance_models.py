"""A realistic schema for acceptance checks: users, posts, comments, and tagged articles."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from database_server import dsn

from data_bridge_core import Column, Engine, Table, relationship
from scratch_schema import fresh_schema

DSN = dsn()
USERS, POSTS_PER_USER, COMMENTS_PER_POST = 10, 3, 2
ARTICLES, TAGS, TAGS_PER_ARTICLE = 8, 6, 3


class Reader(Table):
    id: int = Column(primary_key=True)
    name: str
    entries: list[Entry] = relationship(back_populates="reader")

    class Settings:
        table_name = "acc_users"


class Entry(Table):
    id: int = Column(primary_key=True)
    user_id: int = Column(foreign_key="acc_users.id")
    title: str
    reader: Reader = relationship(back_populates="entries")
    notes: list[Note] = relationship(back_populates="entry")

    class Settings:
        table_name = "acc_posts"


class Note(Table):
    id: int = Column(primary_key=True)
    post_id: int = Column(foreign_key="acc_posts.id")
    body: str
    entry: Entry = relationship(back_populates="notes")

    class Settings:
        table_name = "acc_comments"


class Paper(Table):
    id: int = Column(primary_key=True)
    title: str
    labels: list[Label] = relationship(secondary="acc_article_tags", back_populates="papers")

    class Settings:
        table_name = "acc_articles"


class Label(Table):
    id: int = Column(primary_key=True)
    label: str
    papers: list[Paper] = relationship(secondary="acc_article_tags", back_populates="labels")

    class Settings:
        table_name = "acc_tags"


class PaperLabel(Table):
    article_id: int = Column(primary_key=True, foreign_key="acc_articles.id")
    tag_id: int = Column(primary_key=True, foreign_key="acc_tags.id")

    class Settings:
        table_name = "acc_article_tags"


@pytest.fixture
async def app_engine() -> AsyncIterator[Engine]:
    """A fresh schema: 10 users x 3 posts x 2 comments; 8 articles with 3 of 6 tags each."""
    async with fresh_schema("acc") as schema:
        engine = Engine(DSN, min_size=0, max_size=4, options=f"-c search_path={schema}")
        try:
            await engine.create_all(Reader, Entry, Note, Paper, Label, PaperLabel)
            conn = await engine.acquire()
            try:
                async with conn.transaction():
                    post_id = 0
                    for u in range(1, USERS + 1):
                        await conn.execute(
                            "INSERT INTO acc_users (id, name) OVERRIDING SYSTEM VALUE "
                            "VALUES (%s, %s)",
                            (u, f"user{u}"),
                        )
                        for _ in range(POSTS_PER_USER):
                            post_id += 1
                            await conn.execute(
                                "INSERT INTO acc_posts (id, user_id, title) "
                                "OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s)",
                                (post_id, u, f"post{post_id}"),
                            )
                            for _ in range(COMMENTS_PER_POST):
                                await conn.execute(
                                    "INSERT INTO acc_comments (post_id, body) VALUES (%s, %s)",
                                    (post_id, "nice"),
                                )
                    for t in range(1, TAGS + 1):
                        await conn.execute(
                            "INSERT INTO acc_tags (id, label) OVERRIDING SYSTEM VALUE "
                            "VALUES (%s, %s)",
                            (t, f"tag{t}"),
                        )
                    for a in range(1, ARTICLES + 1):
                        await conn.execute(
                            "INSERT INTO acc_articles (id, title) OVERRIDING SYSTEM VALUE "
                            "VALUES (%s, %s)",
                            (a, f"article{a}"),
                        )
                        for k in range(TAGS_PER_ARTICLE):
                            await conn.execute(
                                "INSERT INTO acc_article_tags (article_id, tag_id) VALUES (%s, %s)",
                                (a, (a + k) % TAGS + 1),
                            )
            finally:
                await engine.release(conn)
            yield engine
        finally:
            await engine.dispose()
