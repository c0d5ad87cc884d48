"""Found by a new user's acceptance run of issue 9 (a RealWorld-style service).

Errors that name what is wrong without echoing the value, refusals that come
before any SQL is sent, and loaded lists that follow a delete.
"""

from __future__ import annotations

import contextlib

import pytest
from core_fixtures import DSN, Post, StatementLog, User, fetch, seed
from test_relational_api import Article, ArticleTag, Tag, _seed, rel_engine  # noqa: F401

from data_bridge_core import (
    Column,
    Engine,
    InvalidStateError,
    Session,
    Table,
    UnsupportedOperationError,
    relationship,
)

SECRET = "s3cr3t-p4ss"


class Follow(Table):  # a user following a user: composite key, one more column
    follower_id: int = Column(primary_key=True, foreign_key="users.id")
    followee_id: int = Column(primary_key=True, foreign_key="users.id")
    since: int = 0
    followee: User = relationship(foreign_key="followee_id")

    class Settings:
        table_name = "follows"


def _message(call: object) -> str:
    assert callable(call)
    with pytest.raises((TypeError, ValueError)) as caught:
        call()
    return str(caught.value)


async def test_argument_errors_name_the_type_they_got_never_the_value(
    rel_engine: Engine,  # noqa: F811
) -> None:
    async with Session(rel_engine) as session:
        message = _message(lambda: session.find(User).filter(SECRET))  # type: ignore[arg-type]
        assert message == "filter() takes expressions such as User.id == 1, got str"
        message = _message(lambda: User.posts.any(SECRET))
        assert message == (
            "<relationship User.posts>.any() takes expressions such as Post.id == 1, got str"
        )
        message = _message(lambda: session.find(User).order_by(SECRET))
        assert message == "order_by() takes columns or column.asc()/.desc(), got str"
        message = _message(lambda: User.age * SECRET)
        assert (
            message == "column arithmetic (*) takes columns, numbers or timedelta values, got str"
        )
        message = _message(
            lambda: setattr(Article(title="t", author_id=1), "tags", Tag(name=SECRET))
        )
        assert message == "Article.tags takes a list, got Tag"
        # expressions, columns and relationships are code, not values: they are shown
        message = _message(lambda: session.find(User).join(User.name))
        assert message == "join() takes a relationship such as User.author, got <column User.name>"


async def test_a_composite_key_of_the_wrong_shape_is_described_without_its_values(
    engine: Engine,
) -> None:
    await engine.create_all(Follow)
    async with Session(engine) as session:
        for key, got in (((SECRET,), "a tuple of 1 value"), (SECRET, "str"), ([1, 2], "list")):
            with pytest.raises(TypeError) as caught:
                await session.get(Follow, key)
            assert str(caught.value) == (
                "Follow has a composite primary key (follower_id, followee_id): "
                f"get() takes a tuple of 2 values, got {got}"
            )
        assert await session.get(Follow, (1, 2)) is None  # the right shape works


async def test_upsert_errors_name_the_columns_not_the_duplicate_values(engine: Engine) -> None:
    async with Session(engine) as session:
        twice = [User(name="a", email=SECRET), User(name="b", email=SECRET)]
        with pytest.raises(ValueError) as caught:
            await session.upsert(twice, on=("email",), update=("name",))
        assert str(caught.value) == (
            "upsert(): two User objects have the same email; pass each key once"
        )
        with pytest.raises(TypeError) as mixed:
            await session.upsert(
                [User(name="a", email=SECRET), Post(title=SECRET)], on=("email",), update=()
            )
        assert str(mixed.value) == "upsert() takes new objects of one model, got Post with User"
        stored = User(name="a", email=SECRET)
        written = await session.upsert([stored], on=("email",), update=())
        assert written == 1
        with pytest.raises(InvalidStateError) as again:
            await session.upsert([stored], on=("email",), update=())
        assert str(again.value) == (
            "upsert() writes new objects; a User object is already in the database: "
            "set its attributes and flush instead"
        )


async def test_changing_the_primary_key_of_a_stored_row_is_refused_at_assignment(
    rel_engine: Engine,  # noqa: F811
    schema: str,
) -> None:
    await _seed(rel_engine)
    async with Session(rel_engine) as session:
        tag = await session.find(Tag).filter(Tag.name == "sql").first()
        hi = await session.find(Article).filter(Article.title == "Hi").first()
        assert tag is not None and hi is not None
        key = tag.id
        link = await session.get(ArticleTag, (hi.id, key))
        assert link is not None
        with pytest.raises(UnsupportedOperationError) as caught:
            tag.id = 77
        assert str(caught.value) == (
            "Tag.id is part of the primary key of a stored row and cannot be changed; "
            "delete the object and add a new one"
        )
        with pytest.raises(UnsupportedOperationError):
            link.tag_id = 77
        assert tag.id == key and link.tag_id == key
        tag.id = key  # the same value is no change
        tag.name = "postgres"  # other columns change as usual
        fresh = Tag(name="rust")
        fresh.id = 50  # a new object has no row yet: its key is free
        session.add(fresh)
        await session.commit()
    assert await fetch(schema, "SELECT id, name FROM tags WHERE name <> 'python' ORDER BY id") == [
        (key, "postgres"),
        (50, "rust"),
    ]


async def test_like_on_a_column_that_is_not_text_is_refused_before_any_sql(
    engine: Engine, sql: StatementLog
) -> None:
    await seed(engine, users=2, posts=0)
    async with Session(engine) as session:
        sql.clear()
        with pytest.raises(UnsupportedOperationError) as caught:
            await session.find(User).filter(User.age.like("1%")).to_list()
        assert str(caught.value) == (
            "User.age.like() needs a text column; User.age holds int: compare it with "
            "==, in_([...]) or between(...)"
        )
        assert sql.statements == []
        names = await session.find(User).filter(User.name.like("u%")).to_list()
        assert [u.name for u in names] == ["u0", "u1"]


async def test_arithmetic_on_a_column_that_is_not_a_number_is_refused_before_any_sql(
    engine: Engine, schema: str, sql: StatementLog
) -> None:
    await seed(engine, users=2, posts=0)  # ages 10, 20
    async with Session(engine) as session:
        sql.clear()
        with pytest.raises(UnsupportedOperationError) as caught:
            await session.find(User).filter(User.id == 1).update(age=User.name + 1)
        assert str(caught.value) == (
            "column arithmetic (+) needs numbers, dates or times; User.name holds str"
        )
        with pytest.raises(UnsupportedOperationError):
            await session.find(User).filter(User.active * 2 > 1).to_list()
        assert sql.statements == []
        # nothing reached PostgreSQL: the transaction is still usable
        assert await session.find(User).filter(User.id == 1).update(age=User.age + 1) == 1
        await session.commit()
    assert await fetch(schema, "SELECT id, age FROM users ORDER BY id") == [(1, 11), (2, 20)]


async def test_update_through_a_join_names_the_relationship_to_filter_with(
    rel_engine: Engine,  # noqa: F811
) -> None:
    async with Session(rel_engine) as session:
        joined = session.find(Article).join(Article.author).filter(User.name == "Ann")
        with pytest.raises(UnsupportedOperationError) as caught:
            await joined.update(views=1)
        assert str(caught.value) == (
            "update() does not take join(); filter across the relationship with "
            "Article.author.has(...) instead"
        )
        with pytest.raises(UnsupportedOperationError) as deleted:
            await joined.delete()
        assert "Article.author.has(...)" in str(deleted.value)
        assert await joined.count() == 0  # reading through the join is fine


async def test_a_deleted_object_leaves_the_loaded_lists_that_held_it(
    rel_engine: Engine,  # noqa: F811
    schema: str,
) -> None:
    await _seed(rel_engine)  # Hi: python, sql; Yo: sql; Re: none (Hi, Re by Ann)
    async with Session(rel_engine) as session:
        hi = await session.find(Article).filter(Article.title == "Hi").first()
        yo = await session.find(Article).filter(Article.title == "Yo").first()
        assert hi is not None and yo is not None
        sql_tag, python = sorted(await hi.tags, key=lambda t: t.name, reverse=True)
        assert [a.title for a in await sql_tag.articles] == ["Hi", "Yo"]
        assert await yo.tags == [sql_tag]
        assert await python.articles == [hi]
        await session.delete(sql_tag)
        await session.flush()
        assert await hi.tags == [python]  # many-to-many, the other side
        assert await yo.tags == []
        await session.delete(hi)
        await session.commit()
        assert await python.articles == []
        # and a list loaded afterwards reads the same
        assert await session.find(Tag).count() == 1
    assert await fetch(schema, "SELECT article_id, tag_id FROM article_tags") == []


async def test_a_deleted_child_leaves_its_parents_loaded_list(engine: Engine) -> None:
    await seed(engine, users=1, posts=2, comments=0)
    async with Session(engine) as session:
        user = await session.get(User, 1)
        assert user is not None
        first, second = await user.posts
        await session.delete(first)
        await session.flush()
        assert await user.posts == [second]
        assert await session.find(Post).filter(Post.id == second.id).delete() == 1  # bulk too
        assert await user.posts == []
        await session.rollback()  # the row is back: the list loads again from the database
        assert [p.title for p in await user.posts] == ["p0.0", "p0.1"]


async def test_upsert_refuses_objects_whose_relationships_it_would_not_write(
    rel_engine: Engine,  # noqa: F811
    schema: str,
) -> None:
    await _seed(rel_engine)
    async with Session(rel_engine) as session:
        ann = await session.find(User).filter(User.name == "Ann").first()
        assert ann is not None
        tagged = Tag(name="rust", articles=[Article(title="New", author=ann)])
        with pytest.raises(UnsupportedOperationError) as caught:
            await session.upsert([tagged], on=("name",), update=())
        assert str(caught.value) == (
            "upsert() writes columns only; Tag.articles was given objects it would not "
            "write: upsert the Tag objects first, then link them and flush"
        )
        orphan = Article(title="Orphan", author=User(name="Zed", email="zed@x.org"))
        with pytest.raises(UnsupportedOperationError) as new_target:
            await session.upsert([orphan], on=("author_id", "title"), update=())
        assert str(new_target.value) == (
            "upsert() writes columns only; Article.author holds a new User without a key: "
            "add it and flush first"
        )
        # a many-to-one to a stored object is only its key: that upserts
        linked = Article(title="Linked", author=ann)
        assert await session.upsert([linked], on=("author_id", "title"), update=()) == 1
        await session.commit()
    assert await fetch(schema, "SELECT title FROM articles ORDER BY id") == [
        ("Hi",),
        ("Yo",),
        ("Re",),
        ("Linked",),
    ]
    assert await fetch(schema, "SELECT name FROM tags WHERE name = 'rust'") == []


async def test_a_many_to_many_list_with_an_object_twice_holds_it_once(
    rel_engine: Engine,  # noqa: F811
    schema: str,
) -> None:
    await _seed(rel_engine)
    async with Session(rel_engine) as session:
        hi = await session.find(Article).filter(Article.title == "Hi").first()
        python = await session.find(Tag).filter(Tag.name == "python").first()
        assert hi is not None and python is not None
        hi.tags = [python, python]
        assert await hi.tags == [python]
        assert await python.articles == [hi]
        await session.commit()
    assert await fetch(
        schema, "SELECT count(*) FROM article_tags WHERE article_id = %s", hi.id
    ) == [(1,)]


async def test_ending_the_transaction_inside_a_stream_says_why_the_stream_stopped(
    engine: Engine,
) -> None:
    await seed(engine, users=3, posts=0)
    async with Session(engine) as session:
        names: list[str] = []

        async def commit_while_streaming() -> None:
            async for user in session.find(User).order_by(User.id).stream(batch_size=1):
                names.append(user.name)
                await session.commit()

        with pytest.raises(InvalidStateError) as caught:
            await commit_while_streaming()
        assert names == ["u0"]
        assert str(caught.value) == (
            "the transaction of this stream ended (commit() or rollback() inside the loop), "
            "which closed its server-side cursor: end the transaction after the loop, or "
            "read the rows with to_list() first"
        )
        # the session goes on; a stream left alone reads every row
        assert [u.name async for u in session.find(User).order_by(User.id)] == ["u0", "u1", "u2"]


async def test_a_stream_whose_transaction_ended_never_touches_the_connection_given_back(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=3, posts=0)
    one = Engine(DSN, min_size=0, max_size=1, options=f"-c search_path={schema}")
    try:
        async with Session(one) as streaming, Session(one) as other:
            stream = streaming.find(User).order_by(User.id).stream(batch_size=1)
            first = await anext(stream)
            await streaming.commit()  # the only connection goes back to the pool...
            other.add(User(name="other", email="other@x.org"))
            await other.flush()  # ...and now holds the other session's transaction
            with pytest.raises(InvalidStateError):
                await anext(stream)
            await stream.aclose()
            await other.commit()  # its transaction was not disturbed
            assert first.name == "u0"
    finally:
        await one.dispose()
    assert await fetch(schema, "SELECT name FROM users WHERE name = 'other'") == [("other",)]


async def test_closing_a_stream_closes_its_server_side_cursor_at_once(engine: Engine) -> None:
    await seed(engine, users=3, posts=0)
    open_cursors = "SELECT name FROM pg_cursors WHERE name LIKE 'data_bridge_stream_%'"
    async with Session(engine) as session:
        async with contextlib.aclosing(session.find(User).order_by(User.id).stream(1)) as rows:
            async for user in rows:
                assert len((await session.execute(open_cursors)).rows) == 1  # open while read
                assert user.name == "u0"
                break
        assert (await session.execute(open_cursors)).rows == []
        assert await session.find(User).count() == 3


async def test_relinking_a_stored_association_row_is_refused_and_leaves_it_as_it_was(
    engine: Engine, schema: str
) -> None:
    await engine.create_all(Follow)
    await seed(engine, users=3, posts=0)
    async with Session(engine) as session:
        u0, u1, u2 = await session.find(User).order_by(User.id).to_list()
        session.add(Follow(follower_id=u0.id, followee=u1))  # a new row: linking is fine
        await session.commit()
        follow = await session.get(Follow, (u0.id, u1.id))
        assert follow is not None and await follow.followee is u1
        with pytest.raises(UnsupportedOperationError) as caught:
            follow.followee = u2  # followee_id is part of the key
        assert str(caught.value).startswith("Follow.followee_id is part of the primary key")
        assert follow.followee_id == u1.id
        assert await follow.followee is u1
        follow.since = 3
        await session.commit()
    assert await fetch(schema, "SELECT follower_id, followee_id, since FROM follows") == [(1, 2, 3)]


async def test_a_new_objects_links_are_inserted_without_deleting_first(
    rel_engine: Engine,  # noqa: F811
    schema: str,
    sql: StatementLog,
) -> None:
    async with Session(rel_engine) as session:
        ann = User(name="Ann", email="ann@x.org")
        python = Tag(name="python")
        article = Article(title="Hi", author=ann, tags=[python])
        session.add(article)
        sql.clear()
        await session.flush()
        tables = [s.split('"')[1] for s in sql.statements]
        assert sorted(tables[:2]) == ["tags", "users"]
        assert tables[2:] == ["articles", "article_tags"]
        assert sql.statements[-1].startswith('INSERT INTO "article_tags"')
        article.tags = []  # a stored one: its old links go
        sql.clear()
        await session.commit()
        assert [s.split(" ")[0] for s in sql.statements] == ["DELETE"]
    assert await fetch(schema, "SELECT count(*) FROM article_tags") == [(0,)]
