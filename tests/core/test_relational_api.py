"""Every line of API.md's "Relational queries", against the real server.

Many-to-many through an association model, composite keys, multi-column
constraints, and the query forms of issue 9, with the SQL they send.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from core_fixtures import DSN, Comment, Post, StatementLog, User, fetch

from data_bridge_core import Column, Engine, Session, Table, inspect, relationship, selectinload


class ArticleTag(Table):  # association table, composite primary key
    article_id: int = Column(primary_key=True, foreign_key="articles.id")
    tag_id: int = Column(primary_key=True, foreign_key="tags.id")

    class Settings:
        table_name = "article_tags"


class Article(Table):
    id: int = Column(primary_key=True)
    author_id: int = Column(foreign_key="users.id")
    title: str
    views: int = 0
    author: User = relationship()
    tags: list[Tag] = relationship(secondary="article_tags", back_populates="articles")

    class Settings:
        table_name = "articles"
        unique = [("author_id", "title")]  # multi-column UNIQUE
        indexes = [("author_id", "views")]  # multi-column index


class Tag(Table):
    id: int = Column(primary_key=True)
    name: str = Column(unique=True)
    articles: list[Article] = relationship(secondary="article_tags", back_populates="tags")

    class Settings:
        table_name = "tags"


@pytest.fixture
async def rel_engine(schema: str) -> AsyncIterator[Engine]:
    engine = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
    await engine.create_all(User, Post, Comment, Article, Tag, ArticleTag)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _seed(engine: Engine) -> None:
    async with Session(engine) as session:
        ann = User(name="Ann", email="ann@x.org", country="fr", age=30)
        bob = User(name="Bob", email="bob@x.org", country="de", age=15, active=False)
        python, sql = Tag(name="python"), Tag(name="sql")
        session.add_all(
            [
                Article(title="Hi", author=ann, tags=[python, sql]),
                Article(title="Yo", author=bob, tags=[sql]),
                Article(title="Re", author=ann),
            ]
        )
        await session.commit()


async def test_create_all_makes_the_composite_key_and_multi_column_constraints(
    rel_engine: Engine, schema: str
) -> None:
    constraints = await fetch(
        schema,
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid IN ('article_tags'::regclass, 'articles'::regclass) AND contype IN "
        "('p', 'u') ORDER BY conname",
    )
    assert constraints == [
        ("article_tags_pkey", "PRIMARY KEY (article_id, tag_id)"),
        ("articles_author_id_title_key", "UNIQUE (author_id, title)"),
        ("articles_pkey", "PRIMARY KEY (id)"),
    ]
    indexes = await fetch(  # this schema's: a run side by side has its own index of that name
        schema,
        "SELECT indexname FROM pg_indexes "
        "WHERE schemaname = %s AND indexname = 'ix_articles_author_id_views'",
        schema,
    )
    assert indexes == [("ix_articles_author_id_views",)]
    # the composite key's int columns are given, never identities
    identities = await fetch(
        schema,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = 'article_tags' AND is_identity = 'YES'",
        schema,
    )
    assert identities == []


async def test_constructor_links_are_written_at_the_next_flush_targets_first(
    rel_engine: Engine, schema: str, sql: StatementLog
) -> None:
    async with Session(rel_engine) as session:
        ann = User(name="Ann", email="ann@x.org")
        python, sql_tag = Tag(name="python"), Tag(name="sql")
        article = Article(title="Hi", author=ann, tags=[python, sql_tag])  # links at next flush
        session.add(article)
        sql.clear()
        await session.commit()
        inserts = [s.split(" (")[0] for s in sql.statements if s.startswith("INSERT")]
        assert set(inserts[:2]) == {'INSERT INTO "users"', 'INSERT INTO "tags"'}
        # the new targets first, then the article, then the links
        assert inserts[2:] == ['INSERT INTO "articles"', 'INSERT INTO "article_tags"']
        assert (
            'INSERT INTO "article_tags" ("article_id", "tag_id") '
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[]) ON CONFLICT DO NOTHING"
        ) in sql.statements
        # both sides read the same in the session
        assert await python.articles == [article]
        assert [t.name for t in await article.tags] == ["python", "sql"]
    links = await fetch(schema, "SELECT article_id, tag_id FROM article_tags ORDER BY tag_id")
    assert links == [(1, 1), (1, 2)]


async def test_assigning_the_list_replaces_the_links_and_updates_the_other_side(
    rel_engine: Engine, schema: str
) -> None:
    await _seed(rel_engine)
    async with Session(rel_engine) as session:
        article = await session.find(Article).filter(Article.title == "Hi").first()
        python = await session.find(Tag).filter(Tag.name == "python").first()
        sql_tag = await session.find(Tag).filter(Tag.name == "sql").first()
        assert article is not None and python is not None and sql_tag is not None
        assert len(await sql_tag.articles) == 2
        article.tags = [python]  # replaces the links at the next flush
        assert article not in await sql_tag.articles  # the other side follows at once
        rust = Tag(name="rust")
        article.tags = [python, rust]
        await session.commit()
        assert rust.id is not None
        assert [t.name for t in await article.tags] == ["python", "rust"]
    links = await fetch(
        schema,
        "SELECT a.title, t.name FROM article_tags l JOIN articles a ON a.id = l.article_id "
        "JOIN tags t ON t.id = l.tag_id ORDER BY a.title, t.name",
    )
    assert links == [("Hi", "python"), ("Hi", "rust"), ("Yo", "sql")]


async def test_lazy_load_is_one_query_joining_the_association_table(
    rel_engine: Engine, sql: StatementLog
) -> None:
    await _seed(rel_engine)
    async with Session(rel_engine) as session:
        article = await session.find(Article).filter(Article.title == "Hi").first()
        assert article is not None
        sql.clear()
        tags = await article.tags  # lazy, through the association table
        assert sorted(t.name for t in tags) == ["python", "sql"]
        assert sql.statements == [
            'SELECT "tags"."id", "tags"."name" FROM "tags" JOIN "article_tags" '
            'ON "article_tags"."tag_id" = "tags"."id" WHERE "article_tags"."article_id" = %s '
            'ORDER BY "tags"."id"'
        ]
        assert await article.tags is tags


async def test_selectinload_of_a_many_to_many_is_one_query_per_level(
    rel_engine: Engine, sql: StatementLog
) -> None:
    await _seed(rel_engine)
    async with Session(rel_engine) as session:
        sql.clear()
        arts = await session.find(Article).options(selectinload(Article.tags)).to_list()
        assert len(sql.statements) == 2  # 2 queries in all
        assert sql.statements[1].startswith('SELECT "article_tags"."article_id", "tags"."id"')
        by_title = {a.title: sorted(t.name for t in await a.tags) for a in arts}
        assert by_title == {"Hi": ["python", "sql"], "Yo": ["sql"], "Re": []}
        assert len(sql.statements) == 2
        sql.clear()
        tags = (
            await session.find(Tag)
            .options(selectinload(Tag.articles).options(selectinload(Article.tags)))
            .order_by(Tag.name)
            .to_list()
        )
        assert len(sql.statements) == 3
        sql_articles = await tags[1].articles
        assert sorted(a.title for a in sql_articles) == ["Hi", "Yo"]
        assert len(sql.statements) == 3


async def test_composite_key_get_uses_the_tuple_and_the_identity_map(
    rel_engine: Engine, sql: StatementLog
) -> None:
    await _seed(rel_engine)
    async with Session(rel_engine) as session:
        article = await session.find(Article).filter(Article.title == "Hi").first()
        python = await session.find(Tag).filter(Tag.name == "python").first()
        assert article is not None and python is not None
        sql.clear()
        link = await session.get(ArticleTag, (article.id, python.id))  # composite key: a tuple
        assert link is not None and (link.article_id, link.tag_id) == (article.id, python.id)
        assert await session.get(ArticleTag, (article.id, python.id)) is link
        assert len(sql.statements) == 1
        assert session.identity_lookup(ArticleTag, (article.id, python.id)) is link
        assert await session.get(ArticleTag, (99, 1)) is None
        with pytest.raises(TypeError, match=r"composite primary key \(article_id, tag_id\)"):
            await session.get(ArticleTag, 1)
        # links of a loaded link object, replaced by an assignment, leave the session
        article.tags = []
        await session.flush()
        assert inspect(link).deleted
        await session.rollback()
        assert session.identity_lookup(ArticleTag, (article.id, python.id)) is link


async def test_composite_key_objects_insert_update_and_delete(
    rel_engine: Engine, schema: str
) -> None:
    await _seed(rel_engine)
    async with Session(rel_engine) as session:
        session.add(ArticleTag(article_id=3, tag_id=1))
        await session.flush()
        link = await session.get(ArticleTag, (3, 1))
        assert link is not None
        await session.delete(link)
        await session.commit()
    assert await fetch(schema, "SELECT count(*) FROM article_tags") == [(3,)]


async def test_the_query_forms_of_api_md(
    rel_engine: Engine, schema: str, sql: StatementLog
) -> None:
    await _seed(rel_engine)
    async with Session(rel_engine) as session:
        q = session.find(Article).filter(Article.tags.any(Tag.name == "python"))  # EXISTS
        assert [a.title for a in await q.to_list()] == ["Hi"]
        q = session.find(Article).filter(Article.author.has(User.country == "fr"))  # EXISTS
        assert sorted(a.title for a in await q.to_list()) == ["Hi", "Re"]
        session.add(User(name="Cy", email="cy@x.org"))
        q = session.find(User).filter(~User.posts.any())  # users without posts
        assert sorted(u.name for u in await q.to_list()) == ["Ann", "Bob", "Cy"]
        q = (
            session.find(Article)
            .join(Article.author)
            .filter(User.active == True)  # noqa: E712
            .order_by(User.name.asc())
        )
        assert sorted(a.title for a in await q.to_list()) == ["Hi", "Re"]
        untagged = session.find(Article).filter(~Article.tags.any())
        assert [a.title for a in await untagged.to_list()] == ["Re"]
        await session.find(Article).filter(Article.id == 1).update(views=Article.views + 1)
        q = session.find(User).filter(User.age * 2 > 40)
        assert [u.name for u in await q.to_list()] == ["Ann"]
        ann = User(name="Ann", email="a@x.org")
        n = await session.upsert([ann], on=("email",), update=("name",))
        assert n == 1
        rows = await session.execute("SELECT count(*) FROM users WHERE age > %s", (18,))
        assert list(rows) == [(1,)]
        names = []
        async for user in session.find(User).order_by(User.id.asc()):  # streamed
            names.append(user.name)
        assert names == ["Ann", "Bob", "Cy", "Ann"]
        await session.commit()
    assert await fetch(schema, "SELECT views FROM articles WHERE id = 1") == [(1,)]


async def test_deleting_an_owner_deletes_its_links_first(
    rel_engine: Engine, schema: str, sql: StatementLog
) -> None:
    await _seed(rel_engine)
    async with Session(rel_engine) as session:
        article = await session.find(Article).filter(Article.title == "Hi").first()
        assert article is not None
        await session.delete(article)
        sql.clear()
        await session.commit()
        assert sql.statements[0].startswith(
            'DELETE FROM "article_tags" WHERE "article_id" = ANY(%s)'
        )
    assert await fetch(schema, "SELECT count(*) FROM article_tags") == [(1,)]
    assert await fetch(schema, "SELECT title FROM articles ORDER BY id") == [("Yo",), ("Re",)]


async def test_bulk_update_and_delete_keep_composite_key_objects_in_step(
    rel_engine: Engine, schema: str
) -> None:
    await _seed(rel_engine)
    async with Session(rel_engine) as session:
        links = await session.find(ArticleTag).filter(ArticleTag.article_id == 1).to_list()
        assert len(links) == 2
        removed = await session.find(ArticleTag).filter(ArticleTag.article_id == 1).delete()
        assert removed == 2
        assert all(inspect(link).deleted for link in links)
        assert all(link not in session for link in links)
        await session.commit()
    assert await fetch(schema, "SELECT article_id FROM article_tags") == [(2,)]
