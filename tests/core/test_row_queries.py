"""Column selection: ``find(Model).select(...)`` returns named tuples, not objects."""

from __future__ import annotations

import logging

import pytest
from core_fixtures import StatementLog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conduit_models import Article, Tag, User, conduit
from data_bridge_core import Engine, Session, UnsupportedOperationError, func, selectinload
from finished_spans import attrs, named

__all__ = ["conduit"]


async def test_select_returns_named_tuples_of_the_columns_without_building_objects(
    conduit: Engine, sql: StatementLog
) -> None:
    async with Session(conduit) as session:
        sql.clear()
        rows = await (
            session.find(User)
            .filter(User.username != "cat")
            .order_by(User.id)
            .select(User.id, User.username)
            .to_list()
        )
        assert [tuple(r) for r in rows] == [(1, "ann"), (2, "bob")]
        assert [r.username for r in rows] == ["ann", "bob"]
        assert type(rows[0]).__name__ == "Row"
        assert rows[0]._fields == ("id", "username")
        assert sql.statements == [
            'SELECT "users"."id" AS "id", "users"."username" AS "username" FROM "users" '
            'WHERE "users"."username" <> %s ORDER BY "users"."id" ASC'
        ]
        assert len(session) == 0  # nothing in the identity map


async def test_select_reads_columns_of_a_joined_model_and_pages_like_the_query(
    conduit: Engine,
) -> None:
    async with Session(conduit) as session:
        query = (
            session.find(Article)
            .join(Article.author)
            .order_by(Article.created_at.desc())
            .select(Article.slug, User.username.named("author"), (Article.views * 2).named("x2"))
        )
        rows = await query.offset(1).limit(1).to_list()
        assert rows == [("async", "bob", 10)]
        assert rows[0].author == "bob"
        assert query.field_names == ("slug", "author", "x2")
        first = await query.first()
        assert first is not None and first.slug == "joins"
        assert await query.filter(Article.views > 100).first() is None


async def test_select_refuses_what_has_no_row_field_or_is_not_a_column(conduit: Engine) -> None:
    async with Session(conduit) as session:
        users = session.find(User)
        with pytest.raises(UnsupportedOperationError, match=r"'id' is selected twice"):
            session.find(Article).join(Article.author).select(Article.id, User.id)
        with pytest.raises(UnsupportedOperationError, match=r"needs a name for \(User.id \+ "):
            users.select(User.id + 1)
        with pytest.raises(TypeError, match=r"select\(\) takes columns.*got str"):
            users.select("username")
        with pytest.raises(ValueError, match="at least one column"):
            users.select()
        with pytest.raises(UnsupportedOperationError, match="cannot select from User by a"):
            users.select(Article.slug)
        with pytest.raises(UnsupportedOperationError, match="remove options"):
            users.options(selectinload(User.articles)).select(User.id)
        with pytest.raises(ValueError, match="Python identifier"):
            User.id.named("not a name")
        # a named column stands apart from the one it names
        rows = (
            await session.find(Article)
            .join(Article.author)
            .order_by(Article.id)
            .select(Article.id, User.id.named("author_id"))
            .to_list()
        )
        assert rows == [(1, 1), (2, 2), (3, 1)]


@pytest.mark.usefixtures("instrumented")
async def test_a_column_selection_is_a_find_span_counting_its_rows(
    conduit: Engine, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    async with Session(conduit) as session:
        spans.clear()
        selection = session.find(User).order_by(User.id).limit(2).select(User.username)
        # The facts the query seam reads are its query's.
        assert selection.facts == ("users", session, 0, 2, None, "id ASC")
        rows = await selection.to_list()
        assert rows == [("ann",), ("bob",)]
    # rows are not objects: N+1 detection has nothing to remember of them, and no
    # part of the instrumentation fails on them
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    (find,) = (attrs(s) for s in named(spans, "db.query.find"))
    assert find["db.collection.name"] == "users"
    assert find["db.operation.name"] == "find"
    assert find["db.query.limit"] == 2
    assert find["db.query.order_by"] == "id ASC"
    assert find["db.result.count"] == 2


async def test_group_by_counts_tags_across_the_many_to_many_join_in_one_query(
    conduit: Engine, sql: StatementLog
) -> None:
    async with Session(conduit) as session:
        sql.clear()
        rows = await (
            session.find(Tag)
            .join(Tag.articles)
            .order_by(func.count().desc(), Tag.name)
            .select(Tag.name, func.count().named("articles"), func.max(Article.views))
            .group_by(Tag.name)
            .to_list()
        )
        assert rows == [("python", 2, 10), ("sql", 2, 10)]
        assert rows[0].articles == 2 and rows[0].max == 10
        assert sql.statements == [
            'SELECT "tags"."name" AS "name", count(*) AS "articles", '
            'max("articles"."views") AS "max" FROM "tags" '
            'JOIN "article_tags" ON "article_tags"."tag_id" = "tags"."id" '
            'JOIN "articles" ON "articles"."id" = "article_tags"."article_id" '
            'GROUP BY "tags"."name" ORDER BY count(*) DESC, "tags"."name" ASC'
        ]


async def test_group_by_with_having_sums_as_the_column_type_and_checks_the_grouping(
    conduit: Engine, sql: StatementLog
) -> None:
    async with Session(conduit) as session:
        per_author = (
            session.find(User)
            .join(User.articles)
            .order_by(User.username)
            .select(User.username, func.sum(Article.views).named("views"), func.count())
            .group_by(User.id)  # grouped by the key: every column of users may be selected
        )
        sql.clear()
        rows = await per_author.to_list()
        assert rows == [("ann", 17, 2), ("bob", 5, 1)]
        assert type(rows[0].views) is int  # sum(bigint) is numeric in SQL: cast back
        assert sql.statements[0].startswith(
            'SELECT "users"."username" AS "username", '
            'CAST(sum("articles"."views") AS bigint) AS "views", count(*) AS "count" FROM "users" '
            'JOIN "articles" ON "articles"."author_id" = "users"."id" GROUP BY "users"."id"'
        )
        busy = await per_author.having(func.count() > 1).to_list()
        assert busy == [("ann", 17, 2)]
        assert sql.statements[-1].endswith(' HAVING count(*) > %s ORDER BY "users"."username" ASC')
        nothing = (
            await session.find(Article)
            .filter(Article.views > 100)
            .select(func.sum(Article.views), func.count(Article.id, distinct=True))
            .first()
        )
        assert nothing == (None, 0)
        with pytest.raises(UnsupportedOperationError, match=r"Article\.slug is neither grouped"):
            await session.find(Article).select(Article.slug, func.count()).to_list()
        with pytest.raises(UnsupportedOperationError, match=r"func\.sum\(\) needs a number"):
            await session.find(Article).select(func.sum(Article.slug)).to_list()
        with pytest.raises(TypeError, match=r"having\(\) takes expressions"):
            per_author.having(True)
        with pytest.raises(TypeError, match=r"func\.count\(\) is compared with an int"):
            await per_author.having(func.count() > "1").to_list()
        with pytest.raises(TypeError, match=r"group_by\(\) takes columns"):
            per_author.group_by(func.count())


async def test_distinct_rows_of_a_to_many_join_are_each_pair_once(conduit: Engine) -> None:
    async with Session(conduit) as session:
        names = session.find(User).join(User.articles).order_by(User.username)
        assert await names.select(User.username).to_list() == [("ann",), ("ann",), ("bob",)]
        assert await names.select(User.username).distinct().to_list() == [("ann",), ("bob",)]
