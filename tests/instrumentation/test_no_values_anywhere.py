"""Failures of every kind leave no bound value in any span, event, metric or log record,
with statement capture off, and with capture, query plans, the commenter and a slow-query
processor all on."""

from __future__ import annotations

import asyncio
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
from opentelemetry.trace import Status, StatusCode

from data_bridge_core import (
    Column,
    ColumnTypeError,
    DatabaseError,
    Engine,
    IntegrityError,
    InvalidStateError,
    PendingRollbackError,
    Session,
    Table,
    UnsupportedOperationError,
    ValidationError,
)
from exported_text import everything_exported, exported_strings
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


# -- Sentinels: every failure kind, with values made to defeat a text scrubber ---------------
#
# Each sentinel is made of marker words, none of which may appear in anything exported,
# joined by what a scrubber of the server's text trips on: quotes (closing a "quoted part"
# early), backslashes (escaping the closing quote; a value ending with one), newlines
# (a scrubber reading one line), non-ASCII text (escaped in JSON, where a search of the
# JSON text would miss it).
SENTINELS = {
    "quotes and a trailing backslash": "zqsa1\" password=zqsa2 'zqsa3\\",
    "escaped quote and newline": 'zqsb1\\" zqsb2\nDETAIL: zqsb3 \\\\',
    "unicode": "zqsc1 ünïcødé ☃ 秘密 zqsc2\r\n\tzqsc3",
}
MARKERS = ("zqsa1", "zqsa2", "zqsa3", "zqsb1", "zqsb2", "zqsb3", "zqsc1", "zqsc2", "zqsc3")
UNICODE_PARTS = ("ünïcødé", "☃", "秘密")
SentinelFailure = Callable[[Session, str], Awaitable[None]]


class Appliance(Table):
    id: int = Column(primary_key=True)
    ip: str = Column(column_type="macaddr")  # unchecked by the core: the server's cast fails
    label: str = ""

    class Settings:
        table_name = "appliances"


async def cast_in_a_flush(session: Session, value: str) -> None:
    session.add(Appliance(ip=value))
    await session.flush()


async def cast_in_a_filter(session: Session, value: str) -> None:
    await session.find(Appliance).filter(Appliance.ip == value).to_list()


async def cast_in_raw_execute(session: Session, value: str) -> None:
    await session.execute("SELECT %s::inet", [value])


async def cast_in_from_sql(session: Session, value: str) -> None:
    await session.from_sql(Author, "SELECT * FROM authors WHERE %s::inet IS NULL", [value])


async def bad_json(session: Session, value: str) -> None:
    await session.execute("SELECT %s::jsonb", [f'{{"k": {value}}}'])


async def unique_constraint(session: Session, value: str) -> None:
    session.add(Author(name="n1", email=value))
    await session.flush()
    session.add(Author(name="n2", email=value))
    await session.flush()


async def foreign_key_constraint(session: Session, value: str) -> None:
    await session.execute("CREATE TABLE tags (name text PRIMARY KEY)")
    await session.execute("CREATE TABLE labels (tag text REFERENCES tags)")
    await session.execute("INSERT INTO labels (tag) VALUES (%s)", [value])


async def check_constraint(session: Session, value: str) -> None:
    await session.execute("ALTER TABLE authors ADD CONSTRAINT short_name CHECK (length(name) < 5)")
    session.add(Author(name=value, email="c@x.org"))
    await session.flush()


async def not_null_constraint(session: Session, value: str) -> None:
    await session.execute("INSERT INTO authors (name, email) VALUES (%s, NULL)", [value])


async def raise_in_a_trigger_naming_the_value_everywhere(session: Session, value: str) -> None:
    # Every field RAISE can set carries the value, names included: none may be recorded.
    await session.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = 'refused: ' || NEW.name, "
        "DETAIL = NEW.name, HINT = NEW.name, COLUMN = NEW.name, CONSTRAINT = NEW.name, "
        "DATATYPE = NEW.name, TABLE = NEW.name, SCHEMA = NEW.name; END $$"
    )
    await session.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON authors FOR EACH ROW EXECUTE FUNCTION refuse()"
    )
    session.add(Author(name=value, email="t@x.org"))
    await session.commit()


async def raise_in_a_function(session: Session, value: str) -> None:
    await session.execute(
        "CREATE FUNCTION check_it(e text) RETURNS void LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'bad value %', e USING DETAIL = e; END $$"
    )
    await session.execute("SELECT check_it(%s)", [value])


async def deadlock_between_two_sessions(session: Session, value: str) -> None:
    async with Session(session.engine) as other:

        async def update(s: Session, first: int, second: int, ready: asyncio.Event) -> None:
            try:
                await s.execute("SET LOCAL deadlock_timeout = '20ms'")
                await s.execute("UPDATE authors SET name = %s WHERE id = %s", [value, first])
                ready.set()
                await both_ready.wait()
                await s.execute("UPDATE authors SET name = %s WHERE id = %s", [value, second])
            except DatabaseError:
                await s.rollback()  # the other session's UPDATE waits for these locks
                raise

        ready = (asyncio.Event(), asyncio.Event())
        both_ready = asyncio.Event()

        async def when_both_ready() -> None:
            await ready[0].wait()
            await ready[1].wait()
            both_ready.set()

        async with asyncio.timeout(20):
            outcomes = await asyncio.gather(
                update(session, 1, 2, ready[0]),
                update(other, 2, 1, ready[1]),
                when_both_ready(),
                return_exceptions=True,
            )
    [failure] = [o for o in outcomes if isinstance(o, BaseException)]
    raise failure


async def lock_timeout_in_a_flush(session: Session, value: str) -> None:
    async with Session(session.engine) as holder:
        await holder.execute("UPDATE authors SET name = 'held' WHERE id = 1")
        [author] = await session.find(Author).filter(Author.id == 1).to_list()
        await session.execute("SET LOCAL lock_timeout = '50ms'")
        author.name = value
        await session.flush()


async def statement_timeout(session: Session, value: str) -> None:
    await session.execute("SET LOCAL statement_timeout = '50ms'")
    await session.execute("SELECT pg_sleep(2) WHERE %s::text IS NOT NULL", [value])


async def a_query_after_a_failed_flush(session: Session, value: str) -> None:
    session.add(Author(name="n", email="a0@x.org"))  # taken
    session.add(Appliance(ip=value))
    with pytest.raises(DatabaseError):
        await session.flush()
    await session.find(Author).filter(Author.name == value).to_list()


async def validation_of_a_new_object(session: Session, value: str) -> None:
    session.add(Author(name=value + "\x00", email="v@x.org"))


async def validation_of_a_pattern_on_column_arithmetic(session: Session, value: str) -> None:
    await session.find(Author).filter((Author.age + 48213).like(value + "\x00")).to_list()


async def validation_of_a_bulk_update(session: Session, value: str) -> None:
    await session.find(Author).filter(Author.id == 1).update(age=value)


# (failure, error raised, SQLSTATE recorded or None, whether the server's error holds the value)
SENTINEL_FAILURES: list[tuple[SentinelFailure, type[BaseException], str | None, bool]] = [
    (cast_in_a_flush, DatabaseError, "22P02", True),
    (cast_in_a_filter, DatabaseError, "22P02", True),
    (cast_in_raw_execute, DatabaseError, "22P02", True),
    (cast_in_from_sql, DatabaseError, "22P02", True),
    (bad_json, DatabaseError, "22P02", True),
    (unique_constraint, IntegrityError, "23505", True),
    (foreign_key_constraint, IntegrityError, "23503", True),
    (check_constraint, IntegrityError, "23514", True),
    (not_null_constraint, IntegrityError, "23502", True),
    (raise_in_a_trigger_naming_the_value_everywhere, IntegrityError, "23514", True),
    (raise_in_a_function, DatabaseError, "P0001", True),
    # The server's text of these names no value; they run with the values bound all the same.
    (deadlock_between_two_sessions, DatabaseError, "40P01", False),
    (lock_timeout_in_a_flush, DatabaseError, "55P03", False),
    (statement_timeout, DatabaseError, "57014", False),
    (a_query_after_a_failed_flush, PendingRollbackError, None, True),
    # Refused before SQL: nothing reaches the server.
    (validation_of_a_new_object, ValidationError, None, False),
    (validation_of_a_pattern_on_column_arithmetic, ValidationError, None, False),
    (validation_of_a_bulk_update, ColumnTypeError, None, False),
]


def server_side_text(error: BaseException) -> str:
    """Everything the caller's exception chain says, the driver's diagnostic fields included."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        parts.append(str(current))
        diag = getattr(current, "diag", None)
        if diag is not None:
            for name in ("message_primary", "message_detail", "message_hint", "context"):
                parts.append(str(getattr(diag, name, None) or ""))
            for name in ("column_name", "constraint_name", "table_name", "datatype_name"):
                parts.append(str(getattr(diag, name, None) or ""))
        current = current.__cause__
    return "\n".join(parts)


def leaks(strings: list[str], text: str) -> list[str]:
    """The marker words and non-ASCII parts found in the exported strings or the JSON text."""
    found = [m for m in (*MARKERS, *UNICODE_PARTS) if any(m in s for s in strings)]
    found += [m for m in MARKERS if m in text and m not in found]
    return found


@pytest.fixture
async def appliances(blog_engine: Engine) -> Engine:
    await blog_engine.create_all(Appliance)
    return blog_engine


@pytest.mark.parametrize("value", list(SENTINELS.values()), ids=list(SENTINELS))
@pytest.mark.parametrize(
    ("failure", "error", "sqlstate", "echoed"),
    SENTINEL_FAILURES,
    ids=[f.__name__ for f, *_ in SENTINEL_FAILURES],
)
async def test_no_part_of_a_sentinel_value_is_exported_whatever_fails(
    instrumentation: str,
    failure: SentinelFailure,
    error: type[BaseException],
    sqlstate: str | None,
    echoed: bool,
    value: str,
    appliances: Engine,
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Session(appliances) as session:
        with pytest.raises(error) as caught:
            async with asyncio.timeout(30):
                await failure(session, value)
    assert isinstance(caught.value, error)
    if echoed:  # the positive twin: the value did reach the server's error
        assert any(m in server_side_text(caught.value) for m in MARKERS)
    failed = [s for s in spans.get_finished_spans() if s.status.status_code is StatusCode.ERROR]
    # A constructor is no operation: its refusal has no span (nothing to leak into either).
    assert failed or failure is validation_of_a_new_object, [
        s.name for s in spans.get_finished_spans()
    ]
    if sqlstate is not None:  # the failure kind the scenario is about did happen
        codes = {dict(s.attributes or {}).get("db.response.status_code") for s in failed}
        assert sqlstate in codes, codes
    strings = exported_strings(spans, metric_reader, caplog)
    text = everything_exported(spans, metric_reader, caplog)
    assert leaks(strings, text) == []
    if instrumentation != "capture off" and error not in (ValidationError, ColumnTypeError):
        assert '"db.statement"' in text  # statements are captured, parameterized


def test_the_sentinel_search_finds_a_value_wherever_it_is_recorded(
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The positive twin of the search itself: a sentinel put in each kind of record is found
    there, escaped characters and all."""
    value = SENTINELS["unicode"]
    tracer = tracer_provider.get_tracer("twin")
    places: list[Callable[[str], None]] = [
        lambda v: tracer.start_span("s", attributes={"a": v}).end(),
        lambda v: tracer.start_span("s", attributes={"a": ["x", v]}).end(),
        lambda v: _span_with_event(tracer, v),
        lambda v: _span_with_status(tracer, v),
        lambda v: logging.getLogger("twin").warning("saw %s", v),
        lambda v: logging.getLogger("twin").warning("saw", extra={"value": v}),
        # Last: metric points are cumulative, they stay in what the reader collects.
        lambda v: meter_provider.get_meter("twin").create_counter("c").add(1, {"a": v}),
    ]
    caplog.set_level(logging.DEBUG)
    for place in places:
        spans.clear()
        caplog.clear()
        place(value)
        strings = exported_strings(spans, metric_reader, caplog)
        assert "zqsc1" in leaks(strings, everything_exported(spans, metric_reader, caplog))
        assert "☃" in leaks(strings, "")


def _span_with_event(tracer: Any, value: str) -> None:
    span = tracer.start_span("s")
    span.add_event("e", {"a": value})
    span.end()


def _span_with_status(tracer: Any, value: str) -> None:
    span = tracer.start_span("s")
    span.set_status(Status(StatusCode.ERROR, value))
    span.end()
