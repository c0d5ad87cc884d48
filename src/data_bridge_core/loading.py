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
from data_bridge_core.relationships import (
    MANY_TO_MANY,
    MANY_TO_ONE,
    NOLOAD,
    RAISE,
    Relationship,
    set_loaded,
)
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.state import InstanceState, state_of

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
            for parent in parents:
                set_loaded(parent, name, by_pk.get(getattr(parent, fk)), SELECTINLOAD)
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
        grouped: dict[Any, list[Table]] = {}
        for row in rows:
            grouped.setdefault(getattr(row, fk), []).append(row)
        back = rel.back_populates
        for parent in parents:
            children = grouped.get(getattr(parent, owner_pk), [])
            set_loaded(
                parent,
                name,
                children if rel.uselist else (children[0] if children else None),
                SELECTINLOAD,
            )
            if back:
                for child in children:
                    set_loaded(child, back, parent, SELECTINLOAD, overwrite=False)
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
        for parent in batch.parents:
            set_loaded(
                parent, rel.name, grouped.get(getattr(parent, owner_key), []), SELECTINLOAD
            )
        return list(related.values())

    def _populate_joined(self, batch: EagerBatch) -> list[Table]:
        rel = self.relationship
        hydrate = batch.session.hydrator(rel.target, len(batch.parents))
        related: list[Table] = []
        seen: set[int] = set()
        for parent, values in zip(batch.parents, batch.joined_rows, strict=True):
            obj = None if values is None else hydrate(values)
            set_loaded(parent, rel.name, obj, JOINED)
            if obj is not None and id(obj) not in seen:
                seen.add(id(obj))
                related.append(obj)
        return related


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
