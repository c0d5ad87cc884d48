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


async def children_of_a_stream(engine: Engine, *options: Any) -> int:
    """A loop over a stream (``batch_size`` 10: three batches of the 30 nodes)."""
    found = 0
    async with Session(engine) as session:
        LINES["stream"] = sys._getframe().f_lineno + 1
        async for node in session.find(Node).order_by(Node.id).stream(batch_size=10):
            found += len(await node.children)
    return found


async def test_a_loop_over_a_stream_is_advised_a_fix_that_works_with_streams(
    school_engine: Engine,
) -> None:
    with n1_scope() as scope, counted_statements() as sent:
        assert await children_of_a_stream(school_engine) == 28
    assert len(sent) == 30  # one lazy load per node (the stream's own SQL is not counted)
    [finding] = scope.findings
    assert finding.option == "selectinload(Node.children)"
    assert finding.recommendation == (
        "Use .options(selectinload(Node.children)).to_list() in place of .stream() "
        "(stream() takes no loader options), or keep streaming and load each batch's "
        "Node rows with one session.find(Node).filter(Node.parent_id.in_(ids)).to_list()"
    )
    assert finding.query_site is not None and finding.query_site.lineno == LINES["stream"]
    assert finding.message().endswith(f" (the stream at {finding.query_site})")

    # Pasted: to_list() with the loader option, in place of the stream.
    with n1_scope() as fixed, counted_statements() as sent:
        async with Session(school_engine) as session:
            option = apply(finding.option)
            nodes = await session.find(Node).order_by(Node.id).options(option).to_list()
            assert sum([len(await node.children) for node in nodes]) == 28
    assert len(sent) == 2  # the nodes, their children
    assert fixed.findings == []

    # Pasted: one query per batch of the stream.
    with n1_scope() as fixed, counted_statements() as sent:
        async with Session(school_engine) as session:
            found = 0
            batch: list[Node] = []
            stream = session.find(Node).order_by(Node.id).stream(batch_size=10)
            async for node in stream:
                batch.append(node)
                if len(batch) == 10:
                    ids = [n.id for n in batch]
                    found += len(await session.find(Node).filter(Node.parent_id.in_(ids)).to_list())
                    batch = []
    assert found == 28
    assert len(sent) == 3  # one query per batch
    assert fixed.findings == []


async def test_a_stream_at_the_root_of_a_two_level_walk_gets_the_nested_path_for_to_list(
    school_engine: Engine,
) -> None:
    with n1_scope() as scope:
        async with Session(school_engine) as session:
            stream = session.find(Node).filter(Node.parent_id == None).stream()  # noqa: E711
            async for root in stream:
                for child in await root.children:
                    await child.children
    deepest = max(scope.findings, key=lambda f: len(f.option))
    assert deepest.recommendation == (
        "Use .options(selectinload(Node.children).options(selectinload(Node.children)))"
        ".to_list() in place of .stream() (stream() takes no loader options)"
    )
