"""Annotations for the typed style: ``name: Mapped[str]``, ``posts: Rel[list[Post]]``.

They matter to type checkers only. `Table` is a PEP 681 ``dataclass_transform``
base, so a checker builds each model's constructor from its annotations; with
these two wrappers it also knows what an attribute is on the class and on an
instance:

- ``User.name`` is a column (``User.name.asc()``, ``User.age > 18``), while
  ``user.name`` is a ``str``;
- ``user.posts`` is a ``RelatedList[Post]`` (awaited: a ``list[Post]``; with
  ``add()`` / ``remove()``), ``post.author`` an ``Awaitable[User]``: using
  either without ``await`` as the value is a type error; ``user.posts = [...]``
  and ``User(posts=[...])`` take the list.

At run time the model machinery unwraps them (``Mapped[str]`` maps exactly as
``str``); the plain style (``name: str``, ``posts: list[Post]``) keeps working.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

if TYPE_CHECKING:
    from collections.abc import Iterable

    from data_bridge_core.related_list import RelatedList
    from data_bridge_core.relationships import Relationship
    from data_bridge_core.schema.column import ColumnInfo
    from data_bridge_core.schema.expressions import Expression, Named, Operand, Subquery

T = TypeVar("T")
E = TypeVar("E")
Owner = TypeVar("Owner")
# "Mapped[...]", "Rel[...]", also spelled through a module ("db.Rel[...]").
_WRAPPED = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_.]*\.)?(?:Mapped|Rel)\[(.*)\]$", re.DOTALL)


if TYPE_CHECKING:

    class WrongTypeComparison:
        """For type checkers only: ``column == value`` of a value not of the column's type."""

    class MappedColumn(ColumnInfo, Generic[Owner, T]):
        """For type checkers only: ``User.name`` of a ``Mapped[str]``, a column of ``str``
        (``select(User.name)`` rows hold a ``str``) on the model ``Owner``: its comparisons
        are ``Expression[Owner]``, which a query of another model refuses unless joined."""

        @property
        def selected_type(self) -> T: ...

        def named(self, name: str) -> Named[T]: ...

        # Comparisons take the column's own type (or another column); None is IS NULL.
        # == and != with another type give a WrongTypeComparison, which filter()
        # refuses: mypy reports ``Article.slug == 5`` there (an == that fails to
        # type-check would instead fall back to int.__eq__ and give a bool).
        @overload  # type: ignore[override]
        def __eq__(self, other: T | Operand | None) -> Expression[Owner]: ...
        @overload
        def __eq__(self, other: object) -> WrongTypeComparison: ...
        def __eq__(self, other: object) -> Expression[Owner] | WrongTypeComparison: ...

        @overload  # type: ignore[override]
        def __ne__(self, other: T | Operand | None) -> Expression[Owner]: ...
        @overload
        def __ne__(self, other: object) -> WrongTypeComparison: ...
        def __ne__(self, other: object) -> Expression[Owner] | WrongTypeComparison: ...

        def __lt__(self, other: T | Operand) -> Expression[Owner]: ...

        def __le__(self, other: T | Operand) -> Expression[Owner]: ...

        def __gt__(self, other: T | Operand) -> Expression[Owner]: ...

        def __ge__(self, other: T | Operand) -> Expression[Owner]: ...

        def in_(self, values: Iterable[T] | Subquery) -> Expression[Owner]: ...

        def not_in(self, values: Iterable[T] | Subquery) -> Expression[Owner]: ...

        def between(self, low: T | Operand, high: T | Operand) -> Expression[Owner]: ...

        def like(self, pattern: str) -> Expression[Owner]: ...

        def ilike(self, pattern: str) -> Expression[Owner]: ...

        def is_null(self) -> Expression[Owner]: ...

        def is_not_null(self) -> Expression[Owner]: ...


class Mapped(Generic[T]):
    """A column holding a ``T``: ``age: Mapped[int] = Column(default=0)``."""

    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __get__(self, instance: None, owner: type[Owner]) -> MappedColumn[Owner, T]: ...

        @overload
        def __get__(self, instance: object, owner: Any) -> T: ...

        def __get__(self, instance: object | None, owner: Any) -> MappedColumn[Any, T] | T: ...

        def __set__(self, instance: object, value: T) -> None: ...


class Rel(Generic[T]):
    """A relationship whose awaited value is a ``T``: ``posts: Rel[list[Post]]``."""

    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __get__(
            self: Rel[list[E]], instance: None, owner: type[Owner]
        ) -> Relationship[Owner, E]: ...

        @overload
        def __get__(self, instance: None, owner: type[Owner]) -> Relationship[Owner, T]: ...

        @overload
        def __get__(self: Rel[list[E]], instance: object, owner: Any) -> RelatedList[E]: ...

        @overload
        def __get__(self, instance: object, owner: Any) -> Awaitable[T]: ...

        def __get__(
            self, instance: object | None, owner: Any
        ) -> Relationship[Any, Any] | RelatedList[Any] | Awaitable[T]: ...

        def __set__(self, instance: object, value: T) -> None: ...


def unwrap(annotation: Any) -> Any:
    """``Mapped[X]`` / ``Rel[X]`` -> ``X``; anything else unchanged."""
    if typing.get_origin(annotation) in (Mapped, Rel):
        return typing.get_args(annotation)[0]
    return annotation


def unwrap_text(annotation: str) -> str:
    """The same for an annotation still in text form: ``"Rel[list[Post]]"`` -> ``"list[Post]"``."""
    match = _WRAPPED.match(annotation.strip())
    return match.group(1).strip() if match else annotation
