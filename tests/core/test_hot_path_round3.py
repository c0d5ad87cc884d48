"""Guards of issue 25's round-3 shortcuts: each keeps its cost down and its behaviour."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from typing import Any

import pytest
from core_fixtures import Post, StatementLog, User

from data_bridge_core import Column, Engine, Session, Table, ValidationError, flush
from data_bridge_core.operation_lock import OperationLock


class Note(Table):
    """A model without relationships."""

    id: int = Column(primary_key=True)
    body: str
    at: dt.datetime | None = None

    class Settings:
        table_name = "notes"


async def test_an_uncontended_operation_awaits_one_shared_finished_future() -> None:
    lock = OperationLock()
    outer = lock.__aenter__()
    inner = lock.__aenter__()  # re-entrant, same task
    assert outer is inner and isinstance(outer, asyncio.Future) and outer.done()
    assert lock.held and lock.busy
    assert lock.__aexit__(None, None, None) is outer
    assert lock.held
    assert lock.__aexit__(None, None, None) is outer
    assert not lock.held and not lock.busy
    await outer  # suspends nothing, on this test's loop too (it was made on none)


async def test_the_lock_still_hands_over_to_a_waiting_task_after_the_inlined_release() -> None:
    lock = OperationLock()
    order: list[str] = []

    async def second() -> None:
        async with lock:
            order.append("second")

    async with asyncio.timeout(5):
        async with lock:
            task = asyncio.create_task(second())
            await asyncio.sleep(0)
            assert not task.done()  # waiting for the first task's operation
            order.append("first")
        await task
    assert order == ["first", "second"] and not lock.busy


def _count_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    scans: list[int] = []
    original = flush.holding_relations

    def counted(objects: Iterable[Table]) -> list[Table]:
        found = original(objects)
        scans.append(len(found))
        return found

    monkeypatch.setattr(flush, "holding_relations", counted)
    return scans


async def test_a_flush_scans_pending_objects_for_relationship_values_twice_and_once_without_any(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, sql: StatementLog
) -> None:
    await engine.create_all(Note)
    scans = _count_scans(monkeypatch)
    async with Session(engine) as session:
        session.add_all([User(name=f"u{i}", email=f"u{i}@x.org") for i in range(3)])
        await session.flush()
        assert scans == [0, 0]  # the cascade's pass, then the model's (it has relationships)
        scans.clear()
        session.add_all([Note(body=f"n{i}") for i in range(3)])
        await session.flush()
        assert scans == [0]  # the cascade's pass only: Note has no relationships
        scans.clear()
        ann = User(name="ann", email="ann@x.org")
        post = Post(title="hello", author=ann)
        session.add(post)  # ann follows through the cascade
        await session.flush()
        assert post.author_id == ann.id is not None
        await session.commit()
    async with Session(engine) as session:
        rows = await session.execute("SELECT count(*) FROM notes")
        assert rows.rows == [(3,)]
        loaded = await session.get(Post, post.id)
        assert loaded is not None and (await loaded.author).name == "ann"


async def test_timestamptz_values_at_the_range_edges_still_take_the_checked_path() -> None:
    utc = dt.UTC
    assert Note(body="x", at=dt.datetime(2024, 5, 1, tzinfo=utc)).at is not None
    late = dt.datetime(9999, 12, 31, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    with pytest.raises(ValidationError, match=r"Note\.at "):
        Note(body="x", at=late)  # past 9999-12-31 in UTC
    kept: Any = dt.datetime(9999, 12, 31, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert Note(body="x", at=kept).at == kept
