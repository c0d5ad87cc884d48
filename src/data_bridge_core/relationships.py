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
    DataBridgeError,
    InvalidStateError,
    ModelDefinitionError,
    RaiseLoadError,
    RelationshipError,
    UnsupportedOperationError,
    described,
)
from data_bridge_core.schema import registry
from data_bridge_core.schema.expressions import Exists, Expression
from data_bridge_core.schema.relation import (
    ASSIGNED,
    MANY_TO_MANY,
    MANY_TO_ONE,
    ONE_TO_MANY,
    RelationshipDeclaration,
)
from data_bridge_core.schema.table import Table, TableInfo, table_info, table_name_of
from data_bridge_core.schema.typed import unwrap, unwrap_text
from data_bridge_core.state import InstanceState, own_state, session_of, state_of

if TYPE_CHECKING:
    from data_bridge_core.schema.column import ColumnInfo
    from data_bridge_core.session import Session

__all__ = [
    "MANY_TO_MANY",
    "MANY_TO_ONE",
    "NOLOAD",
    "ONE_TO_MANY",
    "RAISE",
    "Relationship",
    "relationship",
]

# Strategies stored per instance by raiseload()/noload() options.
RAISE = "raise"
NOLOAD = "noload"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WRAPPERS = {"list", "List", "Optional", "None", "typing", "Sequence"}


def relationship(
    back_populates: str | None = None,
    *,
    secondary: str | None = None,
    foreign_key: str | None = None,
    order_by: str | None = None,
) -> Any:
    """Declare a relationship; the annotation (``list[Post]`` or ``User``) names the target.

    ``secondary`` names the association table of a many-to-many
    (``"article_tags"``, mapped by a model with a foreign key to each side);
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


class Relationship(RelationshipDeclaration):
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
        self._annotation: Any = None
        self._resolved = False
        self._target: type[Table] | None = None
        self._uselist = False
        self._direction = ""
        self._fk: ColumnInfo | None = None
        self._select_sql = ""
        # Many-to-many: the association model, its column pointing at the target,
        # and the columns of each side those two foreign keys reference.
        self._association: type[Table] | None = None
        self._target_fk: ColumnInfo | None = None
        self._owner_key: ColumnInfo | None = None
        self._target_key: ColumnInfo | None = None

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
        # Rel[list[Post]] (the typed style) reads as list[Post].
        annotation = unwrap_text(annotation) if isinstance(annotation, str) else unwrap(annotation)
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
        if self.secondary is not None:
            self._resolve_secondary(target, uselist)
            return
        fk = self._find_fk(owner_info.model, target_info.model, uselist)
        if fk.owner is self.owner and not uselist and target_info.composite:
            raise ModelDefinitionError(
                f"{self!r}: {target.__name__} has a composite primary key; a many-to-one "
                "relationship needs a single-column key to point at"
            )
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

    def _resolve_secondary(self, target: type[Table], uselist: bool) -> None:
        owner, where = self.owner, f"{self.owner.__name__}.{self.name}"
        if not uselist:
            raise ModelDefinitionError(
                f"{where}: a many-to-many (secondary={self.secondary!r}) holds a list: "
                f"annotate it list[{target.__name__}]"
            )
        if target is owner:
            raise ModelDefinitionError(
                f"{where}: a many-to-many of a model with itself is not supported; map the "
                f"association model {self.secondary!r} and use its relationships instead"
            )
        association = _model_of_table(self.secondary or "", owner)
        owner_info, target_info = table_info(owner), table_info(target)
        links = table_info(association)

        def pointing_at(info: TableInfo) -> tuple[ColumnInfo, ColumnInfo]:
            found = [(c, col) for c, table, col in links.iter_foreign_keys() if table == info.name]
            if len(found) != 1:
                raise ModelDefinitionError(
                    f"{where}: the association table {self.secondary!r} needs exactly one "
                    f"foreign key to {info.name!r}, found {len(found)}"
                )
            column, referenced = found[0]
            return column, info.column(referenced, f"{self.secondary}.{column.name}")

        self._fk, self._owner_key = pointing_at(owner_info)
        self._target_fk, self._target_key = pointing_at(target_info)
        self._association = association
        self._target = target
        self._uselist = True
        self._direction = MANY_TO_MANY
        order_col = (
            target_info.column(self._order_by, f"relationship {self.name} order_by")
            if self._order_by
            else target_info.primary_key
        )
        joined = (
            f"FROM {target_info.quoted_name} JOIN {links.quoted_name} "
            f"ON {self._target_fk.quoted} = {self._target_key.quoted}"
        )
        self._select_sql = (
            f"SELECT {target_info.select_list} {joined} "
            f"WHERE {self._fk.quoted} = %s ORDER BY {order_col.quoted}"
        )
        # The owner's key first: it tells which parent each row belongs to.
        self._select_in_sql = (
            f"SELECT {self._fk.quoted}, {target_info.select_list} {joined} "
            f"WHERE {self._fk.quoted} = ANY(%s) ORDER BY {order_col.quoted}"
        )
        self._resolved = True

    @property
    def association(self) -> type[Table] | None:
        """The association model of a many-to-many (None otherwise)."""
        if not self._resolved:
            self._resolve()
        return self._association

    @property
    def link_columns(self) -> tuple[ColumnInfo, ColumnInfo, ColumnInfo, ColumnInfo]:
        """Many-to-many: (association column -> owner, owner's referenced column,
        association column -> target, target's referenced column)."""
        if not self._resolved:
            self._resolve()
        if self._association is None:
            raise RelationshipError(f"{self!r} is not a many-to-many")
        assert self._fk and self._owner_key and self._target_fk and self._target_key
        return self._fk, self._owner_key, self._target_fk, self._target_key

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
            association = self._association_hint(owner, target)
            if association or (uselist and self._back_is_list(target)):
                table = association or "<association table>"
                back = f', back_populates="{self.back_populates}"' if self.back_populates else ""
                raise ModelDefinitionError(
                    f"{owner.__name__}.{self.name}: {owner.__name__} and {target.__name__} have "
                    f"no foreign key to each other; a many-to-many goes through an association "
                    f'table: declare relationship(secondary="{table}"{back})'
                )
            raise ModelDefinitionError(
                f"{owner.__name__}.{self.name}: no foreign key links {owner_info.name!r} and "
                f"{target_info.name!r}; declare Column(foreign_key='table.column') on one side"
            )
        names = ", ".join(c.name for c in found)
        raise ModelDefinitionError(
            f"{owner.__name__}.{self.name}: several {direction} foreign keys ({names}); "
            "pass relationship(foreign_key=...) to choose one"
        )

    def _association_hint(self, owner: type[Table], target: type[Table]) -> str:
        """For a missing foreign key: the association table linking both sides, if any."""
        owner_name, target_name = table_info(owner).name, table_info(target).name
        for model in registry.models_near(owner):
            if model is owner or model is target:
                continue
            try:
                refs = {table for _, table, _ in table_info(model).iter_foreign_keys()}
            except DataBridgeError:  # an unrelated model that cannot be mapped yet: no hint from it
                continue
            if owner_name in refs and target_name in refs:
                return table_info(model).name
        return ""

    def _back_is_list(self, target: type[Table]) -> bool:
        if not self.back_populates:
            return False
        other = target.__dict__.get("__relationships__", {}).get(self.back_populates)
        return other is not None and other._parse_annotation()[1]

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

    @property
    def join_condition(self) -> str:
        """The ON condition linking the owner's table with the target's (to-one only)."""
        if self.direction == MANY_TO_ONE:
            return f"{table_info(self.target).primary_key.quoted} = {self.fk.quoted}"
        return f"{self.fk.quoted} = {table_info(self.owner).primary_key.quoted}"

    # -- filters across the relationship ------------------------------------------

    def any(self, *criteria: Expression | bool) -> Expression:
        """``EXISTS`` a related row matching ``criteria``: ``User.posts.any(Post.title == "x")``."""
        if not self.uselist:
            raise UnsupportedOperationError(
                f"{self!r} is a single object: write {self.owner.__name__}.{self.name}.has(...)"
            )
        return self._exists(criteria, "any")

    def has(self, *criteria: Expression | bool) -> Expression:
        """``EXISTS`` the related object matching ``criteria``: ``Post.author.has(...)``."""
        if self.uselist:
            raise UnsupportedOperationError(
                f"{self!r} is a list: write {self.owner.__name__}.{self.name}.any(...)"
            )
        return self._exists(criteria, "has")

    def _exists(self, criteria: tuple[Expression | bool, ...], method: str) -> Expression:
        target = self.target
        if target is self.owner:
            raise UnsupportedOperationError(
                f"{self!r}.{method}() on a relationship of a model to itself needs table "
                "aliases, which are not supported; use session.execute() with your own SQL"
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
        target_info = table_info(target)
        from_sql = target_info.quoted_name
        if self.direction == MANY_TO_ONE:
            correlation = f"{target_info.primary_key.quoted} = {self.fk.quoted}"
        elif self.direction == MANY_TO_MANY:
            fk, owner_key, target_fk, target_key = self.link_columns
            correlation = f"{fk.quoted} = {owner_key.quoted}"
            from_sql = table_info(self._association or target).quoted_name
            if combined is not None:  # the target's columns are read: join it
                on = f"{target_key.quoted} = {target_fk.quoted}"
                from_sql += f" JOIN {target_info.quoted_name} ON {on}"
        else:
            correlation = f"{self.fk.quoted} = {table_info(self.owner).primary_key.quoted}"
        return Exists(self.owner, from_sql, correlation, combined)

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

    def read_loaded(self, instance: Table) -> Any:
        """The value already loaded on ``instance`` (no SQL): what ``loaded(obj).rel`` reads.

        A seam (docs/extension-points.md): every read of a loaded value outside
        ``await obj.rel`` comes through here, so an observer can tell an eager
        load that was used from one that was not. A many-to-one whose target the
        session holds needs no query either. Raises `RelationshipError`, naming
        the loader option to add, when the value is not loaded.
        """
        state = own_state(instance)
        if state is not None and state.relations is not None and self.name in state.relations:
            return state.relations[self.name]
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
        previous = _loaded_value(instance, self.name)
        set_loaded(instance, self.name, value, ASSIGNED)
        state: InstanceState = state_of(instance)
        if self.direction == MANY_TO_MANY:
            # The links are replaced at the next flush; the other side's loaded lists
            # follow now, so both sides read the same in the session.
            back = self.back_populates
            if back:
                kept = {id(item) for item in value}
                if isinstance(previous, list):
                    dropped: Any = [item for item in previous if id(item) not in kept]
                else:
                    # Not loaded: any held target whose loaded list has the instance.
                    session = session_of(instance)
                    held = session.held_objects(self.target) if session is not None else []
                    dropped = [item for item in held if id(item) not in kept]
                for item in dropped:
                    _remove_backref(item, back, instance)
                for item in value:
                    _append_backref(item, back, instance)
        elif self.direction == MANY_TO_ONE:
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
        if self.direction == MANY_TO_MANY:
            # One query joining the association table; the other side's lists are
            # not filled from it (each target's full list is not known here).
            key = instance.__dict__[self.link_columns[1].name]
            return await session.load_rows(self.target, self._select_sql, [key])
        pk = instance.__dict__[table_info(self.owner).primary_key.name]
        rows = await session.load_rows(self.target, self._select_sql, [pk])
        if self.back_populates:
            for row in rows:
                set_loaded(row, self.back_populates, instance, "select", overwrite=False)
        if self.uselist:
            return rows
        return rows[0] if rows else None


def _model_of_table(table: str, near: type[Table]) -> type[Table]:
    """The model mapping ``table`` (an association table), as seen from ``near``."""
    for group in registry.scoped_models(near):
        found = [m for m in group if table_name_of(m) == table]
        if found:
            return found[-1]
    raise ModelDefinitionError(
        f"{near.__name__}: no model maps the association table {table!r}; declare one "
        f"(class ...(Table) with Settings.table_name = {table!r}) whose columns are foreign "
        "keys to both sides, together its composite primary key"
    )


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


def _loaded_value(instance: Table, name: str) -> Any:
    state = own_state(instance)
    if state is None or state.relations is None:
        return None
    return state.relations.get(name)


def _remove_backref(target: Table, name: str, item: Table) -> None:
    state = own_state(target)
    if state is None or state.relations is None or name not in state.relations:
        return
    current = state.relations[name]
    if isinstance(current, list):
        current[:] = [x for x in current if x is not item]


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
