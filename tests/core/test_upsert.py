"""session.upsert(): INSERT ... ON CONFLICT DO UPDATE / DO NOTHING, rows written, keys filled."""

from __future__ import annotations

import pytest
from core_fixtures import DSN, Comment, Post, StatementLog, User, fetch

from data_bridge_core import Engine, Session, UnsupportedOperationError, inspect


async def test_upsert_inserts_new_rows_and_updates_existing_ones(
    engine: Engine, schema: str, sql: StatementLog
) -> None:
    async with Session(engine) as session:
        session.add(User(name="Old", email="a@x.org", age=40))
        await session.commit()
    async with Session(engine) as session:
        ann = User(name="Ann", email="a@x.org")
        bob = User(name="Bob", email="b@x.org", age=7)
        sql.clear()
        n = await session.upsert([ann, bob], on=("email",), update=("name",))
        assert n == 2
        row = "%s::text, %s::text, %s::bigint, %s::boolean, %s::text, %s::timestamptz"
        assert sql.statements == [
            f"WITH v (c0, c1, c2, c3, c4, c5, ord) AS (VALUES ({row}, 1), ({row}, 2)), "
            'w AS (INSERT INTO "users" ("name", "email", "age", "active", "country", "created_at") '
            "SELECT c0, c1, c2, c3, c4, c5 FROM v ORDER BY ord "
            'ON CONFLICT ("email") DO UPDATE SET "name" = EXCLUDED."name" '
            'RETURNING "users"."id", "users"."name", "users"."email", "users"."age", '
            '"users"."active", "users"."country", "users"."created_at", '
            '(xmax = 0) AS "(inserted)") '
            'SELECT w.*, v.ord FROM w JOIN v ON w."email" = v.c1::text ORDER BY v.ord'
        ]
        assert (ann.id, ann.age) == (1, 40)  # the existing row's key and its untouched column
        assert bob.id == 3  # the conflicting row used up identity value 2
        assert await session.get(User, 1) is ann  # written objects join the identity map
        await session.commit()
    rows = await fetch(schema, "SELECT id, name, email, age FROM users ORDER BY id")
    assert rows == [(1, "Ann", "a@x.org", 40), (3, "Bob", "b@x.org", 7)]


async def test_upsert_with_update_empty_does_nothing_on_conflict(
    engine: Engine, schema: str, sql: StatementLog
) -> None:
    async with Session(engine) as session:
        session.add(User(name="Old", email="a@x.org"))
        await session.commit()
        taken = User(name="Ann", email="a@x.org")
        new = User(name="Cy", email="c@x.org")
        sql.clear()
        n = await session.upsert([taken, new], on=("email",), update=())
        assert n == 1
        assert 'ON CONFLICT ("email") DO NOTHING' in sql.statements[0]
        # The existing row wins and the object shows it; the session holds that row
        # (added above), so `taken` is a detached copy of it (test_upsert_do_nothing.py).
        assert (taken.id, taken.name) == (1, "Old") and taken not in session
        assert 'FROM "users" JOIN (VALUES (%s::text, 1)) AS v (c0, ord)' in sql.statements[1]
        assert new.id == 3 and new in session
        await session.commit()
    assert await fetch(schema, "SELECT name FROM users ORDER BY id") == [("Old",), ("Cy",)]


async def test_upsert_updates_a_loaded_object_and_rollback_restores_it(engine: Engine) -> None:
    async with Session(engine) as session:
        session.add(User(name="Old", email="a@x.org"))
        await session.commit()
        loaded = await session.get(User, 1)
        assert loaded is not None
        await session.upsert([User(name="New", email="a@x.org")], on=("email",), update=("name",))
        assert loaded.name == "New"
        inserted = User(name="Dan", email="d@x.org")
        await session.upsert([inserted], on=("email",), update=("name",))
        assert inspect(inserted).persistent
        await session.rollback()
        assert loaded.name == "Old"
        assert inserted.id is None and inserted not in session
        assert await session.find(User).count() == 1


async def test_upsert_refuses_a_key_without_a_unique_constraint_and_duplicate_keys(
    engine: Engine,
) -> None:
    async with Session(engine) as session:
        with pytest.raises(UnsupportedOperationError, match=r"Column\(unique=True\)"):
            await session.upsert([User(name="A", email="a@x")], on=("name",), update=())
        twins = [User(name="A", email="a@x"), User(name="B", email="a@x")]
        with pytest.raises(ValueError, match=r"same email; pass each key once"):
            await session.upsert(twins, on=("email",), update=("name",))
        assert await session.upsert(twins[:1], on=("email",), update=("name",)) == 1


async def test_settings_unique_and_indexes_are_created_and_serve_as_upsert_keys(
    schema: str,
) -> None:
    from data_bridge_core import Column, Table

    class Score(Table):
        id: int = Column(primary_key=True)
        player: str
        level: int
        points: int = 0

        class Settings:
            table_name = "scores"
            unique = [("player", "level")]
            indexes = [("level", "points")]

    eng = Engine(DSN, min_size=0, options=f"-c search_path={schema}")
    try:
        await eng.create_all(Score)
        defs = await fetch(  # this schema's: a run side by side has its own scores table
            schema,
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'scores' "
            "ORDER BY indexname",
            schema,
        )
        assert [d for (d,) in defs if "player" in d or "points" in d] == [
            f"CREATE INDEX ix_scores_level_points ON {schema}.scores USING btree (level, points)",
            f"CREATE UNIQUE INDEX scores_player_level_key ON {schema}.scores "
            "USING btree (player, level)",
        ]
        async with Session(eng) as session:
            first = Score(player="ann", level=1, points=5)
            assert await session.upsert([first], on=("level", "player"), update=("points",)) == 1
            again = Score(player="ann", level=1, points=9)
            assert await session.upsert([again], on=("player", "level"), update=("points",)) == 1
            assert first.points == 9 and again.id == first.id
            await session.commit()
    finally:
        await eng.dispose()


async def test_upsert_of_a_new_object_a_pending_object_points_to_writes_it_once_by_the_upsert(
    engine: Engine, schema: str, sql: StatementLog
) -> None:
    async with Session(engine) as session:
        session.add(User(name="Old", email="a@x.org"))
        await session.commit()
    async with Session(engine) as session:
        ann = User(name="Ann", email="a@x.org")  # the row exists: the upsert updates it
        post = Post(title="hello")
        post.author = ann
        session.add(post)  # its author is new: a flush would cascade-insert it
        comment = Comment(body="first")
        comment.post = Post(title="second", author=ann)  # reaches ann through a new post
        session.add(comment)
        session.add(User(name="Bo", email="b@x.org"))  # unrelated: written before the upsert
        sql.clear()
        assert await session.upsert([ann], on=("email",), update=("name",)) == 1
        assert ann.id == 1 and inspect(ann).persistent
        await session.commit()
        inserts = [s.split(" (")[0] for s in sql.statements if "INSERT" in s]
        assert inserts == [
            'INSERT INTO "users"',
            "WITH v",  # the upsert
            'INSERT INTO "posts"',
            'INSERT INTO "comments"',
        ]
    users = await fetch(schema, "SELECT id, name, email FROM users ORDER BY id")
    assert users == [(1, "Ann", "a@x.org"), (2, "Bo", "b@x.org")]
    posts = await fetch(schema, "SELECT id, author_id, title FROM posts ORDER BY id")
    assert posts == [(1, 1, "hello"), (2, 1, "second")]
    assert await fetch(schema, "SELECT post_id, body FROM comments") == [(2, "first")]
