"""The identity map: one object per database row within a session.

Objects are found by model and *identity key*: the primary-key value (a
tuple would serve a composite key the same way: it is only ever a dict key).
The map is also the owner every object state reports to (`StateOwner`): it
keeps the set of modified objects and forwards each change to the
transaction's log, so that a rollback can put the old value back.

A result loaded while the map holds nothing of its model (the common case: a
list, an export) is held as a *batch*, a plain list of its objects, and
indexed by key only when the map is next looked into (any lookup, iteration
or count indexes every batch first). A dict entry costs about 29 bytes a row
and a store per row; a list slot 8 bytes and an append, and a session that
never looks up (read, respond, close) never builds the index.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from operator import attrgetter
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


_state_of_obj = attrgetter(STATE_KEY)

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
        self._by_model: dict[type[Table], dict[Any, Table]] = {}
        # Batches not indexed yet: (model, objects) (see the module docstring).
        self.pending: list[tuple[type[Table], list[Table]]] = []
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

    # -- batches --------------------------------------------------------------------

    def new_batch(self, model: type[Table]) -> list[Table]:
        """A list the caller fills with new objects of ``model`` whose keys the map
        does not hold (a result of distinct keys, loaded while the map held none
        of the model); they are indexed on the map's next lookup."""
        batch: list[Table] = []
        self.pending.append((model, batch))
        return batch

    def index_pending(self) -> None:
        """Put every batch into the per-model mappings (in place: row makers hold them)."""
        batches = self.pending[:]
        self.pending.clear()
        for model, batch in batches:
            if not batch:
                continue
            found = self._by_model.get(model)
            if found is None:
                found = self._by_model[model] = {}
            info = table_info(model)
            # attrgetter of the key names gives the key itself: a tuple when composite.
            key = attrgetter(*info.key_names)
            found.update(zip(map(key, batch), batch, strict=True))

    # -- lookups --------------------------------------------------------------------

    @property
    def by_model(self) -> dict[type[Table], dict[Any, Table]]:
        """Every held object by model and identity key (batches indexed first)."""
        if self.pending:
            self.index_pending()
        return self._by_model

    def model_map(self, model: type[Table]) -> dict[Any, Table]:
        if self.pending:
            self.index_pending()
        found = self._by_model.get(model)
        if found is None:
            found = self._by_model[model] = {}
        return found

    def get(self, model: type[Table], key: Any) -> Table | None:
        if self.pending:
            self.index_pending()
        found = self._by_model.get(model)
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

    def _own_states(self) -> set[Any]:
        # The distinct states of every held object, indexed or still in a batch,
        # gathered in C (no Python step per row): the rows of a result share one,
        # so the set is the results plus the objects' own states. getattr, not
        # __dict__: reading __dict__ would build a dict per loaded row.
        states: set[Any] = set()
        for found in self._by_model.values():
            states.update(map(_state_of_obj, found.values()))
        for _model, batch in self.pending:
            states.update(map(_state_of_obj, batch))
        return states

    def forget_relations(self) -> None:
        """Drop loaded relationship values: they may describe rows that changed."""
        # A shared state holds no relations of its own; its result holds those an
        # eager load set for all its rows.
        for result in self.live_results:
            result.shared_relations = None
        for own in self._own_states():
            if own.__class__ is InstanceState:
                own.relations = None
                own.loaded_via = None

    def clear(self, *, forget_relations: bool = False) -> None:
        """Detach every object (the session closes)."""
        for result in self.live_results:
            result.owner = None  # detaches every row still sharing it
            if forget_relations:
                result.shared_relations = None
        self._results.clear()
        self._prune_at = _PRUNE_EVERY
        for own in self._own_states():
            if own.__class__ is InstanceState:
                own.owner = None
                if forget_relations:
                    own.relations = None
                    own.loaded_via = None
        self._by_model.clear()
        self.pending.clear()
        self.modified.clear()
        self.related.clear()
