"""``story.favorited_by``: a list relationship of one instance, awaitable, with add/remove.

``await story.favorited_by`` gives the list (loaded on first use).
``story.favorited_by.add(reader)`` and ``.remove(reader)`` change one link of a
many-to-many without reading the list; the change joins the session's unit of
work and is written at the next flush (see docs/usage.md, "Collections").
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from data_bridge_core.relationships import Relationship
    from data_bridge_core.schema.table import Table

E = TypeVar("E")


class RelatedList(Generic[E]):
    """What reading a list relationship on an instance gives (``user.posts``)."""

    __slots__ = ("_instance", "_loading", "_relationship")

    def __init__(
        self, relationship: Relationship, instance: Table, loading: Coroutine[Any, Any, Any]
    ) -> None:
        self._relationship = relationship
        self._instance = instance
        # The load was started where the attribute was read (an instrumentation
        # reads the caller's line there); only awaiting it runs SQL.
        self._loading: Coroutine[Any, Any, Any] | None = loading

    def __await__(self) -> Generator[Any, None, list[E]]:
        loading = self._loading
        if loading is None:  # add()/remove() dropped the first one
            loading = self._relationship.load(self._instance)
        self._loading = None
        return loading.__await__()

    def add(self, obj: E) -> None:
        """Link ``obj`` at the next flush (idempotent); the loaded lists of both sides follow now.

        Raises `TypeError` for an object of another model,
        `UnsupportedOperationError` on a one-to-many (set the child's many-to-one
        instead), `InvalidStateError` when the owner is stored but not in a session.
        """
        self._drop_load()
        self._relationship.change_link(self._instance, obj, linked=True)

    def remove(self, obj: E) -> None:
        """Unlink ``obj`` at the next flush (idempotent: no link, nothing happens).

        Raises as `add` does.
        """
        self._drop_load()
        self._relationship.change_link(self._instance, obj, linked=False)

    def _drop_load(self) -> None:
        loading = self._loading
        if loading is not None:
            self._loading = None
            loading.close()  # never started: closing it keeps "never awaited" quiet

    def __repr__(self) -> str:
        rel = self._relationship
        return f"<{rel.owner.__name__}.{rel.name} of {self._instance!r}>"
