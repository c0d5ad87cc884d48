"""The writes of a many-to-many's association table (its *links*).

A flush changes links one by one: the pairs added are inserted with ``ON
CONFLICT DO NOTHING`` (a link another transaction added meanwhile is kept,
not an error), the pairs removed are deleted by pair. Only deleting an owner,
or assigning a list that was never read, deletes by owner. Every DELETE
returns the keys of the rows it removed, so that link objects the session
holds leave it.
"""

from __future__ import annotations

from data_bridge_core.schema.column import ColumnInfo
from data_bridge_core.schema.table import TableInfo


class LinkSql:
    """Statement text for the links of one many-to-many, seen from its owner's side."""

    __slots__ = ("delete_all_but", "delete_of_owners", "delete_pairs", "insert_pairs")

    def __init__(self, association: TableInfo, owner_fk: ColumnInfo, target_fk: ColumnInfo) -> None:
        table = association.quoted_name
        owner, target = owner_fk.ident, target_fk.ident
        pairs = (
            f"unnest(%s::{owner_fk.column_type.sql_type}[], %s::{target_fk.column_type.sql_type}[])"
        )
        returning = f"RETURNING {association.key_returning}"
        # (owner keys array, target keys array)
        self.insert_pairs = (
            f"INSERT INTO {table} ({owner}, {target}) SELECT * FROM {pairs} ON CONFLICT DO NOTHING"
        )
        # (owner keys array, target keys array)
        self.delete_pairs = (
            f"DELETE FROM {table} WHERE ({owner}, {target}) IN (SELECT * FROM {pairs}) {returning}"
        )
        # (owner keys array): the owners are deleted
        self.delete_of_owners = f"DELETE FROM {table} WHERE {owner} = ANY(%s) {returning}"
        # (owner key, target keys array): the links become exactly these targets
        self.delete_all_but = (
            f"DELETE FROM {table} WHERE {owner} = %s AND NOT ({target} = ANY(%s)) {returning}"
        )
