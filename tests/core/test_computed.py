"""Computed values: a correlated subquery loaded with the rows, usable in order_by()."""

from __future__ import annotations

from typing import ClassVar

import pytest
from core_fixtures import StatementLog

from conduit_models import Favorite, User, conduit
from data_bridge_core import (
    Column,
    Computed,
    Engine,
    InvalidStateError,
    Mapped,
    Session,
    Table,
    computed,
    func,
    joinedload,
    relationship,
    scalar,
)
from data_bridge_core.schema.typed import Rel

__all__ = ["conduit"]


class Story(Table):
    """The articles table seen with two computed values."""

    id: Mapped[int] = Column(primary_key=True)
    author_id: Mapped[int] = Column(foreign_key="users.id")
    slug: Mapped[str]
    author: Rel[User] = relationship()
    favorites: ClassVar[Computed[int]] = computed(
        lambda: scalar(Favorite, func.count(), Favorite.article_id == Story.id)
    )
    liked_by_cat: ClassVar[Computed[int]] = computed(
        lambda: scalar(
            Favorite, func.count(), Favorite.article_id == Story.id, Favorite.user_id == 3
        )
    )

    class Settings:
        table_name = "articles"


async def test_computed_values_load_with_the_rows_and_order_them(
    conduit: Engine, sql: StatementLog
) -> None:
    async with Session(conduit) as session:
        sql.clear()
        stories = await (
            session.find(Story)
            .filter(Story.slug != "x")
            .order_by(Story.favorites.desc(), Story.id)
            .to_list()
        )
        assert [(s.slug, s.favorites, s.liked_by_cat) for s in stories] == [
            ("intro", 2, 1),
            ("async", 1, 1),
            ("joins", 0, 0),
        ]
        assert sql.statements == [
            'SELECT "articles"."id", "articles"."author_id", "articles"."slug", '
            '(SELECT count(*) FROM "favorites" WHERE "favorites"."article_id" = "articles"."id") '
            'AS "favorites", (SELECT count(*) FROM "favorites" WHERE "favorites"."article_id" = '
            '"articles"."id" AND "favorites"."user_id" = %s) AS "liked_by_cat" FROM "articles" '
            'WHERE "articles"."slug" <> %s ORDER BY (SELECT count(*) FROM "favorites" '
            'WHERE "favorites"."article_id" = "articles"."id") DESC, "articles"."id" ASC'
        ]
        popular = await session.find(Story).filter(Story.favorites > 0).count()
        assert popular == 2
        one = await session.find(Story).options(joinedload(Story.author)).order_by(Story.id).first()
        assert one is not None and one.favorites == 2 and (await one.author).username == "ann"
        rows = (
            await session.find(Story)
            .order_by(Story.id)
            .select(Story.slug, Story.favorites)
            .to_list()
        )
        assert rows == [("intro", 2), ("async", 1), ("joins", 0)]


async def test_a_computed_value_not_loaded_says_which_queries_load_it(conduit: Engine) -> None:
    async with Session(conduit) as session:
        streamed = [s async for s in session.find(Story).order_by(Story.id)]
        with pytest.raises(InvalidStateError, match=r"Story\.favorites is computed by the queries"):
            _ = streamed[0].favorites
        with pytest.raises(InvalidStateError, match="is new"):
            _ = Story(author_id=1, slug="new").favorites
        # a query of the objects sets it on the objects the session holds
        await session.find(Story).to_list()
        assert streamed[0].favorites == 2


async def test_a_computed_value_may_be_selected_beside_a_group_by_its_model_key(
    conduit: Engine,
) -> None:
    async with Session(conduit) as session:
        rows = await (
            session.find(Story)
            .join(Story.author)
            .order_by(Story.id)
            .select(Story.slug, Story.favorites, func.count())
            .group_by(Story.id)
            .to_list()
        )
        assert rows == [("intro", 2, 1), ("async", 1, 1), ("joins", 0, 1)]
