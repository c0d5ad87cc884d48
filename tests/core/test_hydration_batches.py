"""Rows to objects (issue 25, workload c): the from-row path's structure and memory.

A result of distinct keys loaded while the session holds none of its model is
kept as a batch (a list) and indexed on the next lookup; each row costs one
Python call (the generated row maker) and no value check; a compact object
carries its values, its shared state and nothing else.
"""

from __future__ import annotations

import sys
import tracemalloc
from collections import Counter
from types import FrameType
from typing import Any

import pytest
from core_fixtures import Post, User, seed

from data_bridge_core import Column, Engine, Session, Table, hydration, inspect
from data_bridge_core.state import result_of


class Pair(Table):
    left: int = Column(primary_key=True)
    right: int = Column(primary_key=True)
    label: str

    class Settings:
        table_name = "hydration_pairs"


async def test_a_result_loaded_into_an_empty_map_is_a_batch_until_the_map_is_looked_into(
    engine: Engine,
) -> None:
    await seed(engine, users=4, posts=1, comments=0)
    async with Session(engine) as session:
        identity = session._identity
        users = await session.find(User).order_by(User.id).to_list()
        assert [u.name for u in users] == ["u0", "u1", "u2", "u3"]
        # Held (strongly) as one list, no per-key index yet.
        assert not identity._by_model.get(User)
        assert [(model, batch) for model, batch in identity.pending] == [(User, users)]
        assert len(identity) == 4  # counting indexes the batch
        assert identity.pending == []
        assert identity._by_model[User] == {u.id: u for u in users}
        # The identity map holds: the same objects come back, by key and by query.
        assert await session.get(User, users[2].id) is users[2]
        again = await session.find(User).order_by(User.id).to_list()
        assert all(a is b for a, b in zip(again, users, strict=True))


async def test_a_lookup_finds_a_row_of_a_batch_left_unindexed(engine: Engine) -> None:
    await seed(engine, users=3, posts=0)
    async with Session(engine) as session:
        # A hydrator that looks up (a stream's, a join's), made while the map was empty...
        hydrate = session.hydrator(User, 10)
        users = await session.find(User).order_by(User.id).to_list()
        assert session._identity.pending  # ...then a batch of the same model
        first = users[0]
        values = tuple(getattr(first, n) for n in ("id", "name", "email", "age"))
        row = (*values, False, "XX", first.created_at)
        assert hydrate(row) is first  # the batch's object, its values kept
        assert first.active is True and first.country == "DE"
        assert session._identity.pending == []


async def test_a_batch_of_a_composite_key_is_indexed_by_the_key_tuple(engine: Engine) -> None:
    await engine.create_all(Pair)
    async with Session(engine) as session:
        session.add_all([Pair(left=i, right=10 - i, label=f"p{i}") for i in range(3)])
        await session.commit()
    async with Session(engine) as session:
        pairs = await session.find(Pair).to_list()
        assert session._identity.pending
        found = await session.get(Pair, (1, 9))
        assert found is not None and found.label == "p1"
        assert any(p is found for p in pairs)
        assert session._identity._by_model[Pair] == {(p.left, p.right): p for p in pairs}


async def test_changes_and_close_reach_the_rows_of_a_batch(engine: Engine) -> None:
    await seed(engine, users=3, posts=0)
    async with Session(engine) as session:
        users = await session.find(User).order_by(User.id).to_list()
        users[1].age = 77  # the object gets its own state; the batch is not indexed
        assert session._identity.pending
        assert inspect(users[1]).modified == frozenset({"age"})
        await session.commit()
    assert all(inspect(u).session is None for u in users)  # closing detached every row
    async with Session(engine) as session:
        assert (await session.get(User, users[1].id)).age == 77  # type: ignore[union-attr]


async def test_a_rolled_back_close_does_not_index_a_loaded_batch(engine: Engine) -> None:
    await seed(engine, users=3, posts=0)
    indexed: list[int] = []
    async with Session(engine) as session:
        identity = session._identity
        original = identity.index_pending

        def counted() -> None:
            indexed.extend(len(b) for _m, b in identity.pending)
            original()

        identity.index_pending = counted  # type: ignore[method-assign]
        await session.find(User).to_list()
    assert sum(indexed) == 0  # read and close: the index was never built


def _python_calls(run: Any) -> Counter[str]:
    calls: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        if event == "call":
            calls[frame.f_code.co_name] += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


@pytest.mark.parametrize("compact", [True, False])
async def test_each_row_is_one_python_call_and_no_value_check(
    engine: Engine, compact: bool
) -> None:
    await seed(engine, users=2, posts=0)
    async with Session(engine) as session:
        result = await session.run_statement(
            'SELECT id, name, email, age, active, country, created_at FROM "users"', []
        )
        row = result.rows[0]
    rows = [(i, *row[1:]) for i in range(1000, 1040)]
    async with Session(engine) as session:
        hydrate = hydration.make_hydrator(
            session._identity, User, len(rows), unique_rows=True, compact=compact
        )
        calls = _python_calls(lambda: [hydrate(r) for r in rows])
        objects = list(session._identity.pending[0][1])
    assert calls["hydrate_new"] == len(rows)
    # Nothing else runs per row: no value check, no __setattr__, no state made.
    assert [name for name, n in calls.items() if n >= len(rows) and name != "hydrate_new"] == []
    assert [o.id for o in objects] == list(range(1000, 1040))
    assert all(result_of(o) is hydrate.result for o in objects)  # type: ignore[attr-defined]


async def test_a_compact_object_carries_its_values_and_a_shared_state_only(
    engine: Engine,
) -> None:
    await seed(engine, users=1, posts=0)
    async with Session(engine) as session:
        result = await session.run_statement('SELECT id, author_id, title FROM "posts" LIMIT 0', [])
        assert result.rows == []
        rows = [(i, 1, "t") for i in range(2000)]  # values shared: only the objects count
        hydrate = hydration.make_hydrator(
            session._identity, Post, len(rows), unique_rows=True, compact=True
        )
        [hydrate(r) for r in rows[:50]]  # the class's shared keys settle first
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            objects = [hydrate(r) for r in rows[50:]]
            used = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        per_row = used / len(objects) - 8  # the list `objects` itself
        # CPython 3.11: object 56 bytes + values 48..56 + the batch's list slot
        # (about 9). A per-row dict (the identity map's entry, an attribute dict,
        # an own state) would add 29 to 100 bytes.
        assert per_row < 135, per_row
        assert len({result_of(o) for o in objects}) == 1


async def test_closing_takes_no_python_step_per_row_and_detaches_own_states(
    engine: Engine,
) -> None:
    await seed(engine, users=2, posts=0)
    async with Session(engine) as session:
        result = await session.run_statement(
            'SELECT id, name, email, age, active, country, created_at FROM "users"', []
        )
        row = result.rows[0]
    rows = [(i, *row[1:]) for i in range(1000, 1040)]
    session = Session(engine)
    identity = session._identity
    hydrate = hydration.make_hydrator(identity, User, len(rows), unique_rows=True)
    objects = [hydrate(r) for r in rows]
    changed = objects[3]
    changed.age = 5  # an own state, still in the batch
    calls = _python_calls(lambda: identity.clear(forget_relations=True))
    assert [name for name, n in calls.items() if n >= len(rows)] == []
    assert inspect(changed).session is None and inspect(objects[0]).session is None
    assert identity.pending == [] and len(identity) == 0
    await session.close()
