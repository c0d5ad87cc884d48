"""Keys copied between related objects around their writes, and what they reach.

Before a row is written, the key of each many-to-one object it was given is
copied into its foreign-key column (`pull_foreign_keys`); once a parent is
inserted, its new key goes into the children it was given
(`push_foreign_keys`). `related_objects` lists what a save cascades to.
"""

from __future__ import annotations

from collections.abc import Iterable

from data_bridge_core.errors import InvalidStateError
from data_bridge_core.schema.relation import MANY_TO_ONE, ONE_TO_MANY
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.state import STATE_KEY, InstanceState, own_state


def holding_relations(objects: Iterable[Table]) -> list[Table]:
    """The objects holding relationship values (their own state has some), without a
    Python call per object: a flush passes over every pending object this way twice (once
    for a model without relationships)."""
    return [
        obj
        for obj in objects
        if (state := getattr(obj, STATE_KEY)).__class__ is InstanceState and state.relations
    ]


def related_objects(obj: Table) -> list[Table]:
    """Objects assigned to the relationships of ``obj`` (for save cascades)."""
    state = own_state(obj)
    if state is None or not (state.relations or state.links):
        return []
    found: list[Table] = []
    for value in (state.relations or {}).values():
        if isinstance(value, list):
            found.extend(value)
        elif value is not None:
            found.append(value)
    if state.links:  # linked by add() to a list never read
        for changes in state.links.values():
            found.extend(changes.to_link())
    return found


def pull_foreign_keys(obj: Table) -> None:
    """Copy the primary key of each related many-to-one object into ``obj``'s FK column."""
    state = own_state(obj)
    if state is None or not state.relations:
        return
    info = table_info(type(obj))
    for name, value in state.relations.items():
        rel = info.relationships.get(name)
        if rel is None or value is None or rel.direction != MANY_TO_ONE:
            continue
        target_pk = value.__dict__.get(table_info(rel.target).primary_key.name)
        if target_pk is not None and obj.__dict__.get(rel.fk.name) != target_pk:
            setattr(obj, rel.fk.name, target_pk)


def push_foreign_keys(obj: Table) -> None:
    """Copy ``obj``'s primary key into the FK column of the children it was given."""
    state = own_state(obj)
    if state is None or not state.relations:
        return
    info = table_info(type(obj))
    pk = obj.__dict__.get(info.primary_key.name)
    if pk is None:
        return
    for name, value in state.relations.items():
        rel = info.relationships.get(name)
        if rel is None or rel.direction != ONE_TO_MANY or value is None:
            continue
        for child in value if isinstance(value, list) else [value]:
            if child.__dict__.get(rel.fk.name) != pk:
                setattr(child, rel.fk.name, pk)


def insert_levels(model: type[Table], objects: list[Table]) -> list[list[Table]]:
    """``objects`` (new rows of ``model``) in the order their INSERTs must go: in one
    batch for most tables; for a self-referencing table, level by level, each new
    row after the new rows it points to, so its foreign key can be pulled from them.

    Raises `InvalidStateError` when new rows point to each other in a cycle (no
    order of INSERTs can give either the other's key).
    """
    info = table_info(model)
    names = [
        rel.name
        for rel in info.relationships.values()
        if rel.direction == MANY_TO_ONE and rel.target is model
    ]
    if not names or len(objects) < 2:
        return [objects]
    new = {id(obj) for obj in objects}

    def parents(obj: Table) -> list[Table]:
        state = own_state(obj)
        values = state.relations if state is not None else None
        if not values:
            return []
        return [v for name in names if (v := values.get(name)) is not None and id(v) in new]

    # Depth of each row: 0 without a new parent, else one more than its deepest new
    # parent. Iterative, so a long chain of new rows needs no deep recursion.
    depth: dict[int, int] = {}
    open_rows: set[int] = set()
    for start in objects:
        stack: list[tuple[Table, bool]] = [(start, False)]
        while stack:
            obj, expanded = stack.pop()
            key = id(obj)
            if key in depth:
                continue
            if expanded:
                depth[key] = 1 + max((depth[id(p)] for p in parents(obj)), default=-1)
                open_rows.discard(key)
                continue
            if key in open_rows:
                raise InvalidStateError(
                    f"new {model.__name__} objects point to each other in a cycle through "
                    f"{', '.join(names)}: insert one of them first (flush), then link it"
                )
            open_rows.add(key)
            stack.append((obj, True))
            stack.extend((p, False) for p in parents(obj) if id(p) not in depth)
    if not any(depth.values()):
        return [objects]
    levels: list[list[Table]] = [[] for _ in range(max(depth.values()) + 1)]
    for obj in objects:
        levels[depth[id(obj)]].append(obj)
    return levels
