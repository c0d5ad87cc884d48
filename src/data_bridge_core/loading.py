"""Loader options: ``selectinload``, ``joinedload``, ``raiseload``, ``noload``.

An eager load runs one level at a time through `EagerLoad.load`, the seam an
instrumentation wraps: ``selectinload`` issues one ``WHERE key = ANY(%s)``
query for all parents of the level; ``joinedload`` (many-to-one, top level)
is fetched by the parent query's LEFT JOIN and only populated here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from data_bridge_core.errors import UnsupportedOperationError, described
from data_bridge_core.relation_values import set_loaded, share_loaded
from data_bridge_core.relationships import (
    MANY_TO_MANY,
    MANY_TO_ONE,
    NOLOAD,
    RAISE,
    Relationship,
)
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.state import STATE_KEY, InstanceState, ResultInfo, state_of

if TYPE_CHECKING:
    from data_bridge_core.session import Session

SELECTINLOAD = "selectinload"
JOINED = "joined"


def _expect_relationship(value: object, option: str) -> Relationship:
    if not isinstance(value, Relationship):
        raise TypeError(
            f"{option}() takes a relationship such as User.posts, got {described(value)}"
        )
    return value


@dataclass(slots=True)
class EagerBatch:
    """One level of an eager load: the parents whose relationship is loaded together."""

    session: Session
    parents: list[Table]
    depth: int
    # joinedload only: parent index -> the related row's values from the JOIN.
    joined_rows: list[tuple[Any, ...] | None] = field(default_factory=list)

    @property
    def batch_count(self) -> int:
        return len(self.parents)


class LoaderOption:
    """Base of everything ``Query.options()`` accepts."""

    __slots__ = ("relationship",)

    def __init__(self, relationship: Relationship) -> None:
        self.relationship = relationship


class StrategyOption(LoaderOption):
    """``raiseload`` / ``noload``: changes what awaiting the relationship does."""

    __slots__ = ("strategy",)

    def __init__(self, relationship: Relationship, strategy: str) -> None:
        super().__init__(relationship)
        self.strategy = strategy

    def apply(self, instances: list[Table]) -> None:
        name = self.relationship.name
        for obj in instances:
            state: InstanceState = state_of(obj)
            if state.strategies is None:
                state.strategies = {}
            state.strategies[name] = self.strategy


class EagerLoad(LoaderOption):
    """What ``selectinload(...)`` and ``joinedload(...)`` return."""

    __slots__ = ("children", "strategy")

    def __init__(
        self, relationship: Relationship, strategy: str, children: tuple[LoaderOption, ...] = ()
    ) -> None:
        super().__init__(relationship)
        self.strategy = strategy
        self.children = children

    def options(self, *options: LoaderOption) -> EagerLoad:
        """Options for the next level.

        ``selectinload(User.posts).options(selectinload(Post.comments))``
        """
        target = self.relationship.target
        for opt in options:
            if not isinstance(opt, LoaderOption):
                raise TypeError(f"options() takes loader options, got {described(opt)}")
            if opt.relationship.owner is not target and not issubclass(
                target, opt.relationship.owner
            ):
                raise UnsupportedOperationError(
                    f"{opt.relationship!r} does not belong to {target.__name__}, the target of "
                    f"{self.relationship!r}"
                )
            if isinstance(opt, EagerLoad) and opt.strategy == JOINED:
                raise UnsupportedOperationError(
                    "joinedload() is supported on the query's own relationships only; "
                    "use selectinload() for nested levels"
                )
        return EagerLoad(self.relationship, self.strategy, self.children + options)

    async def load(self, batch: EagerBatch) -> list[Table]:
        """Load this relationship for every parent of the batch; returns the related objects."""
        if self.strategy == JOINED:
            return self._populate_joined(batch)
        return await self._select_in(batch)

    async def _select_in(self, batch: EagerBatch) -> list[Table]:
        # Column values by getattr: reading __dict__ would build a dict for every
        # loaded row, which otherwise keeps its values compact (hydration.py).
        rel = self.relationship
        name = rel.name
        parents = batch.parents
        if rel.direction == MANY_TO_ONE:
            fk = rel.fk.name
            keys = {getattr(p, fk) for p in parents} - {None}
            rows = (
                await batch.session.load_rows(rel.target, rel.select_in_sql, [list(keys)])
                if keys
                else []
            )
            target_pk = table_info(rel.target).primary_key.name
            by_pk = {getattr(r, target_pk): r for r in rows}
            found = by_pk.get
            _set_each(parents, name, [found(getattr(p, fk)) for p in parents], SELECTINLOAD)
            return rows
        if rel.direction == MANY_TO_MANY:
            return await self._select_in_links(batch)
        owner_pk = table_info(rel.owner).primary_key.name
        keys = {getattr(p, owner_pk) for p in parents} - {None}
        rows = (
            await batch.session.load_rows(rel.target, rel.select_in_sql, [list(keys)])
            if keys
            else []
        )
        fk = rel.fk.name
        back = rel.back_populates
        # One pass over the children: grouped by parent key and, for those still
        # sharing the result's state (all but the ones the session held), their
        # parent's key by id (their back-reference, kept on the result).
        result = getattr(rows[0], STATE_KEY) if rows else None
        if result.__class__ is not ResultInfo:
            result = None
        grouped: dict[Any, list[Table]] = {}
        shared_keys: dict[int, Any] = {}
        held: list[Table] = []
        for row in rows:
            key = getattr(row, fk)
            children = grouped.get(key)
            if children is None:
                grouped[key] = [row]
            else:
                children.append(row)
            if getattr(row, STATE_KEY) is result:
                shared_keys[id(row)] = key
            else:
                held.append(row)
        group = grouped.get
        if rel.uselist:
            # A list of its own for each parent: the session's lists are changed in place.
            values: list[Any] = [group(getattr(p, owner_pk)) or [] for p in parents]
        else:
            values = [
                listed[0] if (listed := group(getattr(p, owner_pk))) else None for p in parents
            ]
        # Lists on each parent's own state: they change in place (add(), a child's new
        # parent, a deleted child), found there by the flush and the other side.
        _set_each(parents, name, values, SELECTINLOAD, share=False)
        if back and rows:
            # Each child's many-to-one back to its parent (kept where one was loaded).
            by_key = {getattr(p, owner_pk): p for p in parents}
            if shared_keys:
                assert result is not None
                owners = dict(zip(shared_keys, map(by_key.get, shared_keys.values()), strict=True))
                share_loaded(result, back, SELECTINLOAD, owners, rows, overwrite=False)
            if held:
                owned = [by_key.get(getattr(r, fk)) for r in held]
                _set_each(held, back, owned, SELECTINLOAD, False)
        return rows

    async def _select_in_links(self, batch: EagerBatch) -> list[Table]:
        """Many-to-many: one query joining the association table for all parents."""
        rel = self.relationship
        owner_key = rel.link_columns[1].name
        keys = {getattr(p, owner_key) for p in batch.parents} - {None}
        pairs = (
            await batch.session.load_keyed_rows(rel.target, rel.select_in_sql, [list(keys)])
            if keys
            else []
        )
        grouped: dict[Any, list[Table]] = {}
        related: dict[int, Table] = {}
        for key, obj in pairs:
            grouped.setdefault(key, []).append(obj)
            related[id(obj)] = obj
        found = grouped.get
        for parent in batch.parents:
            # Eagerly on each parent: the lists of a many-to-many are kept in step by
            # add()/remove() and the flush through each object's own state.
            set_loaded(parent, rel.name, found(getattr(parent, owner_key)) or [], SELECTINLOAD)
        return list(related.values())

    def _populate_joined(self, batch: EagerBatch) -> list[Table]:
        rel = self.relationship
        hydrate = batch.session.hydrator(rel.target, len(batch.parents))
        objects = [None if values is None else hydrate(values) for values in batch.joined_rows]
        if len(objects) != len(batch.parents):
            raise ValueError("joined rows and parents differ in length")
        _set_each(batch.parents, rel.name, objects, JOINED)
        # The related objects once each, in order of first appearance.
        return list({id(obj): obj for obj in objects if obj is not None}.values())


def _set_each(
    objects: list[Table],
    name: str,
    values: list[Any],
    via: str,
    overwrite: bool = True,
    *,
    share: bool = True,
) -> None:
    """``set_loaded(objects[i], name, values[i], via)`` for a batch.

    ``share`` (a many-to-one's values, never changed in place): a row still
    sharing its result's state gets no state of its own; its value is kept on
    the result (`share_loaded`), given to the row if it ever needs its own
    state, and read from there meanwhile. ``overwrite=False``: a value already
    loaded on a row stays.
    """
    shared: dict[ResultInfo, dict[int, Any]] = {}
    for obj, value in zip(objects, values, strict=True):
        state: Any = getattr(obj, STATE_KEY)
        if state.__class__ is not InstanceState:
            if share:
                by_row = shared.get(state)
                if by_row is None:
                    by_row = shared[state] = {}
                by_row[id(obj)] = value
                continue
            state = state_of(obj)
        relations = state.relations
        if relations is None:
            state.relations = {name: value}
            state.loaded_via = {name: via}
        elif overwrite or name not in relations:
            relations[name] = value
            vias = state.loaded_via
            assert vias is not None  # set with relations
            vias[name] = via
    for result, by_row in shared.items():
        share_loaded(result, name, via, by_row, objects, overwrite=overwrite)


def selectinload(relationship: Any) -> EagerLoad:
    """Load the relationship for all results with one extra query per level."""
    return EagerLoad(_expect_relationship(relationship, "selectinload"), SELECTINLOAD)


def joinedload(relationship: Any) -> EagerLoad:
    """Load a many-to-one relationship in the same query with a LEFT OUTER JOIN."""
    rel = _expect_relationship(relationship, "joinedload")
    if rel.direction != MANY_TO_ONE:
        raise UnsupportedOperationError(
            f"joinedload() supports many-to-one relationships; use selectinload({rel!r}) "
            "for one-to-many"
        )
    return EagerLoad(rel, JOINED)


def raiseload(relationship: Any) -> StrategyOption:
    """Awaiting the relationship raises RaiseLoadError instead of querying."""
    return StrategyOption(_expect_relationship(relationship, "raiseload"), RAISE)


def noload(relationship: Any) -> StrategyOption:
    """Awaiting the relationship gives an empty value without querying."""
    return StrategyOption(_expect_relationship(relationship, "noload"), NOLOAD)


async def run_eager_loads(
    session: Session,
    parents: list[Table],
    options: tuple[LoaderOption, ...],
    depth: int,
    joined: dict[int, list[tuple[Any, ...] | None]] | None = None,
) -> None:
    """Apply the options level by level: each EagerLoad.load call is one level."""
    if not parents:
        return
    for index, option in enumerate(options):
        if isinstance(option, StrategyOption):
            option.apply(parents)
            continue
        assert isinstance(option, EagerLoad)
        batch = EagerBatch(session, parents, depth)
        if option.strategy == JOINED and joined is not None:
            batch.joined_rows = joined[index]
        related = await option.load(batch)
        if option.children:
            await run_eager_loads(session, related, option.children, depth + 1)
