"""Many-to-many collections: assignment writes the difference, add()/remove() need no read.

Issue 19, item 1: six requests favoriting one story at once, one session each,
must all succeed and leave six new links, whether they assign the list or call
``add()``; removals and additions running side by side must both land.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from core_fixtures import DSN, StatementLog, fetch

from data_bridge_core import (
    Column,
    Engine,
    InvalidStateError,
    ModelDefinitionError,
    Session,
    Table,
    UnsupportedOperationError,
    relationship,
)

READERS = 7  # one who favorited the story already, six who favorite it at once


class Reader(Table):
    id: int = Column(primary_key=True)
    name: str
    favorites: list[Story] = relationship(secondary="favorites", back_populates="favorited_by")
    notes: list[Note] = relationship(back_populates="reader")

    class Settings:
        table_name = "readers"


class Story(Table):
    id: int = Column(primary_key=True)
    title: str
    favorited_by: list[Reader] = relationship(secondary="favorites", back_populates="favorites")

    class Settings:
        table_name = "stories"


class Favorite(Table):
    story_id: int = Column(primary_key=True, foreign_key="stories.id", on_delete="CASCADE")
    reader_id: int = Column(primary_key=True, foreign_key="readers.id", on_delete="CASCADE")

    class Settings:
        table_name = "favorites"


class Note(Table):
    id: int = Column(primary_key=True)
    reader_id: int = Column(foreign_key="readers.id")
    body: str
    reader: Reader = relationship(back_populates="notes")

    class Settings:
        table_name = "notes"


@pytest.fixture
async def fav_engine(schema: str) -> AsyncIterator[Engine]:
    # One connection per concurrent request (and one spare): every request holds its
    # transaction open across the barrier.
    engine = Engine(DSN, min_size=0, max_size=READERS, options=f"-c search_path={schema}")
    await engine.create_all(Reader, Story, Favorite, Note)
    async with Session(engine) as session:
        readers = [Reader(name=f"r{i}") for i in range(1, READERS + 1)]
        session.add(Story(title="s1", favorited_by=readers[:1]))
        session.add_all(readers)
        await session.commit()
    try:
        yield engine
    finally:
        await engine.dispose()


async def favorites_of(schema: str, story_id: int = 1) -> list[int]:
    rows = await fetch(
        schema, "SELECT reader_id FROM favorites WHERE story_id = %s ORDER BY reader_id", story_id
    )
    return [row[0] for row in rows]


Change = Callable[[Session, Story, Reader], Awaitable[None]]


async def at_once(engine: Engine, changes: list[tuple[int, Change]]) -> list[BaseException | None]:
    """Run each (reader id, change) in its own session: all read first, then all write."""
    barrier = asyncio.Barrier(len(changes))

    async def request(reader_id: int, change: Change) -> None:
        async with Session(engine) as session:
            story = await session.get(Story, 1)
            reader = await session.get(Reader, reader_id)
            assert story is not None and reader is not None
            await barrier.wait()  # every request has read before any writes
            await change(session, story, reader)
            await session.commit()

    async with asyncio.timeout(30):
        results = await asyncio.gather(
            *(request(reader_id, change) for reader_id, change in changes),
            return_exceptions=True,
        )
    return [r if isinstance(r, BaseException) else None for r in results]


async def assign_with_me(session: Session, story: Story, me: Reader) -> None:
    story.favorited_by = [*await story.favorited_by, me]  # the documented pattern


async def add_me(session: Session, story: Story, me: Reader) -> None:
    story.favorited_by.add(me)


async def assign_without_me(session: Session, story: Story, me: Reader) -> None:
    story.favorited_by = [r for r in await story.favorited_by if r is not me]


async def remove_me(session: Session, story: Story, me: Reader) -> None:
    story.favorited_by.remove(me)


@pytest.mark.parametrize("change", [assign_with_me, add_me], ids=["assignment", "add"])
async def test_six_readers_favoriting_one_story_at_once_keep_all_seven_favorites(
    fav_engine: Engine, schema: str, change: Change
) -> None:
    results = await at_once(fav_engine, [(reader_id, change) for reader_id in range(2, 8)])
    assert results == [None] * 6
    assert await favorites_of(schema) == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("remove", "add"),
    [(assign_without_me, assign_with_me), (remove_me, add_me), (remove_me, assign_with_me)],
    ids=["assignments", "remove-and-add", "remove-and-assignment"],
)
async def test_a_removal_and_additions_at_once_all_land(
    fav_engine: Engine, schema: str, remove: Change, add: Change
) -> None:
    async with Session(fav_engine) as session:
        story = await session.get(Story, 1)
        assert story is not None
        story.favorited_by = [r for r in await session.find(Reader).to_list() if r.id <= 3]
        await session.commit()
    assert await favorites_of(schema) == [1, 2, 3]
    results = await at_once(fav_engine, [(1, remove), (4, add), (5, add)])
    assert results == [None] * 3
    assert await favorites_of(schema) == [2, 3, 4, 5]


async def test_assignment_of_a_loaded_list_sends_only_the_difference(
    fav_engine: Engine, schema: str, sql: StatementLog
) -> None:
    async with Session(fav_engine) as session:
        story = await session.get(Story, 1)
        r1, r2, r3 = [await session.get(Reader, i) for i in (1, 2, 3)]
        assert story is not None and r1 is not None
        assert await story.favorited_by == [r1]
        story.favorited_by = [r2, r3]
        sql.clear()
        await session.flush()
        assert sql.statements == [
            'DELETE FROM "favorites" WHERE ("story_id", "reader_id") IN '
            "(SELECT * FROM unnest(%s::bigint[], %s::bigint[])) "
            'RETURNING "favorites"."story_id", "favorites"."reader_id"',
            'INSERT INTO "favorites" ("story_id", "reader_id") '
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[]) ON CONFLICT DO NOTHING",
        ]
        story.favorited_by = [r2, r3]  # unchanged: nothing to write
        sql.clear()
        await session.flush()
        assert sql.statements == []
        await session.commit()
    assert await favorites_of(schema) == [2, 3]


async def test_assignment_of_a_list_never_read_makes_the_links_exactly_that_list(
    fav_engine: Engine, schema: str, sql: StatementLog
) -> None:
    async with Session(fav_engine) as session:
        story = await session.get(Story, 1)
        r2, r3 = await session.get(Reader, 2), await session.get(Reader, 3)
        assert story is not None and r2 is not None and r3 is not None
        story.favorited_by = [r2, r3]  # the stored list (reader 1) was never read
        sql.clear()
        await session.commit()
        assert sql.statements[0] == (
            'DELETE FROM "favorites" WHERE "story_id" = %s AND NOT ("reader_id" = ANY(%s)) '
            'RETURNING "favorites"."story_id", "favorites"."reader_id"'
        )
    assert await favorites_of(schema) == [2, 3]


async def test_add_and_remove_are_written_at_flush_and_keep_loaded_lists_in_step(
    fav_engine: Engine, schema: str, sql: StatementLog
) -> None:
    async with Session(fav_engine) as session:
        story = await session.get(Story, 1)
        r1, r2 = await session.get(Reader, 1), await session.get(Reader, 2)
        assert story is not None and r1 is not None and r2 is not None
        r2_favorites = await r2.favorites  # the other side, loaded: it follows
        assert r2_favorites == []
        sql.clear()
        story.favorited_by.add(r2)
        story.favorited_by.remove(r1)
        assert sql.statements == []  # nothing is sent before the flush
        assert await r2.favorites == [story]
        await session.flush()
        assert [s.split(" (")[0] for s in sql.statements] == [
            'DELETE FROM "favorites" WHERE',
            'INSERT INTO "favorites"',
        ]
        assert await story.favorited_by == [r2]  # read after the flush: the database's list
        story.favorited_by.add(r2)  # already linked, loaded: a no-op in memory
        assert await story.favorited_by == [r2]
        story.favorited_by.remove(r1)  # not linked: idempotent
        await session.commit()
    assert await favorites_of(schema) == [2]


async def test_the_last_of_add_and_remove_wins_before_a_flush(
    fav_engine: Engine, schema: str
) -> None:
    async with Session(fav_engine) as session:
        story = await session.get(Story, 1)
        r1, r2 = await session.get(Reader, 1), await session.get(Reader, 2)
        assert story is not None and r1 is not None and r2 is not None
        story.favorited_by.remove(r2)  # not linked yet
        story.favorited_by.add(r2)
        story.favorited_by.add(r1)
        story.favorited_by.remove(r1)
        r1.favorites.add(story)  # the other side: the last word on this pair
        await session.commit()
    assert await favorites_of(schema) == [1, 2]


async def test_add_on_a_new_owner_and_a_new_target_inserts_both_first(
    fav_engine: Engine, schema: str
) -> None:
    async with Session(fav_engine) as session:
        story = Story(title="s2")
        reader = Reader(name="new")
        story.favorited_by.add(reader)
        assert await story.favorited_by == [reader]
        session.add(story)
        await session.commit()
        assert story.id == 2 and reader.id == READERS + 1
    assert await favorites_of(schema, 2) == [READERS + 1]


async def test_a_rollback_forgets_adds_not_yet_written(fav_engine: Engine, schema: str) -> None:
    async with Session(fav_engine) as session:
        story = await session.get(Story, 1)
        r2 = await session.get(Reader, 2)
        assert story is not None and r2 is not None
        story.favorited_by.add(r2)
        await session.rollback()
        story = await session.get(Story, 1)
        assert story is not None
        await session.commit()
    assert await favorites_of(schema) == [1]


async def test_add_and_remove_refuse_what_they_cannot_link(fav_engine: Engine) -> None:
    async with Session(fav_engine) as session:
        story = await session.get(Story, 1)
        reader = await session.get(Reader, 1)
        assert story is not None and reader is not None
        with pytest.raises(TypeError, match=r"Story.favorited_by takes Reader objects, got Story"):
            story.favorited_by.add(story)  # type: ignore[arg-type]
        with pytest.raises(UnsupportedOperationError, match=r"Reader.notes is a one-to-many"):
            reader.notes.add(Note(body="x"))
        session.expunge(story)
        with pytest.raises(InvalidStateError, match=r"Story.favorited_by: the Story object is"):
            story.favorited_by.add(reader)


async def test_a_list_read_after_add_and_remove_shows_the_unflushed_changes(
    fav_engine: Engine, schema: str
) -> None:
    async with Session(fav_engine, autoflush=False) as session:
        story = await session.get(Story, 1)
        r1, r2 = await session.get(Reader, 1), await session.get(Reader, 2)
        assert story is not None and r1 is not None and r2 is not None
        story.favorited_by.add(r2)
        story.favorited_by.remove(r1)
        assert await story.favorited_by == [r2]  # read from the database, changes applied
        assert await favorites_of(schema) == [1]  # nothing written yet
        await session.commit()
    assert await favorites_of(schema) == [2]


async def test_add_of_a_new_target_to_a_stored_owner_inserts_the_target_first(
    fav_engine: Engine, schema: str
) -> None:
    async with Session(fav_engine) as session:
        story = await session.get(Story, 1)
        assert story is not None
        newcomer = Reader(name="newcomer")
        story.favorited_by.add(newcomer)  # the stored list is never read
        await session.commit()
        assert newcomer.id == READERS + 1
    assert await favorites_of(schema) == [1, READERS + 1]


def test_an_association_table_without_a_unique_pair_is_refused_on_first_use() -> None:
    class LooseLink(Table):  # found through the registry by its table name
        id: int = Column(primary_key=True)
        left_id: int = Column(foreign_key="loose_left.id")
        right_id: int = Column(foreign_key="loose_right.id")

        class Settings:
            table_name = "loose_links"

    class LooseLeft(Table):
        id: int = Column(primary_key=True)
        rights: list[LooseRight] = relationship(secondary="loose_links")

        class Settings:
            table_name = "loose_left"

    class LooseRight(Table):
        id: int = Column(primary_key=True)

        class Settings:
            table_name = "loose_right"

    with pytest.raises(ModelDefinitionError, match=r"needs \(left_id, right_id\) as its primary"):
        LooseLeft.rights.direction  # noqa: B018


@pytest.mark.parametrize("owner_side", ["story", "reader"])
@pytest.mark.parametrize("read_first", [True, False], ids=["list read", "list never read"])
@pytest.mark.parametrize("other_side_first", [True, False], ids=["other side first", "last"])
@pytest.mark.parametrize("linked", [True, False], ids=["add", "remove"])
@pytest.mark.parametrize("owner_noted_first", [True, False], ids=["owner noted", "other noted"])
async def test_an_assignment_and_a_change_of_the_same_pair_from_the_other_side_the_last_wins(
    fav_engine: Engine,
    schema: str,
    owner_side: str,
    read_first: bool,
    other_side_first: bool,
    linked: bool,
    owner_noted_first: bool,
) -> None:
    # Stored: (story 1, reader 1). The owner's list is assigned; the other side adds (or
    # removes) the owner for a target the assignment leaves out (or keeps). Both sides
    # share one table, and the flush writes first the side noted first: whichever it
    # is, the last call wins.
    async with Session(fav_engine) as session:
        session.add(Story(title="s2"))
        await session.commit()
    async with Session(fav_engine) as session:
        s1, s2 = await session.get(Story, 1), await session.get(Story, 2)
        r1, r2 = await session.get(Reader, 1), await session.get(Reader, 2)
        assert s1 is not None and s2 is not None and r1 is not None and r2 is not None
        owner: Story | Reader
        keep: Story | Reader
        other: Story | Reader
        owner, keep, other = (s1, r1, r2) if owner_side == "story" else (r1, s1, s2)
        names = ("favorited_by", "favorites")
        name, back = names if owner_side == "story" else names[::-1]
        if read_first:
            assert await getattr(owner, name) == [keep]
        # A link already stored, added again: a no-op that only notes who changed first.
        if owner_noted_first:
            getattr(owner, name).add(keep)
        else:
            getattr(keep, back).add(owner)
        # add: the assignment leaves the pair out; remove: it keeps it.
        assigned = [keep] if linked else [keep, other]

        def change_from_other_side() -> None:
            collection = getattr(other, back)
            collection.add(owner) if linked else collection.remove(owner)

        if other_side_first:
            change_from_other_side()
            setattr(owner, name, assigned)
        else:
            setattr(owner, name, assigned)
            change_from_other_side()
        await session.commit()
    pair_linked = (other in assigned) if other_side_first else linked
    other_pair = (1, 2) if owner_side == "story" else (2, 1)  # (story_id, reader_id)
    expected = [(1, 1), other_pair] if pair_linked else [(1, 1)]
    rows = await fetch(schema, "SELECT story_id, reader_id FROM favorites ORDER BY 1, 2")
    assert [tuple(row) for row in rows] == expected
