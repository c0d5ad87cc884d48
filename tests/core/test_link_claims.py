"""A flush claims the link changes it writes (issue 19, remaining gap of item 1).

Another task of the same session may assign a many-to-many list, or call
``add()`` / ``remove()``, while a flush is writing links: those calls are
synchronous and do not wait for the session's operation lock. What they record
must be written by the next flush, never dropped by the running one; and a
flush that fails leaves no link behind, in the database or in memory.

Task A flushes; a hook on `Session.run_statement` stops it just before the
chosen statement reaches the server, task B changes links, then A goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from core_fixtures import DSN, PGBOUNCER_DSN, fetch
from psycopg.conninfo import make_conninfo

from data_bridge_core import (
    Column,
    Engine,
    IntegrityError,
    PendingRollbackError,
    Session,
    Table,
    relationship,
)


class Shelf(Table):
    id: int = Column(primary_key=True)
    label: str = Column(unique=True)
    books: list[Book] = relationship(secondary="shelf_books", back_populates="shelves")

    class Settings:
        table_name = "shelves"


class Book(Table):
    id: int = Column(primary_key=True)
    title: str
    shelves: list[Shelf] = relationship(secondary="shelf_books", back_populates="books")

    class Settings:
        table_name = "books"


class ShelfBook(Table):
    shelf_id: int = Column(primary_key=True, foreign_key="shelves.id", on_delete="CASCADE")
    book_id: int = Column(primary_key=True, foreign_key="books.id", on_delete="CASCADE")

    class Settings:
        table_name = "shelf_books"


BOOKS = 5


@pytest.fixture
async def shelf_engine(schema: str) -> AsyncIterator[Engine]:
    if PGBOUNCER_DSN:
        through_pgbouncer = make_conninfo(PGBOUNCER_DSN, user=schema)
        engine = Engine(through_pgbouncer, min_size=0, max_size=2, prepare_threshold=None)
    else:
        engine = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
    await engine.create_all(Shelf, Book, ShelfBook)
    async with Session(engine) as session:
        books = [Book(title=f"b{i}") for i in range(1, BOOKS + 1)]
        session.add_all(books)
        session.add(Shelf(label="s1", books=books[:1]))
        session.add(Shelf(label="s2"))
        await session.commit()
    try:
        yield engine
    finally:
        await engine.dispose()


async def links(schema: str) -> list[tuple[int, int]]:
    rows = await fetch(schema, "SELECT shelf_id, book_id FROM shelf_books ORDER BY 1, 2")
    return [(row[0], row[1]) for row in rows]


class Pause:
    """Stops the first statement whose text contains ``marker`` before it is sent,
    until `resume`; `reached` is set when it stops there."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, marker: str) -> None:
        self.reached = asyncio.Event()
        self.resume = asyncio.Event()
        self.used = False
        original: Callable[..., Awaitable[Any]] = Session.run_statement

        async def paused(session: Session, statement: str, *args: Any, **kwargs: Any) -> Any:
            if not self.used and marker in statement:
                self.used = True
                self.reached.set()
                await self.resume.wait()
            return await original(session, statement, *args, **kwargs)

        monkeypatch.setattr(Session, "run_statement", paused)


async def during_flush(
    session: Session, pause: Pause, change: Callable[[], None], *, flush_fails: bool = False
) -> None:
    """Task A flushes; task B runs ``change`` while A is stopped at ``pause``."""

    async def other_task() -> None:
        await pause.reached.wait()
        change()
        pause.resume.set()

    async with asyncio.timeout(10):
        b = asyncio.create_task(other_task())
        if flush_fails:
            with pytest.raises(IntegrityError):
                await session.flush()
        else:
            await session.flush()
        await b
    assert pause.used


async def loaded(session: Session) -> tuple[Shelf, Shelf, list[Book]]:
    s1, s2 = await session.find(Shelf).order_by(Shelf.id.asc()).to_list()
    books = await session.find(Book).order_by(Book.id.asc()).to_list()
    return s1, s2, books


LINK_INSERT = 'INSERT INTO "shelf_books"'
LINK_DELETE = 'DELETE FROM "shelf_books"'


async def test_add_and_remove_during_another_tasks_link_insert_are_written_by_the_next_flush(
    shelf_engine: Engine, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Session(shelf_engine) as session:
        s1, s2, books = await loaded(session)
        s1.books.add(books[1])
        pause = Pause(monkeypatch, LINK_INSERT)

        def change() -> None:
            s1.books.add(books[2])  # the same list the flush is writing
            s1.books.remove(books[0])
            s2.books.add(books[3])  # an owner this flush does not write

        await during_flush(session, pause, change)
        await session.commit()
    assert await links(schema) == [(1, 2), (1, 3), (2, 4)]


async def test_an_assignment_during_another_tasks_link_delete_is_written_by_the_next_flush(
    shelf_engine: Engine, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Session(shelf_engine) as session:
        s1, s2, books = await loaded(session)
        s1.books.remove(books[0])
        pause = Pause(monkeypatch, LINK_DELETE)

        def change() -> None:
            s1.books = [books[3], books[4]]  # never read: the links become exactly these
            books[1].shelves = [s2]

        await during_flush(session, pause, change)
        await session.commit()
    assert await links(schema) == [(1, 4), (1, 5), (2, 2)]


async def test_an_add_to_a_new_owner_during_its_link_insert_is_written_by_the_next_flush(
    shelf_engine: Engine, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Session(shelf_engine) as session:
        _, _, books = await loaded(session)
        s3 = Shelf(label="s3", books=[books[0]])
        session.add(s3)
        pause = Pause(monkeypatch, LINK_INSERT)

        def change() -> None:
            s3.books.add(books[1])  # inserted by now: a stored owner
            s3.books.remove(books[0])

        await during_flush(session, pause, change)
        await session.commit()
    assert await links(schema) == [(1, 1), (3, 2)]


async def test_a_new_owners_list_changed_during_its_insert_is_linked_whole(
    shelf_engine: Engine, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Session(shelf_engine) as session:
        _, _, books = await loaded(session)
        s3 = Shelf(label="s3", books=[books[0]])
        session.add(s3)
        pause = Pause(monkeypatch, 'INSERT INTO "shelves"')

        def change() -> None:
            s3.books.add(books[1])  # not inserted yet: a change of its list
            s3.books.add(Book(title="new"))  # a target the running flush never saw

        await during_flush(session, pause, change)
        await session.commit()
    assert await links(schema) == [(1, 1), (3, 1), (3, 2), (3, 6)]


async def test_a_failed_flush_then_rollback_leaves_no_link_of_it_or_of_the_other_task(
    shelf_engine: Engine, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Session(shelf_engine) as session:
        s1, s2, books = await loaded(session)
        s1.books.add(books[1])
        s2.label = "s1"  # the UPDATE after the links fails: the label is unique
        pause = Pause(monkeypatch, LINK_INSERT)

        def change() -> None:
            s1.books.add(books[2])
            s2.books.add(books[3])

        await during_flush(session, pause, change, flush_fails=True)
        await session.rollback()
        s1, s2, books = await loaded(session)
        assert [b.id for b in await s1.books] == [1]
        assert await s2.books == []
        s2.label = "s2b"  # a later flush of something else writes no stale link
        await session.commit()
    assert await links(schema) == [(1, 1)]
    assert await fetch(schema, "SELECT label FROM shelves ORDER BY id") == [("s1",), ("s2b",)]


async def test_a_failed_flush_inside_a_savepoint_keeps_only_the_links_written_before_it(
    shelf_engine: Engine, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Session(shelf_engine) as session:
        s1, s2, books = await loaded(session)
        s1.books.add(books[1])  # flushed by the savepoint

        async def block() -> None:
            async with session.begin_nested():
                s1.books.add(books[2])
                s2.label = "s1"
                pause = Pause(monkeypatch, LINK_INSERT)

                def change() -> None:
                    s2.books.add(books[4])

                await during_flush(session, pause, change, flush_fails=True)

        with pytest.raises(PendingRollbackError):  # the block went on after the failed flush
            await block()
        assert [b.id for b in await s1.books] == [1, 2]
        assert await s2.books == []
        s2.books.add(books[3])  # the transaction goes on
        await session.commit()
    assert await links(schema) == [(1, 1), (1, 2), (2, 4)]
