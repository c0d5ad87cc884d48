"""The read hot path's shortcuts (issue 13) keep what they replaced: same objects, same SQL."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
from core_fixtures import Post, StatementLog, User, seed

from data_bridge_core import Engine, Session, hydration, inspect
from data_bridge_core.hydration import row_maker_factory
from data_bridge_core.query import Query
from data_bridge_core.schema.table import table_info
from data_bridge_core.state import ResultInfo, result_of


def test_every_slot_of_a_query_is_carried_over_by_its_builders() -> None:
    query: Query[User] = Query(User, None)
    for index, slot in enumerate(Query.__slots__):
        object.__setattr__(query, slot, f"value {index}")
    clone = query._copy()
    assert clone is not query
    # All but get()'s statement made once: a builder changes what the text depends on.
    assert [getattr(clone, s) for s in Query.__slots__] == [
        None if s == "_statement" else f"value {i}" for i, s in enumerate(Query.__slots__)
    ]


@pytest.mark.parametrize("compact", [True, False])
def test_the_row_maker_of_a_mapping_is_generated_once_and_fills_every_column(
    compact: bool,
) -> None:
    info = table_info(Post)
    factory = row_maker_factory(info, compact=compact)
    assert row_maker_factory(info, compact=compact) is factory
    assert row_maker_factory(info, compact=not compact) is not factory
    held: dict[object, object] = {}
    result = ResultInfo(1)
    batch: list[object] = []
    hydrate, hydrate_new = factory(
        Post,  # type: ignore[arg-type]
        held,  # type: ignore[arg-type]
        result,
        [],
        lambda: None,
        batch.append,
    )
    post = hydrate_new((7, 3, "Hello"))
    assert (post.id, post.author_id, post.title) == (7, 3, "Hello")
    assert result_of(post) is result
    assert _has_attribute_dict(post) is not compact
    assert batch == [post] and held == {}  # a new row goes to the batch, indexed later
    held[7] = post
    assert hydrate((7, 4, "Other")) is post  # the map's object wins; its values stay
    assert post.author_id == 3
    other = hydrate((8, 4, "Other"))
    assert held == {7: post, 8: other} and batch == [post]


async def test_a_get_by_key_selects_the_key_and_returns_the_mapped_object(
    engine: Engine, sql: StatementLog
) -> None:
    await seed(engine, users=2, posts=0)
    async with Session(engine) as session:
        user = await session.get(User, 2)
        assert user is not None and user.name == "u1"
        # The key selects one row at most: no LIMIT (one parameter less to send).
        assert sql.statements[-1].endswith('FROM "users" WHERE "users"."id" = %s')
        assert await session.get(User, 2) is user
        assert await session.get(User, 99) is None
        assert inspect(user).result_size == 1


async def test_a_long_session_keeps_no_reference_to_results_whose_rows_are_gone(
    engine: Engine,
) -> None:
    await seed(engine, users=2, posts=0)
    async with Session(engine) as session:
        kept = await session.find(User).filter(User.id == 1).to_list()
        for _ in range(600):  # more than one prune interval
            rows = await session.find(User).filter(User.id == 2).to_list()
            session.expunge(rows[0])
            del rows
        gc.collect()
        identity = session._identity
        assert len(identity._results) < 300  # dead references are pruned
        live = identity.live_results
        assert [r.size for r in live] == [1]
        assert inspect(kept[0]).session is session
    assert inspect(kept[0]).session is None  # closing detached the row through its result


def _has_attribute_dict(obj: object) -> bool:
    # What the garbage collector sees inside the object: its values while they sit
    # in the object's own array, or the dict once one was built.
    return any(type(r) is dict for r in gc.get_referents(obj))


async def test_a_page_is_stored_in_attribute_dicts_and_a_large_result_compactly(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(engine, users=5, posts=0)
    monkeypatch.setattr(hydration, "COMPACT_FROM_ROWS", 4)
    async with Session(engine) as session:
        page = await session.find(User).order_by(User.id).limit(3).to_list()
        assert [u.name for u in page] == ["u0", "u1", "u2"]
        assert all(_has_attribute_dict(u) for u in page)  # the fast store
        assert inspect(page[0]).result_size == 3
    async with Session(engine) as session:
        large = await session.find(User).order_by(User.id).to_list()
        assert [u.name for u in large] == ["u0", "u1", "u2", "u3", "u4"]
        assert not any(_has_attribute_dict(u) for u in large)  # compact
        assert inspect(large[0]).result_size == 5
    async with Session(engine) as session:
        streamed = [u async for u in session.find(User).order_by(User.id).stream(batch_size=2)]
        assert [u.name for u in streamed] == ["u0", "u1", "u2", "u3", "u4"]
        assert not any(_has_attribute_dict(u) for u in streamed)  # streams: compact


async def test_a_compact_row_builds_no_attribute_dict_until_it_is_changed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(engine, users=3, posts=0)
    monkeypatch.setattr(hydration, "COMPACT_FROM_ROWS", 2)
    async with Session(engine) as session:
        users = await session.find(User).order_by(User.id).to_list()
        assert [u.name for u in users] == ["u0", "u1", "u2"]  # reads keep it compact
        assert not any(_has_attribute_dict(u) for u in users)
        users[0].age = 99  # a change needs the object's own state: the dict is built
        assert _has_attribute_dict(users[0])
        assert inspect(users[0]).modified == frozenset({"age"})
        assert not _has_attribute_dict(users[1])
        again = await session.find(User).filter(User.id == users[1].id).to_list()
        assert again == [users[1]]  # a second result holding it: an own state, still compact
        assert result_of(users[1]) is not result_of(users[2])
        assert not _has_attribute_dict(users[1])
    # Closing the session detaches the rows without building their dicts.
    assert not _has_attribute_dict(users[1])
    assert inspect(users[1]).session is None


async def test_the_core_leaves_a_results_observer_data_to_its_observer(engine: Engine) -> None:
    await seed(engine, users=3, posts=0)
    async with Session(engine) as session:
        users = await session.find(User).order_by(User.id).to_list()
        result = result_of(users[0])
        assert result is not None and result.observer_data is None
        result.observer_data = ("an observer's", "note")
        users[0].name = "changed"  # the row gets a state of its own
        await session.commit()
        assert result_of(users[1]) is result
        assert result.observer_data == ("an observer's", "note")


@pytest.mark.parametrize("ending", ["commit", "rollback", "error"])
async def test_a_closed_session_is_not_left_in_a_reference_cycle(
    engine: Engine, ending: str
) -> None:
    """Its parts point back at it while it is open; closing cuts those links, so each
    request's session is freed by reference counting, not by a collection (W6)."""
    await seed(engine, users=2, posts=1)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        session = Session(engine)
        try:
            async with session:
                users = await session.find(User).order_by(User.id).to_list()
                assert [u.name for u in users] == ["u0", "u1"]
                before = users[0].age
                users[0].age += 1
                if ending == "error":
                    raise LookupError("leave the block")
                await (session.commit() if ending == "commit" else session.rollback())
        except LookupError:
            pass
        del session
        gc.collect()
        cyclic = {type(o).__name__ for o in gc.garbage}
        assert not cyclic & {"Session", "SessionConnection", "IdentityMap", "UnitOfWork"}
        assert users[0].age == before + (ending == "commit")
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_the_pool_does_not_keep_the_session_that_opened_it(engine: Engine) -> None:
    """The pool's tasks start inside the first session's block; they must not keep its
    context (that session, the request's span) for the pool's lifetime."""
    fresh = Engine(engine.dsn, timeout=0.2, **engine.connect_kwargs)  # its pool not open yet
    try:
        session = Session(fresh)
        async with session:
            assert await session.find(User).to_list() == []
        first = weakref.ref(session)
        del session
        await asyncio.sleep(0.3)  # past the pool's timeout: its timers have gone
        gc.collect()
        assert first() is None
        async with Session(fresh) as again:  # the pool goes on serving
            assert await again.find(User).count() == 0
    finally:
        await fresh.dispose()
