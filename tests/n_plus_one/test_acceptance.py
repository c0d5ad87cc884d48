"""Acceptance checks as a user runs them: the advice, pasted into the root query's
``.options(...)``, removes the loop; nothing is advised that would create one."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from acceptance_models import Entry, Label, Note, Paper, Reader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Session, joinedload, selectinload
from opentelemetry_instrumentation_data_bridge.telemetry import n1_ignore, n1_scope

pytestmark = pytest.mark.usefixtures("instrumented")

QUERY_LINE: dict[str, int] = {}


def apply(option: str) -> Any:
    """The advice, evaluated as the user would paste it."""
    names = {"selectinload": selectinload, "joinedload": joinedload}
    models = {"Reader": Reader, "Entry": Entry, "Note": Note, "Paper": Paper, "Label": Label}
    return eval(option, {**names, **models})


def lazy_loads(spans: InMemorySpanExporter) -> list[str]:
    """The relationships of the lazy loads that ran SQL."""
    return [
        str((s.attributes or {})["db.relationship.name"])
        for s in spans.get_finished_spans()
        if s.name == "db.relationship.select"
        and (s.attributes or {}).get("db.relationship.cache_hit") is False
    ]


def named(spans: InMemorySpanExporter, name: str) -> list[dict[str, Any]]:
    return [dict(s.attributes or {}) for s in spans.get_finished_spans() if s.name == name]


async def authors_of_comments(engine: Engine, *options: Any) -> None:
    """Walk up from each comment to its post, the post's author and all their posts."""
    async with Session(engine) as session:
        QUERY_LINE["comments"] = sys._getframe().f_lineno + 1
        comments = await session.find(Note).options(*options).order_by(Note.id).to_list()
        for comment in comments:
            post = await comment.entry
            user = await post.reader
            await user.entries


async def test_loops_reached_through_lazy_many_to_one_loads_are_found_at_every_level(
    app_engine: Engine, spans: InMemorySpanExporter
) -> None:
    with n1_scope() as scope:
        await authors_of_comments(app_engine)
    found = {f"{f.model}.{f.relationship}": f for f in scope.findings}
    assert sorted(found) == ["Entry.reader", "Note.entry", "Reader.entries"]
    assert [found[k].count for k in sorted(found)] == [10, 10, 10]
    assert found["Reader.entries"].recommendation == (
        "Use selectinload(Note.entry)"
        ".options(selectinload(Entry.reader).options(selectinload(Reader.entries)))"
    )
    assert found["Entry.reader"].option == (
        "selectinload(Note.entry).options(selectinload(Entry.reader))"
    )
    for finding in found.values():
        assert finding.query_site is not None
        assert finding.query_site.lineno == QUERY_LINE["comments"]
    # The longest advice, pasted into the comments query, removes every loop.
    spans.clear()
    with n1_scope() as fixed:
        await authors_of_comments(app_engine, apply(found["Reader.entries"].option))
    assert lazy_loads(spans) == []
    assert fixed.findings == []
    assert fixed.unused_eager_loads == []


async def test_a_walk_up_from_objects_fetched_one_by_one_is_not_a_loop(
    app_engine: Engine, spans: InMemorySpanExporter
) -> None:
    with n1_scope() as scope:
        async with Session(app_engine) as session:
            for pk in range(1, 61, 6):  # a comment of each user, fetched by primary key
                comment = await session.get(Note, pk)
                assert comment is not None
                post = await comment.entry
                await post.reader
    assert len(lazy_loads(spans)) == 20
    # No N+1 of the walk; the get() per comment is a repeated query of its own.
    assert [(f.model, f.relationship, f.count) for f in scope.findings] == [("Note", "get", 10)]


async def test_eager_loads_read_inside_n1_ignore_are_not_called_unused(
    app_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("t").start_as_current_span("GET /users"):
        async with Session(app_engine) as session:
            users = await session.find(Reader).options(selectinload(Reader.entries)).to_list()
            with n1_ignore():
                posts = [p for user in users for p in await user.entries]
    assert len(posts) == 30
    assert named(spans, "db.unused_eager_load") == []


async def test_eager_loads_read_inside_a_nested_n1_scope_are_not_called_unused(
    app_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("t").start_as_current_span("GET /users"):
        async with Session(app_engine) as session:
            users = await session.find(Reader).options(selectinload(Reader.entries)).to_list()
            with n1_scope() as inner:
                posts = [p for user in users for p in await user.entries]
    assert len(posts) == 30
    assert inner.unused_eager_loads == []
    assert named(spans, "db.unused_eager_load") == []


async def test_eager_loads_left_unread_around_an_ignored_block_are_still_reported(
    app_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("t").start_as_current_span("GET /users"):
        async with Session(app_engine) as session:
            users = await session.find(Reader).options(selectinload(Reader.entries)).to_list()
            with n1_ignore():
                names = [user.name for user in users]
    assert len(names) == 10
    [unused] = named(spans, "db.unused_eager_load")
    assert unused["db.n1.recommendation"] == (
        "Remove selectinload(Reader.entries): the loaded Entry rows were never used"
    )


async def test_a_loop_that_starts_on_rows_loaded_before_the_root_query_still_names_it(
    app_engine: Engine, spans: InMemorySpanExporter
) -> None:
    with n1_scope() as scope:
        async with Session(app_engine) as session:
            first = await session.get(Reader, 1)
            assert first is not None
            await first.entries  # its posts are the first parents of the loop below
            line = sys._getframe().f_lineno + 1
            users = await session.find(Reader).order_by(Reader.id).to_list()
            for user in users:
                for post in await user.entries:
                    await post.notes
    found = {f"{f.model}.{f.relationship}": f for f in scope.findings}
    comments = found["Entry.notes"]
    assert comments.recommendation == (
        "Use selectinload(Reader.entries).options(selectinload(Entry.notes))"
    )
    assert comments.count == 30
    assert comments.query_site is not None
    assert comments.query_site.lineno == line
    assert f"the query at {comments.query_site}" in comments.message()
    warnings = named(spans, "db.n1_warning")
    [warning] = [w for w in warnings if w["db.relationship.name"] == "notes"]
    assert warning["db.n1.query_site"] == str(comments.query_site)


async def papers_of_labels_of_papers(engine: Engine, *options: Any) -> None:
    """A many-to-many walk three levels deep: label -> papers -> labels -> papers."""
    async with Session(engine) as session:
        QUERY_LINE["labels"] = sys._getframe().f_lineno + 1
        labels = await session.find(Label).options(*options).order_by(Label.id).to_list()
        for label in labels:
            for paper in await label.papers:
                for other in await paper.labels:
                    await other.papers


async def test_a_many_to_many_walk_gets_the_path_of_its_nesting_not_of_the_identity_map(
    app_engine: Engine, spans: InMemorySpanExporter
) -> None:
    with n1_scope() as scope:
        await papers_of_labels_of_papers(app_engine)
    advice = {f"{f.model}.{f.relationship}": f.option for f in scope.findings}
    # Labels and papers come back through several loads (one identity map): the
    # advice follows the loops as written, three levels, not each reload.
    assert advice == {
        "Paper.labels": "selectinload(Label.papers).options(selectinload(Paper.labels))",
        "Label.papers": "selectinload(Label.papers)"
        ".options(selectinload(Paper.labels).options(selectinload(Label.papers)))",
    }
    for finding in scope.findings:
        assert finding.query_site is not None
        assert finding.query_site.lineno == QUERY_LINE["labels"]
    spans.clear()
    with n1_scope() as fixed:
        await papers_of_labels_of_papers(app_engine, apply(advice["Label.papers"]))
    assert lazy_loads(spans) == []
    assert fixed.findings == []
    assert fixed.unused_eager_loads == []
