"""join(): outer joins, and joins along list relationships (each object once)."""

from __future__ import annotations

import pytest
from core_fixtures import StatementLog

from conduit_models import Article, Tag, User, conduit
from data_bridge_core import Engine, Session, UnsupportedOperationError, joinedload

__all__ = ["conduit"]


async def test_a_join_along_a_list_returns_each_object_once_with_its_own_order_and_page(
    conduit: Engine, sql: StatementLog
) -> None:
    async with Session(conduit) as session:
        query = session.find(User).join(User.articles).filter(Article.views > 4)
        sql.clear()
        users = await query.order_by(User.username.desc()).to_list()
        assert [u.username for u in users] == ["bob", "ann"]  # ann has two such articles
        assert sql.statements == [
            'SELECT "users"."id", "users"."username", "users"."bio" FROM "users" '
            'WHERE "users"."id" IN (SELECT "users"."id" FROM "users" '
            'JOIN "articles" ON "articles"."author_id" = "users"."id" '
            'WHERE "articles"."views" > %s) ORDER BY "users"."username" DESC'
        ]
        assert await query.count() == 2
        assert await query.filter(Article.views > 8).count() == 1
        assert await query.filter(Article.views > 99).exists() is False
        page = await query.order_by(User.username).limit(1).offset(1).to_list()
        assert [u.username for u in page] == ["bob"]
        streamed = [u.username async for u in query.order_by(User.id)]
        assert streamed == ["ann", "bob"]


async def test_a_join_along_a_many_to_many_goes_through_the_association_table(
    conduit: Engine, sql: StatementLog
) -> None:
    async with Session(conduit) as session:
        tagged = session.find(Article).join(Article.tags).filter(Tag.name.in_(["python", "sql"]))
        articles = await tagged.order_by(Article.id).options(joinedload(Article.author)).to_list()
        assert [a.slug for a in articles] == ["intro", "async", "joins"]  # intro has both tags
        assert [(await a.author).username for a in articles] == ["ann", "bob", "ann"]
        assert (
            'JOIN "article_tags" ON "article_tags"."article_id" = "articles"."id" '
            in (sql.statements[-1])
        )
        assert await tagged.count() == 3
        rows = await tagged.order_by(Article.id, Tag.name).select(Article.slug, Tag.name).to_list()
        assert rows == [
            ("intro", "python"),
            ("intro", "sql"),
            ("async", "python"),
            ("joins", "sql"),
        ]


async def test_an_outer_join_keeps_objects_and_rows_without_a_target(
    conduit: Engine, sql: StatementLog
) -> None:
    async with Session(conduit) as session:
        outer = session.find(User).join(User.articles, outer=True)
        sql.clear()
        silent = await outer.filter(Article.id == None).to_list()  # noqa: E711
        assert [u.username for u in silent] == ["cat"]
        assert 'LEFT JOIN "articles" ON "articles"."author_id" = "users"."id"' in sql.statements[0]
        inner = await session.find(User).join(User.articles).filter(Article.id == None).count()  # noqa: E711
        assert inner == 0
        rows = (
            await outer.order_by(User.id, Article.id).select(User.username, Article.slug).to_list()
        )
        assert rows == [("ann", "intro"), ("ann", "joins"), ("bob", "async"), ("cat", None)]
        # a to-one outer join stays in the FROM list: its columns order the objects
        by_author = await (
            session.find(Article)
            .join(Article.author, outer=True)
            .order_by(User.username.desc(), Article.id)
            .to_list()
        )
        assert [a.slug for a in by_author] == ["async", "intro", "joins"]
        assert (
            'FROM "articles" LEFT JOIN "users" ON "users"."id" = "articles"."author_id"'
            in (sql.statements[-1])
        )


async def test_join_refusals_name_the_problem(conduit: Engine) -> None:
    async with Session(conduit) as session:
        listed = session.find(User).join(User.articles)
        with pytest.raises(
            UnsupportedOperationError, match=r"cannot order User objects by Article\.views"
        ):
            await listed.order_by(Article.views).to_list()
        with pytest.raises(UnsupportedOperationError, match=r"'tags' a second time"):
            session.find(Tag).join(Tag.articles).join(Article.tags)
        with pytest.raises(UnsupportedOperationError, match=r"'users' a second time"):
            listed.join(Article.author)
        # the same join twice is one join; inner then outer is refused
        assert listed.join(User.articles) is listed
        with pytest.raises(UnsupportedOperationError, match="a second time"):
            listed.join(User.articles, outer=True)
        # rows of a list join may be ordered by the list's columns
        rows = await listed.order_by(Article.views).select(Article.views).to_list()
        assert rows == [(5,), (7,), (10,)]
