"""Guards of issue 25's insert path (workload W4: build 1,000 objects, add, flush).

Each structural shortcut keeps its cost down and its behaviour: a model's
generated constructor calls no column check for plain values (and still
checks everything else), ``add_all`` and the flush make no Python call into
the core per object, and 1,000 new rows are one INSERT whose keys come back
onto their objects.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
import sys
import uuid
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import psycopg
import pytest
from core_fixtures import DSN, Post, StatementLog, User

from data_bridge_core import (
    Column,
    ColumnTypeError,
    Engine,
    MissingFieldError,
    Session,
    Table,
    UnknownFieldError,
    ValidationError,
    array_params,
)
from data_bridge_core.schema import constructor
from data_bridge_core.schema.column import ColumnInfo

CORE = "data_bridge_core"


@contextmanager
def core_calls() -> Iterator[list[str]]:
    """Names of the Python functions of the core called inside the block (and the
    generated constructors, whose code has no file), each call once."""
    calls: list[str] = []
    frames: dict[FrameType, None] = {}  # kept alive: a coroutine resumed is no new call

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame not in frames:
            frames[frame] = None
            code = frame.f_code
            if CORE in code.co_filename or code.co_filename.endswith(".__init__>"):
                calls.append(code.co_qualname)

    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(None)


def _counting_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Patches ColumnInfo.check (before a model is finalized) to record each call."""
    seen: list[str] = []
    original: Callable[[ColumnInfo, Any], Any] = ColumnInfo.check

    def check(column: ColumnInfo, value: Any) -> Any:
        seen.append(column.name)
        return original(column, value)

    monkeypatch.setattr(ColumnInfo, "check", check)
    return seen


def test_a_generated_constructor_checks_plain_values_inline_and_the_rest_in_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = _counting_checks(monkeypatch)

    class Reading(Table):
        id: int = Column(primary_key=True)
        label: str
        level: int = Column(default=0, column_type="integer")
        ok: bool = True
        at: dt.datetime | None = None
        ratio: float = 1.0
        day: dt.date | None = None

    first = Reading(label="a")
    assert Reading.__dict__["__init__"] is not Table.__init__
    assert getattr(Reading.__init__, constructor.GENERATED)
    assert first.__dict__ | {"_db_state": None} == {
        "_db_state": None,
        "id": None,
        "label": "a",
        "level": 0,
        "ok": True,
        "at": None,
        "ratio": 1.0,
        "day": None,
    }
    checks.clear()
    utc = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    for i in range(100):
        Reading(label=f"r{i}", level=i, ok=False, at=utc, ratio=0.5, day=dt.date(2024, 1, 1))
    assert checks == []  # plain values: no call of the full check

    # Everything else takes the full check, with its normalisation and its errors.
    class Text(str):
        pass

    naive = Reading(label="b", at=dt.datetime(2024, 5, 1, 12))
    assert naive.at is not None and naive.at.tzinfo is not None
    assert checks == ["at"]
    assert type(Reading(label=Text("sub")).label) is Text
    assert Reading(label="é").label == "é"
    assert Reading(label="x", at=None, day=None).at is None
    assert checks == ["at", "label", "label", "at", "day"]
    with pytest.raises(ValidationError, match=r"Reading\.label contains a NUL byte"):
        Reading(label="a\x00b")
    with pytest.raises(ValidationError, match=r"Reading\.label contains a lone surrogate"):
        Reading(label="\ud800")
    with pytest.raises(ValidationError, match=r"Reading\.level is out of range for integer"):
        Reading(label="a", level=2**31)
    with pytest.raises(ColumnTypeError, match=r"Reading\.level expects int, got bool"):
        Reading(label="a", level=True)
    with pytest.raises(ColumnTypeError, match=r"Reading\.ok expects bool, got int"):
        Reading(label="a", ok=1)
    with pytest.raises(ColumnTypeError, match=r"Reading\.ratio expects float, got str"):
        Reading(label="a", ratio="1")
    assert Reading(label="a", ratio=2).ratio == 2.0  # an int made the float it stores
    with pytest.raises(ValidationError, match=r"Reading\.label is NOT NULL"):
        Reading(label=None)
    with pytest.raises(ColumnTypeError, match=r"Reading\.day expects date, got datetime"):
        Reading(label="a", day=utc)
    late = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    with pytest.raises(ValidationError, match=r"Reading\.at is outside the years"):
        Reading(label="a", at=late)
    with pytest.raises(MissingFieldError, match=r"Reading\(\) missing required field\(s\)"):
        Reading(level=1)
    with pytest.raises(UnknownFieldError, match=r"Reading has no field 'nick' in Reading\(\)"):
        Reading(label="a", nick="z")
    with pytest.raises(UnknownFieldError, match=r"Reading has no field '_self'"):
        Reading(label="a", _self=1)
    with pytest.raises(TypeError):
        Reading("a")  # type: ignore[misc]


def test_building_an_object_is_one_call_of_its_constructor_and_one_of_its_state() -> None:
    User(name="warm", email="warm@x")
    at = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    with core_calls() as calls:
        for i in range(50):
            User(name=f"u{i}", email=f"u{i}@x", age=30, active=True, country="DE", created_at=at)
    assert calls == ["User.__init__", "InstanceState.__init__"] * 50


def test_subclasses_and_constructors_of_the_users_own_keep_working() -> None:
    class Stamped(Table):
        __abstract__ = True
        note: str = ""

    class Parent(Stamped):
        id: int = Column(primary_key=True)
        name: str

    class Early(Parent):  # declared before Parent is first used
        extra: int = 0

    parent = Parent(name="p")  # Parent's own constructor is generated here
    assert (parent.name, parent.note) == ("p", "")

    class Late(Parent):  # declared after: it must not inherit Parent's constructor
        more: bool = False

    for model, field, value in ((Early, "extra", 2), (Late, "more", True)):
        obj = model(name="c", note="n", **{field: value})
        assert (obj.name, obj.note, getattr(obj, field)) == ("c", "n", value)
        with pytest.raises(MissingFieldError):
            model(note="n")
        assert model.__dict__["__init__"] is not Parent.__dict__["__init__"]

    class Custom(Parent):
        size: int = 1

        def __init__(self, **values: Any) -> None:
            values.setdefault("name", "default")
            Parent.__init__(self, **values)  # the parent's constructor on a subclass

    custom = Custom(size=3)
    assert (custom.name, custom.size) == ("default", 3)
    with pytest.raises(ColumnTypeError, match=r"Custom\.size expects int"):
        Custom(size="big")
    assert Custom.__dict__["__init__"].__name__ == "__init__"
    assert not getattr(Custom.__dict__["__init__"], constructor.GENERATED, False)


async def test_a_thousand_new_rows_are_one_insert_with_no_core_call_per_object(
    engine: Engine, sql: StatementLog
) -> None:
    at = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)

    def users(n: int, tag: str) -> list[User]:
        return [User(name=f"{tag}{i}", email=f"{tag}{i}@x", age=i, created_at=at) for i in range(n)]

    async with Session(engine) as session:
        counts = []
        inserted: list[User] = []
        for n, tag in ((10, "w"), (10, "a"), (1000, "b")):
            objects = users(n, tag)
            sql.clear()
            with core_calls() as calls:
                session.add_all(objects)
                await session.flush()
            counts.append(len(calls))
            assert [s.split(" (")[0] for s in sql.statements] == ['INSERT INTO "users"']
            ids = [u.id for u in objects]
            assert all(isinstance(i, int) for i in ids) and ids == sorted(ids)
            inserted += objects
        # After the first flush (the connection taken), the same calls into the core
        # for 10 objects as for 1,000.
        assert counts[1] == counts[2]
        sql.clear()
        for user in inserted[::97]:
            assert await session.get(User, user.id) is user  # held by the identity map
        assert sql.statements == []
        rows = await session.execute("SELECT id, name, age FROM users ORDER BY id")
        assert [(r[1], r[2]) for r in rows.rows] == [
            (f"{tag}{i}", i) for tag, n in (("w", 10), ("a", 10), ("b", 1000)) for i in range(n)
        ]
        assert rows.rows == [(u.id, u.name, u.age) for u in inserted]
        await session.rollback()
        assert all(u.id is None for u in inserted)  # the generated keys are cleared again
    async with Session(engine) as session:
        assert (await session.execute("SELECT count(*) FROM users")).rows == [(0,)]


async def test_new_rows_with_relationships_still_get_their_keys_in_one_flush(
    engine: Engine,
) -> None:
    async with Session(engine) as session:
        authors = [User(name=f"a{i}", email=f"a{i}@x") for i in range(3)]
        posts = [Post(title=f"t{i}", author=authors[i % 3]) for i in range(30)]
        session.add_all(posts)  # the authors follow through the cascade
        await session.flush()
        assert [p.author_id for p in posts] == [authors[i % 3].id for i in range(30)]
        assert all(a.id is not None for a in authors)
        await session.commit()
    async with Session(engine) as session:
        rows = await session.execute(
            "SELECT p.title, u.name FROM posts p JOIN users u ON u.id = p.author_id ORDER BY p.id"
        )
        assert rows.rows == [(f"t{i}", f"a{i % 3}") for i in range(30)]


def _edge_rows() -> list[dict[str, Any]]:
    """Values at the edges of each type the bulk INSERT encodes itself, None included."""
    east = dt.timezone(dt.timedelta(hours=14))
    west = dt.timezone(dt.timedelta(hours=-12, minutes=-30))
    return [
        {
            "big": -(2**63),
            "mid": -(2**31),
            "small": -(2**15),
            "flag": True,
            "ratio": -0.0,
            "label": "",
            "note": None,
            "at": dt.datetime(1, 1, 1, 14, 0, 0, 1, tzinfo=east),
            "wall": dt.datetime(1, 1, 1),
            "day": dt.date(1, 1, 1),
            "uid": uuid.UUID(int=0),
        },
        {
            "big": 2**63 - 1,
            "mid": 2**31 - 1,
            "small": 2**15 - 1,
            "flag": False,
            "ratio": math.inf,
            "label": "é ✓ 😀 \\ \" ' , { } NULL",
            "note": "x",
            "at": dt.datetime(9999, 12, 31, 11, 29, 59, 999999, tzinfo=west),
            "wall": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
            "day": dt.date(9999, 12, 31),
            "uid": uuid.UUID(int=2**128 - 1),
        },
        {
            "big": 0,
            "mid": 1999,
            "small": -1,
            "flag": None,
            "ratio": None,
            "label": "plain",
            "note": None,
            "at": None,
            "wall": None,
            "day": None,
            "uid": None,
        },
        {
            "big": 1,
            "mid": 0,
            "small": 0,
            "flag": True,
            "ratio": math.nan,
            "label": "z" * 5000,
            "note": "",
            "at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
            "wall": dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
            "day": dt.date(1999, 12, 31),
            "uid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        },
    ]


async def test_column_arrays_encoded_by_the_core_read_back_as_psycopg_would_send_them(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[str] = []
    original = array_params.ColumnArray.encode

    def encode(self: array_params.ColumnArray, encoding: str) -> bytes:
        encoded.append(type(self).__name__)
        return original(self, encoding)

    monkeypatch.setattr(array_params.ColumnArray, "encode", encode)

    class Sample(Table):
        id: int = Column(primary_key=True)
        big: int
        mid: int = Column(column_type="integer")
        small: int = Column(column_type="smallint")
        flag: bool | None = None
        ratio: float | None = None
        label: str
        note: str | None = None
        at: dt.datetime | None = None
        wall: dt.datetime | None = Column(default=None, column_type="timestamp")
        day: dt.date | None = None
        uid: uuid.UUID | None = None

        class Settings:
            table_name = "samples"

    engine = Engine(DSN, min_size=0, max_size=1, options=f"-c search_path={schema}")
    try:
        await engine.create_all(Sample)
        rows = _edge_rows()
        fields = list(rows[0])
        async with Session(engine) as session:
            objects = [Sample(**row) for row in rows]
            session.add_all(objects)
            await session.flush()  # one bulk INSERT of column arrays
            assert encoded == [
                "Int8Array",
                "Int4Array",
                "Int2Array",
                "BoolArray",
                "Float8Array",
                "TextArray",
                "TextArray",
                "TimestamptzArray",
                "TimestampArray",
                "DateArray",
                "UuidArray",
            ]
            # The same rows, one at a time: sent by psycopg's own dumpers.
            for row in rows:
                single = Sample(**row)
                session.add(single)
                await session.flush()
            await session.commit()
        async with Session(engine) as session:
            read = await session.find(Sample).order_by(Sample.id).to_list()
        assert len(read) == 2 * len(rows)
        for bulk, single, row in zip(read[: len(rows)], read[len(rows) :], rows, strict=True):
            for name in fields:
                got, want, alone = getattr(bulk, name), row[name], getattr(single, name)
                assert repr(got) == repr(alone), name  # NaN and -0.0 compared by repr
                if name != "at" and not (isinstance(want, float) and math.isnan(want)):
                    assert got == want, name
                elif want is not None and name == "at":
                    assert got == want and got.utcoffset() is not None
    finally:
        await engine.dispose()


def test_a_column_array_refuses_a_value_its_type_cannot_send_before_any_sql() -> None:
    assert array_params.array_class(int, "BIGINT") is array_params.Int8Array
    assert array_params.array_class(str, "varchar(3)") is None  # psycopg's own dumper
    assert array_params.array_class(dict, "jsonb") is None
    with pytest.raises(psycopg.DataError, match="Int4Array"):
        array_params.Int4Array([1, 2**40]).encode("utf-8")
    with pytest.raises(psycopg.DataError, match="TextArray"):
        array_params.TextArray(["a", 1]).encode("utf-8")
    encoded = array_params.BoolArray([True, None, False]).encode("utf-8")
    assert encoded == struct.pack(">iiiii", 1, 1, 16, 3, 1) + bytes.fromhex(
        "00000001 01 ffffffff 00000001 00"
    )


def test_a_timestamp_repeated_in_a_column_is_converted_once_by_identity_not_equality() -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    first = dt.datetime(2024, 10, 27, 2, 30, tzinfo=berlin)  # 02:30 happens twice that night
    second = first.replace(fold=1)
    assert first == second and first.utcoffset() != second.utcoffset()
    column = [first] * 8 + [second] * 8  # most repeat: each object converted once
    body = array_params.TimestamptzArray(column).encode("utf-8")[20:]
    micros = struct.unpack(">" + "iq" * 16, body)[1::2]
    one_hour = 3600 * 10**6
    assert micros[8] - micros[0] == one_hour and len(set(micros)) == 2
    utc = (first - dt.datetime(2000, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    assert micros[0] == utc
