"""What the schema layer knows of relationships.

`Table` recognises a relationship declaration by this base class, and the
unit of work reads a relationship's direction and foreign key through it,
without importing the loading code of `data_bridge_core.relationships`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from data_bridge_core.link_sql import LinkSql
    from data_bridge_core.schema.column import ColumnInfo
    from data_bridge_core.schema.table import Table

ONE_TO_MANY = "one_to_many"
MANY_TO_ONE = "many_to_one"
MANY_TO_MANY = "many_to_many"  # through an association table (relationship(secondary=...))
# How a relationship value got there: assigned by the user (a many-to-many's
# changed links are then written at the next flush, which marks the value LINKED).
ASSIGNED = "assigned"
LINKED = "linked"
# Strategies stored per instance by raiseload()/noload() options.
RAISE = "raise"
NOLOAD = "noload"


class RelationshipDeclaration:
    """Base of `data_bridge_core.relationships.Relationship`."""

    name: str
    back_populates: str | None
    annotation: Any

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

    @property
    def association(self) -> type[Table] | None:
        """The association model of a many-to-many (None otherwise)."""
        raise NotImplementedError

    @property
    def link_columns(self) -> tuple[ColumnInfo, ColumnInfo, ColumnInfo, ColumnInfo]:
        """Many-to-many: (association column -> owner, owner's referenced column,
        association column -> target, target's referenced column)."""
        raise NotImplementedError

    @property
    def link_sql(self) -> LinkSql:
        """Many-to-many: the writes of its association table."""
        raise NotImplementedError
