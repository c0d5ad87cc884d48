"""Per-object ORM state: what the session knows about one model instance.

Column values live in the instance ``__dict__``; the bookkeeping lives in an
`InstanceState` stored under ``_db_state``. A state never calls the session:
it reports changes to its *owner* (the session's identity map, through the
`StateOwner` protocol), which is how a lower layer talks to a higher one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from data_bridge_core.link_changes import LinkChanges
    from data_bridge_core.schema.table import Table
    from data_bridge_core.session import Session

STATE_KEY = "_db_state"

# The state is read with getattr and stored with object.__setattr__, not through
# ``obj.__dict__``: a loaded row keeps its values in CPython's compact per-object
# array until something asks for its ``__dict__`` (see hydration.py).
_store = object.__setattr__


class StateOwner(Protocol):
    """What an object's state reports to: the identity map of one session."""

    @property
    def session(self) -> Session | None: ...

    def note_change(self, obj: Table, name: str, old: Any) -> None:
        """A column of a persistent object changed; ``old`` is the value it had."""

    def note_related(self, obj: Table) -> None:
        """A relationship of the object was assigned (cascade and FK sync at flush)."""


class SharedRelations(Protocol):
    """Relationship values an eager load gave the rows of one result without giving
    each row a state of its own (``relation_values.ResultRelations``)."""

    def give(self, obj: Table, own: InstanceState) -> None:
        """``obj`` gets its own state: put its values there."""


class ResultInfo:
    """Shared by every object hydrated from one result: how many rows it had.

    It is also the state of those objects until one needs its own (see
    `state_of`): hydration stores this one shared object instead of building
    an `InstanceState` per row, which halves the cost of a row.

    ``observer_data`` belongs to an observer of the ORM (an instrumentation):
    the core sets it to None and never reads it. It lives and dies with the
    result, so an observer keeps per-result notes without a side table.
    """

    __slots__ = ("__weakref__", "observer_data", "owner", "shared_relations", "size")

    def __init__(self, size: int = 0, owner: StateOwner | None = None) -> None:
        self.size = size
        self.owner = owner
        self.observer_data: Any = None
        # Relationship values of these rows set by an eager load (see `state_of`).
        self.shared_relations: SharedRelations | None = None

    @property
    def session(self) -> Session | None:
        owner = self.owner
        return None if owner is None else owner.session


class InstanceState:
    """ORM bookkeeping of one model instance (see `data_bridge_core.inspect`)."""

    __slots__ = (
        "changed",
        "deleted",
        "links",
        "loaded_via",
        "owner",
        "persistent",
        "relations",
        "result",
        "strategies",
    )

    def __init__(
        self, owner: StateOwner | None, result: ResultInfo | None, persistent: bool
    ) -> None:
        self.owner = owner
        self.result = result
        self.persistent = persistent
        self.deleted = False
        # Fields changed since the last flush (written by the next flush).
        self.changed: set[str] | None = None
        self.relations: dict[str, Any] | None = None
        self.loaded_via: dict[str, str] | None = None
        self.strategies: dict[str, str] | None = None
        # Many-to-many links changed since the last flush, by relationship name.
        self.links: dict[str, LinkChanges] | None = None

    # -- read-only view used by tools (N+1 detection, tests) ------------------

    @property
    def session(self) -> Session | None:
        owner = self.owner
        return None if owner is None else owner.session

    @property
    def pending(self) -> bool:
        return not self.persistent and not self.deleted and self.owner is not None

    @property
    def modified(self) -> frozenset[str]:
        return frozenset(self.changed or ())

    @property
    def result_size(self) -> int | None:
        return None if self.result is None else self.result.size


def state_of(obj: Table) -> InstanceState:
    """The instance's own state, made on first need for rows sharing their result's."""
    state = getattr(obj, STATE_KEY)
    if state.__class__ is InstanceState:
        return state
    own = InstanceState(state.owner, state, True)
    _store(obj, STATE_KEY, own)
    shared = state.shared_relations
    if shared is not None:  # what an eager load set for the result's rows
        shared.give(obj, own)
    return own


def own_state(obj: Table) -> InstanceState | None:
    """The instance's own state, or None while it shares its result's (nothing to read)."""
    state = getattr(obj, STATE_KEY)
    return state if state.__class__ is InstanceState else None


def result_of(obj: Table) -> ResultInfo | None:
    """The result that last returned an instance (shared by that result's rows; compare
    by identity, ``.size`` is its row count), None for objects built in Python.
    Reads without giving the instance its own state."""
    state = getattr(obj, STATE_KEY)
    return state if state.__class__ is ResultInfo else state.result


def session_of(obj: Table) -> Session | None:
    """The session an instance belongs to, without making it its own state."""
    owner = getattr(obj, STATE_KEY).owner
    return None if owner is None else owner.session
