"""Failures of every kind leave no bound value in any span, event, metric or log record,
with statement capture off, and with capture, query plans, the commenter and a slow-query
processor all on."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from instrumentation_models import Article, Author
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from data_bridge_core import (
    ColumnTypeError,
    DatabaseError,
    Engine,
    IntegrityError,
    InvalidStateError,
    PendingRollbackError,
    Session,
    UnsupportedOperationError,
)
from exported_text import everything_exported
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor
from opentelemetry_instrumentation_data_bridge.telemetry import (
    SlowQueryProcessor,
    add_span_processor,
    remove_span_processor,
)

SECRET = "zq7s3cr3tvalue"  # a word nothing but the bound values contains
SECRET_NUMBER = 8675309
# The number as a value: not inside a longer run of digits. The exported text holds
# thousands of random digits (nanosecond timestamps, float sums), in which any 7 digits
# turn up now and then: some 16,000 seven-digit windows a run, a chance match in ~1 of 600 runs.
LEAKED_NUMBER = re.compile(rf"(?<![0-9]){SECRET_NUMBER}(?![0-9])")
Failure = Callable[[Session], Awaitable[None]]


async def taken_email(session: Session) -> str:
    """An email that exists, with the secret in it: a duplicate's DETAIL names it."""
    await session.execute("UPDATE authors SET email = %s WHERE id = 1", [f"{SECRET}@x.org"])
    return f"{SECRET}@x.org"


async def unique_violation(session: Session) -> None:
    session.add(Author(name=SECRET, email=await taken_email(session)))
    await session.flush()


async def second_unique_violation(session: Session) -> None:
    session.add(Author(name="n", email=f"{SECRET}@x.org"))
    await session.commit()
    session.add(Author(name="m", email=f"{SECRET}@x.org"))
    await session.commit()


async def foreign_key_violation(session: Session) -> None:
    session.add(Article(author_id=SECRET_NUMBER, title=SECRET))
    await session.commit()


async def check_violation(session: Session) -> None:
    await session.execute("ALTER TABLE authors ADD CONSTRAINT short_name CHECK (length(name) < 5)")
    session.add(Author(name=SECRET, email="c@x.org"))
    await session.flush()


async def not_null_violation(session: Session) -> None:
    await session.execute("INSERT INTO authors (name, email) VALUES (%s, NULL)", [SECRET])


async def column_type_error(session: Session) -> None:
    await session.find(Author).filter(Author.age == SECRET).to_list()


async def column_type_error_in_update(session: Session) -> None:
    await session.find(Author).filter(Author.id == 1).update(age=SECRET)


async def invalid_json(session: Session) -> None:
    await session.execute("SELECT %s::jsonb", [f'{{"key": {SECRET}}}'])


async def raise_in_a_function(session: Session) -> None:
    await session.execute(
        "CREATE FUNCTION check_it(e text) RETURNS void LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'bad value %', e; END $$"
    )
    await session.execute("SELECT check_it(%s)", [SECRET])


async def raise_with_an_errcode_of_its_own(session: Session) -> None:
    await session.execute(
        "CREATE FUNCTION check_it(e text) RETURNS void LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'bad value ' || e; END $$"
    )
    await session.execute("SELECT check_it(%s)", [SECRET])


async def raise_in_a_trigger_on_flush(session: Session) -> None:
    await session.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION USING ERRCODE = 'check_violation', "
        "MESSAGE = 'refused: ' || NEW.name, DETAIL = NEW.email; END $$"
    )
    await session.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON authors FOR EACH ROW EXECUTE FUNCTION refuse()"
    )
    session.add(Author(name=SECRET, email=f"{SECRET}@x.org"))
    await session.commit()


async def bad_integer_in_raw_sql(session: Session) -> None:
    await session.execute("SELECT %s::int", [SECRET])


async def bad_date_in_from_sql(session: Session) -> None:
    await session.from_sql(Author, "SELECT * FROM authors WHERE %s::date IS NULL", [SECRET])


async def out_of_range_in_raw_sql(session: Session) -> None:
    await session.execute("SELECT %s::smallint", [str(SECRET_NUMBER)])


async def the_next_query_after_a_failed_flush(session: Session) -> None:
    session.add(Author(name="n", email=await taken_email(session)))
    with pytest.raises(IntegrityError):
        await session.flush()
    await session.find(Author).to_list()  # PendingRollbackError naming the flush's error


async def a_failed_flush_caught_inside_a_savepoint(session: Session) -> None:
    email = await taken_email(session)
    async with session.begin_nested():
        session.add(Author(name=SECRET, email=email))
        with pytest.raises(IntegrityError):
            await session.flush()


async def a_failed_upsert(session: Session) -> None:
    await session.execute("ALTER TABLE authors ADD CONSTRAINT short_name CHECK (length(name) < 5)")
    await session.upsert([Author(name=SECRET, email="u@x.org")], on=["email"], update=["name"])


async def a_failed_stream(session: Session) -> None:
    async for _ in session.find(Author).filter(Author.name == SECRET).stream():
        pass
    await session.execute("SELECT %s::uuid", [SECRET])


async def refresh_of_a_deleted_row(session: Session) -> None:
    [author] = await session.find(Author).filter(Author.id == 1).to_list()
    author.name = SECRET
    author.age = SECRET_NUMBER
    await session.flush()
    await session.execute("TRUNCATE authors CASCADE")
    await session.refresh(author)  # InvalidStateError showing the object


async def an_unsupported_aggregate_value(session: Session) -> None:
    await session.find(Author).aggregate([{"$match": {"name": {"$regex": SECRET}}}])


FAILURES: list[tuple[Failure, type[BaseException]]] = [
    (unique_violation, IntegrityError),
    (second_unique_violation, IntegrityError),
    (foreign_key_violation, IntegrityError),
    (check_violation, IntegrityError),
    (not_null_violation, IntegrityError),
    (column_type_error, ColumnTypeError),
    (column_type_error_in_update, ColumnTypeError),
    (invalid_json, DatabaseError),
    (raise_in_a_function, DatabaseError),
    (raise_with_an_errcode_of_its_own, DatabaseError),
    (raise_in_a_trigger_on_flush, IntegrityError),
    (bad_integer_in_raw_sql, DatabaseError),
    (bad_date_in_from_sql, DatabaseError),
    (out_of_range_in_raw_sql, DatabaseError),
    (the_next_query_after_a_failed_flush, PendingRollbackError),
    (a_failed_flush_caught_inside_a_savepoint, PendingRollbackError),
    (a_failed_upsert, IntegrityError),
    (a_failed_stream, DatabaseError),
    (refresh_of_a_deleted_row, InvalidStateError),
    (an_unsupported_aggregate_value, UnsupportedOperationError),
]


@pytest.fixture(params=["capture off", "capture, plans, commenter, slow-query log"])
def instrumentation(
    request: pytest.FixtureRequest,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[str]:
    caplog.set_level(logging.DEBUG)
    everything = request.param != "capture off"
    options: dict[str, Any] = {}
    processor = SlowQueryProcessor(threshold_ms=0)
    if everything:
        options = {"capture_statement": True, "explain_threshold_ms": 0, "enable_commenter": True}
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider, **options
    )
    if everything:
        add_span_processor(processor)
    yield request.param
    remove_span_processor(processor)
    instrumentor.uninstrument()


@pytest.mark.parametrize(("failure", "error"), FAILURES, ids=[f.__name__ for f, _ in FAILURES])
async def test_no_bound_value_of_a_failed_operation_is_exported_or_logged(
    instrumentation: str,
    failure: Failure,
    error: type[BaseException],
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Session(blog_engine) as session:
        with pytest.raises(error) as caught:
            await failure(session)
    # The caller's exception is untouched: it names the value where PostgreSQL did.
    assert type(caught.value) is error
    failed = [s for s in spans.get_finished_spans() if s.status.status_code is StatusCode.ERROR]
    assert failed, [s.name for s in spans.get_finished_spans()]
    assert all(any(e.name == "exception" for e in s.events) for s in failed)
    text = everything_exported(spans, metric_reader, caplog)
    assert SECRET not in text
    assert LEAKED_NUMBER.search(text) is None, LEAKED_NUMBER.search(text)
    if instrumentation != "capture off" and error not in (
        ColumnTypeError,
        UnsupportedOperationError,
    ):
        assert '"db.statement"' in text  # the positive twin: the statements are there


def test_the_number_check_finds_the_value_but_not_the_same_digits_inside_a_timestamp() -> None:
    assert LEAKED_NUMBER.search(f"Key (author_id)=({SECRET_NUMBER}) is not present")
    assert LEAKED_NUMBER.search(f'"db.query.parameter.0": "{SECRET_NUMBER}"')
    assert LEAKED_NUMBER.search(f"age={SECRET_NUMBER}.0")
    assert LEAKED_NUMBER.search(f'"time_unix_nano": 17953{SECRET_NUMBER}1234') is None
