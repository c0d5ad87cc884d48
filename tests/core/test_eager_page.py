"""An eager page (issue 25, workload e): its loaded values without a state per row.

``selectinload`` and ``joinedload`` keep the values of rows that still share
their result's state on that result; a row gets its own state only when it
needs one, with the same values. These tests pin the structure (no own state
per row, no in-memory undo at a read-only close) and that every documented
read gives what it gave before: ``await``, ``loaded()``, ``is_loaded``,
``loaded_via``, ``inspect()``, rollback and close.
"""

from __future__ import annotations

from typing import Any

import pytest
from core_fixtures import Comment, Post, StatementLog, User, seed

from data_bridge_core import (
    Engine,
    InvalidStateError,
    Session,
    inspect,
    joinedload,
    loaded,
    selectinload,
)
from data_bridge_core.state import own_state, result_of
from data_bridge_core.transaction import TransactionLog


async def test_a_page_of_posts_with_authors_and_comments_gives_no_row_a_state_of_its_own(
    engine: Engine, sql: StatementLog
) -> None:
    await seed(engine, users=3, posts=2, comments=2)
    async with Session(engine) as session:
        sql.clear()
        posts = await (
            session.find(Post)
            .options(selectinload(Post.author), selectinload(Post.comments))
            .order_by(Post.id)
            .to_list()
        )
        assert len(sql.statements) == 3
        comments = [c for p in posts for c in Post.comments.read_loaded(p)]
        assert [len(loaded(p).comments) for p in posts] == [2] * 6
        # The children and the authors still share their results' states; a list is
        # kept on its parent's own state (it changes in place).
        assert [own_state(c) for c in comments] == [None] * 12
        authors = {id(a): a for p in posts if (a := Post.author.read_loaded(p)) is not None}
        assert [own_state(a) for a in authors.values()] == [None] * 3
        assert all(own_state(p) is not None for p in posts)
        for post in posts:
            assert Post.author.is_loaded(post) and Post.comments.is_loaded(post)
            assert Post.author.loaded_via(post) == "selectinload"
            assert Post.comments.loaded_via(post) == "selectinload"
            author = await post.author
            assert author is Post.author.read_loaded(post) and author.id == post.author_id
            assert await post.comments is Post.comments.read_loaded(post)
            for comment in Post.comments.read_loaded(post):
                assert comment.post_id == post.id
                assert await comment.post is post  # the back-reference
                assert Comment.post.loaded_via(comment) == "selectinload"
        assert len(sql.statements) == 3  # every read above was served from memory
        assert [own_state(c) for c in comments] == [None] * 12  # awaiting gave none


async def test_a_row_that_gets_its_own_state_keeps_the_values_its_result_held(
    engine: Engine, sql: StatementLog
) -> None:
    await seed(engine, users=2, posts=2, comments=1)
    async with Session(engine) as session:
        users = (
            await session.find(User).options(selectinload(User.posts)).order_by(User.id).to_list()
        )
        post = User.posts.read_loaded(users[0])[0]
        result = result_of(post)
        assert own_state(post) is None
        post.title = "changed"  # a change needs the row's own state
        own = own_state(post)
        assert own is not None and own.result is result
        assert own.relations == {"author": users[0]}
        assert own.loaded_via == {"author": "selectinload"}
        # The parent's list, given an own state by inspect(), is the same list object.
        listed = User.posts.read_loaded(users[1])
        assert inspect(users[1]).persistent
        state = own_state(users[1])
        assert state is not None and state.relations is not None
        assert state.relations["posts"] is listed
        # Changing the foreign key does not move the loaded value (as before).
        other = listed[0]
        other.author_id = users[0].id
        assert Post.author.read_loaded(other) is users[1]
        sql.clear()
        await session.rollback()


async def test_an_assignment_and_an_earlier_load_are_not_overwritten_by_a_back_reference(
    engine: Engine,
) -> None:
    await seed(engine, users=2, posts=1, comments=0)
    async with Session(engine) as session:
        posts = await session.find(Post).order_by(Post.id).to_list()
        first_author = await posts[0].author  # a lazy load: "select"
        assert Post.author.loaded_via(posts[0]) == "select"
        users = (
            await session.find(User).options(selectinload(User.posts)).order_by(User.id).to_list()
        )
        assert users[0] is first_author
        assert Post.author.loaded_via(posts[0]) == "select"  # kept: overwrite=False
        assert Post.author.loaded_via(posts[1]) == "selectinload"
        assert User.posts.read_loaded(users[1]) == [posts[1]]


async def test_a_rollback_and_a_close_drop_the_values_a_result_held(engine: Engine) -> None:
    await seed(engine, users=2, posts=1, comments=1)
    async with Session(engine) as session:
        users = (
            await session.find(User).options(selectinload(User.posts)).order_by(User.id).to_list()
        )
        post = User.posts.read_loaded(users[0])[0]
        assert Post.author.loaded_via(post) == "selectinload"
        await session.rollback()
        assert Post.author.loaded_via(post) is None
        assert User.posts.loaded_via(users[0]) is None
        assert not User.posts.is_loaded(users[0])
        assert await post.author is users[0]  # read again (the map holds the user)
        assert Post.author.loaded_via(post) == "select"
        comments = await session.find(Comment).options(selectinload(Comment.post)).to_list()
    # The session closed with its transaction open: what was loaded is dropped.
    assert Comment.post.loaded_via(comments[0]) is None
    assert inspect(comments[0]).session is None
    with pytest.raises(InvalidStateError, match="not attached to a session"):
        await comments[0].post


async def test_a_joined_load_keeps_the_related_object_on_the_parents_result(
    engine: Engine, sql: StatementLog
) -> None:
    await seed(engine, users=2, posts=2, comments=0)
    async with Session(engine) as session:
        sql.clear()
        posts = (
            await session.find(Post).options(joinedload(Post.author)).order_by(Post.id).to_list()
        )
        assert len(sql.statements) == 1
        assert [own_state(p) for p in posts] == [None] * 4
        assert [Post.author.loaded_via(p) for p in posts] == ["joined"] * 4
        authors = [await p.author for p in posts]
        assert [a.id for a in authors] == [p.author_id for p in posts]
        assert authors[0] is authors[1] and authors[2] is authors[3]
        # A target the joined rows repeat stays on the result's state (hydration.py).
        assert [own_state(a) for a in authors] == [None] * 4
        assert result_of(authors[0]) is result_of(authors[2])
        assert len(sql.statements) == 1


async def test_closing_a_session_that_only_read_undoes_nothing_in_memory(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(engine, users=2, posts=1, comments=0)
    calls: list[Any] = []
    original = TransactionLog.roll_back

    def counted(log: TransactionLog, *args: Any, **kwargs: Any) -> None:
        calls.append(args[0])
        original(log, *args, **kwargs)

    monkeypatch.setattr(TransactionLog, "roll_back", counted)
    async with Session(engine) as session:
        users = await session.find(User).options(selectinload(User.posts)).to_list()
        assert len(users) == 2
    assert calls == []  # nothing was recorded: nothing to undo
    async with Session(engine) as session:
        user = await session.get(User, users[0].id)
        assert user is not None
        user.age = 99
        await session.flush()
    assert len(calls) == 1  # a write was: close undoes it in memory
    assert user.age == users[0].age != 99


async def test_a_loaded_list_follows_a_moved_and_a_deleted_child(engine: Engine) -> None:
    """Lists stay on their parents' own states, where a child's new parent and the
    flush of a deletion find them."""
    await seed(engine, users=2, posts=2, comments=0)
    async with Session(engine) as session:
        users = await (
            session.find(User).options(selectinload(User.posts)).order_by(User.id).to_list()
        )
        first, second = (User.posts.read_loaded(u) for u in users)
        moved = first[0]
        assert own_state(moved) is None and own_state(users[1]) is not None
        moved.author = users[1]
        assert moved in User.posts.read_loaded(users[1])
        assert Post.author.loaded_via(moved) == "assigned"
        gone = second[0]
        await session.delete(gone)
        await session.flush()
        assert gone not in User.posts.read_loaded(users[1])
        assert await moved.author is users[1]
