"""The wrapper on ``Session.run_statement`` for query plans and sqlcommenter.

Patched only when ``explain_threshold_ms`` or ``enable_commenter`` is given
to ``instrument()``; otherwise statements are sent exactly as before. It is
patched inside the statement-capture wrapper, so ``db.statement`` shows the
statement without the comment.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from opentelemetry_instrumentation_data_bridge.commenter import Commenter
from opentelemetry_instrumentation_data_bridge.config import report_failure
from opentelemetry_instrumentation_data_bridge.query_plans import QueryPlans

Wrapped = Callable[..., Awaitable[Any]]
Wrapper = Callable[[Wrapped, Any, tuple[Any, ...], dict[str, Any]], Awaitable[Any]]


def statement_wrapper(
    explain_threshold_ms: float | None = None,
    enable_commenter: bool = False,
    commenter_options: Mapping[str, Any] | None = None,
) -> Wrapper | None:
    """The run_statement wrapper for these options (None: nothing to patch).

    Bad option values raise here, from ``instrument()``, before anything is patched.
    """
    if not isinstance(enable_commenter, bool):
        raise TypeError(f"enable_commenter must be True or False, got {enable_commenter!r}")
    if commenter_options is not None and not isinstance(commenter_options, Mapping):
        raise TypeError(f"commenter_options must be a dict, got {commenter_options!r}")
    if commenter_options and not enable_commenter:
        raise ValueError("commenter_options given without enable_commenter=True")
    plans = QueryPlans(explain_threshold_ms) if explain_threshold_ms is not None else None
    commenter = Commenter(commenter_options) if enable_commenter else None
    if plans is None and commenter is None:
        return None

    async def wrapper(
        wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not is_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        span = trace.get_current_span()
        statement = args[0] if args else kwargs.get("statement")
        if not isinstance(statement, str):
            return await wrapped(*args, **kwargs)
        if commenter is not None:
            try:
                params = args[1] if len(args) > 1 else kwargs.get("params")
                commented = commenter.comment(
                    statement,
                    span.get_span_context(),
                    placeholders=params is not None or bool(kwargs.get("batch")),
                )
                if args:
                    args = (commented, *args[1:])
                else:
                    kwargs = {**kwargs, "statement": commented}
            except Exception as exc:
                report_failure("add the sqlcommenter comment", exc)
        if plans is None or kwargs.get("batch"):
            return await wrapped(*args, **kwargs)
        started = time.perf_counter_ns()
        result = await wrapped(*args, **kwargs)
        try:
            if plans.wants(statement, span, time.perf_counter_ns() - started):
                await plans.add_plan(instance, statement, span)
        except Exception as exc:
            report_failure("add a query plan", exc)
        return result

    return wrapper


__all__ = ["statement_wrapper"]
