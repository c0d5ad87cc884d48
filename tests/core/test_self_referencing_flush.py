"""New rows of a self-referencing table written in one flush keep their links.

Found while making the docs' tree example run: a new parent and its new child
went into one INSERT, so the child's row could not know the parent's new key
and was stored with ``parent_id`` NULL, silently. A flush now inserts the new
rows of such a table level by level (parents first).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from core_fixtures import DSN, fetch

from data_bridge_core import Column, Engine, InvalidStateError, Session, Table, relationship


class Branch(Table):
    id: int = Column(primary_key=True)
    parent_id: int | None = Column(foreign_key="branches.id", default=None)
    label: str
    parent: Branch | None = relationship(back_populates="children", foreign_key="parent_id")
    children: list[Branch] = relationship(back_populates="parent", foreign_key="parent_id")

    class Settings:
        table_name = "branches"


@pytest.fixture
async def trees(schema: str) -> AsyncIterator[Engine]:
    engine = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
    await engine.create_all(Branch)
    try:
        yield engine
    finally:
        await engine.dispose()


async def stored(schema: str) -> dict[str, str | None]:
    """label -> the parent's label, as committed."""
    rows = await fetch(
        schema,
        "SELECT b.label, p.label FROM branches b LEFT JOIN branches p ON p.id = b.parent_id",
    )
    return dict(rows)


async def test_a_new_child_given_a_new_parent_is_stored_under_it(
    trees: Engine, schema: str
) -> None:
    async with Session(trees) as session:
        root = Branch(label="root")
        child = Branch(label="child", parent=root)
        session.add(child)
        await session.commit()
        assert child.parent_id == root.id is not None
    assert await stored(schema) == {"root": None, "child": "root"}


async def test_a_new_tree_three_levels_deep_given_as_children_keeps_every_link(
    trees: Engine, schema: str
) -> None:
    async with Session(trees) as session:
        leaves = [Branch(label=f"leaf{i}") for i in range(3)]
        middle = Branch(label="middle", children=leaves)
        root = Branch(label="root", children=[middle])
        session.add(root)
        await session.commit()
    assert await stored(schema) == {
        "root": None,
        "middle": "root",
        "leaf0": "middle",
        "leaf1": "middle",
        "leaf2": "middle",
    }


async def test_a_chain_of_new_rows_added_leaf_first_is_inserted_parents_first(
    trees: Engine, schema: str
) -> None:
    async with Session(trees) as session:
        chain = [Branch(label="n0")]
        for i in range(1, 6):
            chain.append(Branch(label=f"n{i}", parent=chain[-1]))
        session.add_all(reversed(chain))
        await session.commit()
    assert await stored(schema) == {"n0": None} | {f"n{i}": f"n{i - 1}" for i in range(1, 6)}


async def test_new_rows_linked_in_a_cycle_are_refused_and_nothing_is_written(
    trees: Engine, schema: str
) -> None:
    async with Session(trees) as session:
        a = Branch(label="a")
        b = Branch(label="b", parent=a)
        a.parent = b
        session.add(a)
        with pytest.raises(InvalidStateError, match="cycle"):
            await session.commit()
    assert await stored(schema) == {}
