"""Counting on the relationship seams: lazy loads (N+1) and eager loads (unused).

Called by the instrumentation's wrappers after the traced load, so the
call site found here is the user's line, and a warning span becomes a
sibling of the load rather than its child.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from opentelemetry_instrumentation_data_bridge.n_plus_one import report
from opentelemetry_instrumentation_data_bridge.n_plus_one.report import (
    CallSite,
    Finding,
    UnusedEagerLoad,
)
from opentelemetry_instrumentation_data_bridge.n_plus_one.scopes import (
    MAX_SITES_PER_SCOPE,
    LazySite,
    current_scope,
    is_ignored,
)
from opentelemetry_instrumentation_data_bridge.n_plus_one.settings import n1_settings

_LIBRARY_MARKERS = (
    f"{os.sep}data_bridge_core{os.sep}",
    f"{os.sep}opentelemetry_instrumentation_data_bridge{os.sep}",
    f"{os.sep}asyncio{os.sep}",
    f"{os.sep}wrapt{os.sep}",
)


def call_site() -> CallSite:
    """The first frame outside the ORM, the instrumentation, asyncio and wrapt.

    A frame walk of a few steps: no stack is captured or stored.
    """
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not any(marker in filename for marker in _LIBRARY_MARKERS):
            return CallSite(filename, frame.f_lineno, frame.f_code.co_name)
        frame = frame.f_back  # type: ignore[assignment]
    return CallSite("<unknown>", 0, "<unknown>")


def record_lazy_load(relationship: Any, parent: Any) -> None:
    """A lazy load ran SQL for ``parent``: count it at its call site."""
    settings = n1_settings()
    if not settings.enabled or is_ignored():
        return
    from data_bridge_core import inspect  # lazy: the telemetry helpers work without the ORM

    size = inspect(parent).result_size
    if size is None or size < 2:
        return  # from get()/first() or built in Python: a loop over it is not N+1
    model = relationship.owner.__name__
    name = relationship.name
    if settings.allowlist and f"{model}.{name}" in settings.allowlist:
        return
    scope = current_scope()
    if scope is None:
        return
    site_of_call = call_site()
    key = (model, name, site_of_call.filepath, site_of_call.lineno)
    site = scope.sites.get(key)
    if site is None:
        if len(scope.sites) >= MAX_SITES_PER_SCOPE:
            return
        site = scope.sites[key] = LazySite()
    if site.finding is not None:
        site.count += 1  # already reported: keep counting for the final figure
        site.finding.count = site.count
        return
    site.parents.add(id(parent))
    site.count = len(site.parents)
    if site.count < settings.threshold:
        return
    site.parents.clear()  # from here on the count is all we need
    finding = Finding(
        model,
        name,
        relationship.target_name,
        site_of_call.filepath,
        site_of_call.lineno,
        site_of_call.function,
        site.count,
        settings.threshold,
    )
    site.finding = finding
    scope.findings.append(finding)
    report.open_warning(finding, settings, keep_open=scope.keeps_warnings_open)


def record_eager_load(relationship: Any, strategy: str) -> None:
    """An eager load filled ``relationship`` for a batch of parents in this scope."""
    settings = n1_settings()
    if not settings.enabled or is_ignored():
        return
    scope = current_scope()
    if scope is None:
        return
    site_of_call = call_site()
    model = relationship.owner.__name__
    key = (model, relationship.name, site_of_call.filepath, site_of_call.lineno)
    if key in scope.eager_loads or len(scope.eager_loads) >= MAX_SITES_PER_SCOPE:
        return
    scope.eager_loads[key] = UnusedEagerLoad(
        model,
        relationship.name,
        relationship.target_name,
        strategy,
        site_of_call.filepath,
        site_of_call.lineno,
        site_of_call.function,
    )


def record_eager_use(relationship: Any) -> None:
    """An eager-loaded value was read: that eager load was worth its query."""
    scope = current_scope(create=False)
    if scope is not None and scope.eager_loads:
        scope.eager_used.add((relationship.owner.__name__, relationship.name))
