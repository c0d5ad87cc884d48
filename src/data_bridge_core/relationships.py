"""Relationships between models: ``posts: list[Post] = relationship(...)``.

``await user.posts`` calls `Relationship.load`, the lazy-load seam: it serves
the value already loaded for that instance, or runs one SELECT and caches the
result on the instance for the rest of the session.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from data_bridge_core.errors import (
    InvalidStateError,
    ModelDefinitionError,
    RaiseLoadError,
)
from data_bridge_core.schema import registry
from data_bridge_core.schema.relation import MANY_TO_ONE, ONE_TO_MANY, RelationshipDeclaration
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.state import InstanceState, own_state, session_of, state_of

if TYPE_CHECKING:
    from data_bridge_core.schema.column import ColumnInfo
    from data_bridge_core.session import Session

__all__ = ["MANY_TO_ONE", "NOLOAD", "ONE_TO_MANY", "RAISE", "Relationship", "relationship"]

# Strategies stored per instance by raiseload()/noload() options.
RAISE = "raise"
NOLOAD = "noload"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WRAPPERS = {"list", "List", "Optional", "None", "typing", "Sequence"}


def relationship(
    back_populates: str | None = None,
    *,
    foreign_key: str | None = None,
    order_by: str | None = None,
) -> Any:
    """Declare a relationship; the annotation (``list[Post]`` or ``User``) names the target.

    ``foreign_key`` names the column that links the two tables (``"author_id"``)
    when there is more than one candidate; ``order_by`` is a field of the
    target used to order one-to-many lists (default: primary key).
    """
    return Relationship(back_populates=back_populates, foreign_key=foreign_key, order_by=order_by)


class Relationship(RelationshipDeclaration):
    """The class attribute behind ``User.posts``; its properties are read-only state."""

    strategy = "select"

    def __init__(
        self,
        back_populates: str | None = None,
        foreign_key: str | None = None,
        order_by: str | None = None,
    ) -> None:
        self.back_populates = back_populates
        self._foreign_key = foreign_key
        self._order_by = order_by
        self.name = ""
        self.owner: type[Table] = Table
        self._annotation: Any = None
        self._resolved = False
        self._target: type[Table] | None = None
        self._uselist = False
        self._direction = ""
        self._fk: ColumnInfo | None = None
        self._select_sql = ""

    # -- declaration ----------------------------------------------------------

    def bind(self, owner: type[Table], name: str, annotation: Any) -> None:
        if self.owner is not Table and self.owner is not owner:
            # Inherited declaration: every subclass gets its own copy.
            raise ModelDefinitionError(f"relationship {name!r} is already bound to {self.owner}")
        self.owner = owner
        self.name = name
        self._annotation = annotation

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def _parse_annotation(self) -> tuple[str, bool]:
        annotation = self._annotation
        if not isinstance(annotation, str):
            origin = typing.get_origin(annotation)
            uselist = origin in (list, Sequence) or annotation in (list,)
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            inner = args[0] if args else annotation
            if isinstance(inner, typing.ForwardRef):
                inner = inner.__forward_arg__
            if isinstance(inner, str):
                return inner.strip("'\""), uselist
            if isinstance(inner, type):
                return inner.__name__, uselist
            raise ModelDefinitionError(
                f"{self.owner.__name__}.{self.name}: cannot read the target of {annotation!r}"
            )
        names = [n for n in _NAME.findall(annotation) if n not in _WRAPPERS]
        if len(names) != 1:
            raise ModelDefinitionError(
                f"{self.owner.__name__}.{self.name}: the annotation {annotation!r} must name "
                "one model, as in list[Post] or User"
            )
        uselist = annotation.replace(" ", "").startswith(("list[", "List[", "Sequence["))
        return names[0], uselist

    def _resolve(self) -> None:
        target_name, uselist = self._parse_annotation()
        target = registry.lookup(target_name, self.owner)
        owner_info = table_info(self.owner)
        target_info = table_info(target)
        fk = self._find_fk(owner_info.model, target_info.model, uselist)
        self._target = target
        self._uselist = uselist
        if fk.owner is self.owner and not uselist:
            self._direction = MANY_TO_ONE
            key = target_info.primary_key
        else:
            self._direction = ONE_TO_MANY
            key = fk
        self._fk = fk
        order = ""
        if self._direction == ONE_TO_MANY:
            order_col = (
                target_info.column(self._order_by, f"relationship {self.name} order_by")
                if self._order_by
                else target_info.primary_key
            )
            order = f" ORDER BY {order_col.quoted}"
        self._select_sql = (
            f"SELECT {target_info.select_list} FROM {target_info.quoted_name} "
            f"WHERE {key.quoted} = %s{order}"
        )
        self._select_in_sql = (
            f"SELECT {target_info.select_list} FROM {target_info.quoted_name} "
            f"WHERE {key.quoted} = ANY(%s){order}"
        )
        self._resolved = True

    def _find_fk(self, owner: type[Table], target: type[Table], uselist: bool) -> ColumnInfo:
        owner_info, target_info = table_info(owner), table_info(target)

        def candidates(src: type[Table], dst: type[Table]) -> list[ColumnInfo]:
            dst_name = table_info(dst).name
            return [c for c, table, _ in table_info(src).iter_foreign_keys() if table == dst_name]

        if self._foreign_key:
            for info in (owner_info, target_info) if not uselist else (target_info,):
                column = info.columns.get(self._foreign_key)
                if column is not None:
                    return column
            raise ModelDefinitionError(
                f"{owner.__name__}.{self.name}: foreign_key {self._foreign_key!r} is not a "
                f"column of {owner.__name__ if not uselist else target.__name__}"
            )
        found = [] if uselist else candidates(owner, target)
        direction = "many-to-one"
        if not found:
            found = candidates(target, owner)
            direction = "one-to-many"
        if len(found) == 1:
            return found[0]
        if not found:
            raise ModelDefinitionError(
                f"{owner.__name__}.{self.name}: no foreign key links {owner_info.name!r} and "
                f"{target_info.name!r}; declare Column(foreign_key='table.column') on one side"
            )
        names = ", ".join(c.name for c in found)
        raise ModelDefinitionError(
            f"{owner.__name__}.{self.name}: several {direction} foreign keys ({names}); "
            "pass relationship(foreign_key=...) to choose one"
        )

    # -- read-only state --------------------------------------------------------

    @property
    def target(self) -> type[Table]:
        if not self._resolved:
            self._resolve()
        assert self._target is not None
        return self._target

    @property
    def target_name(self) -> str:
        return self._parse_annotation()[0] if not self._resolved else self.target.__name__

    @property
    def direction(self) -> str:
        if not self._resolved:
            self._resolve()
        return self._direction

    @property
    def uselist(self) -> bool:
        if not self._resolved:
            self._resolve()
        return self._uselist

    @property
    def fk(self) -> ColumnInfo:
        if not self._resolved:
            self._resolve()
        assert self._fk is not None
        return self._fk

    @property
    def fk_column(self) -> str:
        return self.fk.name

    @property
    def select_in_sql(self) -> str:
        """``SELECT ... WHERE key = ANY(%s)``: one query for a batch of parents."""
        if not self._resolved:
            self._resolve()
        return self._select_in_sql

    def strategy_for(self, instance: Table) -> str:
        state = own_state(instance)
        if state is not None and state.strategies is not None:
            return state.strategies.get(self.name, self.strategy)
        return self.strategy

    def loaded_via(self, instance: Table) -> str | None:
        state = own_state(instance)
        if state is None or state.loaded_via is None:
            return None
        return state.loaded_via.get(self.name)

    def is_loaded(self, instance: Table) -> bool:
        """True when awaiting the relationship would not run SQL."""
        state = own_state(instance)
        if state is not None and state.relations is not None and self.name in state.relations:
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

    def __repr__(self) -> str:
        return f"<relationship {self.owner.__name__}.{self.name}>"

    # -- descriptor ---------------------------------------------------------------

    def __get__(self, instance: Table | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return self.load(instance)

    def __set__(self, instance: Table, value: Any) -> None:
        if self.uselist:
            if value is None:
                value = []
            if not isinstance(value, list):
                raise TypeError(f"{self.owner.__name__}.{self.name} takes a list, got {value!r}")
            for item in value:
                self._check_target(item)
        elif value is not None:
            self._check_target(value)
        set_loaded(instance, self.name, value, "assigned")
        state: InstanceState = state_of(instance)
        if self.direction == MANY_TO_ONE:
            target_pk = (
                None
                if value is None
                else value.__dict__.get(table_info(self.target).primary_key.name)
            )
            if value is None or target_pk is not None:
                setattr(instance, self.fk.name, target_pk)
            if value is not None and self.back_populates:
                _append_backref(value, self.back_populates, instance)
        else:
            for item in value if self.uselist else ([value] if value is not None else []):
                if self.back_populates:
                    set_loaded(item, self.back_populates, instance, "assigned")
        if state.owner is not None:
            state.owner.note_related(instance)

    def _check_target(self, value: Any) -> None:
        if not isinstance(value, self.target):
            raise TypeError(
                f"{self.owner.__name__}.{self.name} takes {self.target.__name__} objects, "
                f"got {type(value).__name__}"
            )

    # -- the lazy-load seam ---------------------------------------------------------

    async def load(self, instance: Table) -> Any:
        """The value of ``await instance.<name>``: cached, or one SELECT."""
        state: InstanceState = state_of(instance)
        relations = state.relations
        if relations is not None and self.name in relations:
            return relations[self.name]
        strategy = self.strategy_for(instance)
        if strategy == RAISE:
            raise RaiseLoadError(
                f"{self.owner.__name__}.{self.name} is configured with raiseload(): load it "
                f"eagerly, e.g. selectinload({self.owner.__name__}.{self.name})"
            )
        if strategy == NOLOAD:
            value: Any = [] if self.uselist else None
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
        if self.direction == MANY_TO_ONE:
            fk_value = instance.__dict__.get(self.fk.name)
            if fk_value is None:
                return None
            cached = session.identity_lookup(self.target, fk_value)
            if cached is not None:
                return cached
            rows = await session.load_rows(self.target, self._select_sql, [fk_value])
            return rows[0] if rows else None
        if not state.persistent:
            return [] if self.uselist else None
        pk = instance.__dict__[table_info(self.owner).primary_key.name]
        rows = await session.load_rows(self.target, self._select_sql, [pk])
        if self.back_populates:
            for row in rows:
                set_loaded(row, self.back_populates, instance, "select", overwrite=False)
        if self.uselist:
            return rows
        return rows[0] if rows else None


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


def _append_backref(target: Table, name: str, item: Table) -> None:
    state = own_state(target)
    if state is None or state.relations is None or name not in state.relations:
        return  # not loaded: it will be read from the database when needed
    current = state.relations[name]
    if isinstance(current, list):
        if not any(x is item for x in current):
            current.append(item)
    else:
        state.relations[name] = item
