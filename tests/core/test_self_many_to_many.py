"""A many-to-many of a model with itself: users following users, both directions named."""

from __future__ import annotations

import pytest
from core_fixtures import StatementLog, fetch
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conduit_models import User, conduit
from data_bridge_core import (
    Column,
    Engine,
    Mapped,
    ModelDefinitionError,
    Rel,
    Session,
    Table,
    relationship,
    selectinload,
)
from finished_spans import attrs, named
from opentelemetry_instrumentation_data_bridge.telemetry import configure_n1_detection

__all__ = ["conduit"]


def names(users: list[User]) -> list[str]:
    return [u.username for u in users]


async def test_both_directions_load_lazily_through_the_association_table(
    conduit: Engine, sql: StatementLog
) -> None:
    async with Session(conduit) as session:
        cat = await session.get(User, 3)
        bob = await session.get(User, 2)
        assert cat is not None and bob is not None
        sql.clear()
        assert names(await cat.following) == ["ann", "bob"]
        assert names(await bob.followers) == ["ann", "cat"]
        assert names(await cat.followers) == []
        assert sql.statements[0] == (
            'SELECT "users"."id", "users"."username", "users"."bio" FROM "users" '
            'JOIN "follows" ON "follows"."followee_id" = "users"."id" '
            'WHERE "follows"."follower_id" = %s ORDER BY "users"."id"'
        )


async def test_selectinload_loads_both_directions_in_one_query_each(
    conduit: Engine, sql: StatementLog
) -> None:
    async with Session(conduit) as session:
        sql.clear()
        users = await (
            session.find(User)
            .order_by(User.id)
            .options(selectinload(User.following), selectinload(User.followers))
            .to_list()
        )
        assert len(sql.statements) == 3
        assert [names(await u.following) for u in users] == [["bob"], [], ["ann", "bob"]]
        assert [names(await u.followers) for u in users] == [["cat"], ["ann", "cat"], []]
        assert len(sql.statements) == 3  # no lazy load after the eager ones


async def test_any_filters_through_an_alias_of_the_same_table(
    conduit: Engine, sql: StatementLog
) -> None:
    async with Session(conduit) as session:
        query = session.find(User).order_by(User.id)
        sql.clear()
        bob_fans = await query.filter(User.following.any(User.username == "bob")).to_list()
        assert names(bob_fans) == ["ann", "cat"]
        assert (
            'WHERE EXISTS (SELECT 1 FROM "follows" JOIN "users" AS "users_1" '
            'ON "users_1"."id" = "follows"."followee_id" '
            'WHERE "follows"."follower_id" = "users"."id" AND "users_1"."username" = %s)'
        ) in sql.statements[0]
        # nested: who follows someone who follows bob
        second = User.following.any(User.following.any(User.username == "bob"))
        assert names(await query.filter(second).to_list()) == ["cat"]
        assert '"users_2"' in sql.statements[-1] and '"users_1"' in sql.statements[-1]
        # mixed with a relationship to another model, and without criteria
        writers_fans = User.following.any(User.articles.any())
        assert names(await query.filter(writers_fans).to_list()) == ["ann", "cat"]
        assert names(await query.filter(~User.followers.any()).to_list()) == ["cat"]
        assert names(await query.filter(User.followers.any(User.id == 1)).to_list()) == ["bob"]


async def test_add_and_remove_write_only_the_changed_links(
    conduit: Engine, schema: str, sql: StatementLog
) -> None:
    async with Session(conduit) as session:
        ann = await session.get(User, 1)
        bob = await session.get(User, 2)
        cat = await session.get(User, 3)
        assert ann is not None and bob is not None and cat is not None
        ann.following.add(cat)
        bob.followers.remove(ann)
        cat.following.add(ann)  # already there: idempotent
        sql.clear()
        await session.commit()
        assert [s.split(" (")[0].split(" WHERE")[0] for s in sql.statements] == [
            'INSERT INTO "follows"',
            'DELETE FROM "follows"',
        ]
    follows = await fetch(schema, "SELECT follower_id, followee_id FROM follows ORDER BY 1, 2")
    assert follows == [(1, 3), (3, 1), (3, 2)]
    async with Session(conduit) as session:
        cat = await session.get(User, 3)
        assert cat is not None
        assert names(await cat.followers) == ["ann"]
        cat.following = [await session.get(User, 2)]  # type: ignore[list-item]
        await session.commit()
    follows = await fetch(schema, "SELECT follower_id, followee_id FROM follows ORDER BY 1, 2")
    assert follows == [(1, 3), (3, 2)]


async def test_a_self_many_to_many_without_foreign_key_says_what_to_declare(
    conduit: Engine,
) -> None:
    class Member(Table):
        id: Mapped[int] = Column(primary_key=True)
        friends: Rel[list[Member]] = relationship(secondary="friendships")

        class Settings:
            table_name = "members"

    class Friendship(Table):
        a_id: Mapped[int] = Column(primary_key=True, foreign_key="members.id")
        b_id: Mapped[int] = Column(primary_key=True, foreign_key="members.id")

        class Settings:
            table_name = "friendships"

    with pytest.raises(
        ModelDefinitionError,
        match=r"needs foreign_key= naming the column of 'friendships'.*found a_id, b_id",
    ):
        Member.friends.mapping  # noqa: B018


@pytest.mark.usefixtures("instrumented")
async def test_self_many_to_many_loads_are_relationship_spans_naming_the_association(
    conduit: Engine, spans: InMemorySpanExporter
) -> None:
    async with Session(conduit) as session:
        cat = await session.get(User, 3)
        assert cat is not None
        spans.clear()
        await cat.following
        await session.find(User).options(selectinload(User.followers)).to_list()
    (lazy,) = (attrs(s) for s in named(spans, "db.relationship.select"))
    assert lazy["db.relationship.secondary"] == "follows"
    assert lazy["db.relationship.fk_column"] == "follower_id"
    assert lazy["db.result.count"] == 2
    (eager,) = (attrs(s) for s in named(spans, "db.relationship.selectinload"))
    assert eager["db.relationship.secondary"] == "follows"
    assert eager["db.relationship.fk_column"] == "followee_id"


@pytest.mark.usefixtures("instrumented")
async def test_a_loop_over_followers_is_reported_as_n_plus_one_with_the_fix(
    conduit: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    configure_n1_detection(threshold=3)
    try:
        with tracer_provider.get_tracer("t").start_as_current_span("GET /profiles"):
            async with Session(conduit) as session:
                for user in await session.find(User).to_list():
                    await user.followers  # the N+1 line
    finally:
        configure_n1_detection()
    (warning,) = (attrs(s) for s in named(spans, "db.n1_warning"))
    assert warning["db.relationship.name"] == "followers"
    assert warning["db.relationship.target_model"] == "User"
    assert warning["db.n1.recommendation"] == "Use selectinload(User.followers)"
