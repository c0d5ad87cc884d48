"""Repeated same-shape queries from one line in one scope (Sentry's N+1 beyond relationships).

`get()`, `find(...).first()`, `count()`, `exists()` and `execute()` of one
statement shape, run from one line at least `threshold` times (3 here) in a
scope, are one finding, advised the batch form; each advice is pasted into
code and run, and the statements it sends are counted.
"""

from __future__ import annotations

import functools
import operator
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from instrumentation_models import Article, Author
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from school_models import Enrollment, Follow

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge.n_plus_one import RepeatedQuery
from opentelemetry_instrumentation_data_bridge.telemetry import (
    NPlusOneError,
    configure_n1_detection,
    n1_ignore,
    n1_scope,
)

pytestmark = pytest.mark.usefixtures("instrumented")
LINES: dict[str, int] = {}


@contextmanager
def counted_statements() -> Iterator[list[str]]:
    """The SQL statements the block sends (the real ones: through `run_statement`)."""
    sent: list[str] = []
    original = Session.__dict__["run_statement"]

    async def counting(self: Any, statement: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(statement)
        return await original.__get__(self, type(self))(statement, *args, **kwargs)

    Session.run_statement = counting  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        Session.run_statement = original  # type: ignore[method-assign]


def paste(advice: str, session: Session, **names: Any) -> Any:
    """The advised expression, evaluated as the user would paste it (``session.`` in front)."""
    namespace = {
        "session": session,
        "Author": Author,
        "Article": Article,
        "Follow": Follow,
        "Enrollment": Enrollment,
        "reduce": functools.reduce,
        "or_": operator.or_,
        **names,
    }
    return eval(f"session.{advice}", namespace)


async def follows_of(engine: Engine, follower: int, authors: list[int]) -> list[Follow | None]:
    async with Session(engine) as session:
        found = []
        for author in authors:
            LINES["get"] = sys._getframe().f_lineno + 1
            found.append(await session.get(Follow, (follower, author)))
        return found


async def test_a_get_per_item_of_a_composite_key_is_advised_one_in_query(
    school_engine: Engine,
) -> None:
    with n1_scope() as scope, counted_statements() as sent:
        follows = await follows_of(school_engine, 1, [1, 2, 3, 4, 5, 6])
    assert len(sent) == 6 and all(follows)
    [finding] = scope.findings
    assert isinstance(finding, RepeatedQuery)
    assert (finding.model, finding.operation, finding.count) == ("Follow", "get", 6)
    assert finding.site.lineno == LINES["get"]
    assert finding.site.function == "follows_of"
    assert finding.option == (
        "find(Follow).filter(Follow.follower_id == follower_id, "
        "Follow.author_id.in_(author_ids)).to_list()"
    )
    assert finding.recommendation == (
        "Use one session.find(Follow).filter(Follow.follower_id == follower_id, "
        "Follow.author_id.in_(author_ids)).to_list() for all the items, before the loop, "
        "instead of a get() per item (follower_id is the same in every call)"
    )
    assert finding.message() == (
        f"Repeated query: Follow.get() ran 6 times at {finding.site}. {finding.recommendation}"
    )
    async with Session(school_engine) as session:
        with counted_statements() as fixed:
            rows = await paste(
                finding.option, session, follower_id=1, author_ids=[1, 2, 3, 4, 5, 6]
            )
    assert len(fixed) == 1
    assert sorted((f.follower_id, f.author_id) for f in rows) == [(1, a) for a in range(1, 7)]


async def test_a_get_per_item_whose_key_columns_all_change_is_advised_the_or_of_the_keys(
    school_engine: Engine,
) -> None:
    keys = [(1, 1), (2, 2), (1, 3)]
    with n1_scope() as scope:
        async with Session(school_engine) as session:
            for key in keys:
                await session.get(Enrollment, key)
    [finding] = scope.findings
    assert finding.option == (
        "find(Enrollment).filter(reduce(or_, [(Enrollment.student_id == student_id) & "
        "(Enrollment.course_id == course_id) for student_id, course_id in keys])).to_list()"
    )
    assert "data-bridge has no tuple IN" in finding.recommendation
    async with Session(school_engine) as session:
        with counted_statements() as fixed:
            rows = await paste(finding.option, session, keys=keys)
    assert len(fixed) == 1
    assert sorted((e.student_id, e.course_id) for e in rows) == sorted(keys)


async def test_a_get_per_item_of_a_one_column_key_is_advised_in_ids(blog_engine: Engine) -> None:
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            articles = await session.find(Article).order_by(Article.id).to_list()
            for article in articles:
                await session.get(Author, article.author_id)  # 3 queries: 3 identity-map hits
    [finding] = scope.findings
    assert (finding.operation, finding.count) == ("get", 3)
    assert finding.option == "find(Author).filter(Author.id.in_(ids)).to_list()"
    async with Session(blog_engine) as session:
        with counted_statements() as fixed:
            rows = await paste(finding.option, session, ids=[1, 2, 3])
    assert len(fixed) == 1 and len(rows) == 3


async def test_first_count_and_exists_per_item_are_each_advised_one_query(
    blog_engine: Engine,
) -> None:
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            authors = await session.find(Author).order_by(Author.id).to_list()
            for author in authors:
                await session.find(Article).filter(Article.author_id == author.id).first()
                await session.find(Article).filter(Article.author_id == author.id).count()
                await session.find(Article).filter(Article.author_id == author.id).exists()
    by_operation = {f.operation: f for f in scope.findings}
    assert sorted(by_operation) == ["count", "exists", "first"]
    assert {f.count for f in scope.findings} == {3}
    assert by_operation["first"].option == (
        "find(Article).filter(Article.author_id.in_(author_ids)).to_list()"
    )
    grouped = (
        "find(Article).filter(Article.author_id.in_(author_ids))"
        '.aggregate([{"$group": {"_id": "$author_id", "count": {"$sum": 1}}}])'
    )
    assert by_operation["count"].option == grouped
    assert by_operation["exists"].option == grouped
    async with Session(blog_engine) as session:
        with counted_statements() as fixed:
            rows = await paste(by_operation["first"].option, session, author_ids=[1, 2, 3])
            counts = await paste(grouped, session, author_ids=[1, 2, 3])
    assert len(fixed) == 2
    assert len(rows) == 6
    assert sorted((c["_id"], c["count"]) for c in counts) == [(1, 2), (2, 2), (3, 2)]


async def test_an_execute_per_item_is_reported_with_the_array_parameter_advice(
    blog_engine: Engine,
) -> None:
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            for author_id in (1, 2, 3, 1):
                await session.execute(
                    "SELECT count(*) FROM articles WHERE author_id = %s", [author_id]
                )
    [finding] = scope.findings
    assert (finding.model, finding.operation, finding.count) == ("", "execute", 4)
    assert finding.recommendation.startswith("Use one execute() for all the items")
    assert "= ANY(%s)" in finding.recommendation
    assert "articles" not in finding.message()  # the statement itself is never reported
    async with Session(blog_engine) as session:
        with counted_statements() as fixed:
            result = await session.execute(
                "SELECT author_id, count(*) FROM articles WHERE author_id = ANY(%s) "
                "GROUP BY author_id",
                [[1, 2, 3]],
            )
    assert len(fixed) == 1 and len(result.rows) == 3


async def test_statements_of_different_shapes_from_one_line_are_not_reported(
    blog_engine: Engine,
) -> None:
    conditions = [Article.id == 1, Article.author_id == 1, Article.title == "t1"]
    statements = [
        "SELECT 1 FROM articles WHERE id = %s",
        "SELECT 1 FROM articles WHERE author_id = %s",
        "SELECT 1 FROM articles WHERE length(title) = %s",
    ]
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            for condition, statement in zip(conditions, statements, strict=True):
                await session.find(Article).filter(condition).first()
                await session.execute(statement, [1])
            for limit in (1, 2, 3):
                await session.find(Article).filter(Article.author_id == 1).limit(limit).count()
    assert scope.findings == []


async def test_one_call_repeated_across_separate_requests_is_not_reported(
    school_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    tracer = tracer_provider.get_tracer("t")
    for author in (1, 2, 3, 4):
        with tracer.start_as_current_span("GET /follow"):
            await follows_of(school_engine, 1, [author])
    assert [s for s in spans.get_finished_spans() if s.name == "db.n1_warning"] == []


async def test_a_request_gets_one_warning_span_with_the_final_count(
    school_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("t").start_as_current_span("GET /feed"):
        await follows_of(school_engine, 1, [1, 2, 3, 4, 5])
    [warning] = [s for s in spans.get_finished_spans() if s.name == "db.n1_warning"]
    attributes = dict(warning.attributes or {})
    assert attributes["db.n1.query_count"] == 5
    assert attributes["db.n1.threshold"] == 3
    assert attributes["db.operation.name"] == "get"
    assert attributes["db.collection.name"] == "sch_follows"
    assert attributes["code.function.name"] == "follows_of"
    assert attributes["code.line.number"] == LINES["get"]
    assert str(attributes["db.n1.recommendation"]).startswith("Use one session.find(Follow)")
    assert "db.relationship.name" not in attributes


async def test_two_calls_stay_below_the_threshold(school_engine: Engine) -> None:
    with n1_scope() as scope:
        await follows_of(school_engine, 1, [1, 2])
    assert scope.findings == []


async def test_one_call_site_is_silenced_by_n1_ignore_or_the_allowlist(
    school_engine: Engine,
) -> None:
    with n1_scope() as scope, n1_ignore():
        await follows_of(school_engine, 1, [1, 2, 3, 4])
    assert scope.findings == []
    configure_n1_detection(threshold=3, allowlist=["Follow.get"])
    with n1_scope() as scope:
        await follows_of(school_engine, 1, [1, 2, 3, 4])
    assert scope.findings == []


async def test_raise_mode_stops_the_loop_at_the_threshold(school_engine: Engine) -> None:
    configure_n1_detection(threshold=3, mode="raise")
    with n1_scope(), pytest.raises(NPlusOneError, match=r"Follow.get\(\) ran at least 3 times"):
        await follows_of(school_engine, 1, [1, 2, 3, 4, 5])


async def test_without_a_span_each_session_is_a_scope_of_its_own(school_engine: Engine) -> None:
    configure_n1_detection(threshold=3, mode="raise")
    for _ in range(3):  # two calls per session: never three in one scope
        await follows_of(school_engine, 1, [1, 2])
    with pytest.raises(NPlusOneError, match=r"Follow.get\(\) ran at least 3 times"):
        await follows_of(school_engine, 1, [1, 2, 3])


async def interleaved(first: Session, second: Session, reached: list[int]) -> None:
    for author in (1, 2, 3):
        reached.append(author)
        for session in (first, second):  # one line, the two sessions in turn
            await session.get(Follow, (1, author))


async def test_two_sessions_side_by_side_count_apart(school_engine: Engine) -> None:
    configure_n1_detection(threshold=3, mode="raise")
    reached: list[int] = []
    async with Session(school_engine) as first, Session(school_engine) as second:
        with pytest.raises(NPlusOneError):
            await interleaved(first, second, reached)
    assert reached == [1, 2, 3]  # each session's third call, not the line's third
