"""Subqueries: ``column.in_(find(M).select(M.col))`` and correlated ``exists(M, ...)``."""

from __future__ import annotations

import pytest
from core_fixtures import StatementLog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conduit_models import Article, Favorite, Follow, User, conduit
from data_bridge_core import Engine, Session, UnsupportedOperationError, exists
from finished_spans import attrs, named

__all__ = ["conduit"]


async def test_in_a_one_column_selection_is_one_statement_with_the_parameters_in_order(
    conduit: Engine, sql: StatementLog
) -> None:
    async with Session(conduit) as session:
        followed_by_cat = session.find(Follow).filter(Follow.follower_id == 3)
        feed = (
            session.find(Article)
            .filter(
                Article.views > 1,
                Article.author_id.in_(followed_by_cat.select(Follow.followee_id)),
                Article.slug != "none",
            )
            .order_by(Article.created_at.desc())
        )
        sql.clear()
        assert [a.slug for a in await feed.to_list()] == ["joins", "async", "intro"]
        assert sql.statements == [
            'SELECT "articles"."id", "articles"."author_id", "articles"."slug", '
            '"articles"."title", "articles"."views", "articles"."created_at" FROM "articles" '
            'WHERE "articles"."views" > %s AND "articles"."author_id" IN '
            '(SELECT "follows"."followee_id" AS "followee_id" FROM "follows" '
            'WHERE "follows"."follower_id" = %s) AND "articles"."slug" <> %s '
            'ORDER BY "articles"."created_at" DESC'
        ]
        followed_by_ann = session.find(Follow).filter(Follow.follower_id == 1)
        others = session.find(User).filter(
            User.id.not_in(followed_by_ann.select(Follow.followee_id))
        )
        assert [u.username for u in await others.order_by(User.id).to_list()] == ["ann", "cat"]
        # a subquery may page and group like any selection
        top = session.find(Article).order_by(Article.views.desc()).limit(1).select(Article.id)
        assert [
            a.slug for a in await session.find(Article).filter(Article.id.in_(top)).to_list()
        ] == ["intro"]


async def test_a_subquery_of_several_columns_or_of_objects_is_refused(conduit: Engine) -> None:
    async with Session(conduit) as session:
        follows = session.find(Follow)
        with pytest.raises(
            UnsupportedOperationError, match=r"one column, got 2 \(follower_id, followee_id\)"
        ):
            User.id.in_(follows.select(Follow.follower_id, Follow.followee_id))
        with pytest.raises(UnsupportedOperationError, match=r"not a query of objects"):
            User.id.in_(follows)  # type: ignore[arg-type]


async def test_exists_correlates_with_the_outer_row(conduit: Engine, sql: StatementLog) -> None:
    async with Session(conduit) as session:
        followed = exists(Follow, Follow.followee_id == User.id)
        sql.clear()
        users = await session.find(User).filter(followed).order_by(User.id).to_list()
        assert [u.username for u in users] == ["ann", "bob"]
        assert sql.statements[0].endswith(
            'FROM "users" WHERE EXISTS (SELECT 1 FROM "follows" '
            'WHERE "follows"."followee_id" = "users"."id") ORDER BY "users"."id" ASC'
        )
        lonely = await session.find(User).filter(~followed).to_list()
        assert [u.username for u in lonely] == ["cat"]
        liked_by_cat = exists(Favorite, Favorite.article_id == Article.id, Favorite.user_id == 3)
        rows = (
            await session.find(Article)
            .filter(liked_by_cat)
            .order_by(Article.id)
            .select(Article.slug)
            .to_list()
        )
        assert rows == [("intro",), ("async",)]
        # nested: articles whose author is followed by someone who favorited them
        nested = exists(
            Follow,
            Follow.followee_id == Article.author_id,
            exists(
                Favorite, Favorite.user_id == Follow.follower_id, Favorite.article_id == Article.id
            ),
        )
        assert [a.slug for a in await session.find(Article).filter(nested).to_list()] == [
            "intro",
            "async",
        ]


async def test_exists_refusals_name_the_problem(conduit: Engine) -> None:
    async with Session(conduit) as session:
        with pytest.raises(
            UnsupportedOperationError, match="cannot filter User by a column of Article"
        ):
            session.find(User).filter(exists(Follow, Follow.followee_id == Article.author_id))
        with pytest.raises(UnsupportedOperationError, match=r"exists\(Follow\) needs a condition"):
            exists(Follow)
        with pytest.raises(TypeError, match=r"exists\(\) takes a model class first, got str"):
            exists("follows")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="takes expressions"):
            exists(Follow, True)


@pytest.mark.usefixtures("instrumented")
async def test_a_query_with_a_subquery_is_one_find_span(
    conduit: Engine, spans: InMemorySpanExporter
) -> None:
    async with Session(conduit) as session:
        spans.clear()
        sub = session.find(Follow).filter(Follow.follower_id == 3).select(Follow.followee_id)
        users = await session.find(User).filter(User.id.in_(sub)).to_list()
        assert len(users) == 2
    (find,) = (attrs(s) for s in named(spans, "db.query.find"))
    assert find["db.collection.name"] == "users"
    assert find["db.query.filters_count"] == 1
    assert find["db.result.count"] == 2
