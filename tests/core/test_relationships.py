"""Lazy and eager relationship loading, assignment, and the relationship's read-only state."""

from __future__ import annotations

import pytest
from core_fixtures import Comment, Post, StatementLog, User, seed

from data_bridge_core import (
    Engine,
    RaiseLoadError,
    Session,
    inspect,
    joinedload,
    noload,
    raiseload,
    selectinload,
)


async def test_lazy_load_once_per_session(engine: Engine, sql: StatementLog) -> None:
    await seed(engine, users=2, posts=3)
    async with Session(engine) as session:
        user = await session.get(User, 1)
        assert user is not None
        sql.clear()
        posts = await user.posts
        assert [p.title for p in posts] == ["p0.0", "p0.1", "p0.2"]
        assert await user.posts is posts
        assert len(sql.statements) == 1
        assert '"posts"."author_id" = %s' in sql.statements[0]
        # many-to-one served from the identity map: no query
        sql.clear()
        assert await posts[0].author is user
        assert sql.statements == []


async def test_many_to_one_lazy_load(engine: Engine, sql: StatementLog) -> None:
    await seed(engine, users=2, posts=1)
    async with Session(engine) as session:
        post = await session.find(Post).filter(Post.title == "p1.0").first()
        assert post is not None
        sql.clear()
        author = await post.author
        assert author is not None
        assert author.name == "u1"
        assert len(sql.statements) == 1


async def test_nested_selectinload_runs_three_queries(engine: Engine, sql: StatementLog) -> None:
    await seed(engine, users=3, posts=2, comments=2)
    async with Session(engine) as session:
        sql.clear()
        users = (
            await session.find(User)
            .options(selectinload(User.posts).options(selectinload(Post.comments)))
            .order_by(User.id)
            .to_list()
        )
        assert len(sql.statements) == 3
        assert "= ANY(%s)" in sql.statements[1]
        assert "= ANY(%s)" in sql.statements[2]
        sql.clear()
        counts = []
        for user in users:
            for post in await user.posts:
                counts.append(len(await post.comments))
                assert await post.author is user
        assert counts == [2] * 6
        assert sql.statements == []
        assert User.posts.loaded_via(users[0]) == "selectinload"


async def test_joinedload_is_one_query(engine: Engine, sql: StatementLog) -> None:
    await seed(engine, users=2, posts=2)
    async with Session(engine) as session:
        sql.clear()
        posts = (
            await session.find(Post).options(joinedload(Post.author)).order_by(Post.id).to_list()
        )
        assert [(await p.author).name for p in posts] == ["u0", "u0", "u1", "u1"]
        assert len(sql.statements) == 1
        assert "LEFT OUTER JOIN" in sql.statements[0]


async def test_raiseload_and_noload(engine: Engine, sql: StatementLog) -> None:
    await seed(engine, users=1, posts=2)
    async with Session(engine) as session:
        user = (await session.find(User).options(raiseload(User.posts)).to_list())[0]
        with pytest.raises(RaiseLoadError, match="selectinload"):
            await user.posts
    async with Session(engine) as session:
        sql.clear()
        user = (await session.find(User).options(noload(User.posts)).to_list())[0]
        assert await user.posts == []
        assert len(sql.statements) == 1


async def test_assigning_links_both_sides(engine: Engine) -> None:
    await seed(engine, users=1, posts=1)
    async with Session(engine) as session:
        user = await session.get(User, 1)
        assert user is not None
        existing = await user.posts
        post = Post(title="new")
        post.author = user
        assert post.author_id == 1  # the user has a key already
        assert post in await user.posts
        session.add(post)
        await session.commit()
        assert len(existing) == 2
        assert await session.find(Post).filter(Post.author_id == 1).count() == 2


async def test_relationship_state_and_result_size(engine: Engine) -> None:
    await seed(engine, users=5, posts=1)
    assert (User.posts.name, User.posts.target, User.posts.target_name) == ("posts", Post, "Post")
    assert (User.posts.direction, User.posts.uselist, User.posts.fk_column) == (
        "one_to_many",
        True,
        "author_id",
    )
    assert (Post.author.direction, Post.author.uselist, Post.author.fk_column) == (
        "many_to_one",
        False,
        "author_id",
    )
    assert Comment.post.target is Post
    assert User.posts.strategy == "select"
    async with Session(engine) as session:
        users = await session.find(User).to_list()
        assert inspect(users[0]).result_size == 5
        assert User.posts.is_loaded(users[0]) is False
        await users[0].posts
        assert User.posts.is_loaded(users[0]) is True
        assert User.posts.loaded_via(users[0]) == "select"
    async with Session(engine) as session:
        one = await session.get(User, 2)
        assert one is not None
        assert inspect(one).result_size == 1
    assert inspect(User(name="n", email="e")).result_size is None
