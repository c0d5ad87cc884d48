"""Column arithmetic, relationship filters (any/has as EXISTS), joins, and errors that teach."""

from __future__ import annotations

import pytest
from core_fixtures import Comment, Post, StatementLog, User, fetch, seed

from data_bridge_core import (
    Column,
    Engine,
    ModelDefinitionError,
    Session,
    Table,
    UnsupportedOperationError,
    relationship,
    table_info,
)


async def test_column_arithmetic_in_a_filter_is_computed_by_postgresql(
    engine: Engine, sql: StatementLog
) -> None:
    await seed(engine, users=3, posts=0)  # ages 10, 20, 30
    async with Session(engine) as session:
        sql.clear()
        users = await session.find(User).filter(User.age * 2 > 40).to_list()
        assert [u.name for u in users] == ["u2"]
        assert '("users"."age" * %s) > %s' in sql.statements[0]
        halves = await session.find(User).filter(User.age / 2 == 5).to_list()
        assert [u.name for u in halves] == ["u0"]
        # a value on the left, a column on both sides: 100 - age < age * 3 holds for 30 only
        assert await session.find(User).filter(100 - User.age < User.age * 3).count() == 1
        ordered = await session.find(User).order_by((User.age * -1).asc()).to_list()
        assert [u.name for u in ordered] == ["u2", "u1", "u0"]


async def test_update_with_column_arithmetic_increments_in_the_database_and_in_the_session(
    engine: Engine, schema: str, sql: StatementLog
) -> None:
    await seed(engine, users=2, posts=0)  # ages 10, 20
    async with Session(engine) as session:
        first = await session.get(User, 1)
        assert first is not None and first.age == 10
        sql.clear()
        changed = await session.find(User).filter(User.id == 1).update(age=User.age + 5)
        assert changed == 1
        assert sql.statements[0].startswith('UPDATE "users" SET "age" = ("users"."age" + %s)')
        assert first.age == 15  # read back with RETURNING
        await session.commit()
    assert await fetch(schema, "SELECT id, age FROM users ORDER BY id") == [(1, 15), (2, 20)]


async def test_any_and_has_filter_with_exists_subqueries(engine: Engine, sql: StatementLog) -> None:
    await seed(engine, users=3, posts=2)  # countries DE, FR, None; posts p<i>.<j>
    async with Session(engine) as session:
        session.add(User(name="lonely", email="l@x.org", age=99))
        await session.commit()
        sql.clear()
        by_title = await session.find(User).filter(User.posts.any(Post.title == "p1.0")).to_list()
        assert [u.name for u in by_title] == ["u1"]
        assert (
            'EXISTS (SELECT 1 FROM "posts" WHERE "posts"."author_id" = "users"."id" '
            'AND "posts"."title" = %s)'
        ) in sql.statements[0]
        without_posts = await session.find(User).filter(~User.posts.any()).to_list()
        assert [u.name for u in without_posts] == ["lonely"]
        french = await session.find(Post).filter(Post.author.has(User.country == "FR")).to_list()
        assert sorted(p.title for p in french) == ["p1.0", "p1.1"]
        combined = (
            await session.find(Post)
            .filter(Post.author.has(User.country == "FR") | Post.author.has(User.age > 25))
            .filter(Post.title.like("%.0"))
            .order_by(Post.id)
            .to_list()
        )
        assert [p.title for p in combined] == ["p1.0", "p2.0"]
        nested = (
            await session.find(User)
            .filter(
                User.posts.any(Post.comments.any(Comment.body == "c0") & (Post.title == "p2.1"))
            )
            .to_list()
        )
        assert [u.name for u in nested] == ["u2"]


async def test_join_filters_and_orders_by_the_joined_model(
    engine: Engine, sql: StatementLog
) -> None:
    await seed(engine, users=3, posts=1)
    async with Session(engine) as session:
        await session.find(User).filter(User.name == "u1").update(active=False)
        sql.clear()
        q = (
            session.find(Post)
            .join(Post.author)
            .filter(User.active == True)  # noqa: E712
            .order_by(User.name.desc())
        )
        posts = await q.to_list()
        assert [p.title for p in posts] == ["p2.0", "p0.0"]
        assert (
            'FROM "posts" JOIN "users" ON "users"."id" = "posts"."author_id"' in (sql.statements[0])
        )
        assert await q.count() == 2
        assert await q.exists() is True
        assert all(isinstance(p, Post) for p in posts)


async def test_relationship_filter_errors_say_what_to_write(engine: Engine) -> None:
    async with Session(engine) as session:
        with pytest.raises(UnsupportedOperationError, match=r"join\(Post.author\) first"):
            session.find(Post).filter(User.active == True)  # noqa: E712
        with pytest.raises(UnsupportedOperationError, match=r"'posts' a second time"):
            session.find(Post).join(Post.author).join(User.posts)
        with pytest.raises(UnsupportedOperationError, match=r"write Post.author.has"):
            Post.author.any()
        with pytest.raises(UnsupportedOperationError, match=r"cannot read a column of User"):
            User.posts.any(User.age > 1)
        # the working forms, side by side
        assert await session.find(Post).join(Post.author).filter(User.age > 1).count() == 0
        assert await session.find(User).filter(User.posts.any(Post.id > 0)).count() == 0


async def test_in_with_a_query_of_objects_points_to_a_one_column_selection(
    engine: Engine,
) -> None:
    async with Session(engine) as session:
        adults = session.find(User).filter(User.age > 18)
        with pytest.raises(
            UnsupportedOperationError,
            match=r"not a query of objects: write Post\.author_id\.in_\(query\.select\(",
        ):
            Post.author_id.in_(adults)  # type: ignore[arg-type]
        ids = [u.id for u in await adults.to_list()]
        assert await session.find(Post).filter(Post.author_id.in_(ids)).count() == 0


def test_python_in_on_a_column_points_to_in_and_like() -> None:
    with pytest.raises(TypeError, match=r"write User.name.in_\(\[\.\.\.\]\)"):
        "ann" in User.name  # noqa: B015
    with pytest.raises(TypeError, match=r"Model.column.in_\(\[\.\.\.\]\)"):
        User.id in [1, 2]  # noqa: B015
    assert User.id.in_([1, 2]).compile([]) == '"users"."id" = ANY(%s)'


def test_many_to_many_without_secondary_names_the_association_table() -> None:
    class Label(Table):
        id: int = Column(primary_key=True)
        items: list[Item] = relationship(back_populates="labels")

        class Settings:
            table_name = "m2m_labels"

    class Item(Table):
        id: int = Column(primary_key=True)
        labels: list[Label] = relationship(back_populates="items")

        class Settings:
            table_name = "m2m_items"

    class ItemLabel(Table):
        item_id: int = Column(primary_key=True, foreign_key="m2m_items.id")
        label_id: int = Column(foreign_key="m2m_labels.id")

        class Settings:
            table_name = "m2m_item_labels"

    with pytest.raises(
        ModelDefinitionError,
        match=r'declare relationship\(secondary="m2m_item_labels", back_populates="items"\)',
    ):
        _ = Item.labels.target
    assert table_info(ItemLabel).name == "m2m_item_labels"
