"""The SQL that reads across a relationship: lazy and batched loads, joins, ``EXISTS``.

Built once per relationship from its `RelationshipMapping`; identifiers come
from the models and every value is a ``%s`` parameter.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

from data_bridge_core.relationship_mapping import RelationshipMapping
from data_bridge_core.schema.column import quote_ident
from data_bridge_core.schema.expressions import Exists, Expression
from data_bridge_core.schema.relation import MANY_TO_MANY, MANY_TO_ONE
from data_bridge_core.schema.table import Table, table_info


class RelationshipSql:
    """Statement text of one relationship, from ``owner`` to its mapping's target."""

    __slots__ = ("join_condition", "mapping", "owner", "select", "select_in")

    def __init__(self, owner: type[Table], mapping: RelationshipMapping) -> None:
        self.owner = owner
        self.mapping = mapping
        target_info = table_info(mapping.target)
        fk = mapping.fk
        order = f" ORDER BY {mapping.order.quoted}" if mapping.order is not None else ""
        if mapping.direction == MANY_TO_MANY:
            assert mapping.target_fk is not None and mapping.target_key is not None
            association = table_info(mapping.association or mapping.target)
            joined = (
                f"FROM {target_info.quoted_name} JOIN {association.quoted_name} "
                f"ON {mapping.target_fk.quoted} = {mapping.target_key.quoted}"
            )
            # ``select``: one owner's list; ``select_in``: a batch of owners', the
            # owner's key first (it tells which parent each row belongs to).
            self.select = f"SELECT {target_info.select_list} {joined} WHERE {fk.quoted} = %s{order}"
            self.select_in = (
                f"SELECT {fk.quoted}, {target_info.select_list} {joined} "
                f"WHERE {fk.quoted} = ANY(%s){order}"
            )
            self.join_condition = f"{fk.quoted} = {table_info(owner).primary_key.quoted}"
            return
        key = target_info.primary_key if mapping.direction == MANY_TO_ONE else fk
        head = f"SELECT {target_info.select_list} FROM {target_info.quoted_name} WHERE {key.quoted}"
        self.select = f"{head} = %s{order}"
        self.select_in = f"{head} = ANY(%s){order}"
        if mapping.direction == MANY_TO_ONE:
            self.join_condition = f"{target_info.primary_key.quoted} = {fk.quoted}"
        else:
            self.join_condition = f"{fk.quoted} = {table_info(owner).primary_key.quoted}"

    def join_clause(self, outer: bool) -> str:
        """`` JOIN target ON ...`` from the owner's table (a many-to-many joins its
        association table, then the target); ``outer``: LEFT JOINs."""
        mapping = self.mapping
        kind = " LEFT JOIN " if outer else " JOIN "
        target = table_info(mapping.target).quoted_name
        if mapping.direction == MANY_TO_MANY:
            assert mapping.owner_key is not None and mapping.target_fk is not None
            assert mapping.target_key is not None
            association = table_info(mapping.association or mapping.target).quoted_name
            return (
                f"{kind}{association} ON {mapping.fk.quoted} = {mapping.owner_key.quoted}"
                f"{kind}{target} ON {mapping.target_key.quoted} = {mapping.target_fk.quoted}"
            )
        return f"{kind}{target} ON {self.join_condition}"

    def exists_parts(self, reads_target: bool) -> tuple[str, str]:
        """(FROM list, correlation with the owner's row) of an ``EXISTS`` subquery.

        ``reads_target``: the subquery filters on the target's columns, so a
        many-to-many joins the target to its association table.
        """
        mapping = self.mapping
        target_info = table_info(mapping.target)
        fk = mapping.fk
        if mapping.direction == MANY_TO_ONE:
            return target_info.quoted_name, f"{target_info.primary_key.quoted} = {fk.quoted}"
        if mapping.direction == MANY_TO_MANY:
            assert mapping.owner_key is not None and mapping.target_fk is not None
            assert mapping.target_key is not None
            from_sql = table_info(mapping.association or mapping.target).quoted_name
            if reads_target:
                on = f"{mapping.target_key.quoted} = {mapping.target_fk.quoted}"
                from_sql += f" JOIN {target_info.quoted_name} ON {on}"
            return from_sql, f"{fk.quoted} = {mapping.owner_key.quoted}"
        owner_key = table_info(self.owner).primary_key.quoted
        return target_info.quoted_name, f"{fk.quoted} = {owner_key}"


class SelfExists(Exists):
    """``any()`` of a many-to-many of a model with itself (users following users).

    The subquery joins the model's table a second time, under an alias: the
    criteria's columns (compiled as ``"users"."name"``) are rewritten to read
    the alias, while the correlation reads the outer row. A nested self
    ``any()`` already carries ``"users_1"``: this one takes the next number.
    """

    __slots__ = ("table", "target_fk", "target_key")

    def __init__(
        self,
        owner: type,
        sql: RelationshipSql,
        criteria: Expression,
    ) -> None:
        mapping = sql.mapping
        assert mapping.target_fk is not None and mapping.target_key is not None
        assert mapping.owner_key is not None
        info = table_info(mapping.target)
        super().__init__(
            owner,
            table_info(mapping.association or mapping.target).quoted_name,
            f"{mapping.fk.quoted} = {mapping.owner_key.quoted}",
            criteria,
        )
        self.table = info.name
        self.target_key = mapping.target_key.ident
        self.target_fk = mapping.target_fk.quoted

    def compile(self, params: list[Any]) -> str:
        assert self.criteria is not None
        criteria = self.criteria.compile(params)
        plain = quote_ident(self.table)
        depth = 1
        while quote_ident(f"{self.table}_{depth}") in criteria:
            depth += 1
        alias = quote_ident(f"{self.table}_{depth}")
        criteria = criteria.replace(f"{plain}.", f"{alias}.")
        return (
            f"EXISTS (SELECT 1 FROM {self.from_sql} JOIN {plain} AS {alias} "
            f"ON {alias}.{self.target_key} = {self.target_fk} "
            f"WHERE {self.correlation} AND {criteria})"
        )

    def shape(self) -> Hashable:
        assert self.criteria is not None
        return (SelfExists, self.from_sql, self.correlation, self.criteria.shape(), self.table)

    def models(self) -> Iterator[type]:
        yield self.owner
