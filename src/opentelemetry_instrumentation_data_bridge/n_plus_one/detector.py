"""Counting on the relationship seams: lazy loads (N+1) and eager loads (unused).

Called by the instrumentation's wrappers after the traced load, so a warning
span becomes a sibling of the load rather than its child. Parents are
counted by identity key (model, primary key), never by ``id()``: objects
collected between chunks of a job would free their ids for the next chunk.

Each load also notes how the rows it returned were loaded (`scopes.Source`:
the parents' result and the relationship), so a loop found at the second
level is advised the full loader path from the query that loaded the roots.
The note is kept on the loaded result itself (`ResultInfo.observer_data`, with
the scope it was made in): one slot write per load, gone with the result.
"""

from __future__ import annotations

import os
import sys
from types import CodeType, FrameType
from typing import Any

from data_bridge_core import STATE_KEY, ResultInfo, identity_key, result_of, table_info
from opentelemetry_instrumentation_data_bridge.n_plus_one import report, scopes
from opentelemetry_instrumentation_data_bridge.n_plus_one import settings as settings_module
from opentelemetry_instrumentation_data_bridge.n_plus_one.report import (
    OPTION_OF_STRATEGY,
    CallSite,
    Finding,
    UnusedEagerLoad,
)
from opentelemetry_instrumentation_data_bridge.n_plus_one.scopes import (
    IGNORED,
    MAX_SITES_PER_SCOPE,
    LazySite,
    N1Scope,
    Source,
    current_scope,
    scope_of_result,
)

_LIBRARY_MARKERS = (
    f"{os.sep}data_bridge_core{os.sep}",
    f"{os.sep}opentelemetry_instrumentation_data_bridge{os.sep}",
    f"{os.sep}asyncio{os.sep}",
    f"{os.sep}wrapt{os.sep}",
)
_UNKNOWN = CallSite("<unknown>", 0, "<unknown>")
# Where ``obj.rel`` (or a query) was written: its code and bytecode offset. A line
# number costs a line-table walk, so it is worked out only for a finding.
Mark = tuple[CodeType, int]
_MAX_PATH = 16  # levels followed back to the root query (a guard against cycles)
_MAX_WALK = 256  # sources followed, rounds erased included
_MAX_RECENT_QUERIES = 256
# The state is read as ``obj._db_state`` on the hot path (an attribute read).
assert STATE_KEY == "_db_state"
_COMPREHENSIONS = frozenset({"<genexpr>", "<listcomp>", "<setcomp>", "<dictcomp>"})

_explicit_scope = scopes._explicit.get  # bound once: this runs on every lazy load
_library_file: dict[str, bool] = {}  # filename -> inside a library (bounded by the code base)
_MAX_KNOWN_SITES = 1024
# (id(code), offset) -> (code, its call site); the code is held, so its id stays its own.
_known_sites: dict[tuple[int, int], tuple[CodeType, CallSite]] = {}
_recent_queries = scopes.recent_queries
_eager_marked = scopes.eager_marked


def _in_library(filename: str) -> bool:
    """Whether a file is the ORM's, the instrumentation's, asyncio's or wrapt's."""
    inside = _library_file.get(filename)
    if inside is None:
        inside = _library_file[filename] = any(m in filename for m in _LIBRARY_MARKERS)
    return inside


def user_frame(frame: FrameType | None) -> FrameType | None:
    """From ``frame`` outwards, the first frame outside the ORM, the instrumentation,
    asyncio and wrapt (the user's line). A walk of a few steps: no stack is
    captured or stored, and each file's verdict is remembered."""
    library = _library_file
    while frame is not None:
        filename = frame.f_code.co_filename
        inside = library.get(filename)
        if inside is None:
            inside = _in_library(filename)
        if not inside:
            return frame
        frame = frame.f_back
    return None


def _mark_of(frame: FrameType | None) -> Mark | None:
    return None if frame is None else (frame.f_code, frame.f_lasti)


def call_site(mark: Mark | None) -> CallSite:
    """The file, line and function of a mark (remembered: the same loop and query
    are found again in every request, and a line-table walk costs)."""
    if mark is None:
        return _UNKNOWN
    code, offset = mark
    key = (id(code), offset)
    known = _known_sites.get(key)
    if known is not None and known[0] is code:  # an id is reused once its code is freed
        return known[1]
    site = _describe_mark(code, offset)
    if len(_known_sites) >= _MAX_KNOWN_SITES:
        _known_sites.clear()
    _known_sites[key] = (code, site)
    return site


def _describe_mark(code: CodeType, offset: int) -> CallSite:
    line = code.co_firstlineno
    for start, end, number in code.co_lines():
        if start <= offset < end and number is not None:
            line = number
            break
    function = code.co_name
    if function in _COMPREHENSIONS:
        # `gather(*(u.posts for u in users))`: the function that holds the expression.
        outer = code.co_qualname.rsplit(".<locals>.", 1)[0]
        function = outer.rsplit(".", 1)[-1] if outer != code.co_qualname else function
    return CallSite(code.co_filename, line, function)


def _describe(frame: FrameType | None) -> CallSite:
    return call_site(_mark_of(frame))


def lazy_load_site(frame: FrameType | None) -> Mark | None:
    """Where ``obj.rel`` was written, read when the attribute is accessed: under
    ``asyncio.gather`` the load runs later in a task of its own, with no frame of
    the user's above it. ``frame`` is the accessor's caller, usually the user's
    (checked, and walked from if not, when a load is counted). None when
    detection is off. This runs on every ``obj.rel``: two attribute reads."""
    if frame is None or not settings_module._settings.enabled:
        return None
    return (frame.f_code, frame.f_lasti)


def record_lazy_load(
    relationship: Any, parent: Any, value: Any = None, mark: Mark | None = None
) -> None:
    """A lazy load ran SQL for ``parent`` and returned ``value``: count it where
    ``obj.rel`` was written (``mark``, from `lazy_load_site`; None when
    detection was off at the access).

    This runs on every lazy load that ran SQL, between two database round trips
    (cold caches: each object and global read costs), so the common path (the
    next load of the same loop) is a handful of reads and compares and one
    counter bump; anything else is in other functions.
    """
    if mark is None:
        return
    explicit = _explicit_scope()
    # `result_of`, inlined (as below): a call costs more than the lookup. Read as an
    # attribute (STATE_KEY): ``__dict__`` would build a just-loaded row's dict.
    result = parent._db_state
    if result.__class__ is not ResultInfo:
        result = result.result
    loop = scopes.last_loop
    if (
        result is loop[0]
        and relationship is loop[1]
        and explicit is loop[3]  # never IGNORED: an ignored load never becomes the loop
        and mark == loop[2]  # the code object compares by identity first
    ):
        if value:  # _note_source, inlined: this is the path of every load of a loop
            loaded = (value[0] if value.__class__ is list else value)._db_state
            if loaded.__class__ is not ResultInfo:
                loaded = loaded.result
            if loaded is not None:
                note = loaded.observer_data  # the first note of a scope wins
                if note is None or note[0] is not loop[4]:
                    loaded.observer_data = loop[6]
        finding = loop[5].finding
        if finding is not None:
            finding.count += 1  # already reported: keep counting for the final figure
            return
        _count_parent(loop, parent, result)
        return
    if explicit is IGNORED or result is None:
        return  # ignored, or built in Python: nothing was loaded together with it
    _load_of_another_loop(relationship, parent, value, mark, explicit, result)


def _load_of_another_loop(
    relationship: Any, parent: Any, value: Any, mark: Mark, explicit: Any, result: Any
) -> None:
    """A load that is not the next of the last loop: find its scope and counter
    (it becomes the last loop), then count it as `record_lazy_load` does."""
    settings = settings_module._settings
    if not settings.enabled:
        return
    if _find_loop(relationship, result, mark, explicit, settings) is None:
        if value:
            scope_of_value = scope_of_result(result)
            if scope_of_value is not None:
                _note_source(scope_of_value, value, result, relationship, "select", mark)
        return
    loop = scopes.last_loop
    scope = loop[4]
    if value:
        loaded = result_of(value[0] if value.__class__ is list else value)
        if loaded is not None and source_of(scope, loaded) is None:
            loaded.observer_data = loop[6]
    finding = loop[5].finding
    if finding is None:
        _count_parent(loop, parent, result)
        return
    finding.count += 1
    if finding.query_site is None:
        _late_query_site(scope, result, loop[1], loop[6][1][3], finding)
    if finding.tree_levels:
        _deepen(scope, result, loop[1], loop[6][1][3], finding)


def _count_parent(loop: scopes.LastLoop, parent: Any, result: Any) -> None:
    """Before the finding: count distinct parents; at the threshold, report."""
    settings = settings_module._settings
    # The mark as the loop's note has it (a tree's with its recursion depth).
    scope, lazy, relationship, mark = loop[4], loop[5], loop[1], loop[6][1][3]
    lazy.parents.add(identity_key(parent))
    lazy.count = len(lazy.parents)
    if lazy.count < settings.threshold:
        return
    lazy.parents.clear()  # from here on the finding's count is all we need
    option, root = _advice(scope, result, relationship, mark)
    query = _recent_queries.get(root)
    stream = root in scopes.stream_results
    finding = Finding(
        relationship.owner.__name__,
        relationship.name,
        relationship.target_name,
        call_site(loop[2]),
        lazy.count,
        settings.threshold,
        option,
        None if query is None else call_site(query),
        tree_levels=_tree_levels(relationship, option),
        batch_form=_batch_form(relationship) if stream and option.count("(") == 1 else "",
        stream=stream,
    )
    lazy.finding = finding
    scope.findings.append(finding)
    report.open_warning(finding, settings, scope.keeps_warnings_open)


def _find_loop(
    relationship: Any, result: Any, mark: Mark, explicit: Any, settings: Any
) -> bool | None:
    """For a load that is not the next of the last loop: find its scope and
    counter and make it the last loop (True); None when the load does not count."""
    if settings.allowlist and (
        f"{relationship.owner.__name__}.{relationship.name}" in settings.allowlist
    ):
        return None
    scope = scope_of_result(result)
    if scope is None:
        return None
    if result.size < 2 and not _loaded_in_a_loop(scope, result):
        return None  # from get()/first(): a loop over it is not N+1
    if _in_library(mark[0].co_filename):
        walked = _mark_of(user_frame(sys._getframe(3)))  # not the user's line: walk from here
        if walked is None:
            return None
        mark = walked
    # id(code): hashing a code object hashes its whole content.
    key = (relationship, id(mark[0]), mark[1])
    lazy = scope.sites.get(key)
    if lazy is None:
        if len(scope.sites) >= MAX_SITES_PER_SCOPE:
            return None
        lazy = scope.sites[key] = LazySite()
    # One rebinding: another thread never sees half of it.
    where: Any = mark
    if _is_tree(relationship):
        # A recursive walk loads each level from a deeper call of the same function:
        # the depth tells a level down from a round through reloaded rows (`_advice`).
        where = (mark[0], mark[1], _recursion_depth(mark[0], sys._getframe(3)))
    source = (scope, (result, relationship, "select", where))  # the note its loads' rows get
    scopes.last_loop = (result, relationship, mark, explicit, scope, lazy, source)
    return True


def _late_query_site(
    scope: N1Scope, result: Any, relationship: Any, mark: Mark, finding: Finding
) -> None:
    """The loop's first parents led to no known query (rows loaded through a
    ``get()`` before the multi-row query returned them again): name the query
    of later parents, when their path is the same advice."""
    option, root = _advice(scope, result, relationship, mark)
    query = _recent_queries.get(root)
    if query is not None and option == finding.option:
        finding.query_site = call_site(query)
        report.add_query_site(finding)


def _loaded_in_a_loop(scope: N1Scope, result: Any) -> bool:
    """Whether a one-row result was lazy-loaded for a parent of a multi-row result,
    directly or level by level (`comment.post`, then `post.user`): a loop over
    such rows is a loop over the multi-row result."""
    for _ in range(_MAX_PATH):
        source = source_of(scope, result)
        if source is None:
            return False
        result = source[0]
        if result.size > 1:
            return True
    return False


def source_of(scope: N1Scope, result: Any) -> Source | None:
    """How the rows of ``result`` were loaded in ``scope`` (None if not there)."""
    note = result.observer_data
    if note is None or note[0] is not scope:
        return None  # never noted, or noted in a scope that has ended
    source: Source = note[1]
    return source


def _note_source(
    scope: N1Scope, value: Any, parents: Any, relationship: Any, how: str, mark: Mark | None
) -> None:
    """Remember that the rows of ``value``'s result came through ``relationship``
    from ``parents`` (a result), for advice about a loop over them."""
    loaded = result_of(value[0] if value.__class__ is list else value)
    if loaded is not None and loaded is not parents and source_of(scope, loaded) is None:
        loaded.observer_data = (scope, (parents, relationship, how, mark))


def _advice(scope: N1Scope, result: Any, relationship: Any, mark: Mark) -> tuple[str, Any]:
    """The loader option for the root query, and the root result: each level the
    parents came through, outermost first, ``.options(...)``-nested.

    Rows the identity map hands out again belong to the result that returned
    them last, so a walk over many-to-many rows can go round: label, papers,
    labels, papers of the same loops. A step at a relationship and line met
    before closes such a round, which is erased (as in a loop-erased walk): the
    advice follows the loops as written.
    """
    steps: list[tuple[Any, str, Mark | None]] = [(relationship, "selectinload", mark)]
    for _ in range(_MAX_WALK):
        source = source_of(scope, result)
        if source is None:
            break
        result, rel, how, where = source
        if where is not None:
            again = next((i for i, (r, _, w) in enumerate(steps) if r is rel and w == where), None)
            if again is not None:
                del steps[again + 1 :]
                continue
        if len(steps) >= _MAX_PATH:
            break
        steps.append((rel, how, where))
    option = ""
    for rel, how, _ in steps:  # innermost first
        text = f"{OPTION_OF_STRATEGY.get(how, 'selectinload')}({rel.owner.__name__}.{rel.name})"
        option = f"{text}.options({option})" if option else text
    return option, result


_trees: dict[Any, bool] = {}  # relationship -> self-referencing one-to-many (few: the models')


def _is_tree(relationship: Any) -> bool:
    """A self-referencing one-to-many (``Node.children``). Its loads are noted with
    the recursion depth of their line, so a walk meeting it again at the same line
    one call deeper went a level down (advised one more level), while one at the
    same depth went round through rows reloaded (erased, as for a many-to-many)."""
    tree = _trees.get(relationship)
    if tree is None:
        tree = _trees[relationship] = bool(
            relationship.uselist
            and relationship.secondary is None
            and relationship.target is relationship.owner
        )
    return tree


def _recursion_depth(code: CodeType, frame: FrameType | None) -> int:
    """How many calls of ``code`` are running, from ``frame`` outwards."""
    depth = 0
    while frame is not None:
        if frame.f_code is code:
            depth += 1
        frame = frame.f_back
    return depth


def _tree_levels(relationship: Any, option: str) -> int:
    """How many levels of a tree relationship the advised path loads (0: not a tree)."""
    if not _is_tree(relationship):
        return 0
    return option.count(f"({relationship.owner.__name__}.{relationship.name})")


def _deepen(scope: N1Scope, result: Any, relationship: Any, mark: Mark, finding: Finding) -> None:
    """A tree's loop found a level deeper than its finding's advice: advise the
    path to the depth walked (the finding is made at the threshold, often before
    the walk reaches its deepest level)."""
    option, _root = _advice(scope, result, relationship, mark)
    levels = _tree_levels(relationship, option)
    if levels > finding.tree_levels:
        finding.option = option
        finding.tree_levels = levels
        report.update_recommendation(finding)


def _remember_query(result: Any, mark: Mark | None) -> None:
    recent = _recent_queries
    if mark is None or result in recent:
        return
    recent[result] = mark
    if len(recent) > _MAX_RECENT_QUERIES:
        del recent[next(iter(recent))]


def record_stream(row: Any) -> None:
    """A stream (``Query.stream()``) handed out its first row: remember its line and
    that it is a stream (it takes no loader options), for advice about loops over it."""
    if not settings_module._settings.enabled:
        return
    result = result_of(row)
    if result is None:
        return
    _remember_query(result, _mark_of(user_frame(sys._getframe(1))))
    streams = scopes.stream_results
    streams[result] = None
    if len(streams) > _MAX_RECENT_QUERIES:
        del streams[next(iter(streams))]


def _batch_form(relationship: Any) -> str:
    """One query for a batch of parents' ``relationship`` (a stream's loop keeps
    streaming): "" for a many-to-many, whose link table has no model to write."""
    if relationship.secondary is not None:
        return ""
    target = relationship.target_name
    if relationship.uselist:  # one-to-many: the target's foreign key
        column = relationship.fk_column
        values = "ids"
    else:  # many-to-one: the target's key, from the parents' foreign key values
        column = table_info(relationship.target).primary_key.name
        values = f"{relationship.fk_column}s"
    return f"session.find({target}).filter({target}.{column}.in_({values})).to_list()"


def record_eager_load(
    relationship: Any, strategy: str, batch: Any = None, related: Any = None
) -> None:
    """An eager load filled ``relationship`` for a batch of parents in this scope."""
    settings = settings_module._settings
    if not settings.enabled:
        return
    scope = current_scope(session=None if batch is None else batch.session)
    if scope is None:
        return
    mark = _mark_of(user_frame(sys._getframe(1)))
    if batch is not None and batch.parents:
        parents = result_of(batch.parents[0])
        if related:
            _note_source(scope, related, parents, relationship, strategy, None)
        if batch.depth == 0 and parents is not None:
            # The eager load runs inside the query's to_list(): its line is the query's.
            _remember_query(parents, mark)
    if not scope.tracks_eager_loads:
        return
    site = call_site(mark)
    model = relationship.owner.__name__
    key = (model, relationship.name, site.filepath, site.lineno)
    if key in scope.eager_loads or len(scope.eager_loads) >= MAX_SITES_PER_SCOPE:
        return
    scope.eager_loads[key] = UnusedEagerLoad(
        model, relationship.name, relationship.target_name, strategy, site
    )
    scopes.eager_scopes[id(scope)] = scope
    if scope.ended:  # it reports nothing more (checked after the add: `finish` pops it)
        scopes.eager_scopes.pop(id(scope), None)
    # Reads already recorded did not mark this load (or this scope): record again.
    scopes.eager_marked.clear()


def record_query(rows: list[Any]) -> None:
    """A query returned ``rows``: remember where it was written, for advice about
    loops over them. Per multi-row query: a short frame walk and a dict entry."""
    if len(rows) < 2 or not settings_module._settings.enabled:
        return
    result = result_of(rows[0])
    if result is not None:
        _remember_query(result, _mark_of(user_frame(sys._getframe(1))))


def note_eager_use(relationship: Any, current: Any) -> None:
    """`record_eager_use` for a read under the context ``current`` (not suppressed),
    unless the last one recorded for ``relationship`` was under the same context
    and explicit block: its marks are then in place (`scopes.eager_marked`).
    The caller has checked that some scope holds eager loads (`scopes.eager_scopes`)."""
    explicit = _explicit_scope()
    marked = _eager_marked.get(relationship)
    if marked is not None and marked[0] is current and marked[1] is explicit:
        return
    # Remembered before the marks are made: a scope gaining an eager load meanwhile
    # (another thread) clears it, so no read is skipped on a stale entry.
    _eager_marked[relationship] = (current, explicit)
    record_eager_use(relationship)


def record_eager_use(relationship: Any) -> None:
    """An eager-loaded value was read: that eager load was worth its query.

    Marked in the explicit block around the read and in the request: a read
    inside ``n1_ignore()`` or a nested ``n1_scope()`` still uses what the
    request loaded (calling it unused would advise creating an N+1)."""
    key = (relationship.owner.__name__, relationship.name)
    explicit = _explicit_scope()
    if explicit is not None and explicit is not IGNORED and explicit.eager_loads:
        explicit.eager_used.add(key)
    scope = scopes.ambient_scope(create=False)
    if scope is not None and scope.eager_loads:
        scope.eager_used.add(key)
