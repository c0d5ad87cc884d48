"""What assigning a many-to-many list, or ``add()`` / ``remove()`` on it, changes.

Two things, at the call: the lists the session holds (the owner's, when known,
and the other side's loaded ones) show the change at once, and the owner's
`LinkChanges` record the links the next flush must write. A new owner records
nothing: it has no links yet, and its whole list is written when it is inserted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from data_bridge_core.link_changes import changes_for
from data_bridge_core.relation_values import (
    MISSING,
    append_backref,
    remove_backref,
    set_loaded,
)
from data_bridge_core.schema.relation import ASSIGNED, NOLOAD
from data_bridge_core.state import InstanceState, own_state

if TYPE_CHECKING:
    from data_bridge_core.schema.table import Table


def known_list(state: InstanceState, name: str) -> list[Table] | None:
    """The list as the session knows it (None: never read, or only noload()'s empty one)."""
    relations = state.relations
    if relations is None:
        return None
    value = relations.get(name, MISSING)
    if value is MISSING or not isinstance(value, list):
        return None
    if state.loaded_via is not None and state.loaded_via.get(name) == NOLOAD:
        return None
    return value


def record_assignment(
    name: str,
    back: str | None,
    instance: Table,
    state: InstanceState,
    value: list[Table],
    held_targets: Callable[[], list[Table]],
) -> None:
    """``instance.<name> = value``: the difference from the known list is recorded; a
    list never read replaces the links whole. ``held_targets`` gives the session's
    objects of the target model (their loaded lists may hold the instance)."""
    previous = known_list(state, name)
    set_loaded(instance, name, value, ASSIGNED)
    kept = {id(item) for item in value}
    if state.persistent:
        changes = changes_for(state, name)
        if previous is None:
            changes.replace(value)
        else:
            before = {id(item) for item in previous}
            for item in value:
                if id(item) not in before:
                    changes.link(item)
            for item in previous:
                if id(item) not in kept:
                    changes.unlink(item)
    if not back:
        return
    if previous is not None:
        dropped = [item for item in previous if id(item) not in kept]
    else:  # not loaded: any held target whose loaded list has the instance
        dropped = [item for item in held_targets() if id(item) not in kept]
    # A pair changed from the other side before: this assignment is the last word on it,
    # so the other side must not write the opposite at the flush (whichever side it
    # writes first). A loaded list follows the other side's changes, so those pairs are
    # among the previous members; a list never read may drop any held target.
    for item in value:
        _decided_here(item, back, instance, linked=True)
    for item in dropped:
        _decided_here(item, back, instance, linked=False)
    for item in dropped:
        remove_backref(item, back, instance)
    for item in value:
        append_backref(item, back, instance)


def _decided_here(target: Table, back: str, instance: Table, *, linked: bool) -> None:
    """Settle a change of the pair (target, instance) recorded on ``target``'s side."""
    other = own_state(target)
    if other is not None and other.links is not None:
        changes = other.links.get(back)
        if changes is not None:
            changes.decided_from_other_side(instance, linked)


def record_link(
    name: str,
    back: str | None,
    instance: Table,
    state: InstanceState,
    target: Table,
    *,
    linked: bool,
) -> None:
    """``instance.<name>.add(target)`` (``linked``) or ``.remove(target)``."""
    current = known_list(state, name)
    if current is None and not state.persistent:
        current = []  # a new owner has no links: its list starts empty
        set_loaded(instance, name, current, ASSIGNED)
    if current is not None:
        present = any(item is target for item in current)
        if linked and not present:
            current.append(target)
        elif not linked and present:
            current[:] = [item for item in current if item is not target]
    if state.persistent:
        changes = changes_for(state, name)
        changes.link(target) if linked else changes.unlink(target)
    if not back:
        return
    # The same pair, changed from the other side before: this call is the last word.
    _decided_here(target, back, instance, linked=linked)
    if linked:
        append_backref(target, back, instance)
    else:
        remove_backref(target, back, instance)
