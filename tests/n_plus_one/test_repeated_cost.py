"""What repeated-statement detection does per statement, counted (not timed).

Its target is to cost no more per statement than the lazy-load path (bench
README, "Round 3, session 2: N+1 detection cost"). The next statement of a
line already found is the common case: it must take the fast path (reads and
compares against the last statement, one counter bump), making no Python
call. The other tests here check that the fast path keeps the counts of the
path it skips.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest
from instrumentation_models import Article, Author
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge import n_plus_one
from opentelemetry_instrumentation_data_bridge.telemetry import n1_scope

pytestmark = pytest.mark.usefixtures("instrumented")


@contextmanager
def calls_per_statement(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Per call of `record_statement` (the query seam's hook), the Python functions and
    C functions it calls, as the profiler sees them."""
    seen: list[list[str]] = []
    original: Callable[..., None] = n_plus_one.record_statement

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            seen[-1].append(f"{frame.f_code.co_name}()")
        elif event == "c_call":
            seen[-1].append(f"C {getattr(arg, '__qualname__', arg)}")

    def profiled(*args: Any) -> None:
        seen.append([])
        sys.setprofile(profile)
        try:
            original(*args)
        finally:
            sys.setprofile(None)
        seen[-1] = [c for c in seen[-1] if c not in ("record_statement()", "C setprofile")]

    monkeypatch.setattr(n_plus_one, "record_statement", profiled)
    yield seen


async def first_per_author(session: Session, rounds: int) -> None:
    authors = await session.find(Author).order_by(Author.id).to_list()
    for _ in range(rounds):
        for author in authors:
            await session.find(Article).filter(Article.author_id == author.id).first()


async def test_the_next_statement_of_a_found_line_makes_no_python_call(
    blog_engine: Engine,
    tracer_provider: TracerProvider,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracer = tracer_provider.get_tracer("t")
    with calls_per_statement(monkeypatch) as seen, tracer.start_as_current_span("GET /authors"):
        async with Session(blog_engine) as session:
            await first_per_author(session, rounds=4)  # 3 authors: found at the third
    [warning] = [s for s in spans.get_finished_spans() if s.name == "db.n1_warning"]
    assert dict(warning.attributes or {})["db.n1.query_count"] == 12
    assert len(seen) == 1 + 12  # the authors' find, then one per first()
    # From the fourth first() on: the explicit block's context variable, nothing else.
    assert seen[4:] == [["C ContextVar.get"]] * 9


async def test_a_to_list_on_the_users_line_is_checked_for_its_limit_on_the_fast_path(
    blog_engine: Engine,
) -> None:
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            for limit in (1, 1, 1, 1, 2, 2, 1):  # limit(2) lists of one row: not per-item lookups
                await session.find(Article).filter(Article.id == 1).limit(limit).to_list()
    [finding] = scope.findings
    assert (finding.operation, finding.count) == ("get", 5)


async def test_a_statement_in_a_new_block_or_span_on_the_same_line_is_counted_there(
    blog_engine: Engine, tracer_provider: TracerProvider
) -> None:
    tracer = tracer_provider.get_tracer("t")
    async with Session(blog_engine) as session:
        with n1_scope() as outer:
            for index in range(6):
                if index == 3:
                    inner_block = n1_scope()
                    inner = inner_block.__enter__()
                await session.find(Article).filter(Article.id == index).first()
            inner_block.__exit__(None, None, None)
        with tracer.start_as_current_span("GET /a"), n1_scope() as spanned:
            for index in range(3):
                with tracer.start_as_current_span("item"):  # a new context per statement
                    await session.find(Article).filter(Article.id == index).first()
    assert [(f.operation, f.count) for f in outer.findings] == [("get", 3)]
    assert [(f.operation, f.count) for f in inner.findings] == [("get", 3)]
    assert [(f.operation, f.count) for f in spanned.findings] == [("get", 3)]
