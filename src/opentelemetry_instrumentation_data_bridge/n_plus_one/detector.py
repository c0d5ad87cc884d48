"""Counting on the relationship seams: lazy loads (N+1) and eager loads (unused).

Called by the instrumentation's wrappers after the traced load, so a warning
span becomes a sibling of the load rather than its child. Parents are
counted by identity key (model, primary key), never by ``id()``: objects
collected between chunks of a job would free their ids for the next chunk.

Each load also notes how the rows it returned were loaded (`scopes.Source`:
the parents' result and the relationship), so a loop found at the second
level is advised the full loader path from the query that loaded the roots.
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Any

from data_bridge_core import identity_key, result_of
from opentelemetry_instrumentation_data_bridge.n_plus_one import report, scopes
from opentelemetry_instrumentation_data_bridge.n_plus_one import settings as settings_module
from opentelemetry_instrumentation_data_bridge.n_plus_one.report import (
    OPTION_OF_STRATEGY,
    CallSite,
    Finding,
    UnusedEagerLoad,
)
from opentelemetry_instrumentation_data_bridge.n_plus_one.scopes import (
    MAX_SITES_PER_SCOPE,
    MAX_SOURCES_PER_SCOPE,
    LazySite,
    N1Scope,
    current_scope,
)

_LIBRARY_MARKERS = (
    f"{os.sep}data_bridge_core{os.sep}",
    f"{os.sep}opentelemetry_instrumentation_data_bridge{os.sep}",
    f"{os.sep}asyncio{os.sep}",
    f"{os.sep}wrapt{os.sep}",
)
_UNKNOWN = CallSite("<unknown>", 0, "<unknown>")
_MAX_PATH = 16  # levels followed back to the root query (a guard against cycles)

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


_COMPREHENSIONS = frozenset({"<genexpr>", "<listcomp>", "<setcomp>", "<dictcomp>"})


def _describe(frame: FrameType | None) -> CallSite:
    if frame is None:
        return _UNKNOWN
    code = frame.f_code
    name = code.co_name
    if name in _COMPREHENSIONS and frame.f_back is not None:
        # `gather(*(u.posts for u in users))`: the line is the expression's, the
        # function the one that holds it.
        name = frame.f_back.f_code.co_name
    return CallSite(code.co_filename, frame.f_lineno, name)


def lazy_load_site(frame: FrameType | None) -> CallSite | None:
    """The user's line of ``obj.rel``, read where the attribute is accessed (``frame``
    is the accessor's): under ``asyncio.gather`` the load later runs in a task
    of its own, with no frame of the user's above it. None when detection is off."""
    if not settings_module._settings.enabled:
        return None
    return _describe(user_frame(frame))


def record_lazy_load(
    relationship: Any, parent: Any, value: Any = None, site: CallSite | None = None
) -> None:
    """A lazy load ran SQL for ``parent`` and returned ``value``: count it at its call site.

    This runs on every lazy load that ran SQL, so the common path is kept to plain reads.
    """
    settings = settings_module._settings
    if not settings.enabled or scopes._ignored.get():
        return
    result = result_of(parent)
    if result is None:
        return  # built in Python: nothing was loaded together with it
    scope = current_scope(session=result.session)
    if scope is None:
        return
    if value:
        _note_source(scope, value, result, relationship, "select")
    if result.size < 2:
        return  # from get()/first(): a loop over it is not N+1
    model = relationship.owner.__name__
    name = relationship.name
    if settings.allowlist and f"{model}.{name}" in settings.allowlist:
        return
    if site is None:
        site = _describe(user_frame(sys._getframe(1)))
    key = (model, name, site.filepath, site.lineno)
    lazy = scope.sites.get(key)
    if lazy is None:
        if len(scope.sites) >= MAX_SITES_PER_SCOPE:
            return
        lazy = scope.sites[key] = LazySite()
    if lazy.finding is not None:
        lazy.count += 1  # already reported: keep counting for the final figure
        lazy.finding.count = lazy.count
        return
    lazy.parents.add(identity_key(parent))
    lazy.count = len(lazy.parents)
    if lazy.count < settings.threshold:
        return
    lazy.parents.clear()  # from here on the count is all we need
    option, root = _advice(scope, result, relationship)
    finding = Finding(
        model,
        name,
        relationship.target_name,
        site,
        lazy.count,
        settings.threshold,
        option,
        scope.query_sites.get(root),
    )
    lazy.finding = finding
    scope.findings.append(finding)
    report.open_warning(finding, settings, reports_at_end=scope.keeps_warnings_open)


def _note_source(scope: N1Scope, value: Any, parents: Any, relationship: Any, how: str) -> None:
    """Remember that the rows of ``value``'s result came through ``relationship``."""
    first = value[0] if isinstance(value, list) else value
    loaded = result_of(first)
    if loaded is None or loaded is parents:
        return
    sources = scope.sources
    if loaded not in sources and len(sources) < MAX_SOURCES_PER_SCOPE:
        sources[loaded] = (parents, relationship, how)


def _advice(scope: N1Scope, result: Any, relationship: Any) -> tuple[str, Any]:
    """The loader option for the root query, and the root result: each level the
    parents came through, outermost first, ``.options(...)``-nested."""
    steps = [(relationship, "selectinload")]
    sources = scope.sources
    while result in sources and len(steps) < _MAX_PATH:
        result, rel, how = sources[result]
        steps.append((rel, how))
    option = ""
    for rel, how in steps:  # innermost first
        text = f"{OPTION_OF_STRATEGY.get(how, 'selectinload')}({rel.owner.__name__}.{rel.name})"
        option = f"{text}.options({option})" if option else text
    return option, result


def record_eager_load(
    relationship: Any, strategy: str, batch: Any = None, related: Any = None
) -> None:
    """An eager load filled ``relationship`` for a batch of parents in this scope."""
    settings = settings_module._settings
    if not settings.enabled or scopes._ignored.get():
        return
    scope = current_scope(session=None if batch is None else batch.session)
    if scope is None:
        return
    site_of_call = _describe(user_frame(sys._getframe(1)))
    if batch is not None and batch.parents:
        parents = result_of(batch.parents[0])
        if related:
            _note_source(scope, related, parents, relationship, strategy)
        if batch.depth == 0 and parents is not None and parents not in scope.query_sites:
            # The eager load runs inside the query's to_list(): its line is the query's.
            scope.query_sites[parents] = site_of_call
    if not scope.tracks_eager_loads:
        return
    model = relationship.owner.__name__
    key = (model, relationship.name, site_of_call.filepath, site_of_call.lineno)
    if key in scope.eager_loads or len(scope.eager_loads) >= MAX_SITES_PER_SCOPE:
        return
    scope.eager_loads[key] = UnusedEagerLoad(
        model, relationship.name, relationship.target_name, strategy, site_of_call
    )


def record_query(rows: list[Any]) -> None:
    """A query returned ``rows``: remember its line, for advice about loops over them."""
    settings = settings_module._settings
    if len(rows) < 2 or not settings.enabled or scopes._ignored.get():
        return
    result = result_of(rows[0])
    if result is None:
        return
    scope = current_scope(session=result.session)
    if (
        scope is not None
        and result not in scope.query_sites
        and len(scope.query_sites) < MAX_SOURCES_PER_SCOPE
    ):
        scope.query_sites[result] = _describe(user_frame(sys._getframe(1)))


def record_eager_use(relationship: Any) -> None:
    """An eager-loaded value was read: that eager load was worth its query."""
    scope = current_scope(create=False)
    if scope is not None and scope.eager_loads:
        scope.eager_used.add((relationship.owner.__name__, relationship.name))
