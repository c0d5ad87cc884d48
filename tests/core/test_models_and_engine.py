"""Model declarations, the type map, DDL, and the Engine."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from core_fixtures import DSN, Comment, Post, User, fetch
from database_server import server

from data_bridge_core import (
    Column,
    ColumnTypeError,
    Engine,
    MissingFieldError,
    Session,
    Table,
    UnknownFieldError,
    ValidationError,
)


class Everything(Table):
    id: int = Column(primary_key=True)
    i: int = 0
    s: str = ""
    b: bool = False
    f: float = 0.0
    d: Decimal = Decimal("0")
    ts: dt.datetime | None = None
    day: dt.date | None = None
    u: uuid.UUID | None = None
    raw: bytes | None = None
    doc: dict[str, Any] = Column(default_factory=dict)
    items: list[int] = Column(default_factory=list)
    stamp: dt.datetime | None = Column(server_default="now()")
    code: str = Column(index=True, default="x")

    class Settings:
        table_name = "everything"


async def test_type_map_nullability_and_constraints(engine: Engine, schema: str) -> None:
    await engine.create_all(Everything)
    rows = await fetch(
        schema,
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'everything' ORDER BY ordinal_position",
        schema,
    )
    assert rows == [
        ("id", "bigint", "NO"),
        ("i", "bigint", "NO"),
        ("s", "text", "NO"),
        ("b", "boolean", "NO"),
        ("f", "double precision", "NO"),
        ("d", "numeric", "NO"),
        ("ts", "timestamp with time zone", "YES"),
        ("day", "date", "YES"),
        ("u", "uuid", "YES"),
        ("raw", "bytea", "YES"),
        ("doc", "jsonb", "NO"),
        ("items", "jsonb", "NO"),
        ("stamp", "timestamp with time zone", "YES"),
        ("code", "text", "NO"),
    ]
    users = await fetch(
        schema,
        "SELECT column_name, is_nullable FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'users' ORDER BY ordinal_position",
        schema,
    )
    assert dict(users) == {
        "id": "NO",
        "name": "NO",
        "email": "NO",
        "age": "NO",
        "active": "NO",
        "country": "YES",
        "created_at": "NO",
    }
    constraints = await fetch(
        schema,
        "SELECT conname, contype FROM pg_constraint c JOIN pg_namespace n "
        "ON n.oid = c.connamespace WHERE n.nspname = %s ORDER BY conname",
        schema,
    )
    assert ("users_email_key", "u") in constraints
    assert ("posts_author_id_fkey", "f") in constraints
    assert ("comments_post_id_fkey", "f") in constraints
    indexes = {
        r[0]
        for r in await fetch(
            schema, "SELECT indexname FROM pg_indexes WHERE schemaname = %s", schema
        )
    }
    assert {"ix_comments_post_id", "ix_everything_code"} <= indexes


async def test_values_round_trip_and_server_default_is_read_back(engine: Engine) -> None:
    await engine.create_all(Everything)
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    key = uuid.uuid4()
    async with Session(engine) as session:
        obj = Everything(
            i=7,
            s="é",
            b=True,
            f=1.5,
            d=Decimal("2.50"),
            ts=when,
            day=dt.date(2026, 5, 6),
            u=key,
            raw=b"\x00\x01",
            doc={"a": [1, 2]},
            items=[3, 4],
        )
        session.add(obj)
        await session.flush()
        assert isinstance(obj.stamp, dt.datetime)
        await session.commit()
    async with Session(engine) as session:
        back = await session.get(Everything, obj.id)
        assert back is not None
        assert (back.i, back.s, back.b, back.f, back.d) == (7, "é", True, 1.5, Decimal("2.50"))
        assert (back.ts, back.day, back.u, back.raw) == (
            when,
            dt.date(2026, 5, 6),
            key,
            b"\x00\x01",
        )
        assert (back.doc, back.items) == ({"a": [1, 2]}, [3, 4])


def test_construction_checks() -> None:
    with pytest.raises(UnknownFieldError, match="User has no field 'nick'"):
        User(name="a", email="a@x", nick="z")
    with pytest.raises(TypeError):
        User(name="a", email="a@x", nick="z")
    with pytest.raises(MissingFieldError, match="'name'"):
        User(email="a@x")
    with pytest.raises(ColumnTypeError, match=r"User.age expects int, got str"):
        User(name="a", email="a@x", age="old")
    user = User(name="a", email="a@x")
    assert (user.id, user.age, user.active, user.country) == (None, 0, True, None)
    assert isinstance(user.created_at, dt.datetime)
    with pytest.raises(ColumnTypeError):
        user.active = "yes"
    with pytest.raises(ValidationError, match=r"User\.name is NOT NULL"):
        user.name = None  # type: ignore[assignment]


async def test_create_all_is_idempotent_and_drop_all_orders_by_fk(
    engine: Engine, schema: str
) -> None:
    await engine.create_all(User, Post, Comment)
    await engine.drop_all(User, Post, Comment)  # dependents dropped first: no error
    tables = await fetch(schema, "SELECT tablename FROM pg_tables WHERE schemaname = %s", schema)
    assert tables == []


async def test_engine_pool_and_connect_kwargs(schema: str) -> None:
    engine = Engine(
        DSN, min_size=1, max_size=3, prepare_threshold=None, options=f"-c search_path={schema}"
    )
    try:
        conn = await engine.acquire()
        try:
            assert conn.prepare_threshold is None
        finally:
            await engine.release(conn)
        assert engine.pool is not None
        stats = engine.pool.get_stats()
        assert stats["pool_max"] == 3
        assert stats["pool_min"] == 1
        # ("test", "127.0.0.1", 5432) by default, else the embedded server's socket directory
        assert (engine.database, engine.server_address, engine.server_port) == server()
        assert engine in Engine.live_engines()
    finally:
        await engine.dispose()
    assert engine not in Engine.live_engines()


async def test_session_with_a_dsn_shares_one_engine() -> None:
    first, second = Session(DSN), Session(DSN)
    try:
        assert first.engine is second.engine
    finally:
        await first.close()
        await second.close()
        await first.engine.dispose()


def test_bad_engine_arguments() -> None:
    with pytest.raises(ValueError, match="min_size"):
        Engine(DSN, min_size=5, max_size=2)
    with pytest.raises(TypeError):
        Session(42)  # type: ignore[arg-type]
