"""``exists(Model, *filters)``: a correlated ``EXISTS`` subquery usable in ``filter()``.

``session.find(User).filter(exists(Follow, Follow.followee_id == User.id))``:
the filters read the subquery's model and, to correlate, the columns of the
outer query's models (checked by the outer ``filter()`` like any column).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from data_bridge_core.errors import UnsupportedOperationError, described
from data_bridge_core.schema.expressions import Expression, compile_where
from data_bridge_core.schema.table import Table, table_info


class ExistsWhere(Expression):
    """``EXISTS (SELECT 1 FROM <model's table> WHERE <filters>)``."""

    __slots__ = ("filters", "model")

    def __init__(self, model: type[Table], filters: tuple[Expression, ...]) -> None:
        self.model = model
        self.filters = filters

    def compile(self, params: list[Any]) -> str:
        info = table_info(self.model)
        return f"EXISTS (SELECT 1 FROM {info.quoted_name}{compile_where(self.filters, params)})"

    def models(self) -> Iterator[type]:
        """The outer models it correlates with (its own model's columns are its own)."""
        model = self.model
        for condition in self.filters:
            for owner in condition.models():
                if owner is not model and not issubclass(model, owner):
                    yield owner


def exists(model: type[Table], *filters: Expression | bool) -> Expression:
    """True where a row of ``model`` matches ``filters`` (which may read outer columns).

    ``~exists(...)`` is ``NOT EXISTS``. A filter reading the outer query's own
    table when ``model`` is that table reads the subquery's row instead (the
    names are the same; there are no aliases): correlate through another model.
    """
    if not (isinstance(model, type) and issubclass(model, Table)):
        raise TypeError(f"exists() takes a model class first, got {described(model)}")
    checked: list[Expression] = []
    for condition in filters:
        if not isinstance(condition, Expression):
            raise TypeError(
                f"exists() takes expressions such as {model.__name__}.id == Other.id, "
                f"got {described(condition)}"
            )
        checked.append(condition)
    if not checked:
        raise UnsupportedOperationError(
            f"exists({model.__name__}) needs a condition: without one it only says the "
            "table has a row (write session.find(...).exists() for that)"
        )
    return ExistsWhere(model, tuple(checked))
