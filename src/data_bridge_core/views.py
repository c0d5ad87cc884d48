"""`loaded(obj)`: a read-only view of a model instance for serializers.

Serializers such as pydantic (``model_validate(obj, from_attributes=True)``)
read attributes with ``getattr``; on a model, a relationship attribute is an
awaitable (``await user.posts``), which a serializer cannot use. The view
answers a relationship with its already loaded value instead (wrapped in
views too), and refuses, naming the loader option to add, when it was not
loaded: serializing never sends SQL behind your back.
"""

from __future__ import annotations

from typing import Any

from data_bridge_core.schema.table import Table, table_info


class LoadedView:
    """Column values and loaded relationships of one instance, as plain attributes."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Table) -> None:
        self._obj = obj

    def __getattr__(self, name: str) -> Any:
        obj = self._obj
        rel = table_info(type(obj)).relationships.get(name)
        if rel is None:
            return getattr(obj, name)
        # Through the seam observers watch (an eager load read here is one used).
        return loaded(rel.read_loaded(obj))

    def __repr__(self) -> str:
        return f"loaded({self._obj!r})"


def loaded(value: Any) -> Any:
    """A view of a model instance (or a list of them) whose relationships read as values.

    ``UserOut.model_validate(loaded(user))`` with ``from_attributes=True``.
    """
    if isinstance(value, Table):
        return LoadedView(value)
    if isinstance(value, list):
        return [loaded(item) for item in value]
    return value
