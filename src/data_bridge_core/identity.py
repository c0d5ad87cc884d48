"""The identity map: one object per database row within a session.

Objects are found by model and *identity key*: the primary-key value (a
tuple would serve a composite key the same way: it is only ever a dict key).
The map is also the owner every object state reports to (`StateOwner`): it
keeps the set of modified objects and forwards each change to the
transaction's log, so that a rollback can put the old value back.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from data_bridge_core.schema.table import Table, TableInfo, table_info
from data_bridge_core.state import STATE_KEY, InstanceState, ResultInfo, state_of

if TYPE_CHECKING:
    from data_bridge_core.session import Session


class ChangeLog(Protocol):
    """What a transaction remembers so that a rollback can undo it in memory."""

    def record_change(self, obj: Table, name: str, old: Any) -> None: ...

    def record_inserted(self, obj: Table, generated: tuple[str, ...]) -> None: ...

    def record_inserted_batch(self, objects: list[Table], generated: tuple[str, ...]) -> None:
        """`record_inserted` of each object, for the rows of one INSERT."""

    def record_deleted(self, obj: Table) -> None: ...

    def record_stale(self, model: type[Table], key: Any) -> None:
        """A row changed in the database while no object of the session held it."""


# Dead result references kept at most before a prune (a few KiB).
_PRUNE_EVERY = 256


def identity_key(info: TableInfo, values: dict[str, Any]) -> Any:
    """The key of a row in the identity map, from its column values (a tuple if composite)."""
    if info.composite:
        return tuple([values[name] for name in info.key_names])
    return values[info.primary_key.name]


class IdentityMap:
    """The objects of one session by model and identity key (see module docstring)."""

    def __init__(self, session: Session, log: ChangeLog) -> None:
        self._session: Session | None = session
        self.log = log
        self.by_model: dict[type[Table], dict[Any, Table]] = {}
        # Persistent objects with changed columns (the next flush UPDATEs them).
        self.modified: dict[Table, None] = {}
        # Objects whose relationships were assigned (for cascades and FK sync).
        self.related: dict[Table, None] = {}
        # Shared states of hydrated rows, detached at close; weak, so a long session
        # does not keep one per query after its rows are gone. Plain references
        # pruned now and then: a WeakSet's add is Python code costing about a µs
        # per query (bench/README.md).
        self._results: list[weakref.ReferenceType[ResultInfo]] = []
        self._prune_at = _PRUNE_EVERY

    # -- StateOwner ---------------------------------------------------------------

    @property
    def session(self) -> Session | None:
        return self._session

    def forget_session(self) -> None:
        """The session closed (after `clear`): forget it, so it is not kept in a cycle."""
        self._session = None

    def note_change(self, obj: Table, name: str, old: Any) -> None:
        self.modified[obj] = None
        self.log.record_change(obj, name, old)

    def note_related(self, obj: Table) -> None:
        self.related[obj] = None

    def add_result(self, result: ResultInfo) -> None:
        """Detach ``result`` (and every row sharing it) when the map is cleared."""
        results = self._results
        results.append(weakref.ref(result))
        if len(results) >= self._prune_at:
            results[:] = [r for r in results if r() is not None]
            self._prune_at = len(results) + _PRUNE_EVERY

    @property
    def live_results(self) -> list[ResultInfo]:
        """The shared result states still referenced by some row."""
        return [r for r in map(weakref.ReferenceType.__call__, self._results) if r is not None]

    # -- lookups --------------------------------------------------------------------

    def model_map(self, model: type[Table]) -> dict[Any, Table]:
        found = self.by_model.get(model)
        if found is None:
            found = self.by_model[model] = {}
        return found

    def get(self, model: type[Table], key: Any) -> Table | None:
        found = self.by_model.get(model)
        return None if found is None else found.get(key)

    def key_of(self, obj: Table) -> Any:
        return identity_key(table_info(type(obj)), obj.__dict__)

    def put(self, obj: Table) -> None:
        """Hold ``obj`` under its identity key and make this map its owner."""
        self.model_map(type(obj))[self.key_of(obj)] = obj
        state_of(obj).owner = self

    def discard(self, obj: Table) -> None:
        """Stop holding ``obj`` (its state keeps its owner; see `detach`)."""
        found = self.by_model.get(type(obj))
        key = self.key_of(obj)
        if found is not None and found.get(key) is obj:
            del found[key]
        self.modified.pop(obj, None)
        self.related.pop(obj, None)

    def detach(self, obj: Table) -> None:
        self.discard(obj)
        state_of(obj).owner = None

    def __iter__(self) -> Iterator[Table]:
        for found in self.by_model.values():
            yield from found.values()

    def __len__(self) -> int:
        return sum(len(found) for found in self.by_model.values())

    def forget_relations(self) -> None:
        """Drop loaded relationship values: they may describe rows that changed."""
        # One pass over every loaded row, inlined; a shared state holds no relations
        # of its own, its result those an eager load set for all its rows.
        # (getattr, not __dict__: reading __dict__ would build a dict per loaded row.)
        for result in self.live_results:
            result.shared_relations = None
        for found in self.by_model.values():
            for obj in found.values():
                own = getattr(obj, STATE_KEY)
                if own.__class__ is InstanceState:
                    own.relations = None
                    own.loaded_via = None

    def clear(self, *, forget_relations: bool = False) -> None:
        """Detach every object (the session closes); one pass over the loaded rows."""
        for result in self.live_results:
            result.owner = None  # detaches every row still sharing it
            if forget_relations:
                result.shared_relations = None
        self._results.clear()
        self._prune_at = _PRUNE_EVERY
        for found in self.by_model.values():
            for obj in found.values():
                own = getattr(obj, STATE_KEY)
                if own.__class__ is InstanceState:
                    own.owner = None
                    if forget_relations:
                        own.relations = None
                        own.loaded_via = None
        self.by_model.clear()
        self.modified.clear()
        self.related.clear()
