"""Guards of issue 25's structural wins, counted on the wire (libpq's own trace).

- Statements per read-only page: a session that only reads sends BEGIN, its
  queries and COMMIT, nothing else (tests/core/test_read_transactions.py says
  why BEGIN stays; COMMIT, not ROLLBACK, because psycopg forgets its prepared
  statements at every ROLLBACK); an eager page sends exactly one query per level.
  Anything but the ORM's own SELECTs, and an explicit rollback(), end with ROLLBACK.
- Prepared-statement reuse across page offsets: LIMIT and OFFSET are bound
  (test_value_edges.py's
  ``test_every_page_of_a_list_is_the_same_statement_with_bound_limit_and_offset``
  checks the text), so paging through a list runs one server-side prepared
  statement, however many offsets: checked here in ``pg_prepared_statements`` of
  the very connection, and on the wire (no Parse, no new plan per offset).

The observer is ``wire_trace``: what psycopg hands to libpq, below every layer
of the ORM, so a change anywhere above (the session, the statement runner,
psycopg's own transaction handling) is seen.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from core_fixtures import DSN, Comment, Post, User

from data_bridge_core import Engine, Session, joinedload, selectinload
from data_bridge_core.errors import DatabaseError
from wire_trace import WireLog, wire_trace

POSTS = 600  # 12 pages of 50
PAGE = 50
# psycopg prepares a statement on its 6th run on a connection (prepare_threshold 5).
PREPARE_THRESHOLD = 5


async def _other_connection(schema: str) -> psycopg.AsyncConnection[Any]:
    """A connection of its own on the test's schema, outside the engine's pool."""
    return await psycopg.AsyncConnection.connect(
        DSN, autocommit=True, options=f"-c search_path={schema}"
    )


@pytest.fixture
async def one_connection(schema: str) -> AsyncIterator[tuple[Engine, Any]]:
    """An engine whose pool holds one connection, and that connection."""
    engine = Engine(DSN, min_size=1, max_size=1, options=f"-c search_path={schema}")
    await engine.create_all(User, Post, Comment)
    async with await _other_connection(schema) as other:
        await other.execute(
            "INSERT INTO users (name, email, age, active, created_at) "
            "SELECT 'u' || i, 'u' || i || '@x.org', 20 + i, true, now() "
            "FROM generate_series(1, 12) AS i"
        )
        await other.execute(
            "INSERT INTO posts (author_id, title) SELECT 1 + i %% 12, 'p' || i "
            "FROM generate_series(1, %s) AS i",
            (POSTS,),
        )
        await other.execute(
            "INSERT INTO comments (post_id, body) SELECT p, 'c' || k "
            "FROM generate_series(1, %s) AS p, generate_series(1, 3) AS k ORDER BY p, k",
            (POSTS,),
        )
    try:
        async with Session(engine) as session:  # opens the pool
            await session.find(User).count()
        pool = engine.pool
        assert pool is not None
        async with pool.connection() as conn:
            pass
        yield engine, conn
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def traced_session(
    one_connection: tuple[Engine, Any],
) -> AsyncIterator[tuple[Session, WireLog]]:
    """A session on the pool's one connection, and what that connection sends; the
    log is complete after the block (the session ends its transaction at close)."""
    engine, conn = one_connection
    with wire_trace(conn) as wire:
        async with Session(engine) as session:
            yield session, wire


def _select(text: str) -> bool:
    return text.startswith("SELECT ")


def _newest_posts(session: Session, *loads: Any) -> Any:
    """The newest page of posts, with the relationship loads under test."""
    return session.find(Post).options(*loads).order_by(Post.id.desc()).limit(PAGE)


async def test_a_read_only_page_sends_begin_its_query_and_commit(
    one_connection: tuple[Engine, Any],
) -> None:
    async with traced_session(one_connection) as (session, wire):
        page = await (
            session.find(Post)
            .filter(Post.author_id == 3)
            .order_by(Post.id.desc())
            .limit(PAGE)
            .to_list()
        )
    assert len(page) == POSTS // 12
    assert len(wire.texts) == 3, wire.texts
    begin, query, end = wire.texts
    assert (begin, end) == ("BEGIN", "COMMIT")
    assert _select(query) and query.endswith("LIMIT $2"), query


async def test_gets_by_primary_key_send_one_query_each_and_none_for_a_key_already_held(
    one_connection: tuple[Engine, Any],
) -> None:
    async with traced_session(one_connection) as (session, wire):
        for pk in (1, 2, 3, 2, 1):
            user = await session.get(User, pk)
            assert user is not None and user.id == pk
    assert wire.texts[0] == "BEGIN" and wire.texts[-1] == "COMMIT"
    queries = wire.texts[1:-1]
    assert len(queries) == 3 and all(_select(q) for q in queries), wire.texts
    assert len(set(queries)) == 1  # one statement, the key bound


async def test_the_eager_page_sends_begin_one_query_per_level_and_commit(
    one_connection: tuple[Engine, Any],
) -> None:
    """Issue 25's e: 50 posts with author (joined) and comments (selectin): 2 queries."""
    async with traced_session(one_connection) as (session, wire):
        page = await _newest_posts(
            session, joinedload(Post.author), selectinload(Post.comments)
        ).to_list()
        authors: set[int] = set()
        comments = 0
        for post in page:
            authors.add((await post.author).id)
            comments += len(await post.comments)
    assert len(page) == PAGE and len(authors) == 12 and comments == 3 * PAGE
    assert len(wire.texts) == 4, wire.texts
    begin, posts, loaded_comments, end = wire.texts
    assert (begin, end) == ("BEGIN", "COMMIT")
    assert ' LEFT OUTER JOIN "users"' in posts and posts.endswith("LIMIT $1"), posts
    assert loaded_comments.startswith('SELECT "comments".') and "= ANY($1)" in loaded_comments


async def test_selectinload_of_both_relationships_and_a_nested_level_add_one_query_each(
    one_connection: tuple[Engine, Any],
) -> None:
    async with traced_session(one_connection) as (session, both):
        page = await _newest_posts(
            session, selectinload(Post.author), selectinload(Post.comments)
        ).to_list()
        for post in page:
            await post.author
            await post.comments
    assert len(both.texts) == 5 and both.texts[0] == "BEGIN" and both.texts[-1] == "COMMIT"
    assert all(_select(q) for q in both.texts[1:-1]), both.texts
    async with traced_session(one_connection) as (session, nested):
        users = await (
            session.find(User)
            .options(selectinload(User.posts).options(selectinload(Post.comments)))
            .order_by(User.id)
            .limit(5)
            .to_list()
        )
        for user in users:
            for post in await user.posts:
                await post.comments
    assert len(nested.texts) == 5, nested.texts  # BEGIN, users, posts, comments, COMMIT
    assert [t.split(" FROM ")[1].split()[0] for t in nested.texts[1:-1]] == [
        '"users"',
        '"posts"',
        '"comments"',
    ]


def _page(session: Session, offset: int) -> Any:
    return session.find(Post).order_by(Post.id).limit(PAGE).offset(offset)


async def _prepared_statements(session: Session) -> list[str]:
    """The server's prepared statements of the session's connection."""
    result = await session.execute("SELECT statement FROM pg_prepared_statements")
    return [str(row[0]) for row in result.rows]


async def test_paging_through_a_list_runs_one_prepared_statement_for_every_offset(
    one_connection: tuple[Engine, Any],
) -> None:
    offsets = list(range(0, POSTS, PAGE))
    assert len(offsets) > 2 * PREPARE_THRESHOLD
    async with traced_session(one_connection) as (session, wire):
        ids = [[p.id for p in await _page(session, offset).to_list()] for offset in offsets]
        prepared = await _prepared_statements(session)
    assert ids == [list(range(1 + o, 1 + o + PAGE)) for o in offsets]
    pages = [s for s in wire.statements if _select(s.text) and "OFFSET" in s.text]
    assert len(pages) == len(offsets) and len({s.text for s in pages}) == 1
    assert pages[0].text.endswith('ORDER BY "posts"."id" ASC LIMIT $1 OFFSET $2')
    # Planned until psycopg prepares it (the threshold's runs, then the one that
    # prepares it); every later offset only binds new values to that one statement.
    assert [s.how for s in pages] == ["parsed"] * (PREPARE_THRESHOLD + 1) + ["prepared"] * (
        len(offsets) - PREPARE_THRESHOLD - 1
    )
    assert len({s.prepared_name for s in pages[PREPARE_THRESHOLD:]}) == 1
    assert prepared == [pages[0].text], prepared


async def test_a_page_per_session_reuses_one_prepared_statement_across_offsets(
    one_connection: tuple[Engine, Any],
) -> None:
    """The request flow: each page in a session of its own, on the pool's one connection."""
    engine, conn = one_connection
    offsets = list(range(0, POSTS, PAGE))
    with wire_trace(conn) as wire:
        for offset in offsets:
            async with Session(engine) as session:
                assert len(await _page(session, offset).to_list()) == PAGE
    pages = [s for s in wire.statements if "OFFSET" in s.text]
    assert len(pages) == len(offsets)
    assert [s.how for s in pages].count("prepared") == len(offsets) - PREPARE_THRESHOLD - 1
    async with Session(engine) as session:
        assert await _prepared_statements(session) == [pages[0].text]


async def test_a_read_only_session_that_prepared_a_statement_ends_with_commit_alone(
    one_connection: tuple[Engine, Any],
) -> None:
    async with traced_session(one_connection) as (session, wire):
        for pk in range(1, 2 + 2 * PREPARE_THRESHOLD):
            await session.get(User, pk)
    # No DEALLOCATE ALL after it: the prepared statement stays for the next session.
    assert wire.texts[-1] == "COMMIT", wire.texts[-3:]
    assert len(wire.texts) == 1 + (1 + 2 * PREPARE_THRESHOLD) + 1


async def _ending(engine: Engine, conn: Any, work: Any) -> str:
    """What the session's transaction ended with on the wire, after ``work(session)``."""
    with wire_trace(conn) as wire:  # the trace is read only when its block ends normally
        try:
            async with Session(engine) as session:
                await work(session)
        except RuntimeError:
            pass
    return wire.texts[-1]


async def test_a_session_that_wrote_or_ran_sql_of_its_own_ends_with_rollback(
    one_connection: tuple[Engine, Any],
) -> None:
    """Only the ORM's own SELECTs end with COMMIT at close; every other session, and
    every explicit rollback, ROLLBACK: nothing uncommitted is ever kept."""
    engine, conn = one_connection

    async def flushed(session: Session) -> None:
        await session.get(User, 1)
        session.add(User(name="kept?", email="k@x.org", age=30))
        await session.flush()

    async def raw_select(session: Session) -> None:
        await session.execute("SELECT 1")

    async def own_sql(session: Session) -> None:
        await session.from_sql(User, "SELECT * FROM users WHERE id = %s", [1])

    async def tool(session: Session) -> None:
        await session.get(User, 1)
        async with session.exclusive_connection() as held:
            assert held is not None

    async def rolled_back(session: Session) -> None:
        await session.get(User, 1)
        await session.rollback()
        await session.get(User, 2)

    async def raised(session: Session) -> None:
        await session.get(User, 1)
        raise RuntimeError("the block failed")

    assert await _ending(engine, conn, flushed) == "ROLLBACK"
    assert await _ending(engine, conn, raw_select) == "ROLLBACK"
    assert await _ending(engine, conn, own_sql) == "ROLLBACK"
    assert await _ending(engine, conn, tool) == "ROLLBACK"
    assert await _ending(engine, conn, rolled_back) == "COMMIT"  # the second transaction
    assert await _ending(engine, conn, raised) == "ROLLBACK"
    async with Session(engine) as session:
        assert await session.find(User).filter(User.name == "kept?").count() == 0


async def test_a_rollback_ends_a_read_only_transaction_with_rollback(
    one_connection: tuple[Engine, Any],
) -> None:
    async with traced_session(one_connection) as (session, wire):
        await session.get(User, 1)
        await session.rollback()
    assert wire.texts == ["BEGIN", wire.texts[1], "ROLLBACK"], wire.texts


async def test_a_read_only_transaction_aborted_by_an_error_ends_with_rollback(
    one_connection: tuple[Engine, Any], schema: str
) -> None:
    """An ORM read the server refuses leaves the transaction aborted: ROLLBACK ends it."""
    async with traced_session(one_connection) as (session, wire):
        await session.get(User, 1)
        # Another connection takes the table away: the next ORM SELECT fails.
        async with await _other_connection(schema) as other:
            await other.execute("ALTER TABLE comments RENAME TO comments_gone")
        try:
            with pytest.raises(DatabaseError):
                await session.find(Comment).count()
        finally:
            async with await _other_connection(schema) as other:
                await other.execute("ALTER TABLE comments_gone RENAME TO comments")
    assert wire.texts[-1] == "ROLLBACK", wire.texts
