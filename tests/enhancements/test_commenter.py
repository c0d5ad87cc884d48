"""sqlcommenter: the comment each statement carries, read back from pg_stat_activity."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from importlib.metadata import version
from typing import Any

import psycopg
import pytest
from enhancements_fixtures import Instrument
from instrumentation_models import DSN, Author
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge.commenter import Commenter


async def statement_seen_by_server(
    engine: Engine, run: Callable[[Session], Coroutine[Any, Any, Any]]
) -> str:
    """The text of the statement ``run`` sends that reads ``authors``, as pg_stat_activity
    shows it: a second connection locks the table, a third watches the blocked backend."""
    options = engine.connect_kwargs["options"]
    async with Session(engine) as session:
        pid = (await session.execute("SELECT pg_backend_pid()")).rows[0][0]
        async with (
            await psycopg.AsyncConnection.connect(DSN, options=options) as locker,
            await psycopg.AsyncConnection.connect(DSN, autocommit=True) as watcher,
        ):
            await locker.execute("LOCK TABLE authors IN ACCESS EXCLUSIVE MODE")
            locker_pid = locker.info.backend_pid
            task = asyncio.create_task(run(session))
            query = None
            for _ in range(2000):  # until the session's backend waits on this very lock
                # Blocked by the locker's backend, not just "waiting on some lock": the
                # server is shared with other runs, and their DDL takes locks too.
                cur = await watcher.execute(
                    "SELECT query FROM pg_stat_activity "
                    "WHERE pid = %s AND %s = ANY(pg_blocking_pids(pid))",
                    (pid, locker_pid),
                )
                row = await cur.fetchone()
                if row is not None:
                    query = str(row[0])
                    break
                await asyncio.sleep(0.01)
            await locker.commit()
            await task
    assert query is not None, "the statement never waited on the lock"
    return query


async def test_each_statement_carries_the_traceparent_of_its_span(
    instrument_with: Instrument, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument_with(enable_commenter=True)
    query = await statement_seen_by_server(blog_engine, lambda s: s.find(Author).to_list())
    [find] = [s for s in spans.get_finished_spans() if s.name == "db.query.find"]
    context = find.context
    assert query.endswith(
        # The flags as the W3C propagator writes them (sampled, and the SDK's random bit).
        f" /*traceparent='00-{context.trace_id:032x}-{context.span_id:016x}"
        f"-{context.trace_flags:02x}'*/"
    )
    assert query.startswith("SELECT ")


async def test_with_the_commenter_off_statements_are_sent_exactly_as_before(
    instrument_with: Instrument, blog_engine: Engine
) -> None:
    instrument_with()
    query = await statement_seen_by_server(blog_engine, lambda s: s.find(Author).to_list())
    assert query.startswith("SELECT ")
    assert "/*" not in query


async def test_options_are_url_encoded_quoted_and_sorted_with_the_traceparent(
    instrument_with: Instrument,
    tracer_provider: TracerProvider,
    blog_engine: Engine,
) -> None:
    instrument_with(
        enable_commenter=True,
        commenter_options={
            "route": lambda: "/users/{id}",
            "application": "billing api",
            "framework": True,
            "skipped": lambda: None,
        },
    )

    async def raw(session: Session) -> None:
        with tracer_provider.get_tracer("app").start_as_current_span("request"):
            await session.execute("SELECT count(*) FROM authors;")

    query = await statement_seen_by_server(blog_engine, raw)
    comment = query[query.index("/*") :]
    framework = f"data_bridge%3A{version('data-bridge-core')}"
    assert comment.startswith(
        f"/*application='billing%20api',framework='{framework}',"
        "route='%2Fusers%2F%7Bid%7D',traceparent='00-"
    )
    # The comment goes before the semicolon; pg_stat_activity on PostgreSQL 18 (the embedded
    # server of the no-server tier) showed the text once without its semicolon, under load.
    assert comment.endswith(("'*/;", "'*/"))
    flags = comment.rstrip(";").removesuffix("'*/")[-2:]
    assert flags in ("01", "03")  # sampled (and random, by the SDK's ids)
    assert query.startswith("SELECT count(*) FROM authors /*")


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        ("SELECT count(*) FROM authors WHERE name <> '100%'", None),
        ("SELECT count(*) FROM authors WHERE name <> %s || '%%'", ("100",)),
    ],
    ids=["no-parameters-sent-as-written", "parameters-percent-doubled"],
)
async def test_a_literal_percent_and_the_comment_reach_the_server_as_one_percent(
    instrument_with: Instrument,
    blog_engine: Engine,
    statement: str,
    params: tuple[str, ...] | None,
) -> None:
    instrument_with(enable_commenter=True, commenter_options={"route": lambda: "/a b"})

    async def raw(session: Session) -> None:
        await session.execute(statement, params)

    query = await statement_seen_by_server(blog_engine, raw)
    assert "route='%2Fa%20b'" in query
    assert "%%" not in query
    assert ("'100%'" in query) is (params is None)


async def test_a_statement_that_already_has_a_comment_is_left_alone(
    instrument_with: Instrument, tracer_provider: TracerProvider, blog_engine: Engine
) -> None:
    instrument_with(enable_commenter=True)

    async def raw(session: Session) -> None:
        with tracer_provider.get_tracer("app").start_as_current_span("request"):
            await session.execute("SELECT /* mine */ count(*) FROM authors")

    assert await statement_seen_by_server(blog_engine, raw) == (
        "SELECT /* mine */ count(*) FROM authors"
    )


async def test_statement_capture_records_the_statement_without_the_comment(
    instrument_with: Instrument, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument_with(enable_commenter=True, capture_statement=True)
    async with Session(blog_engine) as session:
        assert len(await session.find(Author).to_list()) == 3
    [find] = [s for s in spans.get_finished_spans() if s.name == "db.query.find"]
    statement = str((find.attributes or {})["db.statement"])
    assert statement.startswith("SELECT ")
    assert "/*" not in statement


def test_a_statement_outside_any_span_and_without_options_is_unchanged() -> None:
    assert Commenter().comment("SELECT 1", None) == "SELECT 1"
    assert Commenter({"app": "x"}).comment("SELECT 1", None) == "SELECT 1 /*app='x'*/"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"enable_commenter": "yes"}, TypeError, "enable_commenter must be True or False"),
        ({"commenter_options": {"a": "b"}}, ValueError, "without enable_commenter=True"),
        (
            {"enable_commenter": True, "commenter_options": {"a": 3}},
            TypeError,
            r"commenter_options\['a'\] must be a string",
        ),
        (
            {"enable_commenter": True, "commenter_options": {"db_driver": "yes"}},
            TypeError,
            "must be True or False",
        ),
    ],
)
def test_bad_commenter_options_are_refused(
    instrument_with: Instrument, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        instrument_with(**options)


async def test_a_failing_option_callable_leaves_the_statement_uncommented_and_is_logged_once(
    instrument_with: Instrument,
    tracer_provider: TracerProvider,
    blog_engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> str:
        raise KeyError("no route")

    instrument_with(enable_commenter=True, commenter_options={"route": broken})

    async def raw(session: Session) -> None:
        with tracer_provider.get_tracer("app").start_as_current_span("request"):
            assert (await session.execute("SELECT count(*) FROM authors")).rows == [(3,)]
            assert (await session.execute("SELECT count(*) FROM authors")).rows == [(3,)]

    assert await statement_seen_by_server(blog_engine, raw) == "SELECT count(*) FROM authors"
    failures = [r for r in caplog.records if "sqlcommenter" in r.getMessage()]
    assert len(failures) == 1
