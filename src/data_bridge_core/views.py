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

from data_bridge_core.errors import RelationshipError
from data_bridge_core.relationships import MANY_TO_ONE
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.state import own_state, session_of


class LoadedView:
    """Column values and loaded relationships of one instance, as plain attributes."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Table) -> None:
        self._obj = obj

    def __getattr__(self, name: str) -> Any:
        obj = self._obj
        model = type(obj)
        rel = table_info(model).relationships.get(name)
        if rel is None:
            return getattr(obj, name)
        state = own_state(obj)
        if state is not None and state.relations is not None and name in state.relations:
            return loaded(state.relations[name])
        if rel.direction == MANY_TO_ONE:
            # A many-to-one whose target is in the session needs no query either.
            key = obj.__dict__.get(rel.fk.name)
            session = session_of(obj)
            if key is None:
                return None
            target = session.identity_lookup(rel.target, key) if session is not None else None
            if target is not None:
                return loaded(target)
        raise RelationshipError(
            f"{model.__name__}.{name} is not loaded, and serializing does not query: add "
            f".options(selectinload({model.__name__}.{name})) to the query that loaded it"
        )

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
