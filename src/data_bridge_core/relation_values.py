"""Relationship values held on an instance: stored, read, and kept in step on the other side.

A loaded (or assigned) value lives in the instance's state (``relations``),
with how it got there (``loaded_via``). When one side of a bidirectional
relationship changes, the other side's *loaded* list follows; a list that
is not loaded is read from the database when it is awaited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from data_bridge_core.state import InstanceState, own_state, state_of

if TYPE_CHECKING:
    from data_bridge_core.schema.table import Table

MISSING = object()


def set_loaded(instance: Table, name: str, value: Any, via: str, *, overwrite: bool = True) -> None:
    """Store a relationship value on an instance and remember how it was loaded."""
    state: InstanceState = state_of(instance)
    if state.relations is None:
        state.relations = {}
        state.loaded_via = {}
    elif not overwrite and name in state.relations:
        return
    state.relations[name] = value
    assert state.loaded_via is not None
    state.loaded_via[name] = via


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
