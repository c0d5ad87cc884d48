"""Rows to objects in one loop (issue 25, workload c): a query's result is fetched
as tuples and made objects by one generated loop, with no Python call per row.

Guards the structural win of `hydration.hydrate_rows` (bench/README.md, "rows
to objects in one loop"): it fails when a query goes back to a call per row.
"""

from __future__ import annotations

import gc
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from core_fixtures import User, seed

from data_bridge_core import Engine, Session, hydration, inspect
from data_bridge_core.state import result_of


async def _python_calls(run: Callable[[], Awaitable[Any]]) -> tuple[Counter[str], Any]:
    calls: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        if event == "call":
            calls[frame.f_code.co_name] += 1

    sys.setprofile(profile)
    try:
        value = await run()
    finally:
        sys.setprofile(None)
    return calls, value


def _has_attribute_dict(obj: object) -> bool:
    # The values sit in the object's own array until a dict is built for them.
    return any(type(r) is dict for r in gc.get_referents(obj))


async def test_a_query_makes_its_objects_in_one_loop_without_a_call_per_row(
    engine: Engine,
) -> None:
    await seed(engine, users=40, posts=0)
    async with Session(engine) as session:
        calls, users = await _python_calls(lambda: session.find(User).order_by(User.id).to_list())
        assert [u.name for u in users] == [f"u{i}" for i in range(40)]
        assert calls["load_new"] == 1
        assert calls["hydrate_new"] == 0 and calls["hydrate"] == 0
        # Nothing runs per row: no row maker, no value check, no __setattr__.
        assert [name for name, n in calls.items() if n >= len(users)] == []
        # Still one batch of the result's objects, sharing the result's state.
        identity = session._identity
        assert [(model, batch) for model, batch in identity.pending] == [(User, users)]
        assert identity.pending[0][1] is not users  # the user's list is their own
        assert len({result_of(u) for u in users}) == 1
        assert inspect(users[0]).result_size == 40


async def test_a_query_into_a_map_holding_its_model_looks_up_in_the_same_loop(
    engine: Engine,
) -> None:
    await seed(engine, users=40, posts=0)
    async with Session(engine) as session:
        first = await session.get(User, 1)
        assert first is not None
        first.age = 99  # an own state, a change kept over the next query
        calls, users = await _python_calls(lambda: session.find(User).order_by(User.id).to_list())
        assert calls["load"] == 1 and calls["load_new"] == 0
        assert [name for name, n in calls.items() if n >= len(users)] == []
        assert users[0] is first and first.age == 99  # the map's object, its values kept
        assert inspect(first).result_size == 40  # now part of this result
        assert session._identity.pending == []
        assert session._identity._by_model[User] == {u.id: u for u in users}


async def test_a_large_result_is_made_compact_in_place(engine: Engine) -> None:
    await seed(engine, users=1, posts=0)
    async with Session(engine) as session:
        result = await session.run_statement(
            'SELECT id, name, email, age, active, country, created_at FROM "users"', []
        )
        row = result.rows[0]
        rows = [(i, *row[1:]) for i in range(1000, 1000 + hydration.COMPACT_FROM_ROWS)]
        objects = hydration.hydrate_rows(session._identity, User, rows, unique_rows=True)
        assert objects is rows  # each tuple was replaced by its object
        assert [o.id for o in objects[:3]] == [1000, 1001, 1002]
        assert all(type(o) is User for o in objects)
        assert not any(_has_attribute_dict(o) for o in objects)
        assert vars(objects[0])["name"] == "u0"
        assert hydration.hydrate_rows(session._identity, User, [], unique_rows=True) == []
