"""The wrappers never consume, reorder or re-evaluate an argument, and reading a result for
span attributes never turns a successful call into an exception (issue 19, item 4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from enhancements_fixtures import Instrument
from instrumentation_models import Author
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Query, Relationship, Session
from data_bridge_core.execution import Result

# Every option that adds a wrapper: statement capture, query plans, the commenter.
EVERY_OPTION: dict[str, Any] = {
    "capture_statement": True,
    "explain_threshold_ms": 0,
    "enable_commenter": True,
}


def _authors(start: int, count: int) -> Iterator[Author]:
    for i in range(start, start + count):
        yield Author(name=f"g{i}", email=f"g{i}@x.org")


async def _upsert_generator(session: Session) -> Any:
    return await session.upsert(_authors(100, 3), on=("email",), update=("name",))


async def _batch_of_generated_rows(session: Session) -> Any:
    rows = ((f"b{i}", f"b{i}@x.org") for i in range(3))
    result = await session.run_statement(
        "INSERT INTO authors (name, email, age, active) VALUES (%s, %s, 1, true) RETURNING email",
        rows,
        batch=True,
    )
    return sorted(result.rows)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (_upsert_generator, 3),
        (_batch_of_generated_rows, [("b0@x.org",), ("b1@x.org",), ("b2@x.org",)]),
    ],
)
@pytest.mark.parametrize("traced", [False, True], ids=["plain", "instrumented"])
async def test_a_generator_argument_gives_the_same_result_plain_and_instrumented(
    instrument_with: Instrument,
    blog_engine: Engine,
    call: Callable[[Session], Awaitable[Any]],
    expected: Any,
    traced: bool,
) -> None:
    if traced:
        instrument_with(**EVERY_OPTION)
    async with Session(blog_engine) as session:
        assert await call(session) == expected
        await session.commit()
    async with Session(blog_engine) as session:
        assert await session.find(Author).count() == 6  # the 3 of the fixture, 3 written


# -- a result the wrapper cannot read ----------------------------------------------------


class Unreadable(Exception):
    """Raised by a result when a wrapper reads it for span attributes."""


class UnreadableResult(Result):
    """A statement's result whose row count cannot be read."""

    @property  # type: ignore[override]
    def rowcount(self) -> int:
        raise Unreadable("rowcount")

    @rowcount.setter
    def rowcount(self, value: int) -> None:
        pass


class UnreadableCount(int):
    def __int__(self) -> int:
        raise Unreadable("int")

    def __index__(self) -> int:
        raise Unreadable("index")


class UnreadableList(list[Any]):
    def __len__(self) -> int:
        raise Unreadable("len")


def _returns(value: Any) -> Callable[..., Awaitable[Any]]:
    async def seam(*args: Any, **kwargs: Any) -> Any:
        return value

    return seam


READABLE_RESULT = UnreadableResult([], 0, "SELECT", None)
COUNT = UnreadableCount(7)
ROWS = UnreadableList([1, 2])


async def _execute(session: Session) -> Any:
    return await session.execute("SELECT 1")


async def _upsert(session: Session) -> Any:
    return await session.upsert([Author(name="u", email="u@x.org")], on=("email",), update=())


async def _from_sql(session: Session) -> Any:
    return await session.from_sql(Author, "SELECT * FROM authors")


async def _count(session: Session) -> Any:
    return await session.find(Author).count()


async def _update(session: Session) -> Any:
    return await session.find(Author).update(age=1)


async def _to_list(session: Session) -> Any:
    return await session.find(Author).to_list()


async def _lazy_load(session: Session) -> Any:
    author = Author(name="lazy", email="lazy@x.org")
    session.add(author)
    await session.flush()
    return await author.articles


@pytest.mark.parametrize(
    ("owner", "seam", "value", "call"),
    [
        (Session, "execute", READABLE_RESULT, _execute),
        (Session, "upsert", COUNT, _upsert),
        (Session, "from_sql", ROWS, _from_sql),
        (Query, "count", COUNT, _count),
        (Query, "update", COUNT, _update),
        (Query, "to_list", ROWS, _to_list),
        (Relationship, "load", ROWS, _lazy_load),
    ],
    ids=["execute", "upsert", "from_sql", "count", "update", "to_list", "lazy_load"],
)
async def test_a_result_the_wrapper_cannot_read_is_returned_intact(
    monkeypatch: pytest.MonkeyPatch,
    instrument_with: Instrument,
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    owner: type,
    seam: str,
    value: Any,
    call: Callable[[Session], Awaitable[Any]],
) -> None:
    monkeypatch.setattr(owner, seam, _returns(value))  # patched first: unpatched last
    instrument_with(capture_statement=True)
    async with Session(blog_engine) as session:
        assert await call(session) is value
        await session.rollback()
    assert spans.get_finished_spans()  # traced: the result was read and failed there


async def test_a_flush_whose_batch_size_cannot_be_read_still_returns(
    monkeypatch: pytest.MonkeyPatch,
    instrument_with: Instrument,
    blog_engine: Engine,
    spans: InMemorySpanExporter,
) -> None:
    def unreadable(session: Session) -> int:
        raise Unreadable("last_flush_batch_size")

    monkeypatch.setattr(Session, "last_flush_batch_size", property(unreadable))
    instrument_with()
    async with Session(blog_engine) as session:
        session.add_all([Author(name=f"f{i}", email=f"f{i}@x.org") for i in range(2)])
        await session.flush()
        await session.commit()
    async with Session(blog_engine) as session:
        assert await session.find(Author).count() == 5
    assert [s.name for s in spans.get_finished_spans()].count("db.session.flush") >= 1
