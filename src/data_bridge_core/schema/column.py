"""Column declarations and the column objects that models expose as class attributes.

`Column(...)` is what a model author writes; when the class is created it is
turned into a `ColumnInfo`, which is both the column's metadata and the
expression object behind ``User.age > 18``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from psycopg import sql

from data_bridge_core.errors import ColumnTypeError, StoredValueError, ValidationError
from data_bridge_core.schema.expressions import Operand
from data_bridge_core.schema.types import InvalidValue

if TYPE_CHECKING:
    from data_bridge_core.schema.types import ColumnType

# Finalizes the mapping of a model class (`schema.table.table_info`, one layer up,
# registers itself here): a column reads its type only once its model is finalized.
_finalize_model: Callable[[type], object] | None = None


def register_finalizer(finalize: Callable[[type], object]) -> None:
    global _finalize_model
    _finalize_model = finalize


def quote_ident(name: str) -> str:
    """An identifier quoted by psycopg.sql, with ``%`` doubled for ``%s``-style statements."""
    return sql.Identifier(name).as_string(None).replace("%", "%%")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class ColumnOptions:
    """Options of one column, written as the class attribute's value through `Column()`.

    ``default`` is used when the constructor is not given the field;
    ``default_factory`` is called instead for mutable or time-dependent
    defaults; ``server_default`` is SQL text evaluated by PostgreSQL (for
    example ``"now()"``) and is read back after the insert.
    """

    __slots__ = (
        "column_type",
        "default",
        "default_factory",
        "foreign_key",
        "index",
        "nullable",
        "on_delete",
        "primary_key",
        "server_default",
        "unique",
    )

    def __init__(
        self,
        default: Any = MISSING,
        *,
        primary_key: bool = False,
        unique: bool = False,
        index: bool = False,
        nullable: bool | None = None,
        default_factory: Callable[[], Any] | None = None,
        foreign_key: str | None = None,
        server_default: str | None = None,
        on_delete: str | None = None,
        column_type: str | None = None,
    ) -> None:
        if default is not MISSING and default_factory is not None:
            raise TypeError("Column() takes default or default_factory, not both")
        if on_delete is not None and on_delete.upper() not in _ON_DELETE:
            raise ValueError(f"on_delete must be one of {sorted(_ON_DELETE)}, got {on_delete!r}")
        self.default = default
        self.primary_key = primary_key
        self.unique = unique
        self.index = index
        self.nullable = nullable
        self.default_factory = default_factory
        self.foreign_key = foreign_key
        self.server_default = server_default
        self.on_delete = on_delete.upper() if on_delete else None
        self.column_type = column_type


_ON_DELETE = {"CASCADE", "SET NULL", "RESTRICT", "NO ACTION", "SET DEFAULT"}


def Column(
    default: Any = MISSING,
    *,
    primary_key: bool = False,
    unique: bool = False,
    index: bool = False,
    nullable: bool | None = None,
    default_factory: Callable[[], Any] | None = None,
    foreign_key: str | None = None,
    server_default: str | None = None,
    on_delete: str | None = None,
    column_type: str | None = None,
) -> Any:
    """Declare a column's options: ``id: int = Column(primary_key=True)``.

    Typed as returning ``Any`` (like ``dataclasses.field()``) so that
    ``age: int = Column(default=0)`` type-checks in model classes.
    """
    return ColumnOptions(
        default,
        primary_key=primary_key,
        unique=unique,
        index=index,
        nullable=nullable,
        default_factory=default_factory,
        foreign_key=foreign_key,
        server_default=server_default,
        on_delete=on_delete,
        column_type=column_type,
    )


class ColumnInfo(Operand):
    """One mapped column; also the left-hand side of query expressions."""

    # Set by the model machinery once the annotation is resolved.
    column_type: ColumnType
    nullable: bool
    quoted: str  # "users"."age", quoted by psycopg.sql
    # None can be written: the column is nullable, or PostgreSQL fills it.
    accepts_none: bool
    raw_annotation: Any = None  # the annotation as written (maybe a string), resolved later
    # One of several primary-key columns: its value is given, never an identity.
    in_composite_key: bool = False

    def __init__(self, owner: type, name: str, options: ColumnOptions) -> None:
        self.owner = owner
        self.name = name
        self.options = options
        self.primary_key = options.primary_key
        self.default = options.default
        self.default_factory = options.default_factory
        self.foreign_key = options.foreign_key
        self.server_default = options.server_default
        self.ident = quote_ident(name)

    @property
    def shape(self) -> str:
        """The column as the SQL text names it (see `Operand.shape`)."""
        return self.quoted

    # -- metadata -----------------------------------------------------------

    @property
    def database_generated(self) -> bool:
        """True when PostgreSQL supplies the value if none is given."""
        return self.server_default is not None or (
            self.primary_key and not self.in_composite_key and self.column_type.python_type is int
        )

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING or self.default_factory is not None

    @property
    def references(self) -> tuple[str, str] | None:
        """(table, column) of the foreign key, if any."""
        if self.foreign_key is None:
            return None
        table, _, column = self.foreign_key.rpartition(".")
        return table, column or "id"

    def read_sql(self, reference: str) -> str:
        """How a SELECT or RETURNING list reads this column, given its reference.

        The reference itself, or the column type's read expression named after
        the column (an inet held as str is read as ``abbrev(...)``: its text).
        """
        template = self.column_type.read_sql
        return reference if template is None else f"{template.format(reference)} AS {self.ident}"

    def make_default(self) -> Any:
        if self.default_factory is not None:
            return self.default_factory()
        return None if self.default is MISSING else self.default

    def check(self, value: Any) -> Any:
        """The value to store for this column; raises ValidationError (or ColumnTypeError).

        The one check behind the constructor, attribute assignment and
        ``Query.update``: None for a NOT NULL column, a wrong type, or a value
        PostgreSQL would refuse (see `ColumnType`).
        """
        if value is None:
            if self.accepts_none:
                return None
            raise ValidationError(
                self.owner.__name__, self.name, "is NOT NULL: None is not allowed"
            )
        ctype = self.column_type
        if ctype.accepts(value):
            return value
        try:
            return ctype.coerce(value)  # a naive datetime made aware, or InvalidValue
        except InvalidValue as exc:
            raise self._error(exc, value) from None

    def refuse_none_for_stored_row(self) -> None:
        """Raise for None written to a stored row of a NOT NULL column PostgreSQL fills.

        `check` lets None through for such a column (a new row gets the server
        default), but an UPDATE would write NULL and fail after the SQL.
        """
        raise ValidationError(
            self.owner.__name__,
            self.name,
            "is NOT NULL: None is not allowed (its server default fills only a new row)",
        )

    def _error(self, exc: InvalidValue, value: Any) -> ValidationError:
        if exc.wrong_type:
            return ColumnTypeError(
                self.owner.__name__, self.name, self.column_type.description, value
            )
        return ValidationError(self.owner.__name__, self.name, exc.problem)

    def load(self, value: Any) -> Any:
        """A value read from the column as the field holds it (`ColumnType.load`).

        Raises `StoredValueError` for a stored value the field cannot hold (a
        numeric's 1.5 read into an int field): an error, never a truncation.
        """
        load = self.column_type.load
        if load is None or value is None:
            return value
        try:
            return load(value)
        except InvalidValue as exc:
            raise StoredValueError(self.owner.__name__, self.name, exc.problem) from None

    def bind(self, value: Any) -> Any:
        """Check a value to store and return it as the parameter psycopg should send."""
        value = self.check(value)
        adapt = self.column_type.adapt
        return adapt(value) if adapt is not None and value is not None else value

    def bind_operand(self, value: Any) -> Any:
        """Check a filter operand and return its parameter (None passes: ``IN (NULL)``).

        An operand is compared, not stored: the range checks of `check` do not
        apply, the type and text checks do.
        """
        if value is None:
            return None
        ctype = self.column_type
        if not ctype.accepts(value):
            try:
                value = (ctype.coerce_operand or ctype.coerce)(value)
            except InvalidValue as exc:
                raise self._error(exc, value) from None
        return ctype.adapt(value) if ctype.adapt is not None else value

    def __getattr__(self, name: str) -> Any:
        # column_type, nullable and quoted are filled in when the model is
        # finalized (on first use, once forward references can resolve).
        if (
            name in ("column_type", "nullable", "quoted", "accepts_none")
            and _finalize_model is not None
        ):
            _finalize_model(self.owner)
            return object.__getattribute__(self, name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"<column {self.owner.__name__}.{self.name}>"

    # -- expressions (operators come from Operand) ---------------------------

    def sql(self, params: list[Any]) -> str:
        return self.quoted

    def models(self) -> Iterator[type]:
        yield self.owner

    @property
    def label(self) -> str:
        return f"{self.owner.__name__}.{self.name}"

    @property
    def text(self) -> str:
        return self.name

    __hash__ = object.__hash__
