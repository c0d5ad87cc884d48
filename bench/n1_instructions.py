"""N+1 detection's instructions in the request flow, for callgrind.

Wall time in the flow (`bench.n1_flow`) moves with the machine's load; an
instruction count does not. Whole-process counts do, though: the event
loop's polling and the span exporter's thread vary by more than detection
costs. So each detection entry point (the same ones `bench.n1_flow` times)
is called through ``sys.call_tracing``, a C function nothing else in the
flow calls, and callgrind counts only inside it::

    valgrind --tool=callgrind --collect-atstart=no \\
        --toggle-collect=sys_call_tracing python -m bench.n1_instructions 11

Run it for 11 and for 1 requests: the difference over 1,000 lazy loads is
detection's instructions per load (imports and first uses cancel out). With
``first`` after the count (``python -m bench.n1_instructions 11 first``), each
user's lazy load is replaced by one ``find(Post).filter(Post.author_id ==
user.id).first()``: repeated-statement detection's instructions per statement.
``--apart NAME[,NAME]`` (before the count) calls the named entry points through
``operator.call`` instead, another C function nothing else calls: add
``--toggle-collect=_operator_call`` and ``callgrind_annotate --inclusive=yes``
shows their share (``_operator_call``) beside the others' (``sys_call_tracing``)::

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=sys_call_tracing \
        --toggle-collect=_operator_call python -m bench.n1_instructions --apart on_end 11 first

``--calibrate`` calls a no-op through the same wrapper 10,000 times: the
wrapper's own instructions per call (about 660 with CPython 3.11; some four
calls per lazy load), the same before and after a change.
"""

from __future__ import annotations

import asyncio
import operator
import sys
from collections.abc import Callable
from typing import Any

from bench.n1_flow import ENTRY_POINTS


def _through_call_tracing(function: Callable[..., Any]) -> Callable[..., Any]:
    call = sys.call_tracing

    def wrapper(*args: Any) -> Any:
        return call(function, args)

    return wrapper


def _through_operator_call(function: Callable[..., Any]) -> Callable[..., Any]:
    call = operator.call

    def wrapper(*args: Any) -> Any:
        return call(function, *args)

    return wrapper


async def _requests(
    schema: str, requests: int, per_user: str = "lazy", apart: frozenset[str] = frozenset()
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from bench import orm_models as m
    from bench.schema import DSN
    from data_bridge_core import Engine, Session
    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor, n_plus_one
    from opentelemetry_instrumentation_data_bridge.n_plus_one import processor

    class NoopExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    modules = {"n_plus_one": n_plus_one, "processor": processor}
    for module, owner, name in ENTRY_POINTS:
        holder = getattr(modules[module], owner) if owner else modules[module]
        if hasattr(holder, name):
            through = _through_operator_call if name in apart else _through_call_tracing
            setattr(holder, name, through(getattr(holder, name)))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NoopExporter()))
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    n_plus_one.configure_n1_detection(threshold=5, mode="span")
    engine = Engine(DSN, min_size=1, max_size=1, options=f"-c search_path={schema}")
    tracer = provider.get_tracer("bench")
    try:
        for _ in range(requests):
            with tracer.start_as_current_span("GET /users/posts"):
                async with Session(engine) as session:
                    query = session.find(m.User).order_by(m.User.id).limit(100)
                    for user in await query.to_list():
                        if per_user == "first":
                            await session.find(m.Post).filter(m.Post.author_id == user.id).first()
                        else:
                            await user.posts
    finally:
        n_plus_one.configure_n1_detection()
        instrumentor.uninstrument()
        provider.shutdown()
        await engine.dispose()


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--calibrate":
        noop = _through_call_tracing(lambda *args: None)
        for _ in range(10_000):
            noop(None, None)
        return 0
    from bench.schema import create_schema, drop_schema

    apart: frozenset[str] = frozenset()
    if argv and argv[0] == "--apart":
        apart = frozenset(argv[1].split(","))
        argv = argv[2:]
    schema = create_schema()
    try:
        per_user = argv[1] if len(argv) > 1 else "lazy"
        asyncio.run(_requests(schema, int(argv[0]) if argv else 11, per_user, apart))
    finally:
        drop_schema(schema)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
