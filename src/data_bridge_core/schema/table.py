"""`Table`, the base class of models, and the per-class mapping it builds.

Column values live in the instance ``__dict__`` (plain attribute reads, no
descriptor); writes go through ``Table.__setattr__``, which checks the type
and reports the change to the object's state owner (the session's identity
map). Per-instance ORM bookkeeping is an `InstanceState` (`data_bridge_core.state`).
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self, dataclass_transform

from data_bridge_core.context import current_session
from data_bridge_core.errors import (
    MissingFieldError,
    ModelDefinitionError,
    UnknownFieldError,
    UnsupportedOperationError,
)
from data_bridge_core.schema import column as column_module
from data_bridge_core.schema import registry
from data_bridge_core.schema.column import MISSING, ColumnInfo, ColumnOptions, quote_ident
from data_bridge_core.schema.constructor import GENERATED, build_constructor
from data_bridge_core.schema.relation import RelationshipDeclaration
from data_bridge_core.schema.typed import unwrap, unwrap_text
from data_bridge_core.schema.types import column_type_for, mapping_problem, resolve_annotation
from data_bridge_core.state import STATE_KEY, InstanceState, state_of

if TYPE_CHECKING:
    from data_bridge_core.query import Query
    from data_bridge_core.relationships import Relationship
    from data_bridge_core.schema.expressions import Expression
    from data_bridge_core.session import Session

# Builds the query of ``Model.find()`` and ``Session.find()``: installed by
# `data_bridge_core.query`, the layer above (the schema cannot import it).
QueryFactory = Callable[["type[Table]", "Session | None"], "Query[Any]"]
_query_factory: QueryFactory | None = None


def install_query_factory(factory: QueryFactory) -> None:
    global _query_factory
    _query_factory = factory


def new_query(model: type[Table], session: Session | None) -> Query[Any]:
    """A query on ``model`` (``session`` None: the task's current session)."""
    if _query_factory is None:
        raise RuntimeError("data_bridge_core.query is not imported")
    return _query_factory(model, session)


class TableInfo:
    """The mapping of one model class: table, columns, relationships, SQL fragments."""

    def __init__(
        self,
        model: type[Table],
        name: str,
        columns: dict[str, ColumnInfo],
        relationships: dict[str, Relationship],
    ) -> None:
        self.model = model
        self.name = name
        self.quoted_name = quote_ident(name)
        for column in columns.values():
            column.quoted = f"{self.quoted_name}.{column.ident}"
        self.columns = columns
        self.field_names = tuple(columns)
        self.relationships = relationships
        pks = [c for c in columns.values() if c.primary_key]
        if not pks:
            raise ModelDefinitionError(
                f"{model.__name__} needs a primary key: declare Column(primary_key=True) "
                "on one column (or on several, for a composite key)"
            )
        # Several key columns make a composite key: the identity of a row is the
        # tuple of their values (`session.get(Model, (a, b))`).
        self.primary_keys = tuple(pks)
        self.composite = len(pks) > 1
        for column in pks:
            column.in_composite_key = self.composite
        self.primary_key = pks[0]
        self.pk_index = self.field_names.index(self.primary_key.name)
        self.key_names = tuple(c.name for c in pks)
        self.key_indexes = tuple(self.field_names.index(c.name) for c in pks)
        # The key columns as a RETURNING / SELECT list, and the WHERE matching one key.
        self.key_returning = ", ".join(c.quoted for c in pks)
        self.key_where = " AND ".join(f"{c.quoted} = %s" for c in pks)
        self.select_list = ", ".join(c.read_sql(c.quoted) for c in columns.values())
        # (position, name, load) of each column whose read value must be converted to
        # its field's type (`ColumnType.load`); empty for nearly every model, whose
        # reads then take psycopg's values as they are.
        self.loaders = tuple(
            (index, column.name, column.load)
            for index, column in enumerate(columns.values())
            if column.column_type.load is not None
        )
        # The generated row makers of `data_bridge_core.hydration` (built on first query).
        self.row_maker_factories: Any = None
        # The INSERT statements of `data_bridge_core.dml`, by the generated columns
        # left out (built on first flush).
        self.insert_plans: dict[tuple[bool, ...], Any] = {}
        # Columns PostgreSQL fills when an INSERT leaves them out (planned per flush).
        self.generated = tuple(c for c in columns.values() if c.database_generated)
        # For Table.__init__, which runs once per new object: the value check of each
        # field, and how to fill a field left out.
        self.accepts = {c.name: (c.column_type.accepts, c) for c in columns.values()}
        self.fillers = tuple((c.name, c, c.has_default) for c in columns.values())
        self.required = [
            c.name
            for c in columns.values()
            # A foreign key may be set through its many-to-one relationship.
            if not c.has_default
            and not c.nullable
            and not c.database_generated
            and c.foreign_key is None
        ]

        settings = model.__dict__.get("Settings")
        # Multi-column constraints: Settings.unique / Settings.indexes, lists of field tuples.
        self.unique_constraints = self._column_groups(settings, "unique")
        self.indexes = self._column_groups(settings, "indexes")

    def _column_groups(self, settings: object, attribute: str) -> tuple[tuple[str, ...], ...]:
        declared = getattr(settings, attribute, None)
        if declared is None:
            return ()
        where = f"{self.model.__name__}.Settings.{attribute}"
        if isinstance(declared, str) or not isinstance(declared, list | tuple):
            raise ModelDefinitionError(
                f"{where} takes a list of column tuples, as in [('author_id', 'title')]"
            )
        groups = []
        for group in declared:
            names = (group,) if isinstance(group, str) else tuple(group)
            if not names or not all(isinstance(n, str) for n in names):
                raise ModelDefinitionError(f"{where}: {group!r} is not a tuple of field names")
            for name in names:
                self.column(name, where)
            groups.append(names)
        return tuple(groups)

    def is_unique_key(self, names: tuple[str, ...]) -> bool:
        """True when the columns ``names`` (any order) carry a primary key or UNIQUE constraint."""
        wanted = set(names)
        if wanted == set(self.key_names):
            return True
        if len(wanted) == 1 and self.columns[next(iter(wanted))].options.unique:
            return True
        return any(set(group) == wanted for group in self.unique_constraints)

    def loaded_row(self, values: Sequence[Any]) -> list[Any]:
        """A row of every column, in field order, as the fields hold it (`loaders`
        applied; the caller skips this when there are none)."""
        row = list(values)
        for index, _, load in self.loaders:
            row[index] = load(row[index])
        return row

    def key_params(self, key: Any) -> list[Any]:
        """The parameters of `key_where` for one identity key."""
        return list(key) if self.composite else [key]

    def check_key(self, key: Any, context: str) -> Any:
        """Validate a key given by the caller: a value, or a tuple for a composite key."""
        if not self.composite:
            return self.primary_key.check(key)
        names = ", ".join(self.key_names)
        if not isinstance(key, tuple) or len(key) != len(self.primary_keys):
            raise TypeError(
                f"{self.model.__name__} has a composite primary key ({names}): {context} "
                f"takes a tuple of {len(self.primary_keys)} values, got {_shape(key)}"
            )
        for column, value in zip(self.primary_keys, key, strict=True):
            column.check(value)
        return key

    def column(self, field: str, context: str = "") -> ColumnInfo:
        try:
            return self.columns[field]
        except KeyError:
            raise UnknownFieldError(self.model, field, context) from None

    def iter_foreign_keys(self) -> Iterator[tuple[ColumnInfo, str, str]]:
        for column in self.columns.values():
            ref = column.references
            if ref is not None:
                yield column, ref[0], ref[1]


def table_name_of(model: type) -> str:
    settings = model.__dict__.get("Settings")
    name = getattr(settings, "table_name", None)
    if name is None:
        return model.__name__.lower()
    if not isinstance(name, str) or not name:
        raise ModelDefinitionError(f"{model.__name__}.Settings.table_name must be a non-empty str")
    return name


def table_info(model: type[Table]) -> TableInfo:
    """The mapping of a model class, built on first use (forward references resolved)."""
    info: TableInfo | None = model.__dict__.get("__table_info__")
    if info is None:
        info = _finalize(model)
    return info


def identity_key(obj: Table) -> tuple[type[Table], Any] | None:
    """``(model class, primary key)`` of an instance, None while it has no key yet.

    A composite key is the tuple of its columns' values, in declaration order
    (as ``Session.get`` takes it); None while any of them is unset.
    """
    model = type(obj)
    info = table_info(model)
    values = obj.__dict__
    if info.composite:
        key = tuple([values.get(name) for name in info.key_names])
        return None if None in key else (model, key)
    pk = values.get(info.primary_key.name)
    return None if pk is None else (model, pk)


def _finalize(model: type[Table]) -> TableInfo:
    if model.__dict__.get("__abstract__"):
        raise ModelDefinitionError(f"{model.__name__} is abstract and has no table")
    module = sys.modules.get(model.__module__)
    globalns = dict(vars(module)) if module is not None else {}
    columns: dict[str, ColumnInfo] = model.__dict__["__column_map__"]
    for column in columns.values():
        annotation = column.raw_annotation
        if isinstance(annotation, str):
            annotation = unwrap_text(annotation)
            try:
                annotation = eval(annotation, globalns, {"Any": Any})
            except Exception as exc:
                raise ModelDefinitionError(
                    f"{model.__name__}.{column.name}: cannot evaluate annotation "
                    f"{column.raw_annotation!r}: {exc}"
                ) from exc
        annotation = unwrap(annotation)
        column_type, optional = resolve_annotation(annotation, model.__name__, column.name)
        opts = column.options
        if opts.column_type is not None:
            # The value checks follow the chosen SQL type (an int4 column's range).
            problem = mapping_problem(column_type.python_type, opts.column_type)
            if problem is not None:
                raise ModelDefinitionError(f"{model.__name__}.{column.name}: {problem}")
            fitted = column_type_for(column_type.python_type, opts.column_type)
            column_type = fitted if fitted is not None else column_type
        column.column_type = column_type
        column.nullable = optional if opts.nullable is None else opts.nullable
        if column.primary_key and column.nullable:
            raise ModelDefinitionError(f"{model.__name__}.{column.name}: a primary key is NOT NULL")
        if not column.primary_key and opts.nullable is None and column.default is None:
            column.nullable = True  # `x: int = None` reads as nullable too
        column.accepts_none = column.nullable or column.database_generated
    info = TableInfo(model, table_name_of(model), columns, dict(model.__relationships__))
    model.__table_info__ = info
    if model.__dict__.get("__init__") is Table.__init__:
        # No constructor of the user's own: the generated one takes over from here.
        model.__init__ = build_constructor(  # type: ignore[method-assign]
            model, columns.values(), info.relationships, info.required, Table.__init__
        )
    return info


def _put_back(d: dict[str, Any], name: str, old: Any) -> None:
    """Undo an assignment to ``d`` that is then refused."""
    if old is MISSING:
        d.pop(name, None)
    else:
        d[name] = old


def _annotations_of(cls: type) -> dict[str, Any]:
    # This class's own annotations, unevaluated (forward references resolve later).
    return dict(inspect.get_annotations(cls))


# PEP 681: type checkers derive each model's keyword-only constructor from its
# annotations. Column() is deliberately not a field specifier: a checker would
# then call `id: int = Column(primary_key=True)` a required argument; the
# constructor itself reports a missing required field at run time.
@dataclass_transform(kw_only_default=True, eq_default=False)
class Table:
    """Base class of models: subclass it with annotated fields."""

    __table_info__: ClassVar[TableInfo]
    # Field name -> ColumnInfo, declaration order (inherited fields first).
    __column_map__: ClassVar[dict[str, ColumnInfo]] = {}
    __relationships__: ClassVar[dict[str, Relationship]] = {}
    __abstract__: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__abstract__" not in cls.__dict__:
            cls.__abstract__ = False
        columns: dict[str, ColumnInfo] = {}
        relationships: dict[str, Relationship] = {}
        # Inherited columns first (declaration order), then this class's.
        for base in reversed(cls.__mro__[1:]):
            pending = base.__dict__.get("__column_map__")
            if pending:
                for name, inherited in pending.items():
                    col = ColumnInfo(cls, name, inherited.options)
                    col.raw_annotation = inherited.raw_annotation
                    columns[name] = col
            relationships.update(base.__dict__.get("__relationships__", {}))
        for name, annotation in _annotations_of(cls).items():
            if name.startswith("_") or name == "Settings" or _is_classvar(annotation):
                continue
            value = cls.__dict__.get(name, MISSING)
            if isinstance(value, RelationshipDeclaration):
                value.bind(cls, name, annotation)
                relationships[name] = value  # type: ignore[assignment]
                continue
            options = value if isinstance(value, ColumnOptions) else ColumnOptions(value)
            if options.default.__class__.__hash__ is None:
                # dataclasses' rule: one dict/list/set/bytearray would be every object's
                # value, so a change to one object's in place would show on all of them.
                raise ModelDefinitionError(
                    f"{cls.__name__}.{name}: a mutable default "
                    f"({type(options.default).__name__}) would be shared by every object; "
                    f"use Column(default_factory={type(options.default).__name__})"
                )
            column = ColumnInfo(cls, name, options)
            column.raw_annotation = annotation
            columns[name] = column
        for name, column in columns.items():
            setattr(cls, name, column)
        if "__init__" not in cls.__dict__ and getattr(cls.__init__, GENERATED, False):
            # The generic constructor until the model is finalized (then its generated
            # one): a parent model's generated constructor knows only its own columns.
            cls.__init__ = Table.__init__  # type: ignore[method-assign]
        cls.__relationships__ = relationships
        cls.__column_map__ = columns
        if "__table_info__" in cls.__dict__:
            del cls.__table_info__
        if not cls.__abstract__:
            registry.register(cls)

    def __init__(self, **values: Any) -> None:
        """The generic constructor: a model's generated one (`schema.constructor`)
        replaces it on first use, unless the model defines its own ``__init__``."""
        model = type(self)
        info = table_info(model)
        init: Any = model.__dict__.get("__init__")
        if init is not Table.__init__ and getattr(init, GENERATED, False):
            init(self, **values)
            return
        d = self.__dict__
        d[STATE_KEY] = InstanceState(None, None, False)
        accepts = info.accepts
        related: dict[str, Any] | None = None
        for key, value in values.items():
            check = accepts.get(key)
            if check is None:
                if key in info.relationships:
                    if related is None:
                        related = {}
                    related[key] = value
                    continue
                raise UnknownFieldError(type(self), key, f"{type(self).__name__}()")
            if value is None or not check[0](value):
                # The slow path: None, a value to normalise, or an error naming the field.
                value = check[1].check(value)
            d[key] = value
        if len(d) <= len(accepts):  # some fields were left out: defaults, then required
            for name, column, has_default in info.fillers:
                if name not in d:
                    d[name] = column.check(column.make_default()) if has_default else None
            missing = [
                n
                for n in info.required
                if n not in values and (related is None or n not in related)
            ]
            if missing:
                raise MissingFieldError(type(self).__name__, missing)
        if related:
            for key, value in related.items():
                setattr(self, key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        column: ColumnInfo | None = type(self).__column_map__.get(name)
        if column is None:
            object.__setattr__(self, name, value)
            return
        value = column.check(value)
        d = self.__dict__
        old = d.get(name, MISSING)
        d[name] = value
        state = d[STATE_KEY]
        if state.__class__ is not InstanceState:
            state = state_of(self)
        if state.persistent and (old is MISSING or old != value or type(old) is not type(value)):
            if value is None and not column.nullable and not column.primary_key:
                _put_back(d, name, old)
                column.refuse_none_for_stored_row()
            if column.primary_key and old is not MISSING:
                # The flush finds the row by its key: a changed key would match nothing.
                d[name] = old
                raise UnsupportedOperationError(
                    f"{type(self).__name__}.{name} is part of the primary key of a stored row "
                    "and cannot be changed; delete the object and add a new one"
                )
            if state.changed is None:
                state.changed = set()
            state.changed.add(name)
            if state.owner is not None:
                state.owner.note_change(self, name, old)

    def __repr__(self) -> str:
        info = table_info(type(self))
        shown = ", ".join(f"{n}={self.__dict__.get(n)!r}" for n in info.field_names[:4])
        more = ", ..." if len(info.field_names) > 4 else ""
        return f"{type(self).__name__}({shown}{more})"

    # -- the current session's shortcuts --------------------------------------

    @classmethod
    async def get(cls, pk: Any) -> Self | None:
        """``await User.get(1)``: the row with that primary key in the current session."""
        return await current_session().get(cls, pk)

    @classmethod
    def find(cls, *filters: Expression | bool) -> Query[Self]:
        """``User.find(User.age > 18)``: a query on the current session."""
        return new_query(cls, None).filter(*filters)


# Each model starts with this generic constructor of its own (see __init_subclass__).
setattr(Table.__init__, GENERATED, True)


def _shape(key: Any) -> str:
    """A key of the wrong shape, described without its values (they may be user input)."""
    if isinstance(key, tuple):
        return f"a tuple of {len(key)} value{'' if len(key) == 1 else 's'}"
    return type(key).__name__


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return typing.get_origin(annotation) is ClassVar


column_module.register_finalizer(table_info)
