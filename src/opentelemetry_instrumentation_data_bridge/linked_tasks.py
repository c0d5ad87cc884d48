"""Background work in its own trace, linked to the request that started it
(the reference's Future Enhancement 4).

``create_linked_task(coro, name="send_welcome_email")`` runs ``coro`` in a new
asyncio task under a new root span ``name``: a trace of its own, so a
background job does not stretch the request's trace, with a span Link to
the span that was current at the call, so one is found from the other.
ORM spans inside the task nest under the new root.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from opentelemetry_instrumentation_data_bridge.config import get_tracer
from opentelemetry_instrumentation_data_bridge.spans import SpanScope

T = TypeVar("T")

LINK_ATTRIBUTES = {"data_bridge.link.type": "spawned_by"}


def create_linked_task(
    coro: Coroutine[Any, Any, T],
    *,
    name: str,
    attributes: Attributes = None,
) -> asyncio.Task[T]:
    """Run ``coro`` in a new task under a new root span ``name`` linked to the current span.

    Returns the task (as ``asyncio.create_task`` does; keep a reference to
    it). The span records the coroutine's exception, if any, and ends when
    the coroutine does. With tracing disabled or instrumentation suppressed
    the task runs without a span. Must be called with an event loop running.
    """
    if not asyncio.iscoroutine(coro):
        raise TypeError(f"create_linked_task() takes a coroutine, got {coro!r}")
    if not isinstance(name, str) or not name:
        raise TypeError(f"create_linked_task() needs a span name, got {name!r}")
    loop = asyncio.get_running_loop()
    tracer = get_tracer() if is_instrumentation_enabled() else None
    if tracer is None:
        return loop.create_task(coro, name=name)
    caller = trace.get_current_span().get_span_context()
    links = [Link(caller, LINK_ATTRIBUTES)] if caller.is_valid else []

    # Through SpanScope like every span of ours: a raising span processor is
    # contained, and a failure is recorded without the values in its text.
    scope = SpanScope(tracer, name, SpanKind.INTERNAL, dict(attributes or {}), links=links)

    async def run_linked() -> T:
        # An empty context: no parent, so the span starts a trace of its own.
        if scope.start(otel_context.Context()) is None:
            return await coro
        token = otel_context.attach(scope.context)  # type: ignore[arg-type]
        error: BaseException | None = None
        try:
            return await coro
        except BaseException as exc:
            error = exc
            raise
        finally:
            otel_context.detach(token)
            scope.finish(error)

    return loop.create_task(run_linked(), name=name)


__all__ = ["LINK_ATTRIBUTES", "create_linked_task"]
