"""Relationships between models: ``posts: list[Post] = relationship(...)``.

`Relationship` is the class attribute behind ``User.posts``: a descriptor.
Reading it on an instance starts the lazy load (`Relationship.load`, the
seam an instrumentation wraps), which serves the value already loaded for
that instance or runs one SELECT and caches the result for the rest of the
session; a list relationship comes wrapped in a `RelatedList`, which also
adds and removes many-to-many links. Assigning it records what the next
flush writes. What the relationship connects is resolved on first use
(`relationship_mapping`), the SQL reading across it is built from that
(`relationship_sql`), and the links it changes are kept in `link_changes`.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Generic

from typing_extensions import TypeVar

from data_bridge_core.collection_changes import record_assignment, record_link
from data_bridge_core.errors import (
    InvalidStateError,
    ModelDefinitionError,
    RaiseLoadError,
    RelationshipError,
    UnsupportedOperationError,
    described,
)
from data_bridge_core.link_sql import LinkSql
from data_bridge_core.related_list import RelatedList
from data_bridge_core.relation_values import MISSING, append_backref, set_loaded, shared_lookup
from data_bridge_core.relationship_mapping import (
    RelationshipDeclared,
    RelationshipMapping,
    parse_annotation,
    resolve_mapping,
)
from data_bridge_core.relationship_sql import RelationshipSql, SelfExists
from data_bridge_core.schema.expressions import Exists, Expression
from data_bridge_core.schema.relation import (
    ASSIGNED,
    MANY_TO_MANY,
    MANY_TO_ONE,
    NOLOAD,
    ONE_TO_MANY,
    RAISE,
    RelationshipDeclaration,
)
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.state import STATE_KEY, InstanceState, own_state, session_of, state_of

if TYPE_CHECKING:
    from data_bridge_core.schema.column import ColumnInfo
    from data_bridge_core.session import Session

__all__ = [
    "MANY_TO_MANY",
    "MANY_TO_ONE",
    "NOLOAD",
    "ONE_TO_MANY",
    "RAISE",
    "RelatedList",
    "Relationship",
    "relationship",
    "set_loaded",
]


def relationship(
    back_populates: str | None = None,
    *,
    secondary: str | None = None,
    foreign_key: str | None = None,
    order_by: str | None = None,
) -> Any:
    """Declare a relationship; the annotation (``list[Post]`` or ``User``) names the target.

    ``secondary`` names the association table of a many-to-many
    (``"article_tags"``, mapped by a model with a foreign key to each side, the
    pair its primary key or a ``Settings.unique`` group);
    ``foreign_key`` names the column that links the two tables (``"author_id"``)
    when there is more than one candidate; ``order_by`` is a field of the
    target used to order lists (default: primary key).
    """
    return Relationship(
        back_populates=back_populates,
        secondary=secondary,
        foreign_key=foreign_key,
        order_by=order_by,
    )


# For type checkers: the owner model and the target model (``Relationship[User, Post]``
# is ``User.posts``), so that ``join()`` widens what a query filters on and ``any()``
# takes conditions on the target.
Owner = TypeVar("Owner", default=Any)
Target = TypeVar("Target", default=Any)


class Relationship(RelationshipDeclaration, Generic[Owner, Target]):
    """The class attribute behind ``User.posts``; its properties are read-only state."""

    strategy = "select"

    def __init__(
        self,
        back_populates: str | None = None,
        foreign_key: str | None = None,
        order_by: str | None = None,
        secondary: str | None = None,
    ) -> None:
        self.back_populates = back_populates
        self.secondary = secondary
        self._foreign_key = foreign_key
        self._order_by = order_by
        self.name = ""
        self.owner: type[Table] = Table
        self.annotation: Any = None
        self._mapping: RelationshipMapping | None = None
        self._sql: RelationshipSql | None = None
        self._link_sql: LinkSql | None = None

    # -- declaration ----------------------------------------------------------

    def bind(self, owner: type[Table], name: str, annotation: Any) -> None:
        if self.owner is not Table and self.owner is not owner:
            # Inherited declaration: every subclass gets its own copy.
            raise ModelDefinitionError(f"relationship {name!r} is already bound to {self.owner}")
        self.owner = owner
        self.name = name
        self.annotation = annotation

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @property
    def mapping(self) -> RelationshipMapping:
        """What the relationship connects (resolved on first use, once the models exist)."""
        mapping = self._mapping
        if mapping is None:
            declared = RelationshipDeclared(
                self.owner,
                self.name,
                self.annotation,
                self.back_populates,
                self.secondary,
                self._foreign_key,
                self._order_by,
            )
            mapping = self._mapping = resolve_mapping(declared)
        return mapping

    @property
    def sql(self) -> RelationshipSql:
        """The statements reading across the relationship."""
        sql = self._sql
        if sql is None:
            sql = self._sql = RelationshipSql(self.owner, self.mapping)
        return sql

    @property
    def link_sql(self) -> LinkSql:
        """Many-to-many: the writes of its association table."""
        link_sql = self._link_sql
        if link_sql is None:
            owner_fk, _, target_fk, _ = self.link_columns
            association = self.mapping.association
            assert association is not None
            link_sql = self._link_sql = LinkSql(table_info(association), owner_fk, target_fk)
        return link_sql

    # -- read-only state --------------------------------------------------------

    @property
    def association(self) -> type[Table] | None:
        """The association model of a many-to-many (None otherwise)."""
        return self.mapping.association

    @property
    def link_columns(self) -> tuple[ColumnInfo, ColumnInfo, ColumnInfo, ColumnInfo]:
        """Many-to-many: (association column -> owner, owner's referenced column,
        association column -> target, target's referenced column)."""
        mapping = self.mapping
        if mapping.association is None:
            raise RelationshipError(f"{self!r} is not a many-to-many")
        assert mapping.owner_key and mapping.target_fk and mapping.target_key
        return mapping.fk, mapping.owner_key, mapping.target_fk, mapping.target_key

    @property
    def target(self) -> type[Table]:
        return self.mapping.target

    @property
    def target_name(self) -> str:
        if self._mapping is None:
            return parse_annotation(self.annotation, f"{self.owner.__name__}.{self.name}")[0]
        return self._mapping.target.__name__

    @property
    def direction(self) -> str:
        return self.mapping.direction

    @property
    def uselist(self) -> bool:
        return self.mapping.uselist

    @property
    def fk(self) -> ColumnInfo:
        return self.mapping.fk

    @property
    def fk_column(self) -> str:
        return self.mapping.fk.name

    @property
    def select_in_sql(self) -> str:
        """``SELECT ... WHERE key = ANY(%s)``: one query for a batch of parents."""
        return self.sql.select_in

    @property
    def join_condition(self) -> str:
        """The ON condition linking the owner's table with the target's (to-one only)."""
        return self.sql.join_condition

    # -- filters across the relationship ------------------------------------------

    def any(self, *criteria: Expression[Target] | bool) -> Expression[Owner]:
        """``EXISTS`` a related row matching ``criteria``: ``User.posts.any(Post.title == "x")``."""
        if not self.uselist:
            raise UnsupportedOperationError(
                f"{self!r} is a single object: write {self.owner.__name__}.{self.name}.has(...)"
            )
        return self._exists(criteria, "any")

    def has(self, *criteria: Expression[Target] | bool) -> Expression[Owner]:
        """``EXISTS`` the related object matching ``criteria``: ``Post.author.has(...)``."""
        if self.uselist:
            raise UnsupportedOperationError(
                f"{self!r} is a list: write {self.owner.__name__}.{self.name}.any(...)"
            )
        return self._exists(criteria, "has")

    def _exists(self, criteria: tuple[Expression | bool, ...], method: str) -> Expression:
        target = self.target
        self_many = target is self.owner and self.association is not None
        if target is self.owner and not self_many:
            raise UnsupportedOperationError(
                f"{self!r}.{method}() on a relationship of a model to itself needs table "
                "aliases, made only for a many-to-many; use session.execute() with your own SQL"
            )
        checked: list[Expression] = []
        for criterion in criteria:
            if not isinstance(criterion, Expression):
                raise TypeError(
                    f"{self!r}.{method}() takes expressions such as "
                    f"{target.__name__}.id == 1, got {described(criterion)}"
                )
            for model in criterion.models():
                if model is not target and not issubclass(target, model):
                    raise UnsupportedOperationError(
                        f"{self!r}.{method}() filters {target.__name__} rows; it cannot read "
                        f"a column of {model.__name__}"
                    )
            checked.append(criterion)
        combined: Expression | None = None
        for criterion in checked:
            combined = criterion if combined is None else combined & criterion
        if self_many and combined is not None:
            return SelfExists(self.owner, self.sql, combined)
        from_sql, correlation = self.sql.exists_parts(reads_target=combined is not None)
        return Exists(self.owner, from_sql, correlation, combined)

    def strategy_for(self, instance: Table) -> str:
        state = own_state(instance)
        if state is not None and state.strategies is not None:
            return state.strategies.get(self.name, self.strategy)
        return self.strategy

    def loaded_via(self, instance: Table) -> str | None:
        state = own_state(instance)
        if state is None:
            return shared_lookup(getattr(instance, STATE_KEY), instance, self.name)[1]
        if state.loaded_via is None:
            return None
        return state.loaded_via.get(self.name)

    def _loaded_value(self, instance: Table) -> Any:
        """The value held for ``instance`` (its own state's, or its result's), or MISSING."""
        state = getattr(instance, STATE_KEY)
        if state.__class__ is InstanceState:
            relations = state.relations
            return MISSING if relations is None else relations.get(self.name, MISSING)
        return shared_lookup(state, instance, self.name)[0]

    def is_loaded(self, instance: Table) -> bool:
        """True when awaiting the relationship would not run SQL."""
        if self._loaded_value(instance) is not MISSING:
            return True
        if self.direction == MANY_TO_ONE:
            fk_value = instance.__dict__.get(self.fk.name)
            if fk_value is None:
                return True
            session = session_of(instance)
            return (
                session is not None and session.identity_lookup(self.target, fk_value) is not None
            )
        return False

    def read_loaded(self, instance: Table) -> Any:
        """The value already loaded on ``instance`` (no SQL): what ``loaded(obj).rel`` reads.

        A seam (docs/extension-points.md): every read of a loaded value outside
        ``await obj.rel`` comes through here, so an observer can tell an eager
        load that was used from one that was not. A many-to-one whose target the
        session holds needs no query either. Raises `RelationshipError`, naming
        the loader option to add, when the value is not loaded.
        """
        value = self._loaded_value(instance)
        if value is not MISSING:
            return value
        if self.direction == MANY_TO_ONE:
            key = instance.__dict__.get(self.fk.name)
            if key is None:
                return None
            session = session_of(instance)
            target = session.identity_lookup(self.target, key) if session is not None else None
            if target is not None:
                return target
        owner = type(instance).__name__
        raise RelationshipError(
            f"{owner}.{self.name} is not loaded, and serializing does not query: add "
            f".options(selectinload({owner}.{self.name})) to the query that loaded it"
        )

    def __repr__(self) -> str:
        return f"<relationship {self.owner.__name__}.{self.name}>"

    # -- descriptor ---------------------------------------------------------------

    def __get__(self, instance: Table | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        mapping = self._mapping
        if (mapping if mapping is not None else self.mapping).uselist:
            # load() is called here, not by the RelatedList: the caller's line is then
            # two frames up from it, as for a single object.
            return RelatedList(self, instance, self.load(instance))
        return self.load(instance)

    def __set__(self, instance: Table, value: Any) -> None:
        if self.uselist:
            if value is None:
                value = []
            if not isinstance(value, list):
                raise TypeError(
                    f"{self.owner.__name__}.{self.name} takes a list, got {described(value)}"
                )
            for item in value:
                self._check_target(item)
            if len({id(item) for item in value}) != len(value):
                # One row links once: the list holds each object once, as it reads back.
                unique: dict[int, Any] = {}
                for item in value:
                    unique.setdefault(id(item), item)
                value = list(unique.values())
        elif value is not None:
            self._check_target(value)
        if self.direction == MANY_TO_ONE and self.fk.primary_key:
            # The FK is part of the key: set it first, so that refusing to move a
            # stored row's key (Table.__setattr__ raises) leaves nothing half-assigned.
            key = None if value is None else value.__dict__.get(self._target_key_name)
            if value is None or key is not None:
                setattr(instance, self.fk.name, key)
        state: InstanceState = state_of(instance)
        if self.direction == MANY_TO_MANY:
            held = partial(self._held_targets, instance)  # read only when the list was not
            record_assignment(self.name, self.back_populates, instance, state, value, held)
        else:
            set_loaded(instance, self.name, value, ASSIGNED)
        if self.direction == MANY_TO_ONE:
            target_pk = (
                None
                if value is None
                else value.__dict__.get(table_info(self.target).primary_key.name)
            )
            if value is None or target_pk is not None:
                setattr(instance, self.fk.name, target_pk)
            if value is not None and self.back_populates:
                append_backref(value, self.back_populates, instance)
        elif self.direction == ONE_TO_MANY:
            for item in value if self.uselist else ([value] if value is not None else []):
                if self.back_populates:
                    set_loaded(item, self.back_populates, instance, "assigned")
        if state.owner is not None:
            state.owner.note_related(instance)

    def change_link(self, instance: Table, target: Any, *, linked: bool) -> None:
        """`RelatedList.add` / `.remove`: link or unlink one target at the next flush."""
        if self.direction != MANY_TO_MANY:
            child = f"{self.target.__name__}.{self.back_populates or self.fk.name}"
            raise UnsupportedOperationError(
                f"{self.owner.__name__}.{self.name} is a one-to-many; add() and remove() "
                f"change many-to-many links: set {child} instead"
            )
        self._check_target(target)
        state = state_of(instance)
        if state.persistent and state.owner is None:
            raise InvalidStateError(
                f"{self.owner.__name__}.{self.name}: the {self.owner.__name__} object is stored "
                "but not in a session: add it to one (session.add) before changing its links"
            )
        record_link(self.name, self.back_populates, instance, state, target, linked=linked)
        if state.owner is not None:
            state.owner.note_related(instance)

    def _held_targets(self, instance: Table) -> list[Table]:
        session = session_of(instance)
        return session.held_objects(self.target) if session is not None else []

    @property
    def _target_key_name(self) -> str:
        return table_info(self.target).primary_key.name

    def _check_target(self, value: Any) -> None:
        if not isinstance(value, self.target):
            raise TypeError(
                f"{self.owner.__name__}.{self.name} takes {self.target.__name__} objects, "
                f"got {type(value).__name__}"
            )

    # -- the lazy-load seam ---------------------------------------------------------

    async def load(self, instance: Table) -> Any:
        """The value of ``await instance.<name>``: cached, or one SELECT."""
        value: Any
        state: Any = getattr(instance, STATE_KEY)
        if state.__class__ is InstanceState:
            relations = state.relations
            if relations is not None and self.name in relations:
                return relations[self.name]
        else:
            shared = state.shared_relations
            if shared is not None:  # set by an eager load: no state of its own needed
                entry = shared.values.get(self.name)  # ResultRelations.lookup, inlined
                if entry is not None:
                    value = entry[1].get(id(instance), MISSING)
                    if value is not MISSING:
                        return value
            state = state_of(instance)
        strategy = self.strategy_for(instance)
        if strategy == RAISE:
            raise RaiseLoadError(
                f"{self.owner.__name__}.{self.name} is configured with raiseload(): load it "
                f"eagerly, e.g. selectinload({self.owner.__name__}.{self.name})"
            )
        if strategy == NOLOAD:
            value = [] if self.uselist else None
            set_loaded(instance, self.name, value, NOLOAD)
            return value
        session = state.session
        if session is None:
            if not state.persistent:
                value = [] if self.uselist else None
                return value
            raise InvalidStateError(
                f"{self.owner.__name__}.{self.name}: the instance is not attached to a session"
            )
        value = await self._select(session, instance, state)
        set_loaded(instance, self.name, value, "select")
        return value

    async def _select(self, session: Session, instance: Table, state: InstanceState) -> Any:
        select = self.sql.select
        if self.direction == MANY_TO_ONE:
            fk_value = instance.__dict__.get(self.fk.name)
            if fk_value is None:
                return None
            cached = session.identity_lookup(self.target, fk_value)
            if cached is not None:
                return cached
            rows = await session.load_rows(self.target, select, [fk_value])
            return rows[0] if rows else None
        if not state.persistent:
            return [] if self.uselist else None
        if self.direction == MANY_TO_MANY:
            # One query joining the association table; the other side's lists are
            # not filled from it (each target's full list is not known here).
            key = instance.__dict__[self.link_columns[1].name]
            rows = await session.load_rows(self.target, select, [key])
            return self._with_unflushed_links(state, rows)
        pk = instance.__dict__[table_info(self.owner).primary_key.name]
        rows = await session.load_rows(self.target, select, [pk])
        if self.back_populates:
            for row in rows:
                set_loaded(row, self.back_populates, instance, "select", overwrite=False)
        if self.uselist:
            return rows
        return rows[0] if rows else None

    def _with_unflushed_links(self, state: InstanceState, rows: list[Table]) -> list[Table]:
        """The stored list with the links add()/remove() changed since the last flush."""
        changes = state.links.get(self.name) if state.links is not None else None
        if changes is None:
            return rows
        if changes.members is not None:
            return list(changes.members)
        gone = {id(item) for item in changes.to_unlink()}
        listed = [item for item in rows if id(item) not in gone]
        present = {id(item) for item in listed}
        listed.extend(item for item in changes.to_link() if id(item) not in present)
        return listed
