"""sqlcommenter by the book (issue 21, finding 12): the comment is what the global
propagator injects (W3C traceparent, and tracestate when present), and a statement
is skipped only for a real comment, not for ``--`` or ``/*`` inside a literal."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from enhancements_fixtures import Instrument
from instrumentation_models import Author
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_setter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from test_commenter import statement_seen_by_server

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge.commenter import Commenter, has_comment

CONTEXT = SpanContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    is_remote=False,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")]),
)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class VendorPropagator(TextMapPropagator):
    """A vendor's propagator next to W3C's in the global one."""

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = ...
    ) -> Context:
        return context or Context()

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        setter.set(carrier, "vendor-span", f"{span_context.span_id:016x}")

    @property
    def fields(self) -> set[str]:
        return {"vendor-span"}


@pytest.fixture
def global_propagator() -> Iterator[Any]:
    before = propagate.get_global_textmap()

    def use(propagator: TextMapPropagator) -> None:
        propagate.set_global_textmap(propagator)

    yield use
    propagate.set_global_textmap(before)


def pairs(comment: str) -> Mapping[str, str]:
    body = comment[comment.rindex("/*") + 2 : comment.rindex("*/")]
    return dict(pair.split("=", 1) for pair in body.split(","))


def test_the_comment_carries_traceparent_and_tracestate(global_propagator: Any) -> None:
    global_propagator(TraceContextTextMapPropagator())
    commented = Commenter().comment("SELECT 1", CONTEXT)
    # URL-encoded, then every % doubled for the driver's placeholders (as documented).
    assert pairs(commented) == {
        "traceparent": f"'{TRACEPARENT}'",
        "tracestate": "'rojo%%3D00f067aa0ba902b7%%2Ccongo%%3Dt61rcWkgMzE'",
    }


def test_the_comment_is_what_the_global_propagator_injects(global_propagator: Any) -> None:
    global_propagator(CompositePropagator([TraceContextTextMapPropagator(), VendorPropagator()]))
    commented = Commenter().comment("SELECT 1", CONTEXT)
    assert pairs(commented) == {
        "traceparent": f"'{TRACEPARENT}'",
        "tracestate": "'rojo%%3D00f067aa0ba902b7%%2Ccongo%%3Dt61rcWkgMzE'",
        "vendor-span": "'b7ad6b7169203331'",
    }


def test_baggage_never_reaches_the_sql_text(global_propagator: Any) -> None:
    # The default global propagator also injects baggage: its values are the
    # application's data, never to be written into a statement.
    global_propagator(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )
    token = otel_context.attach(baggage.set_baggage("user.email", "a@example.com"))
    try:
        commented = Commenter().comment("SELECT 1", CONTEXT)
    finally:
        otel_context.detach(token)
    assert "baggage" not in pairs(commented)
    assert "example.com" not in commented


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM t WHERE note = '-- not a comment'",
        "SELECT * FROM t WHERE note = '/* nor this */'",
        "SELECT * FROM t WHERE note = 'it''s -- still a string'",
        "SELECT * FROM t WHERE note = E'back\\'slash -- in E string'",
        'SELECT "odd--name" FROM t',
        "SELECT $$ -- dollar quoted $$, $tag$ /* too */ $tag$",
        "SELECT 10 - -1",
    ],
)
def test_dashes_or_slash_star_inside_literals_are_not_a_comment(statement: str) -> None:
    assert has_comment(statement) is False
    assert Commenter({"app": "x"}).comment(statement, None) == f"{statement} /*app='x'*/"


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT 1 -- mine",
        "SELECT /* mine */ 1",
        "SELECT 'a' /* mine */",
        "SELECT $$x$$ -- after a dollar quote",
        "SELECT 'unterminated -- so unreadable",
    ],
)
def test_a_real_comment_or_an_unreadable_statement_is_left_alone(statement: str) -> None:
    assert has_comment(statement) is True
    assert Commenter({"app": "x"}).comment(statement, None) == statement


async def test_a_statement_with_dashes_in_a_literal_reaches_the_server_commented(
    instrument_with: Instrument, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument_with(enable_commenter=True)
    query = await statement_seen_by_server(
        blog_engine, lambda s: s.find(Author).filter(Author.name != "--").to_list()
    )
    [find] = [s for s in spans.get_finished_spans() if s.name == "db.query.find"]
    context = find.context
    flags = f"{context.trace_flags:02x}"  # as the propagator writes them (sampled, random)
    assert query.endswith(
        f" /*traceparent='00-{context.trace_id:032x}-{context.span_id:016x}-{flags}'*/"
    )


async def test_raw_sql_with_dashes_in_a_literal_is_commented(
    instrument_with: Instrument, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument_with(enable_commenter=True)

    async def raw(session: Session) -> None:
        await session.execute("SELECT count(*) FROM authors WHERE name <> '--'")

    query = await statement_seen_by_server(blog_engine, raw)
    # The last raw statement: the helper asked for its backend's pid first.
    execute = [s for s in spans.get_finished_spans() if s.name == "db.query.execute"][-1]
    span_id = f"{execute.context.span_id:016x}"
    assert query.startswith("SELECT count(*) FROM authors WHERE name <> '--' /*traceparent='00-")
    assert query.endswith(f"-{span_id}-{execute.context.trace_flags:02x}'*/")
