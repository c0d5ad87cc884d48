"""What rows a write sent back change on the session's objects.

Values the database returned are shown on the loaded objects, each old one
logged first so that a rollback puts it back (`show_database_values`); rows
deleted leave the loaded lists of the objects the session holds
(`drop_from_loaded_lists`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from data_bridge_core.identity import ChangeLog, IdentityMap
from data_bridge_core.schema.relation import MANY_TO_MANY, ONE_TO_MANY
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.state import own_state


def show_database_values(log: ChangeLog, obj: Table, values: Iterable[tuple[str, Any]]) -> None:
    """Put column values the database returned on a loaded ``obj``; each one that
    differs (in value, or in type: ``1`` and ``1.0``) is logged first, so that a
    rollback puts the old one back."""
    d = obj.__dict__
    for name, value in values:
        old = d.get(name)
        if old != value or type(old) is not type(value):
            log.record_change(obj, name, old)
            d[name] = value


def drop_from_loaded_lists(identity: IdentityMap, gone: Sequence[Table]) -> None:
    """Deleted rows leave the loaded lists of held objects (``user.posts``, ``tag.articles``).

    A rollback forgets every loaded list, so one that reads the row again
    loads it from the database then.
    """
    if not gone:
        return
    ids = {id(obj) for obj in gone}
    models = {type(obj) for obj in gone}
    for model, held in identity.by_model.items():
        names = [
            rel.name
            for rel in table_info(model).relationships.values()
            if rel.direction in (ONE_TO_MANY, MANY_TO_MANY) and rel.target in models
        ]
        if not names:
            continue
        for obj in held.values():
            state = own_state(obj)
            if state is None or not state.relations:
                continue
            for name in names:
                value = state.relations.get(name)
                if isinstance(value, list):
                    if any(id(item) in ids for item in value):
                        value[:] = [item for item in value if id(item) not in ids]
                elif value is not None and id(value) in ids:  # a one-to-one
                    state.relations[name] = None
