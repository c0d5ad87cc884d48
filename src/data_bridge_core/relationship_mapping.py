"""What a relationship connects: its target, direction and key columns, read from the models.

`resolve_mapping` turns a declaration (``posts: list[Post] = relationship(...)``)
into a `RelationshipMapping` the first time the relationship is used, once
every model it names exists. It reads the annotation, finds the foreign key
(or, for a many-to-many, the association model and its two foreign keys), and
explains what to declare when it cannot decide.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from data_bridge_core.errors import DataBridgeError, ModelDefinitionError
from data_bridge_core.schema import registry
from data_bridge_core.schema.column import ColumnInfo
from data_bridge_core.schema.relation import MANY_TO_MANY, MANY_TO_ONE, ONE_TO_MANY
from data_bridge_core.schema.table import Table, TableInfo, table_info, table_name_of
from data_bridge_core.schema.typed import unwrap, unwrap_text

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WRAPPERS = {"list", "List", "Optional", "None", "typing", "Sequence"}


@dataclass(frozen=True)
class RelationshipDeclared:
    """The arguments of one ``relationship(...)`` and where it is declared."""

    owner: type[Table]
    name: str
    annotation: Any
    back_populates: str | None
    secondary: str | None
    foreign_key: str | None
    order_by: str | None

    @property
    def where(self) -> str:
        return f"{self.owner.__name__}.{self.name}"


@dataclass(frozen=True)
class RelationshipMapping:
    """A resolved relationship.

    ``fk`` is the foreign key column linking the two tables; for a
    many-to-many, it is the association table's column pointing at the owner,
    and ``association``, ``owner_key`` (the owner's column it references),
    ``target_fk`` and ``target_key`` name the other half. ``order`` orders
    lists (None for a single object).
    """

    target: type[Table]
    uselist: bool
    direction: str
    fk: ColumnInfo
    order: ColumnInfo | None = None
    association: type[Table] | None = None
    owner_key: ColumnInfo | None = None
    target_fk: ColumnInfo | None = None
    target_key: ColumnInfo | None = None


def parse_annotation(annotation: Any, where: str) -> tuple[str, bool]:
    """(target model name, holds a list) of ``list[Post]``, ``"User"``, ``Rel[list[Post]]``..."""
    # Rel[list[Post]] (the typed style) reads as list[Post].
    annotation = unwrap_text(annotation) if isinstance(annotation, str) else unwrap(annotation)
    if not isinstance(annotation, str):
        origin = typing.get_origin(annotation)
        uselist = origin in (list, Sequence) or annotation in (list,)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = args[0] if args else annotation
        if isinstance(inner, typing.ForwardRef):
            inner = inner.__forward_arg__
        if isinstance(inner, str):
            return inner.strip("'\""), uselist
        if isinstance(inner, type):
            return inner.__name__, uselist
        raise ModelDefinitionError(f"{where}: cannot read the target of {annotation!r}")
    names = [n for n in _NAME.findall(annotation) if n not in _WRAPPERS]
    if len(names) != 1:
        raise ModelDefinitionError(
            f"{where}: the annotation {annotation!r} must name one model, as in list[Post] or User"
        )
    uselist = annotation.replace(" ", "").startswith(("list[", "List[", "Sequence["))
    return names[0], uselist


def resolve_mapping(declared: RelationshipDeclared) -> RelationshipMapping:
    """Read the models a declaration names; raises `ModelDefinitionError` naming the fix."""
    target_name, uselist = parse_annotation(declared.annotation, declared.where)
    target = registry.lookup(target_name, declared.owner)
    if declared.secondary is not None:
        return _resolve_secondary(declared, target, uselist)
    target_info = table_info(target)
    fk = _find_fk(declared, target, uselist)
    if fk.owner is declared.owner and not uselist:
        if target_info.composite:
            raise ModelDefinitionError(
                f"<relationship {declared.where}>: {target.__name__} has a composite primary "
                "key; a many-to-one relationship needs a single-column key to point at"
            )
        return RelationshipMapping(target, uselist, MANY_TO_ONE, fk)
    return RelationshipMapping(
        target, uselist, ONE_TO_MANY, fk, order=_order_column(declared, target_info)
    )


def _order_column(declared: RelationshipDeclared, target_info: TableInfo) -> ColumnInfo:
    if declared.order_by:
        return target_info.column(declared.order_by, f"relationship {declared.name} order_by")
    return target_info.primary_key


def _resolve_secondary(
    declared: RelationshipDeclared, target: type[Table], uselist: bool
) -> RelationshipMapping:
    owner, where, secondary = declared.owner, declared.where, declared.secondary or ""
    if not uselist:
        raise ModelDefinitionError(
            f"{where}: a many-to-many (secondary={secondary!r}) holds a list: "
            f"annotate it list[{target.__name__}]"
        )
    association = _model_of_table(secondary, owner)
    owner_info, target_info = table_info(owner), table_info(target)
    links = table_info(association)

    def pointing_at(info: TableInfo) -> list[tuple[ColumnInfo, ColumnInfo]]:
        return [
            (column, info.column(referenced, f"{secondary}.{column.name}"))
            for column, table, referenced in links.iter_foreign_keys()
            if table == info.name
        ]

    def one(
        found: list[tuple[ColumnInfo, ColumnInfo]], info: TableInfo
    ) -> tuple[ColumnInfo, ColumnInfo]:
        if len(found) != 1:
            raise ModelDefinitionError(
                f"{where}: the association table {secondary!r} needs exactly one "
                f"foreign key to {info.name!r}, found {len(found)}"
            )
        return found[0]

    if target is owner:
        # Self-referential (users following users): both foreign keys point at the
        # same table; foreign_key= names the one pointing at the owner's row.
        found = pointing_at(owner_info)
        names = [c.name for c, _ in found]
        if len(found) != 2 or declared.foreign_key not in names:
            raise ModelDefinitionError(
                f"{where}: a many-to-many of {owner.__name__} with itself needs "
                f"foreign_key= naming the column of {secondary!r} that points at the owner "
                f"(one of two foreign keys to {owner_info.name!r}; found "
                f"{', '.join(names) or 'none'})"
            )
        (fk, owner_key), (target_fk, target_key) = sorted(
            found, key=lambda pair: pair[0].name != declared.foreign_key
        )
    else:
        fk, owner_key = one(pointing_at(owner_info), owner_info)
        target_fk, target_key = one(pointing_at(target_info), target_info)
    if not links.is_unique_key((fk.name, target_fk.name)):
        # Adding a link writes INSERT ... ON CONFLICT DO NOTHING: only a unique pair
        # makes two requests adding the same link at once leave one row.
        raise ModelDefinitionError(
            f"{where}: the association table {secondary!r} needs ({fk.name}, {target_fk.name}) "
            "as its primary key or a Settings.unique group: one link is one row"
        )
    return RelationshipMapping(
        target,
        True,
        MANY_TO_MANY,
        fk,
        order=_order_column(declared, target_info),
        association=association,
        owner_key=owner_key,
        target_fk=target_fk,
        target_key=target_key,
    )


def _find_fk(declared: RelationshipDeclared, target: type[Table], uselist: bool) -> ColumnInfo:
    owner = declared.owner
    owner_info, target_info = table_info(owner), table_info(target)

    def candidates(src: type[Table], dst: type[Table]) -> list[ColumnInfo]:
        dst_name = table_info(dst).name
        return [c for c, table, _ in table_info(src).iter_foreign_keys() if table == dst_name]

    if declared.foreign_key:
        for info in (owner_info, target_info) if not uselist else (target_info,):
            column = info.columns.get(declared.foreign_key)
            if column is not None:
                return column
        raise ModelDefinitionError(
            f"{declared.where}: foreign_key {declared.foreign_key!r} is not a "
            f"column of {owner.__name__ if not uselist else target.__name__}"
        )
    found = [] if uselist else candidates(owner, target)
    direction = "many-to-one"
    if not found:
        found = candidates(target, owner)
        direction = "one-to-many"
    if len(found) == 1:
        return found[0]
    if not found:
        association = _association_hint(owner, target)
        if association or (uselist and _back_is_list(declared, target)):
            table = association or "<association table>"
            back = declared.back_populates
            back_arg = f', back_populates="{back}"' if back else ""
            raise ModelDefinitionError(
                f"{declared.where}: {owner.__name__} and {target.__name__} have "
                f"no foreign key to each other; a many-to-many goes through an association "
                f'table: declare relationship(secondary="{table}"{back_arg})'
            )
        raise ModelDefinitionError(
            f"{declared.where}: no foreign key links {owner_info.name!r} and "
            f"{target_info.name!r}; declare Column(foreign_key='table.column') on one side"
        )
    names = ", ".join(c.name for c in found)
    raise ModelDefinitionError(
        f"{declared.where}: several {direction} foreign keys ({names}); "
        "pass relationship(foreign_key=...) to choose one"
    )


def _association_hint(owner: type[Table], target: type[Table]) -> str:
    """For a missing foreign key: the association table linking both sides, if any."""
    owner_name, target_name = table_info(owner).name, table_info(target).name
    for model in registry.models_near(owner):
        if model is owner or model is target:
            continue
        try:
            refs = {table for _, table, _ in table_info(model).iter_foreign_keys()}
        except DataBridgeError:  # an unrelated model that cannot be mapped yet: no hint from it
            continue
        if owner_name in refs and target_name in refs:
            return table_info(model).name
    return ""


def _back_is_list(declared: RelationshipDeclared, target: type[Table]) -> bool:
    if not declared.back_populates:
        return False
    other = target.__dict__.get("__relationships__", {}).get(declared.back_populates)
    if other is None:
        return False
    return parse_annotation(other.annotation, f"{target.__name__}.{other.name}")[1]


def _model_of_table(table: str, near: type[Table]) -> type[Table]:
    """The model mapping ``table`` (an association table), as seen from ``near``."""
    for group in registry.scoped_models(near):
        found = [m for m in group if table_name_of(m) == table]
        if found:
            return found[-1]
    raise ModelDefinitionError(
        f"{near.__name__}: no model maps the association table {table!r}; declare one "
        f"(class ...(Table) with Settings.table_name = {table!r}) whose columns are foreign "
        "keys to both sides, together its composite primary key"
    )
