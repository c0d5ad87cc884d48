"""Advice that works where a one-level selectinload does not: trees walked several
levels deep, and loops over ``stream()``, which takes no loader options. Each
advice is pasted into the code and the statements it then sends are counted."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from school_models import Node

from data_bridge_core import Engine, Session, selectinload
from opentelemetry_instrumentation_data_bridge.telemetry import configure_n1_detection, n1_scope

pytestmark = pytest.mark.usefixtures("instrumented")
LINES: dict[str, int] = {}


@contextmanager
def counted_statements() -> Iterator[list[str]]:
    """The SQL statements the block sends (through `run_statement`)."""
    sent: list[str] = []
    original = Session.__dict__["run_statement"]

    async def counting(self: Any, statement: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(statement)
        return await original.__get__(self, type(self))(statement, *args, **kwargs)

    Session.run_statement = counting  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        Session.run_statement = original  # type: ignore[method-assign]


def apply(advice: str) -> Any:
    return eval(advice, {"selectinload": selectinload, "Node": Node})


async def walk(node: Node, depth: int, seen: list[int]) -> None:
    seen.append(node.id)
    if depth == 0:
        return
    LINES["children"] = sys._getframe().f_lineno + 1
    for child in await node.children:
        await walk(child, depth - 1, seen)


async def walk_the_forest(engine: Engine, depth: int, *options: Any) -> list[int]:
    seen: list[int] = []
    async with Session(engine) as session:
        roots = await session.find(Node).filter(Node.parent_id == None).options(*options).to_list()  # noqa: E711
        for root in roots:
            await walk(root, depth, seen)
    return seen


@pytest.mark.parametrize("threshold", [3, 5])
async def test_a_tree_walked_three_levels_deep_is_advised_the_three_level_path(
    school_engine: Engine, threshold: int
) -> None:
    configure_n1_detection(threshold=threshold)
    with n1_scope() as scope, counted_statements() as sent:
        seen = await walk_the_forest(school_engine, 3)
    assert len(seen) == 30  # 2 roots, 4, 8, 16
    assert len(sent) == 1 + 2 + 4 + 8  # the roots, then the children of each inner node
    [finding] = scope.findings
    assert finding.site.lineno == LINES["children"]
    assert finding.count == 14
    assert finding.recommendation == (
        "Use selectinload(Node.children).options(selectinload(Node.children)"
        ".options(selectinload(Node.children)))"
    )
    assert "WITH RECURSIVE" in finding.message()  # the other fix, for a depth not known
    with n1_scope() as fixed, counted_statements() as sent:
        seen = await walk_the_forest(
            school_engine, 3, apply(finding.recommendation.removeprefix("Use "))
        )
    assert len(seen) == 30
    assert len(sent) == 4  # the roots and one query per level
    assert fixed.findings == []
    assert fixed.unused_eager_loads == []


async def test_a_tree_walked_one_level_keeps_the_one_level_advice(school_engine: Engine) -> None:
    with n1_scope() as scope:
        async with Session(school_engine) as session:
            nodes = await session.find(Node).filter(Node.parent_id != None).to_list()  # noqa: E711
            for node in nodes:
                await node.children
    [finding] = scope.findings
    assert finding.recommendation == "Use selectinload(Node.children)"
    assert "WITH RECURSIVE" not in finding.message()
