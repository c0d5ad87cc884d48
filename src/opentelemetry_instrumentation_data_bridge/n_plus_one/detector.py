"""Counting on the relationship seams: lazy loads (N+1) and eager loads (unused).

Called by the instrumentation's wrappers after the traced load, so the
call site found here is the user's line, and a warning span becomes a
sibling of the load rather than its child.
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Any

from opentelemetry_instrumentation_data_bridge.n_plus_one import report, scopes
from opentelemetry_instrumentation_data_bridge.n_plus_one import settings as settings_module
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


_library_file: dict[str, bool] = {}  # filename -> inside a library (bounded by the code base)


def user_frame(frame: FrameType | None) -> FrameType | None:
    """From ``frame`` outwards, the first frame outside the ORM, the instrumentation,
    asyncio and wrapt (the user's line). A walk of a few steps: no stack is
    captured or stored, and each file's verdict is remembered."""
    library = _library_file
    while frame is not None:
        filename = frame.f_code.co_filename
        inside = library.get(filename)
        if inside is None:
            inside = library[filename] = any(m in filename for m in _LIBRARY_MARKERS)
        if not inside:
            return frame
        frame = frame.f_back
    return None


def _describe(frame: FrameType | None) -> CallSite:
    if frame is None:
        return CallSite("<unknown>", 0, "<unknown>")
    return CallSite(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)


_inspect: Any = None


def _load_inspect() -> Any:
    """data_bridge_core.inspect, imported on first use (the helpers work without the ORM)."""
    global _inspect
    from data_bridge_core import inspect

    _inspect = inspect
    return inspect


def record_lazy_load(relationship: Any, parent: Any) -> None:
    """A lazy load ran SQL for ``parent``: count it at its call site.

    This runs on every lazy load, so the common path is kept to plain reads.
    """
    settings = settings_module._settings
    if not settings.enabled or scopes._ignored.get():
        return
    inspect = _inspect or _load_inspect()
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
    frame = user_frame(sys._getframe(1))
    if frame is None:
        key = (model, name, "<unknown>", 0)
    else:
        key = (model, name, frame.f_code.co_filename, frame.f_lineno)
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
        model, name, relationship.target_name, _describe(frame), site.count, settings.threshold
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
    site_of_call = _describe(user_frame(sys._getframe(1)))
    model = relationship.owner.__name__
    key = (model, relationship.name, site_of_call.filepath, site_of_call.lineno)
    if key in scope.eager_loads or len(scope.eager_loads) >= MAX_SITES_PER_SCOPE:
        return
    scope.eager_loads[key] = UnusedEagerLoad(
        model, relationship.name, relationship.target_name, strategy, site_of_call
    )


def record_eager_use(relationship: Any) -> None:
    """An eager-loaded value was read: that eager load was worth its query."""
    scope = current_scope(create=False)
    if scope is not None and scope.eager_loads:
        scope.eager_used.add((relationship.owner.__name__, relationship.name))
