"""What the schema layer knows of relationships.

`Table` recognises a relationship declaration by this base class, and the
unit of work reads a relationship's direction and foreign key through it,
without importing the loading code of `data_bridge_core.relationships`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from data_bridge_core.schema.column import ColumnInfo
    from data_bridge_core.schema.table import Table

ONE_TO_MANY = "one_to_many"
MANY_TO_ONE = "many_to_one"


class RelationshipDeclaration:
    """Base of `data_bridge_core.relationships.Relationship`."""

    name: str
    back_populates: str | None

    def bind(self, owner: type[Table], name: str, annotation: Any) -> None:
        raise NotImplementedError

    @property
    def target(self) -> type[Table]:
        raise NotImplementedError

    @property
    def direction(self) -> str:
        raise NotImplementedError

    @property
    def fk(self) -> ColumnInfo:
        raise NotImplementedError
