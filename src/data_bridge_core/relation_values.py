"""Relationship values held on an instance: stored, read, and kept in step on the other side.

A loaded (or assigned) value lives in the instance's state (``relations``),
with how it got there (``loaded_via``). An eager load leaves the rows that
still share their result's state (`ResultInfo`) without a state of their own:
their values are kept per result (`ResultRelations`) and move into a row's
own state when it gets one (`state_of`), so a page whose back-references are
never read builds no state per row. When one side of a bidirectional
relationship changes, the other side's *loaded* list follows; a list that
is not loaded is read from the database when it is awaited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from data_bridge_core.state import STATE_KEY, InstanceState, ResultInfo, own_state, state_of

if TYPE_CHECKING:
    from data_bridge_core.schema.table import Table

MISSING: Any = object()


def set_loaded(instance: Table, name: str, value: Any, via: str, *, overwrite: bool = True) -> None:
    """Store a relationship value on an instance and remember how it was loaded."""
    state: Any = getattr(instance, STATE_KEY)
    if state.__class__ is not InstanceState:
        state = state_of(instance)
    relations = state.relations
    if relations is None:
        state.relations = {name: value}
        state.loaded_via = {name: via}
        return
    if not overwrite and name in relations:
        return
    relations[name] = value
    state.loaded_via[name] = via


class ResultRelations:
    """Relationship values eager loads set on the rows sharing one result's state.

    By relationship name: how it was loaded, and the value of each row by
    ``id(row)`` (a row sharing the result lives as long as the result is held
    by it, so its id is not reused meanwhile). Dropped with the rows'
    relationship values at rollback and close (`IdentityMap`).
    """

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, dict[int, Any]]] = {}

    def give(self, obj: Table, own: InstanceState) -> None:
        key = id(obj)
        for name, (via, by_row) in self.values.items():
            value = by_row.get(key, MISSING)
            if value is MISSING:
                continue
            if own.relations is None:
                own.relations = {}
                own.loaded_via = {}
            own.relations[name] = value
            assert own.loaded_via is not None
            own.loaded_via[name] = via

    def lookup(self, obj: Table, name: str) -> tuple[Any, str | None]:
        """(value, how it was loaded) of ``obj``, or (MISSING, None)."""
        entry = self.values.get(name)
        if entry is None:
            return MISSING, None
        value = entry[1].get(id(obj), MISSING)
        return value, (None if value is MISSING else entry[0])


def shared_lookup(state: Any, obj: Table, name: str) -> tuple[Any, str | None]:
    """(value, via) of a row still sharing its result's state, or (MISSING, None)."""
    shared: Any = state.shared_relations if state.__class__ is ResultInfo else None
    if shared is None:
        return MISSING, None
    found: tuple[Any, str | None] = shared.lookup(obj, name)
    return found


def share_loaded(
    result: ResultInfo,
    name: str,
    via: str,
    by_row: dict[int, Any],
    objects: list[Table],
    *,
    overwrite: bool = True,
) -> None:
    """Set ``name`` on the rows sharing ``result`` (``by_row``: id(row) -> value;
    ``objects``: those rows, maybe among others): kept on the result, or on each row
    when the result already holds that relationship for some rows (the values are
    not merged)."""
    shared: Any = result.shared_relations
    if shared is None:
        shared = ResultRelations()
        result.shared_relations = shared
    elif name in shared.values:
        for obj in [o for o in objects if getattr(o, STATE_KEY) is result]:
            set_loaded(obj, name, by_row[id(obj)], via, overwrite=overwrite)
        return
    shared.values[name] = (via, by_row)


def remove_backref(target: Table, name: str, item: Table) -> None:
    state = own_state(target)
    if state is None or state.relations is None or name not in state.relations:
        return
    current = state.relations[name]
    if isinstance(current, list):
        current[:] = [x for x in current if x is not item]


def append_backref(target: Table, name: str, item: Table) -> None:
    state = own_state(target)
    if state is None or state.relations is None or name not in state.relations:
        return  # not loaded: it will be read from the database when needed
    current = state.relations[name]
    if isinstance(current, list):
        if not any(x is item for x in current):
            current.append(item)
    else:
        state.relations[name] = item
